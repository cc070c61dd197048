"""Standard pre-norm decoders: Llama, Mistral, Mixtral, Qwen2/2-MoE/3/3-MoE, Phi-3, Gemma 1/2/3, Granite,
InternLM2, and the text models of Qwen2-VL, Qwen2.5-VL, Qwen3-VL and Phi-3-vision.

Each family is the same block (norm -> attention -> norm -> MLP or MoE) with a few switches, read here from
the config exactly as the Hugging Face modeling code reads them (transformers `models/<family>/modeling_*.py`):
biases, q/k norms, fused projections, extra Gemma norms, which layers are MoE and which slide.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvcalc.sources.families._build import (
    Cfg,
    Parts,
    attention,
    embeddings,
    experts,
    layer_types,
    linear,
    mlp,
    norm,
    routed,
)
from kvcalc.spec.layers import (
    DenseMLP,
    FullAttention,
    LayerSpec,
    MoEMLP,
    SlidingWindowAttention,
)


@dataclass(frozen=True)
class Family:
    """Switches that distinguish one standard decoder family from another."""

    qkv_bias_key: str | None = "attention_bias"  # config key that turns q/k/v biases on
    qkv_bias_always: bool = False  # Qwen2: q/k/v always biased, o never
    o_bias_follows_qkv: bool = True
    qk_norm: bool = False
    fused: bool = False  # Phi-3: qkv_proj and gate_up_proj
    norms_per_layer: int = 2  # Gemma 2/3: 4 (pre/post attention, pre/post feed-forward)
    tied_default: bool = False
    moe: str | None = None  # "mixtral" | "qwen"
    alternate_sliding: bool = False  # Gemma 2: even layers slide
    sliding_pattern_key: str | None = None  # Gemma 3: every Nth layer is global


FAMILIES: dict[str, Family] = {
    "llama": Family(),
    "mistral": Family(qkv_bias_key=None),
    "mixtral": Family(qkv_bias_key=None, moe="mixtral"),
    "qwen2": Family(qkv_bias_always=True, o_bias_follows_qkv=False),
    "qwen2_moe": Family(qkv_bias_always=True, o_bias_follows_qkv=False, moe="qwen"),
    "qwen3": Family(qk_norm=True),
    "qwen3_moe": Family(qk_norm=True, moe="qwen"),
    "phi3": Family(qkv_bias_key=None, fused=True),
    "gemma": Family(tied_default=True),
    "gemma2": Family(norms_per_layer=4, tied_default=True, alternate_sliding=True),
    "gemma3_text": Family(
        norms_per_layer=4, tied_default=True, qk_norm=True, sliding_pattern_key="sliding_window_pattern"
    ),
}
#: Text models of multimodal wrappers and close relatives: the same block as the family named.
FAMILIES.update({
    "granite": FAMILIES["llama"],  # GraniteForCausalLM: Llama's tensors (its multipliers hold no weights)
    "phi3_v": FAMILIES["phi3"],  # Phi-3-vision's text model is Phi-3's
    "internlm2": FAMILIES["llama"],  # InternLM2: Llama's tensors with q/k/v and gate/up fused (the same counts)
    **dict.fromkeys(("qwen2_vl", "qwen2_vl_text", "qwen2_5_vl", "qwen2_5_vl_text"), FAMILIES["qwen2"]),
    "qwen3_vl_text": FAMILIES["qwen3"],
    "qwen3_vl_moe_text": FAMILIES["qwen3_moe"],
})


def _sliding_layers(cfg: Cfg, family: Family, num_layers: int) -> list[bool]:
    """Which layers use a sliding window: explicit `layer_types`, else the family's pattern, else the config's
    `sliding_window` on every layer (Mistral v0.1, Phi-3), honouring Qwen2's `use_sliding_window` switch."""
    window = cfg.get("sliding_window")
    types = layer_types(cfg, num_layers)
    if types is not None:
        return [t == "sliding_attention" for t in types]
    if not window:
        return [False] * num_layers
    if family.alternate_sliding:
        return [i % 2 == 0 for i in range(num_layers)]
    if family.sliding_pattern_key:
        pattern = cfg.int(family.sliding_pattern_key, 6)
        return [(i + 1) % pattern != 0 for i in range(num_layers)]
    if cfg.has("use_sliding_window"):
        if not cfg.bool("use_sliding_window", False):
            return [False] * num_layers
        first = cfg.int("max_window_layers", 0, minimum=0)
        return [i >= first for i in range(num_layers)]
    return [True] * num_layers


def _is_moe_layer(cfg: Cfg, family: Family, index: int) -> bool:
    if family.moe == "mixtral":
        return True
    if family.moe == "qwen":
        if index in cfg.layer_set("mlp_only_layers"):
            return False
        step = cfg.int("decoder_sparse_step", 1)
        return cfg.int("num_experts", 0, minimum=0) > 0 and (index + 1) % step == 0
    return False


def build(cfg: Cfg, model_type: str) -> Parts:
    family = FAMILIES[model_type]
    hidden = cfg.int("hidden_size")
    num_layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.int("num_key_value_heads", heads)
    head_dim = cfg.int("head_dim", hidden // heads)
    vocab = cfg.int("vocab_size")
    tied = cfg.bool("tie_word_embeddings", family.tied_default)
    qkv_bias = family.qkv_bias_always or (
        cfg.bool(family.qkv_bias_key, False) if family.qkv_bias_key else False
    )
    o_bias = qkv_bias and family.o_bias_follows_qkv
    mlp_bias = cfg.bool("mlp_bias", False)
    sliding = _sliding_layers(cfg, family, num_layers)

    layers = []
    for i in range(num_layers):
        tensors = attention(
            i,
            hidden,
            heads,
            kv_heads,
            head_dim,
            qkv_bias=qkv_bias,
            o_bias=o_bias,
            fused_qkv=family.fused,
            qk_norm=family.qk_norm,
        )
        for n in range(family.norms_per_layer):
            tensors += norm(("attn_norm", "ffn_norm", "post_attention_norm", "post_ffw_norm")[n], hidden, i)
        mixer: FullAttention
        if sliding[i]:
            mixer = SlidingWindowAttention(
                num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, sliding_window=cfg.int("sliding_window")
            )
        else:
            mixer = FullAttention(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim)
        if _is_moe_layer(cfg, family, i):
            num_experts = cfg.first_int(("num_local_experts", "num_experts"))
            expert_inter = cfg.first_int(("moe_intermediate_size", "intermediate_size"))
            shared_inter = cfg.int("shared_expert_intermediate_size", 0, minimum=0)
            tensors += experts(i, hidden, num_experts, expert_inter)
            if shared_inter:
                tensors += mlp(i, hidden, shared_inter, suffix="_shexp")
                tensors += linear("ffn_gate_inp_shexp", 1, hidden, i)
            ffn: DenseMLP | MoEMLP = routed(cfg, num_experts, expert_inter, shared_inter)
        else:
            inter = cfg.int("intermediate_size")
            tensors += mlp(i, hidden, inter, bias=mlp_bias, fused_gate_up=family.fused)
            ffn = DenseMLP(intermediate_size=inter)
        layers.append(LayerSpec(index=i, mixer=mixer, mlp=ffn, tensors=tuple(tensors)))
    return Parts(layers=layers, global_tensors=embeddings(vocab, hidden, tied=tied))
