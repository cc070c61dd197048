"""Attention memory and time: `scaled_dot_product_attention` with the flash backend against the math backend
at growing sequence length N, one layer's heads, batch 1, causal (what `kvcalc attention` predicts).

Peak = `max_memory_allocated` during the call minus what was allocated before it (q, k, v already there),
so it holds the output and whatever the backend materialises: the math backend's N x N scores and
probabilities per head, flash's O(N) log-sum-exp. A length whose predicted math peak would not fit is skipped.

Time: the flash call is timed as CUDA-graph replays (one kernel whose launch costs as much as the kernel at
1k tokens: an eager call times the host), q, k, v refilled with fresh random values before each run; eager
where capture is refused. The math backend's calls (several kernels over gigabytes) are timed eagerly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from kvcalc.bench.memory import free_bytes, release
from kvcalc.bench.timing import Timing, time_graph_or_eager, time_runs

#: Timed runs of the flash call (cheap: 25 ms at 32k tokens on an H100).
FLASH_RUNS = 20


def _backend(name: str) -> Any:
    from torch.nn.attention import SDPBackend

    return {"flash": SDPBackend.FLASH_ATTENTION, "math": SDPBackend.MATH,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}[name]


def measure_one(backend: str, heads: int, head_dim: int, n: int, device: str, runs: int) -> dict[str, Any]:
    """Peak extra bytes and median time of one causal SDPA call of [1, heads, n, head_dim] in bf16."""
    from torch.nn.attention import sdpa_kernel

    q, k, v = (torch.randn(1, heads, n, head_dim, dtype=torch.bfloat16, device=device) for _ in range(3))
    with sdpa_kernel([_backend(backend)]):
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
            del out
        else:
            peak = 0
        if backend == "flash":
            timing, graph = _time_flash(q, k, v, device)
        else:
            graph = False
            timing = time_runs(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), device=device,
                               warmup=1, runs=runs)
    return {"backend": backend, "heads": heads, "head_dim": head_dim, "tokens": n, "peak_bytes": int(peak),
            "graph": graph, **timing.as_dict()}


def _time_flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, device: str) -> tuple[Timing, bool]:
    """Graph replays of one causal flash call (fresh q, k, v before each), eager calls where capture fails."""

    def call() -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def refill() -> None:
        for t in (q, k, v):
            t.normal_()

    return time_graph_or_eager(call, refresh=refill, device=device, warmup=3, runs=FLASH_RUNS)


def measure_attention(heads: int, head_dim: int, lengths: list[int], device: str, *, runs: int = 5
                      ) -> dict[str, Any]:
    """Flash and math SDPA at each length (math only while its N^2 scores fit in a third of free memory)."""
    rows, skipped = [], []
    for n in lengths:
        for backend in ("flash", "math"):
            scores = 2 * heads * n * n * 4  # scores and probabilities, fp32 at most
            if backend == "math" and scores > free_bytes(device) / 3:
                skipped.append({"backend": backend, "tokens": n, "reason": f"{scores:,} B of scores would not fit"})
                continue
            try:
                rows.append(measure_one(backend, heads, head_dim, n, device, runs))
            except RuntimeError as exc:  # a backend this build or card lacks
                skipped.append({"backend": backend, "tokens": n, "reason": str(exc).splitlines()[0][:160]})
            release(device)
    return {"rows": rows, "skipped": skipped}
