"""Prefill FLOPs of positions [begin, end) of one sequence: what a prefix-cache hit of those tokens saves.

FLOPs = 2 x matmul params per token x tokens + the attention term (Kaplan et al. 2020,
"Scaling Laws", C_forward ~ 2N + 2 n_layer n_ctx d_attn):
- matmul params per token = active params - embeddings - LM head: the embedding is a lookup, and a
  prefill computes logits for the last position only (vLLM's `compute_logits` on the sampled rows), so a
  cached prefix never reaches the head;
- attention, per layer and query at position i attending to k(i) keys: 2 h d_qk k(i) for Q K^T plus
  2 h d_v k(i) for P V, with k(i) = i + 1 (full, causal), min(i + 1, w) (sliding), i mod c + 1 (chunked);
  linear-attention and Mamba layers add no per-key term (their state update is in the matmul params).

Worked example (Llama-3.1-8B shape, 32 layers of 32 heads x 128): the attention term over positions
0..2999 is 32 x 2 x 32 x (128 + 128) x 3000 x 3001 / 2 = 2.36e12 FLOPs.
"""

from __future__ import annotations

from kvcalc.calc.params import params_active, params_breakdown
from kvcalc.spec.layers import ChunkedAttention, FullAttention, MLAAttention, SlidingWindowAttention
from kvcalc.spec.model import ModelSpec


def _triangle(n: int) -> int:
    """1 + 2 + ... + n."""
    return n * (n + 1) // 2


def keys_before(kind: str, window: int | None, n: int) -> int:
    """Sum of k(i) over positions i < n (see the module docstring)."""
    if n <= 0:
        return 0
    if kind == "sliding" and window:
        return _triangle(n) if n <= window else _triangle(window) + (n - window) * window
    if kind == "chunked" and window:
        return n // window * _triangle(window) + _triangle(n % window)
    return _triangle(n)


def attention_flops_per_key(mixer: object) -> int:
    """2 h (d_qk + d_v): FLOPs one query spends per key in Q K^T and P V; 0 for recurrent mixers."""
    if isinstance(mixer, MLAAttention):
        return 2 * mixer.num_heads * (mixer.qk_nope_head_dim + mixer.qk_rope_head_dim + mixer.v_head_dim)
    if isinstance(mixer, FullAttention):
        return 2 * mixer.num_heads * (mixer.head_dim + mixer.value_dim)
    return 0


def matmul_params_per_token(model: ModelSpec) -> int:
    """Active params a prefill token multiplies through: active - embeddings - LM head."""
    parts = params_breakdown(model)
    return params_active(model) - parts.get("embeddings", 0) - parts.get("lm_head", 0)


def attention_flops(model: ModelSpec, begin: int, end: int) -> int:
    """Sum over layers of 2 h (d_qk + d_v) x sum of k(i) for i in [begin, end)."""
    total = 0
    for layer in model.layers:
        mixer = layer.mixer
        per_key = attention_flops_per_key(mixer)
        if not per_key:
            continue
        kind = "full"
        window = None
        if isinstance(mixer, SlidingWindowAttention):
            kind, window = "sliding", mixer.sliding_window
        elif isinstance(mixer, ChunkedAttention):
            kind, window = "chunked", mixer.chunk
        total += per_key * (keys_before(kind, window, end) - keys_before(kind, window, begin))
    return total


def prefill_flops(model: ModelSpec, begin: int, end: int) -> int:
    """FLOPs to prefill positions [begin, end): 2 x matmul params x (end - begin) + attention_flops."""
    if end <= begin:
        return 0
    return 2 * matmul_params_per_token(model) * (end - begin) + attention_flops(model, begin, end)
