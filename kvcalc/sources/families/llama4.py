"""Llama 4 (Scout 17B-16E, Maverick 17B-128E): interleaved MoE / dense layers, chunked + NoPE attention.

The mapper receives the merged `text_config` (`model_type: llama4_text`) of `Llama4ForConditionalGeneration`.
Follows transformers `models/llama4/modeling_llama4.py` / `configuration_llama4.py` and vLLM
`vllm/model_executor/models/llama4.py` (+ `mllama4.py` for the vision side):

- `Llama4TextAttention`: q [n_h*d, H], k/v [n_kv*d, H], o [H, n_h*d] (biases with `attention_bias`); the qk
  norm is a weightless L2 norm.
- which layers are local: `no_rope_layers[i]` is 1 for a RoPE layer and 0 for a NoPE layer (default: every
  `no_rope_layer_interval` = 4th layer is NoPE, `Llama4TextConfig.__post_init__`). RoPE layers attend within
  chunks of `attention_chunk_size` tokens (`layer_types` "chunked_attention"; vLLM: `use_chunked_local_attn =
  not nope and attention_chunk_size`), NoPE layers attend to the whole context ("full_attention"). An explicit
  `layer_types` in the config wins.
- MoE layers: `moe_layers` if given, else every `interleave_moe_layer_step`-th layer (indices step-1,
  2*step-1, ...). `Llama4TextMoe` = router [E, H] (no bias), experts `gate_up_proj` [E, H, 2I] +
  `down_proj` [E, I, H] with I = `intermediate_size` (kept here as GGUF's separate ffn_gate_exps /
  ffn_up_exps [E, I, H], same count), and one always-on shared expert MLP of `intermediate_size`. Other
  layers: a dense gated MLP of `intermediate_size_mlp`.
- two RMSNorms per layer, final norm, head untied (`tie_word_embeddings` False).

The vision tower is counted by `kvcalc.sources.vision` (towers.llama4).
"""

from __future__ import annotations

from kvcalc.errors import InputError
from kvcalc.sources.families._build import (
    Cfg,
    Parts,
    attention,
    embeddings,
    experts,
    layer_types,
    mlp,
    norm,
)
from kvcalc.spec.layers import ChunkedAttention, DenseMLP, FullAttention, LayerSpec, MoEMLP


def _chunked_layers(cfg: Cfg, num_layers: int) -> list[bool]:
    types = layer_types(cfg, num_layers)
    if types is not None:
        return [t == "chunked_attention" for t in types]
    if not cfg.get("attention_chunk_size"):
        return [False] * num_layers
    rope = cfg.get("no_rope_layers")
    if not rope:  # None or [] -> the default pattern
        interval = cfg.int("no_rope_layer_interval", 4)
        return [(i + 1) % interval != 0 for i in range(num_layers)]
    if not isinstance(rope, list) or len(rope) < num_layers:
        raise InputError(f"{cfg.where}: 'no_rope_layers' must list at least {num_layers} entries")
    return [bool(rope[i]) for i in range(num_layers)]


def build(cfg: Cfg, model_type: str) -> Parts:
    hidden = cfg.int("hidden_size")
    num_layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.int("num_key_value_heads", heads)
    head_dim = cfg.int("head_dim", hidden // heads)
    vocab = cfg.int("vocab_size")
    bias = cfg.bool("attention_bias", False)
    num_experts = cfg.int("num_local_experts", 16)
    top_k = cfg.int("num_experts_per_tok", 1)
    expert_inter = cfg.int("intermediate_size")
    dense_inter = cfg.int("intermediate_size_mlp")
    chunked = _chunked_layers(cfg, num_layers)
    chunk = cfg.get("attention_chunk_size")
    moe_layers = cfg.get("moe_layers")
    if moe_layers is None:
        step = cfg.int("interleave_moe_layer_step", 1)
        moe_layers = list(range(step - 1, num_layers, step))
    moe_set = {int(i) for i in moe_layers}

    layers = []
    for i in range(num_layers):
        tensors = attention(i, hidden, heads, kv_heads, head_dim, qkv_bias=bias, o_bias=bias)
        tensors += norm("attn_norm", hidden, i) + norm("ffn_norm", hidden, i)
        mixer: FullAttention
        if chunked[i]:
            mixer = ChunkedAttention(
                num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, chunk=int(chunk)
            )
        else:
            mixer = FullAttention(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim)
        ffn: DenseMLP | MoEMLP
        if i in moe_set:
            tensors += experts(i, hidden, num_experts, expert_inter)
            tensors += mlp(i, hidden, expert_inter, suffix="_shexp")
            ffn = MoEMLP(
                num_experts=num_experts,
                top_k=top_k,
                expert_intermediate_size=expert_inter,
                shared_intermediate_size=expert_inter,
            )
        else:
            tensors += mlp(i, hidden, dense_inter)
            ffn = DenseMLP(intermediate_size=dense_inter)
        layers.append(LayerSpec(index=i, mixer=mixer, mlp=ffn, tensors=tuple(tensors)))

    tied = cfg.bool("tie_word_embeddings", False)
    return Parts(
        layers=layers, global_tensors=embeddings(vocab, hidden, tied=tied)
    )
