"""Jamba (AI21): Mamba-1 layers, attention every `attn_layer_period` layers, MoE every `expert_layer_period`.

Follows transformers `models/jamba/modeling_jamba.py` (JambaMambaMixer, JambaAttention, JambaSparseMoeBlock,
JambaAttentionDecoderLayer / JambaMambaDecoderLayer) and vLLM `vllm/model_executor/models/jamba.py`
(MambaMixer with `use_rms_norm=True`); state sizes from vLLM `MambaStateShapeCalculator.mamba1_state_shape`.

Layer i is attention if i % attn_layer_period == attn_layer_offset, else Mamba; its feed-forward is MoE
(`num_experts` experts, router [E, H] without bias) if i % expert_layer_period == expert_layer_offset and
num_experts > 1, else a gated MLP of `intermediate_size`. Each layer has input and pre-FFN RMSNorms.

Mamba-1 mixer (d_inner = mamba_expand * H, R = mamba_dt_rank or ceil(H / 16), N = mamba_d_state,
K = mamba_d_conv):
in_proj [2*d_inner, H] (+ bias if mamba_proj_bias), conv1d [d_inner, 1, K] (+ bias if mamba_conv_bias),
x_proj [R + 2N, d_inner], dt_proj [d_inner, R] + bias, A_log [d_inner, N], D [d_inner],
out_proj [H, d_inner] (+ bias if mamba_proj_bias), and RMSNorms dt [R], B [N], C [N].
"""

from __future__ import annotations

import math

from kvcalc.sources.families._build import (
    Cfg,
    Parts,
    attention,
    embeddings,
    experts,
    linear,
    mlp,
    norm,
    routed,
    tensor,
)
from kvcalc.spec.layers import DenseMLP, FullAttention, LayerSpec, MambaMixer, MoEMLP, TensorSpec


def mamba1(
    layer: int,
    hidden: int,
    d_inner: int,
    d_state: int,
    dt_rank: int,
    kernel: int,
    *,
    conv_bias: bool,
    proj_bias: bool,
    inner_norms: bool,
) -> list[TensorSpec]:
    """Mamba-1 mixer tensors as transformers' JambaMambaMixer (and MambaMixer without `inner_norms`)."""
    out = linear("ssm_in", 2 * d_inner, hidden, layer, bias=proj_bias)
    out.append(tensor("ssm_conv1d.weight", (d_inner, 1, kernel), "ssm_conv1d", layer))
    if conv_bias:
        out.append(tensor("ssm_conv1d.bias", (d_inner,), "ssm_conv1d", layer))
    out += linear("ssm_x", dt_rank + 2 * d_state, d_inner, layer)
    out += linear("ssm_dt", d_inner, dt_rank, layer, bias=True)
    out.append(tensor("ssm_a", (d_inner, d_state), "ssm_a", layer))
    out.append(tensor("ssm_d", (d_inner,), "ssm_d", layer))
    out += linear("ssm_out", hidden, d_inner, layer, bias=proj_bias)
    if inner_norms:
        out.append(tensor("ssm_dt_norm.weight", (dt_rank,), "ssm_norm", layer))
        out.append(tensor("ssm_b_norm.weight", (d_state,), "ssm_norm", layer))
        out.append(tensor("ssm_c_norm.weight", (d_state,), "ssm_norm", layer))
    return out


def build(cfg: Cfg, model_type: str) -> Parts:
    hidden = cfg.int("hidden_size")
    num_layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.int("num_key_value_heads", heads)
    head_dim = hidden // heads
    vocab = cfg.int("vocab_size")
    tied = cfg.bool("tie_word_embeddings", False)
    attn_period = cfg.int("attn_layer_period", 8)
    attn_offset = cfg.int("attn_layer_offset", 4, minimum=0)
    expert_period = cfg.int("expert_layer_period", 2)
    expert_offset = cfg.int("expert_layer_offset", 1, minimum=0)
    num_experts = cfg.int("num_experts", 16)
    inter = cfg.int("intermediate_size")
    d_inner = cfg.int("mamba_expand", 2) * hidden
    d_state = cfg.int("mamba_d_state", 16)
    kernel = cfg.int("mamba_d_conv", 4)
    raw_rank = cfg.get("mamba_dt_rank", "auto")
    dt_rank = math.ceil(hidden / 16) if raw_rank == "auto" else cfg.int("mamba_dt_rank")

    layers = []
    for i in range(num_layers):
        mixer: FullAttention | MambaMixer
        if i % attn_period == attn_offset:
            tensors = attention(i, hidden, heads, kv_heads, head_dim)
            mixer = FullAttention(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim)
        else:
            # transformers always builds the dt/B/C norms (vLLM: use_rms_norm=True); `mamba_inner_layernorms`
            # is a remote-code switch the in-library model ignores.
            tensors = mamba1(
                i,
                hidden,
                d_inner,
                d_state,
                dt_rank,
                kernel,
                conv_bias=cfg.bool("mamba_conv_bias", True),
                proj_bias=cfg.bool("mamba_proj_bias", False),
                inner_norms=True,
            )
            mixer = MambaMixer(version=1, d_inner=d_inner, d_state=d_state, conv_kernel=kernel)
        ffn: DenseMLP | MoEMLP
        if num_experts > 1 and i % expert_period == expert_offset:
            tensors += experts(i, hidden, num_experts, inter)
            ffn = routed(cfg, num_experts, inter)
        else:
            tensors += mlp(i, hidden, inter)
            ffn = DenseMLP(intermediate_size=inter)
        tensors += norm("attn_norm", hidden, i) + norm("ffn_norm", hidden, i)
        layers.append(LayerSpec(index=i, mixer=mixer, mlp=ffn, tensors=tuple(tensors)))
    return Parts(layers=layers, global_tensors=embeddings(vocab, hidden, tied=tied))
