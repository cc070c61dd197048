"""Nemotron-H (NVIDIA): a stack of single-purpose blocks, Mamba-2 (M), attention (*), MLP (-) or MoE (E).

Follows transformers `models/nemotron_h/modeling_nemotron_h.py` (NemotronHBlock, NemotronHMamba2Mixer,
NemotronHAttention, NemotronHMLP, NemotronHMoE, NemotronHTopkRouter) and `configuration_nemotron_h.py`
(`hybrid_override_pattern` -> `layers_block_type`), and vLLM `vllm/model_executor/models/nemotron_h.py`; state
sizes from vLLM `MambaStateShapeCalculator.mamba2_state_shape`.

Each character of `hybrid_override_pattern` (or entry of `layers_block_type` / `layer_types`) is one block:
an RMSNorm [H] then one mixer. kvcalc keeps one LayerSpec per block, so `num_layers` is the block count
(mixer None for MLP/MoE blocks, mlp None for Mamba/attention blocks).
- Mamba-2 (d_inner = mamba_num_heads * mamba_head_dim, G = n_groups, N = ssm_state_size, K = conv_kernel,
  conv_dim = d_inner + 2*G*N): in_proj [d_inner + conv_dim + n_heads, H] (+ bias if use_bias),
  conv1d [conv_dim, 1, K] (+ bias if use_conv_bias), dt_bias / A_log / D [n_heads], gated RMSNorm [d_inner],
  out_proj [H, d_inner] (+ bias if use_bias).
- Attention: q [n_h*d, H], k/v [n_kv*d, H], o [H, n_h*d], no biases, no q/k norms.
- MLP: up [I, H], down [H, I], relu^2, not gated (bias if mlp_bias).
- MoE: router [E, H] (fp32) plus the `e_score_correction_bias` [E] buffer (fp32, stored in the checkpoint),
  non-gated experts up [E, I, H'] and down [E, H', I] (H' = moe_latent_size if set, with latent projections
  [H', H] and [H, H']), and one non-gated shared expert of `moe_shared_expert_intermediate_size`.
"""

from __future__ import annotations

from kvcalc.errors import InputError
from kvcalc.sources.families._build import (
    Cfg,
    Parts,
    attention,
    embeddings,
    linear,
    mlp,
    norm,
    routed,
    tensor,
)
from kvcalc.spec.layers import DenseMLP, FullAttention, LayerSpec, MambaMixer, TensorSpec

#: Pattern characters (transformers NemotronHConfig._pattern_to_list).
_PATTERN = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}
#: `layers_block_type` / `layer_types` names, new and legacy.
_BLOCK_NAMES = {
    "linear_attention": "mamba",
    "mamba": "mamba",
    "full_attention": "attention",
    "attention": "attention",
    "mlp": "mlp",
    "moe": "moe",
}


def mamba2(
    layer: int,
    hidden: int,
    num_heads: int,
    head_dim: int,
    n_groups: int,
    d_state: int,
    kernel: int,
    *,
    conv_bias: bool,
    bias: bool,
) -> list[TensorSpec]:
    """Mamba-2 mixer tensors as transformers' NemotronHMamba2Mixer."""
    d_inner = num_heads * head_dim
    conv_dim = d_inner + 2 * n_groups * d_state
    out = linear("ssm_in", d_inner + conv_dim + num_heads, hidden, layer, bias=bias)
    out.append(tensor("ssm_conv1d.weight", (conv_dim, 1, kernel), "ssm_conv1d", layer))
    if conv_bias:
        out.append(tensor("ssm_conv1d.bias", (conv_dim,), "ssm_conv1d", layer))
    out += [
        tensor("ssm_dt.bias", (num_heads,), "ssm_dt", layer),
        tensor("ssm_a", (num_heads,), "ssm_a", layer),
        tensor("ssm_d", (num_heads,), "ssm_d", layer),
        tensor("ssm_norm.weight", (d_inner,), "ssm_norm", layer),
    ]
    out += linear("ssm_out", hidden, d_inner, layer, bias=bias)
    return out


def _blocks(cfg: Cfg) -> list[str]:
    types = cfg.get("layers_block_type") or cfg.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or any(str(t) not in _BLOCK_NAMES for t in types):
            raise InputError(f"{cfg.where}: 'layers_block_type' must list {', '.join(sorted(_BLOCK_NAMES))}")
        return [_BLOCK_NAMES[str(t)] for t in types]
    pattern = cfg.get("hybrid_override_pattern")
    if not isinstance(pattern, str) or not pattern or any(c not in _PATTERN for c in pattern):
        raise InputError(
            f"{cfg.where}: 'hybrid_override_pattern' must be a string of M, *, - and E, got {pattern!r}"
        )
    return [_PATTERN[c] for c in pattern]


def _mamba_block(cfg: Cfg, i: int, hidden: int) -> LayerSpec:
    """Norm + Mamba-2 mixer (d_inner = mamba_num_heads * mamba_head_dim)."""
    tensors = norm("attn_norm", hidden, i)
    num_heads = cfg.int("mamba_num_heads")
    head_dim = cfg.int("mamba_head_dim")
    n_groups = cfg.first_int(("n_groups", "mamba_n_groups"), 8)
    d_state = cfg.int("ssm_state_size")
    kernel = cfg.first_int(("conv_kernel", "mamba_d_conv"), 4)
    conv_bias = bool(cfg.get("use_conv_bias", cfg.get("mamba_conv_bias", True)))
    tensors += mamba2(
        i,
        hidden,
        num_heads,
        head_dim,
        n_groups,
        d_state,
        kernel,
        conv_bias=conv_bias,
        bias=cfg.bool("use_bias", False),
    )
    mamba = MambaMixer(
        version=2,
        d_inner=num_heads * head_dim,
        d_state=d_state,
        conv_kernel=kernel,
        n_groups=n_groups,
        num_heads=num_heads,
        head_dim=head_dim,
    )
    return LayerSpec(index=i, mixer=mamba, tensors=tuple(tensors))


def _attention_block(i: int, hidden: int, heads: int, kv_heads: int, head_dim: int) -> LayerSpec:
    """Norm + softmax attention without biases or q/k norms."""
    tensors = norm("attn_norm", hidden, i) + attention(i, hidden, heads, kv_heads, head_dim)
    attn = FullAttention(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim)
    return LayerSpec(index=i, mixer=attn, tensors=tuple(tensors))


def _mlp_block(cfg: Cfg, i: int, hidden: int, mlp_bias: bool) -> LayerSpec:
    """Norm + a non-gated relu^2 MLP of `intermediate_size`."""
    inter = cfg.int("intermediate_size")
    tensors = norm("attn_norm", hidden, i) + mlp(i, hidden, inter, gated=False, bias=mlp_bias)
    return LayerSpec(index=i, mlp=DenseMLP(intermediate_size=inter, gated=False), tensors=tuple(tensors))


def _moe_block(cfg: Cfg, i: int, hidden: int, mlp_bias: bool) -> LayerSpec:
    """Norm + router [E, H] and its correction bias [E], non-gated experts [E, I, H'] / [E, H', I] (H' the
    latent size when set, with projections [H', H] and [H, H']) and one non-gated shared expert."""
    tensors = norm("attn_norm", hidden, i)
    num_experts = cfg.first_int(("n_routed_experts", "num_local_experts"))
    expert_inter = cfg.int("moe_intermediate_size")
    shared_inter = cfg.int("moe_shared_expert_intermediate_size")
    latent = cfg.int("moe_latent_size", 0, minimum=0)
    width = latent or hidden
    tensors += [
        tensor("ffn_gate_inp.weight", (num_experts, hidden), "ffn_gate_inp", i),
        tensor("exp_probs_b.bias", (num_experts,), "ffn_gate_inp", i),
        tensor("ffn_up_exps.weight", (num_experts, expert_inter, width), "ffn_up_exps", i),
        tensor("ffn_down_exps.weight", (num_experts, width, expert_inter), "ffn_down_exps", i),
    ]
    if latent:
        tensors += linear("ffn_latent_in", latent, hidden, i, bias=mlp_bias)
        tensors += linear("ffn_latent_out", hidden, latent, i, bias=mlp_bias)
    tensors += mlp(i, hidden, shared_inter, gated=False, bias=mlp_bias, suffix="_shexp")
    return LayerSpec(index=i, mlp=routed(cfg, num_experts, expert_inter, shared_inter, gated=False),
                     tensors=tuple(tensors))


def _notes(cfg: Cfg, blocks: list[str]) -> list[str]:
    notes = [
        f"num_layers counts Nemotron-H blocks ({len(blocks)}: {blocks.count('mamba')} Mamba-2, "
        f"{blocks.count('attention')} attention, {blocks.count('mlp')} MLP, {blocks.count('moe')} MoE); "
        "each block is one norm and one mixer or MLP, not a full decoder layer"
    ]
    if "moe" in blocks:
        notes.append(
            "MoE router weight and e_score_correction_bias are fp32 in the checkpoint (counted as params; "
            "the correction bias is a persistent buffer in transformers)"
        )
    if cfg.int("num_nextn_predict_layers", 0, minimum=0):
        notes.append("num_nextn_predict_layers > 0: Nemotron-H MTP layers are not counted")
    return notes


def build(cfg: Cfg, model_type: str) -> Parts:
    hidden = cfg.int("hidden_size")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.int("num_key_value_heads", heads)
    head_dim = cfg.first_int(("head_dim", "attention_head_dim"), hidden // heads)
    vocab = cfg.int("vocab_size")
    tied = cfg.bool("tie_word_embeddings", False)
    blocks = _blocks(cfg)
    mlp_bias = cfg.bool("mlp_bias", False)

    layers = []
    for i, block in enumerate(blocks):
        if block == "mamba":
            layers.append(_mamba_block(cfg, i, hidden))
        elif block == "attention":
            layers.append(_attention_block(i, hidden, heads, kv_heads, head_dim))
        elif block == "mlp":
            layers.append(_mlp_block(cfg, i, hidden, mlp_bias))
        else:
            layers.append(_moe_block(cfg, i, hidden, mlp_bias))
    return Parts(
        layers=layers, global_tensors=embeddings(vocab, hidden, tied=tied), notes=_notes(cfg, blocks)
    )
