"""Correctness of the benchmark's own kernels against plain references, on fresh random inputs (METHOD.md:
correct first). Each check returns ||out - ref|| / ||ref||; bf16 operands land between 1e-3 and 1e-2.

- split-KV decode attention (flash-decoding combine) vs one SDPA over the whole cache;
- block-local sliding-window prefill vs SDPA with the full band mask;
- absorbed MLA decode vs MLA with K/V expanded per head;
- the grouped-GEMM MoE vs a per-token loop over the chosen experts.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from kvcalc.bench.modules import BenchLayer, local_attention, rope, rope_tables, split_kv_attention
from kvcalc.spec.layers import LayerSpec, MLAAttention, MoEMLP


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    return float((out - ref).norm() / ref.norm())


def check_split_kv(device: str, dtype: torch.dtype = torch.bfloat16, splits: int = 4) -> float:
    """q [B, H, g, d] over a cache cut in `splits` chunks vs SDPA over the uncut cache."""
    b, h, g, d, t = 2, 4, 4, 64, 512
    q = torch.randn(b, h, g, d, dtype=dtype, device=device)
    k = torch.randn(b, splits, h, t // splits, d, dtype=dtype, device=device)
    v = torch.randn_like(k)
    scale = 1.0 / math.sqrt(d)
    out = split_kv_attention(q, k, v, scale)
    whole_k = k.permute(0, 2, 1, 3, 4).reshape(b, h, t, d)
    whole_v = v.permute(0, 2, 1, 3, 4).reshape(b, h, t, d)
    ref = F.scaled_dot_product_attention(q.float(), whole_k.float(), whole_v.float(), scale=scale)
    return rel_error(out, ref)


def check_local_attention(device: str, dtype: torch.dtype = torch.bfloat16, window: int = 16) -> float:
    """Block-local sliding attention vs a full causal band mask (query i sees keys i-w < j <= i)."""
    h, n, d = 2, 75, 32
    q, k, v = (torch.randn(1, h, n, d, dtype=dtype, device=device) for _ in range(3))
    out = local_attention(q, k, v, window)
    i = torch.arange(n, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    mask = (j <= i) & (j > i - window)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)
    return rel_error(out, ref)


def check_mla_decode(layer: LayerSpec, hidden: int, device: str, dtype: torch.dtype = torch.bfloat16) -> float:
    """The absorbed decode of an MLA layer vs attention with the latent expanded to per-head K and V."""
    mixer = layer.mixer
    assert isinstance(mixer, MLAAttention)
    bench = BenchLayer(layer, hidden, dtype, device)
    b, t = 2, 64
    x = torch.randn(b, hidden, dtype=dtype, device=device)
    cache = bench.new_cache(b, t)
    cos, sin = rope_tables(torch.tensor([t - 1], device=device), mixer.qk_rope_head_dim, dtype)
    out = bench._mla_decode(x, cache, cos, sin)
    nope, r, rank, nh, vd = (mixer.qk_nope_head_dim, mixer.qk_rope_head_dim, mixer.kv_lora_rank,
                             mixer.num_heads, mixer.v_head_dim)
    latent = cache["latent"].float()  # the decode wrote the new token's latent at t - 1
    q = bench._mla_q(x).float()
    q = torch.cat((q[..., :nope], rope(q[..., nope:], cos.float(), sin.float())), dim=-1)
    w_kv_b, w_out = bench.w("attn_kv_b.weight"), bench.w("attn_output.weight")
    assert w_kv_b is not None and w_out is not None
    kv = (latent[..., :rank] @ w_kv_b.float().T).view(b, t, nh, nope + vd)
    k = torch.cat((kv[..., :nope], latent[:, :, None, rank:].expand(b, t, nh, r)), dim=-1)
    scores = torch.einsum("bhd,bthd->bht", q, k) / math.sqrt(nope + r)
    o = torch.einsum("bht,bthv->bhv", torch.softmax(scores, dim=-1), kv[..., nope:])
    ref = o.reshape(b, nh * vd) @ w_out.float().T
    return rel_error(out, ref)


def check_moe(layer: LayerSpec, hidden: int, device: str, dtype: torch.dtype = torch.bfloat16) -> float:
    """The grouped MoE forward vs a per-token loop over its top-k experts (plus shared experts)."""
    mlp = layer.mlp
    assert isinstance(mlp, MoEMLP)
    bench = BenchLayer(layer, hidden, dtype, device)
    x = torch.randn(5, hidden, dtype=dtype, device=device)
    out = bench._moe(x)
    ref = torch.zeros(5, hidden, dtype=torch.float64, device=device)
    logits = bench.linear(x, "ffn_gate_inp").float()
    top, idx = torch.topk(logits, mlp.top_k, dim=-1)
    weights = torch.softmax(top, dim=-1)
    for token in range(5):
        for slot in range(mlp.top_k):
            e = int(idx[token, slot])
            ref[token] += weights[token, slot].double() * _expert(bench, x[token].double(), e)
    if bench.has("ffn_gate_shexp.weight") or bench.has("ffn_up_shexp.weight"):
        ref += bench._dense(x, "ffn_gate_shexp", "ffn_up_shexp", "ffn_gate_up_shexp", "ffn_down_shexp").double()
    return rel_error(out, ref)


def _expert(bench: BenchLayer, x: torch.Tensor, e: int) -> torch.Tensor:
    def proj(base: str, h: torch.Tensor) -> torch.Tensor:
        w = bench.w(f"{base}.weight")
        bias = bench.w(f"{base}.bias")
        assert w is not None
        y = w[e].double() @ h
        return y if bias is None else y + bias[e].double()

    if bench.has("ffn_gate_up_exps.weight"):
        g, u = proj("ffn_gate_up_exps", x).chunk(2)
    else:
        g, u = proj("ffn_gate_exps", x), proj("ffn_up_exps", x)
    return proj("ffn_down_exps", F.silu(g) * u)


def run_checks(models: list[Any], device: str) -> dict[str, float]:
    """Every check, on the first MLA and MoE layer of the given ModelSpecs (small layers preferred)."""
    torch.manual_seed(0)
    results = {"split_kv": check_split_kv(device), "local_attention": check_local_attention(device)}
    for model in models:
        for layer in model.layers:
            if isinstance(layer.mixer, MLAAttention) and "mla_decode" not in results:
                results["mla_decode"] = check_mla_decode(layer, model.hidden_size, device)
            if isinstance(layer.mlp, MoEMLP) and "moe" not in results:
                results["moe"] = check_moe(layer, model.hidden_size, device)
    return results
