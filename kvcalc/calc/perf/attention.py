"""Attention work per layer kind: keys each query attends, FLOPs per (query, key) pair, KV bytes read.

One `AttentionGroup` holds the layers of one pipeline stage that share a kind and shape (full, sliding,
chunked, MLA, linear, Mamba). Every group answers the same questions, so a mixed step sums them:

- `keys(prior, new)`: (query, key) pairs of `new` causal tokens appended after `prior` cached tokens;
- `decode_keys(context)`: keys one decode token attends with `context` tokens before it (what it reads);
- FLOPs = pairs x `flops_per_pair` (decode) or `prefill_flops_per_pair` (prefill), per layer on this GPU;
- KV bytes read = keys read x `kv_bytes_per_token`; recurrent layers read and write `state_bytes` instead.

Keys per query (1-indexed query position j in the sequence):
    full      j                          (causal: a prefill of n tokens has n(n+1)/2 pairs)
    sliding   min(j, window)             (Beltagy et al. 2020, Longformer; Mistral 7B, arXiv:2310.06825)
    chunked   ((j - 1) mod chunk) + 1    (Llama 4 local attention: a query sees its own chunk only;
                                          vLLM `ChunkedLocalAttentionSpec`)
so pairs(prior, new) = S(prior + new) - S(prior) with S(n) the sum over j = 1..n, in closed form below.
"""

from __future__ import annotations

from typing import Any

from kvcalc.spec.base import record


def _sum_full(n: int) -> int:
    """S(n) = n (n + 1) / 2: causal pairs of n tokens."""
    return n * (n + 1) // 2


def _sum_window(n: int, window: int) -> int:
    """S(n) = sum_{j<=n} min(j, w) = n(n+1)/2 for n <= w, else w(w+1)/2 + (n - w) w."""
    if n <= window:
        return n * (n + 1) // 2
    return window * (window + 1) // 2 + (n - window) * window


def _sum_chunked(n: int, chunk: int) -> int:
    """S(n) = sum_{j<=n} ((j-1) mod c) + 1 = (n // c) c(c+1)/2 + r(r+1)/2 with r = n mod c."""
    whole, rest = divmod(n, chunk)
    return whole * chunk * (chunk + 1) // 2 + rest * (rest + 1) // 2


@record
class AttentionGroup:
    """`layers` token-mixer layers of one kind on one GPU (all figures per layer, this GPU's share).

    `flops_per_pair`: FLOPs of one (query, key) pair in decode; for softmax attention
    2 x (qk_dim + v_dim) x heads_on_gpu (QK^T and PV, a multiply-add = 2 FLOPs; FlashAttention paper's
    count 4 N^2 d per head, Dao et al. 2022). `prefill_flops_per_pair` differs for MLA only.
    `kv_bytes_per_token`: one cached token of one layer on this GPU (spec/layers.py).
    `state_bytes` / `state_flops_per_token`: recurrent layers (linear attention, Mamba) read and write a
    fixed state per sequence instead of a KV cache; a prefill token costs `prefill_state_flops_per_token`
    (the chunked scan, model.recurrent_prefill_flops; 0: as a decode token)."""

    kind: str
    layers: int
    window: int | None = None
    chunk: int | None = None
    flops_per_pair: float = 0.0
    prefill_flops_per_pair: float = 0.0
    kv_bytes_per_token: int = 0
    state_bytes: int = 0
    state_flops_per_token: float = 0.0
    prefill_state_flops_per_token: float = 0.0

    @property
    def recurrent(self) -> bool:
        return self.kind in ("linear", "mamba")

    def prefix_sum(self, n: int) -> int:
        """S(n): (query, key) pairs of the first n tokens of a sequence."""
        if self.recurrent:
            return 0
        if self.window is not None:
            return _sum_window(n, self.window)
        if self.chunk is not None:
            return _sum_chunked(n, self.chunk)
        return _sum_full(n)

    def keys(self, prior: int, new: int) -> int:
        """Pairs of `new` tokens appended after `prior` cached ones: S(prior + new) - S(prior)."""
        return self.prefix_sum(prior + new) - self.prefix_sum(prior)

    def decode_keys(self, context: int) -> int:
        """Keys the next token attends (and reads) with `context` tokens before it, itself included."""
        return self.keys(context, 1)

    def cached_tokens(self, context: int) -> int:
        """Tokens of a `context`-token sequence the layer holds (what a prefill chunk reads back)."""
        if self.recurrent:
            return 0
        if self.window is not None:
            return min(context, self.window)
        if self.chunk is not None:
            return (context - 1) % self.chunk + 1 if context else 0
        return context


def decode_keys_sum(group: AttentionGroup, contexts: Any) -> Any:
    """Sum over decode requests (the last axis of a numpy array of contexts) of `decode_keys(context)`:
    full: L + 1; sliding: min(L + 1, w); chunked: (L mod c) + 1; recurrent: 0."""
    import numpy as np

    if group.recurrent or contexts.shape[-1] == 0:
        return np.zeros(contexts.shape[:-1])
    if group.window is not None:
        return np.minimum(contexts + 1, group.window).sum(axis=-1)
    if group.chunk is not None:
        return (contexts % group.chunk + 1).sum(axis=-1)
    return contexts.sum(axis=-1) + contexts.shape[-1]
