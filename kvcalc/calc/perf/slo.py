"""Batching under latency targets: the largest concurrency that meets a TTFT and a TPOT target and fits the
KV budget, and the chunked-prefill budget's effect on both.

TTFT and TPOT grow with the number of clients (more decodes per step, more prefills to interleave), so the
largest concurrency meeting both targets is found by bisection over closed-loop runs
(`runs.run_serving`), capped at the requests the plan's KV pool and max_num_seqs admit: beyond that cap
requests queue and TTFT grows without bound, so the cap is a limit of its own.
"""

from __future__ import annotations

from typing import Literal

from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.model import PerfModel
from kvcalc.calc.perf.runs import run_serving, running_cap
from kvcalc.calc.perf.scheduler import RunStats
from kvcalc.spec.base import record

SloBinding = Literal["ttft_slo", "tpot_slo", "kv_cache", "max_num_seqs", "unmet"]


@record
class SloResult:
    """`max_concurrency` clients meet both targets (0 when even one does not: binding "unmet");
    `binding` names what stops one more; figures at max_concurrency (at 1 when unmet)."""

    max_concurrency: int
    binding: SloBinding
    ttft_s: float
    tpot_s: float
    itl_p99_s: float
    tokens_per_s_per_user: float
    tokens_per_s_total: float
    requests_per_s: float
    kv_limit: int
    ttft_slo_s: float
    tpot_slo_s: float


def _meets(stats: RunStats, ttft_slo: float, tpot_slo: float) -> bool:
    return stats.ttft_s <= ttft_slo and stats.tpot_s <= tpot_slo


def _failing(stats: RunStats, ttft_slo: float, tpot_slo: float) -> SloBinding:
    """The target missed by more (as a ratio), when a run misses one."""
    return "ttft_slo" if stats.ttft_s / ttft_slo >= stats.tpot_s / tpot_slo else "tpot_slo"


def _result(c: int, binding: SloBinding, stats: RunStats, cap: int, ttft: float, tpot: float) -> SloResult:
    return SloResult(
        max_concurrency=c, binding=binding, ttft_s=stats.ttft_s, tpot_s=stats.tpot_s,
        itl_p99_s=stats.itl_p99_s, tokens_per_s_per_user=1.0 / stats.tpot_s if stats.tpot_s else 0.0,
        tokens_per_s_total=stats.output_tokens_per_s, requests_per_s=stats.requests_per_s, kv_limit=cap,
        ttft_slo_s=ttft, tpot_slo_s=tpot,
    )


def max_concurrency_under_slo(pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int, output_tokens: int,
                              ttft_slo_s: float, tpot_slo_s: float) -> SloResult:
    """Largest closed-loop concurrency C <= the KV/max_num_seqs cap with mean TTFT <= ttft_slo_s and mean
    TPOT <= tpot_slo_s (module docstring)."""
    cap, cap_binding = running_cap(pm.plan, input_tokens, output_tokens)
    cap = max(cap, 1)

    def run(c: int) -> RunStats:
        return run_serving(pm, coeffs, c, input_tokens, output_tokens, measure=max(c, 16))

    first = run(1)
    if not _meets(first, ttft_slo_s, tpot_slo_s):
        return _result(0, "unmet", first, cap, ttft_slo_s, tpot_slo_s)
    top = run(cap)
    if _meets(top, ttft_slo_s, tpot_slo_s):
        return _result(cap, "kv_cache" if cap_binding == "kv_cache" else "max_num_seqs", top, cap,
                       ttft_slo_s, tpot_slo_s)
    lo, hi, best, over = 1, cap, first, top  # run(lo) meets, run(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        stats = run(mid)
        if _meets(stats, ttft_slo_s, tpot_slo_s):
            lo, best = mid, stats
        else:
            hi, over = mid, stats
    return _result(lo, _failing(over, ttft_slo_s, tpot_slo_s), best, cap, ttft_slo_s, tpot_slo_s)
