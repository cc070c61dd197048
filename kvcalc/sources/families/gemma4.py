"""Gemma 4 text model (`gemma4_text`, e.g. Gemma-4-26B-A4B): sliding/global attention, per-kind head sizes.

Follows transformers 5.24 `models/gemma4/modeling_gemma4.py` (Gemma4TextAttention, Gemma4TextMLP,
Gemma4TextRouter, Gemma4TextExperts, Gemma4TextDecoderLayer, Gemma4TextModel, Gemma4VisionModel,
Gemma4MultimodalEmbedder) with `configuration_gemma4.py` (per_layer_config, kv_sharing_modes), and vLLM
`vllm/model_executor/models/gemma4.py` (which caches K and V for `attention_k_eq_v` layers too: K is loaded
into both slots of qkv_proj).

- `layer_types` (default: every 6th layer global; the last layer is forced to `full_attention`). Sliding
  layers: `head_dim`, `num_key_value_heads`, window `sliding_window`. Global layers: `global_head_dim`
  (default 512) and, when `attention_k_eq_v`, `num_global_key_value_heads` KV heads and no v_proj (V = K).
- Attention: q [n_h*d, H], k [n_kv*d, H], v [n_kv*d, H] (absent when k_eq_v), o [H, n_h*d], RMSNorm [d] on
  q and k (the v norm has no weight); biases if `attention_bias`. The last `num_kv_shared_layers` layers
  reuse an earlier layer's KV cache: they have no k/v projections or norms and cache nothing.
- Feed-forward: a gated MLP of `intermediate_size` (x2 on KV-shared layers with `use_double_wide_mlp`) and,
  with `enable_moe_block`, in parallel a MoE: router proj [E, H], router scale [H], per_expert_scale [E],
  experts gate_up [E, 2I, H] and down [E, H, I], plus three extra norms.
- Norms per layer: input, post-attention, pre- and post-feed-forward (+ 3 with MoE); a `layer_scalar` [1]
  buffer (stored in the checkpoint) per layer.
- Per-layer embeddings (`hidden_size_per_layer_input` P > 0): embed_tokens_per_layer [V_p, L*P], model
  projection [L*P, H], projection norm [P]; per layer a gate [P, H], a projection [H, P] and a norm [H].
"""

from __future__ import annotations

from typing import Any

from kvcalc.errors import InputError
from kvcalc.sources.families._build import (
    Cfg,
    Parts,
    embeddings,
    layer_types,
    linear,
    mlp,
    norm,
    tensor,
)
from kvcalc.spec.layers import (
    DenseMLP,
    FullAttention,
    LayerSpec,
    MoEMLP,
    SlidingWindowAttention,
    TensorSpec,
)


def _types(cfg: Cfg, num_layers: int) -> list[str]:
    types = layer_types(cfg, num_layers)
    if types is None:
        types = ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(num_layers)]
    unknown = sorted(set(types) - {"sliding_attention", "full_attention"})
    if unknown:
        raise InputError(f"{cfg.where}: unknown layer type(s) {', '.join(unknown)} in 'layer_types'")
    types[-1] = "full_attention"  # Gemma4TextConfig.__post_init__ forces the last layer global
    return types


def _kv_shared(types: list[str], num_shared: int) -> list[bool]:
    """Layers that reuse an earlier layer's KV (transformers `kv_sharing_modes` == "reuse")."""
    first = len(types) - num_shared
    return [i >= first for i in range(len(types))]


def _layer_overrides(cfg: Cfg, types: list[str]) -> dict[int, dict[str, Any]]:
    """Per-layer head_dim / num_key_value_heads, as Gemma4TextConfig builds `per_layer_config`."""
    explicit = cfg.get("per_layer_config")
    if isinstance(explicit, dict):
        return {int(k): dict(v) for k, v in explicit.items() if isinstance(v, dict)}
    overrides: dict[str, Any] = {"head_dim": cfg.int("global_head_dim", 512)}
    if cfg.bool("attention_k_eq_v", False) and cfg.has("num_global_key_value_heads"):
        overrides["num_key_value_heads"] = cfg.int("num_global_key_value_heads")
    return {i: overrides for i, t in enumerate(types) if t == "full_attention"}


def _attention_tensors(
    i: int, hidden: int, heads: int, d: int, n_kv: int, *, bias: bool, kv_shared: bool, v_proj: bool
) -> list[TensorSpec]:
    """q [n_h*d, H] + q norm [d]; unless the layer reuses an earlier layer's KV, k [n_kv*d, H] + k norm [d]
    and (without V = K) v [n_kv*d, H]; o [H, n_h*d]."""
    tensors = linear("attn_q", heads * d, hidden, i, bias=bias) + norm("attn_q_norm", d, i)
    if not kv_shared:
        tensors += linear("attn_k", n_kv * d, hidden, i, bias=bias) + norm("attn_k_norm", d, i)
        if v_proj:
            tensors += linear("attn_v", n_kv * d, hidden, i, bias=bias)
    tensors += linear("attn_output", hidden, heads * d, i, bias=bias)
    return tensors


def _layer_norms(i: int, hidden: int, ple: int) -> list[TensorSpec]:
    """Four norms [H] and the layer_scalar [1]; with per-layer embeddings of width P > 0, gate [P, H],
    projection [H, P] and a norm [H]."""
    tensors: list[TensorSpec] = []
    for name in ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"):
        tensors += norm(name, hidden, i)
    tensors.append(tensor("layer_output_scale.weight", (1,), "norm", i))
    if ple:
        tensors += linear("inp_gate", ple, hidden, i) + linear("proj", hidden, ple, i)
        tensors += norm("post_norm", hidden, i)
    return tensors


def _moe_block(cfg: Cfg, i: int, hidden: int, dense_inter: int) -> tuple[list[TensorSpec], MoEMLP]:
    """The MoE beside the dense MLP: router [E, H] + scale [H], per_expert_scale [E], experts gate and up
    [E, I, H], down [E, H, I], three more norms [H]."""
    num_experts = cfg.int("num_experts")
    expert_inter = cfg.int("moe_intermediate_size")
    tensors = linear("ffn_gate_inp", num_experts, hidden, i)
    tensors.append(tensor("ffn_gate_inp.scale", (hidden,), "ffn_gate_inp", i))
    tensors.append(tensor("ffn_down_exps.scale", (num_experts,), "ffn_gate_inp", i))
    tensors.append(tensor("ffn_gate_exps.weight", (num_experts, expert_inter, hidden), "ffn_gate_exps", i))
    tensors.append(tensor("ffn_up_exps.weight", (num_experts, expert_inter, hidden), "ffn_up_exps", i))
    tensors.append(tensor("ffn_down_exps.weight", (num_experts, hidden, expert_inter), "ffn_down_exps", i))
    for name in ("post_ffw_norm_1", "post_ffw_norm_2", "pre_ffw_norm_2"):
        tensors += norm(name, hidden, i)
    # The dense MLP always runs beside the experts: counted as the "shared" part of the block.
    ffn = MoEMLP(
        num_experts=num_experts,
        top_k=cfg.int("top_k_experts"),
        expert_intermediate_size=expert_inter,
        shared_intermediate_size=dense_inter,
    )
    return tensors, ffn


def _mixer(
    heads: int, n_kv: int, d: int, window: int, *, kv_shared: bool, sliding: bool
) -> FullAttention | None:
    """None for a layer that reuses an earlier layer's KV (it caches nothing), else sliding or full attention."""
    if kv_shared:
        return None
    if sliding:
        return SlidingWindowAttention(num_heads=heads, num_kv_heads=n_kv, head_dim=d, sliding_window=window)
    return FullAttention(num_heads=heads, num_kv_heads=n_kv, head_dim=d)


def _global_tensors(
    cfg: Cfg, vocab: int, hidden: int, num_layers: int, ple: int, *, tied: bool
) -> list[TensorSpec]:
    """Embeddings, final norm and head; with per-layer embeddings of width P > 0, embed_tokens_per_layer
    [V_p, L*P], the model projection [L*P, H] and its norm [P]."""
    global_tensors = embeddings(vocab, hidden, tied=tied)
    if ple:
        vocab_ple = cfg.int("vocab_size_per_layer_input", 262_144)
        global_tensors += [
            tensor("per_layer_token_embd.weight", (vocab_ple, num_layers * ple), "token_embd"),
            tensor("per_layer_model_proj.weight", (num_layers * ple, hidden), "per_layer_model_proj"),
            *norm("per_layer_proj_norm", ple, None),
        ]
    return global_tensors


def _sharing_notes(k_eq_v: bool, kv_shared: list[bool]) -> list[str]:
    notes: list[str] = []
    if k_eq_v:
        notes.append(
            "attention_k_eq_v: global layers have no v_proj (V = K) but vLLM still caches K and V for them"
        )
    if any(kv_shared):
        notes.append(
            f"the last {sum(kv_shared)} layers reuse earlier layers' KV cache (num_kv_shared_layers): "
            "kvcalc gives them no mixer, so they add no KV bytes"
        )
    return notes


def build(cfg: Cfg, model_type: str) -> Parts:
    hidden = cfg.int("hidden_size")
    num_layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.int("num_key_value_heads", heads)
    head_dim = cfg.int("head_dim", 256)
    vocab = cfg.int("vocab_size")
    tied = cfg.bool("tie_word_embeddings", True)
    bias = cfg.bool("attention_bias", False)
    window = cfg.int("sliding_window", 512)
    if cfg.get("use_bidirectional_attention") == "all":
        window = window // 2 + 1  # Gemma4TextConfig.__post_init__
    k_eq_v = cfg.bool("attention_k_eq_v", False)
    inter = cfg.int("intermediate_size")
    double_wide = cfg.bool("use_double_wide_mlp", False)
    moe_block = cfg.bool("enable_moe_block", False)
    ple = cfg.int("hidden_size_per_layer_input", 256, minimum=0)
    types = _types(cfg, num_layers)
    shared = _kv_shared(types, cfg.int("num_kv_shared_layers", 0, minimum=0))
    overrides = _layer_overrides(cfg, types)

    layers = []
    for i, kind in enumerate(types):
        d = int(overrides.get(i, {}).get("head_dim", head_dim))
        n_kv = int(overrides.get(i, {}).get("num_key_value_heads", kv_heads))
        sliding = kind == "sliding_attention"
        tensors = _attention_tensors(
            i, hidden, heads, d, n_kv, bias=bias, kv_shared=shared[i], v_proj=not (k_eq_v and not sliding)
        )
        tensors += _layer_norms(i, hidden, ple)
        layer_inter = inter * (2 if double_wide and shared[i] else 1)
        tensors += mlp(i, hidden, layer_inter)
        ffn: DenseMLP | MoEMLP = DenseMLP(intermediate_size=layer_inter)
        if moe_block:
            moe_tensors, ffn = _moe_block(cfg, i, hidden, layer_inter)
            tensors += moe_tensors
        mixer = _mixer(heads, n_kv, d, window, kv_shared=shared[i], sliding=sliding)
        layers.append(LayerSpec(index=i, mixer=mixer, mlp=ffn, tensors=tuple(tensors)))

    global_tensors = _global_tensors(cfg, vocab, hidden, num_layers, ple, tied=tied)
    notes = _sharing_notes(k_eq_v, shared)
    return Parts(layers=layers, global_tensors=global_tensors, notes=notes)
