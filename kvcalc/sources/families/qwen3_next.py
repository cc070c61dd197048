"""Qwen3-Next and Qwen3.5: Gated-DeltaNet linear attention interleaved with gated softmax attention.

Follows transformers `models/qwen3_next/modeling_qwen3_next.py` (Qwen3NextGatedDeltaNet, Qwen3NextAttention,
Qwen3NextSparseMoeBlock, Qwen3NextDecoderLayer), `models/qwen3_5_moe/modeling_qwen3_5_moe.py` and
`models/qwen3_5/modeling_qwen3_5.py` (split GDN in-projections, vision tower), and vLLM
`vllm/model_executor/models/qwen3_next.py`, `qwen3_5.py` with their MTP modules `qwen3_next_mtp.py` /
`qwen3_5_mtp.py`; state sizes from vLLM `MambaStateShapeCalculator.gated_delta_net_state_shape`.

Per layer: input norm -> mixer -> post-attention norm -> MLP.
- `layer_types` (or every `full_attention_interval`-th layer, default 4) is `full_attention`: q_proj emits
  2 * n_h * d (query and output gate, `attn_output_gate`), k/v/o as usual, RMSNorm [d] on q and k.
- The other layers are Gated DeltaNet. Qwen3-Next fuses its in-projections: in_proj_qkvz
  [2*n_k*d_k + 2*n_v*d_v, H] and in_proj_ba [2*n_v, H]; Qwen3.5 splits them: in_proj_qkv
  [2*n_k*d_k + n_v*d_v, H], in_proj_z [n_v*d_v, H], in_proj_b and in_proj_a [n_v, H]. Both have a depthwise
  conv1d [conv_dim, 1, K] without bias (conv_dim = 2*n_k*d_k + n_v*d_v), dt_bias and A_log [n_v], a gated
  RMSNorm [d_v] and out_proj [H, n_v*d_v].
- MLP: Qwen3-Next and Qwen3.5-MoE use routed experts + one shared expert with a sigmoid gate [1, H]
  (Qwen3-Next honours `mlp_only_layers` / `decoder_sparse_step`; Qwen3.5-MoE makes every layer MoE);
  Qwen3.5 dense uses a gated MLP of `intermediate_size`.
- MTP (vLLM Qwen3NextMultiTokenPredictor / Qwen3_5MultiTokenPredictor): `mtp_num_hidden_layers` (Qwen3.5) or
  `num_nextn_predict_layers` (Qwen3-Next), 1 by default as in vLLM; each is fc [H, 2H], two pre-fc norms,
  one full-attention decoder layer and a final norm; embeddings and lm_head are shared with the main model
  unless `mtp_use_dedicated_embeddings`.
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
    linear,
    mlp,
    norm,
    routed,
    tensor,
)
from kvcalc.spec.layers import DenseMLP, FullAttention, LayerSpec, LinearAttention, MoEMLP, TensorSpec


def gated_deltanet(
    layer: int, hidden: int, n_k: int, n_v: int, d_k: int, d_v: int, kernel: int, *, split: bool
) -> list[TensorSpec]:
    """Gated DeltaNet tensors, shapes as transformers' Qwen3NextGatedDeltaNet / Qwen3_5GatedDeltaNet."""
    key_dim, value_dim = n_k * d_k, n_v * d_v
    conv_dim = 2 * key_dim + value_dim
    if split:  # Qwen3.5
        out = (
            linear("ssm_in_qkv", conv_dim, hidden, layer)
            + linear("ssm_in_z", value_dim, hidden, layer)
            + linear("ssm_beta", n_v, hidden, layer)
            + linear("ssm_alpha", n_v, hidden, layer)
        )
    else:  # Qwen3-Next
        out = linear("ssm_in", 2 * key_dim + 2 * value_dim, hidden, layer) + linear(
            "ssm_ba", 2 * n_v, hidden, layer
        )
    out += [
        tensor("ssm_conv1d.weight", (conv_dim, 1, kernel), "ssm_conv1d", layer),
        tensor("ssm_dt.bias", (n_v,), "ssm_dt", layer),
        tensor("ssm_a", (n_v,), "ssm_a", layer),
        tensor("ssm_norm.weight", (d_v,), "ssm_norm", layer),
    ]
    out += linear("ssm_out", hidden, value_dim, layer)
    return out


def _layer_types(cfg: Cfg, num_layers: int) -> list[str]:
    types = layer_types(cfg, num_layers)
    if types is None:
        interval = cfg.int("full_attention_interval", 4)
        types = ["linear_attention" if (i + 1) % interval else "full_attention" for i in range(num_layers)]
    unknown = sorted(set(types) - {"linear_attention", "full_attention"})
    if unknown:
        raise InputError(f"{cfg.where}: unknown layer type(s) {', '.join(unknown)} in 'layer_types'")
    return types


def _is_moe(cfg: Cfg, model_type: str, num_experts: int, mlp_only: frozenset[int], position: int) -> bool:
    """Routed experts at `position`: never in Qwen3.5 dense or without experts, always in Qwen3.5-MoE, else
    (Qwen3-Next) outside `mlp_only_layers` on every `decoder_sparse_step`-th layer."""
    if model_type == "qwen3_5_text" or num_experts == 0:
        return False
    if model_type == "qwen3_5_moe_text":
        return True
    return position not in mlp_only and (position + 1) % cfg.int("decoder_sparse_step", 1) == 0


def _ffn(
    cfg: Cfg, index: int, hidden: int, num_experts: int, *, moe: bool
) -> tuple[list[TensorSpec], DenseMLP | MoEMLP]:
    """Feed-forward tensors of layer `index`: routed experts + one shared expert with a sigmoid gate [1, H]
    when `moe`, else a gated MLP of `intermediate_size`."""
    if moe:
        expert_inter = cfg.int("moe_intermediate_size")
        shared_inter = cfg.int("shared_expert_intermediate_size", 0, minimum=0)
        tensors = experts(index, hidden, num_experts, expert_inter)
        if shared_inter:
            tensors += mlp(index, hidden, shared_inter, suffix="_shexp")
            tensors += linear("ffn_gate_inp_shexp", 1, hidden, index)
        return tensors, routed(cfg, num_experts, expert_inter, shared_inter)
    inter = cfg.int("intermediate_size")
    return mlp(index, hidden, inter), DenseMLP(intermediate_size=inter)


def _deltanet_layer(
    index: int, hidden: int, n_k: int, n_v: int, d_k: int, d_v: int, kernel: int, *, split: bool
) -> tuple[list[TensorSpec], LinearAttention]:
    """A Gated DeltaNet layer's tensors (`gated_deltanet`) and its recurrent-state spec."""
    tensors = gated_deltanet(index, hidden, n_k, n_v, d_k, d_v, kernel, split=split)
    return tensors, LinearAttention(
        num_key_heads=n_k, num_value_heads=n_v, key_head_dim=d_k, value_head_dim=d_v, conv_kernel=kernel
    )


def _full_attention(
    index: int, hidden: int, heads: int, kv_heads: int, head_dim: int, *, bias: bool, gate: bool
) -> list[TensorSpec]:
    """Gated softmax attention: q [2*n_h*d, H] with the output gate, k/v/o, RMSNorm [d] on q and k."""
    return attention(
        index, hidden, heads, kv_heads, head_dim, qkv_bias=bias, o_bias=bias, qk_norm=True, q_gate=gate
    )


def _mtp_layer(
    index: int, hidden: int, attention_tensors: list[TensorSpec], ffn_tensors: list[TensorSpec]
) -> list[TensorSpec]:
    """One MTP module: fc [H, 2H], two pre-fc norms, a full-attention decoder layer and a final norm."""
    tensors = linear("nextn.eh_proj", hidden, 2 * hidden, index)
    tensors += norm("nextn.enorm", hidden, index) + norm("nextn.hnorm", hidden, index)
    tensors += attention_tensors + ffn_tensors
    tensors += norm("attn_norm", hidden, index) + norm("ffn_norm", hidden, index)
    tensors += norm("nextn.shared_head_norm", hidden, index)
    return tensors


def build(cfg: Cfg, model_type: str) -> Parts:
    qwen35 = model_type in ("qwen3_5_moe_text", "qwen3_5_text")
    hidden = cfg.int("hidden_size")
    num_layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.int("num_key_value_heads", heads)
    head_dim = cfg.int("head_dim", hidden // heads)
    vocab = cfg.int("vocab_size")
    tied = cfg.bool("tie_word_embeddings", False)
    bias = cfg.bool("attention_bias", False)
    gate = cfg.bool("attn_output_gate", True)
    n_k = cfg.int("linear_num_key_heads")
    n_v = cfg.int("linear_num_value_heads")
    d_k = cfg.int("linear_key_head_dim")
    d_v = cfg.int("linear_value_head_dim")
    kernel = cfg.int("linear_conv_kernel_dim")
    types = _layer_types(cfg, num_layers)
    mlp_only = cfg.layer_set("mlp_only_layers")
    num_experts = 0 if model_type == "qwen3_5_text" else cfg.int("num_experts", 0, minimum=0)

    layers = []
    for i, kind in enumerate(types):
        mixer: FullAttention | LinearAttention
        if kind == "full_attention":
            tensors = _full_attention(i, hidden, heads, kv_heads, head_dim, bias=bias, gate=gate)
            mixer = FullAttention(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim)
        else:
            tensors, mixer = _deltanet_layer(i, hidden, n_k, n_v, d_k, d_v, kernel, split=qwen35)
        moe = _is_moe(cfg, model_type, num_experts, mlp_only, i)
        ffn_tensors, ffn_spec = _ffn(cfg, i, hidden, num_experts, moe=moe)
        tensors += ffn_tensors + norm("attn_norm", hidden, i) + norm("ffn_norm", hidden, i)
        layers.append(LayerSpec(index=i, mixer=mixer, mlp=ffn_spec, tensors=tuple(tensors)))

    mtp_key = "mtp_num_hidden_layers" if qwen35 else "num_nextn_predict_layers"
    num_mtp = cfg.int(mtp_key, 1, minimum=0)
    mtp: list[TensorSpec] = []
    for j in range(num_mtp):
        i = num_layers + j
        attention_tensors = _full_attention(i, hidden, heads, kv_heads, head_dim, bias=bias, gate=gate)
        moe = _is_moe(cfg, model_type, num_experts, mlp_only, j)  # by the MTP layer's own index, as vLLM
        ffn_tensors, _ = _ffn(cfg, i, hidden, num_experts, moe=moe)
        mtp += _mtp_layer(i, hidden, attention_tensors, ffn_tensors)
    if num_mtp and cfg.bool("mtp_use_dedicated_embeddings", False):
        mtp.append(tensor("nextn.embed_tokens.weight", (vocab, hidden), "token_embd"))

    mtp_notes = (
        [f"{num_mtp} MTP layer(s) ({mtp_key}, vLLM default 1) counted in mtp_tensors, not in the total"]
        if num_mtp
        else []
    )
    return Parts(
        layers=layers,
        global_tensors=embeddings(vocab, hidden, tied=tied),
        mtp_tensors=mtp,
        notes=mtp_notes,
    )
