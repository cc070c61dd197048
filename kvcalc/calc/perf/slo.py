"""Batching under latency targets: the largest concurrency that meets a TTFT and a TPOT target and fits the
KV budget, and the chunked-prefill budget's effect on both.

TTFT and TPOT grow with the number of clients (more decodes per step, more prefills to interleave), so the
largest concurrency meeting both targets is the one c with excess(c) <= 0 < excess(c + 1), where
excess = max(TTFT / target, TPOT / target) - 1 of a closed-loop run (`runs.run_serving`), capped at the
requests the plan's KV pool and max_num_seqs admit: beyond that cap requests queue and TTFT grows without
bound, so the cap is a limit of its own. The search runs C = 1 and the cap (or walks out from a screened
hint, `bracket`), then regula falsi on the excess (`largest_meeting`): latencies are close to linear in C,
so 2-5 runs inside the bracket find what a bisection's log2(cap) runs would (tests/test_perf_runs.py
compares the two on synthetic excesses and on simulated runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

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


class Latencies(Protocol):
    """Mean TTFT and TPOT of a load (a simulated run's `RunStats`, a screened `LoadPoint`)."""

    @property
    def ttft_s(self) -> float: ...

    @property
    def tpot_s(self) -> float: ...


def excess(stats: Latencies, ttft_slo: float, tpot_slo: float) -> float:
    """max(TTFT / target, TPOT / target) - 1 of a load: <= 0 meets both targets, > 0 misses one."""
    return max(stats.ttft_s / ttft_slo, stats.tpot_s / tpot_slo) - 1.0


def failing_target(stats: Latencies, ttft_slo: float, tpot_slo: float) -> Literal["ttft_slo", "tpot_slo"]:
    """The target missed by more (as a ratio), when a load misses one."""
    return "ttft_slo" if stats.ttft_s / ttft_slo >= stats.tpot_s / tpot_slo else "tpot_slo"


def _result(c: int, binding: SloBinding, stats: RunStats, cap: int, ttft: float, tpot: float) -> SloResult:
    return SloResult(
        max_concurrency=c, binding=binding, ttft_s=stats.ttft_s, tpot_s=stats.tpot_s,
        itl_p99_s=stats.itl_p99_s, tokens_per_s_per_user=1.0 / stats.tpot_s if stats.tpot_s else 0.0,
        tokens_per_s_total=stats.output_tokens_per_s, requests_per_s=stats.requests_per_s, kv_limit=cap,
        ttft_slo_s=ttft, tpot_slo_s=tpot,
    )


Excess = Callable[[int], float]


def largest_meeting(at: Excess, lo: int, hi: int, g_lo: float, g_hi: float) -> int:
    """Largest c in [lo, hi) with at(c) <= 0, given at(lo) = g_lo <= 0 < at(hi) = g_hi and at growing with c:
    regula falsi on the excess (latencies are close to linear in c: the next c is where the chord through
    (lo, g_lo) and (hi, g_hi) crosses 0, rounded into (lo, hi)) with the Illinois halving (the end kept twice
    in a row has its g halved, so a curved excess cannot pin one end). On an excess growing with c it finds
    what a bisection finds, the one c with at(c) <= 0 < at(c + 1), in a few evaluations instead of
    log2(hi - lo)."""
    side = 0
    while hi - lo > 1:
        frac = -g_lo / (g_hi - g_lo) if g_hi > g_lo else 0.5
        mid = min(hi - 1, max(lo + 1, lo + round(frac * (hi - lo))))
        g = at(mid)
        if g <= 0:
            lo, g_lo = mid, g
            g_hi = g_hi / 2 if side == 1 else g_hi
            side = 1
        else:
            hi, g_hi = mid, g
            g_lo = g_lo / 2 if side == -1 else g_lo
            side = -1
    return lo


def _toward_boundary(c: int, g: float) -> int:
    """Step from c to the estimated boundary c / (1 + g) (latencies about proportional to c), at least 1;
    c itself where g <= -1 (no latency to scale: the walk doubles c)."""
    if g <= -1.0:
        return c
    return max(1, abs(c - round(c / (1.0 + g))))


def bracket(at: Excess, hint: int, cap: int) -> tuple[int, float, int | None, float]:
    """(lo, at(lo), hi, at(hi)) with at(lo) <= 0 < at(hi), walking from `hint` toward the estimated
    boundary (doubling the step when the estimate undershoots); hi None when the cap meets; lo 0 when one
    client misses."""
    c = min(max(hint, 1), cap)
    g = at(c)
    if g <= 0:
        lo, g_lo, step = c, g, _toward_boundary(c, g)
        while lo < cap:
            nxt = min(cap, lo + step)
            g = at(nxt)
            if g > 0:
                return lo, g_lo, nxt, g
            lo, g_lo, step = nxt, g, max(2 * step, _toward_boundary(nxt, g))
        return lo, g_lo, None, 0.0
    hi, g_hi, step = c, g, _toward_boundary(c, g)
    while hi > 1:
        nxt = max(1, hi - step)
        g = at(nxt)
        if g <= 0:
            return nxt, g, hi, g_hi
        hi, g_hi, step = nxt, g, max(2 * step, _toward_boundary(nxt, g))
    return 0, 0.0, 1, g_hi


def _ends(at: Excess, cap: int) -> tuple[int, float, int | None, float]:
    """`bracket` from C = 1 and the cap: (1, at(1), cap, at(cap)); lo 0 when one client misses, hi None when
    the cap meets."""
    g_lo = at(1)
    if g_lo > 0:
        return 0, 0.0, 1, g_lo
    g_hi = at(cap)
    return (1, g_lo, None, 0.0) if g_hi <= 0 else (1, g_lo, cap, g_hi)


def max_concurrency_under_slo(pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int, output_tokens: int,
                              ttft_slo_s: float, tpot_slo_s: float, hint: int | None = None) -> SloResult:
    """Largest closed-loop concurrency C <= the KV/max_num_seqs cap with mean TTFT <= ttft_slo_s and mean
    TPOT <= tpot_slo_s (module docstring). Without `hint` the search starts from C = 1 and the cap, else it
    brackets the boundary from the hint outwards (`bracket`)."""
    cap, cap_binding = running_cap(pm.plan, input_tokens, output_tokens)
    cap = max(cap, 1)
    runs: dict[int, RunStats] = {}

    def at(c: int) -> float:
        if c not in runs:
            runs[c] = run_serving(pm, coeffs, c, input_tokens, output_tokens, measure=max(c, 16))
        return excess(runs[c], ttft_slo_s, tpot_slo_s)

    lo, g_lo, hi, g_hi = _ends(at, cap) if hint is None else bracket(at, hint, cap)
    if lo == 0:
        return _result(0, "unmet", runs[1], cap, ttft_slo_s, tpot_slo_s)
    if hi is None:
        return _result(cap, "kv_cache" if cap_binding == "kv_cache" else "max_num_seqs", runs[cap], cap,
                       ttft_slo_s, tpot_slo_s)
    best = largest_meeting(at, lo, hi, g_lo, g_hi)  # best + 1 is the bracket's last upper end: already run
    return _result(best, failing_target(runs[best + 1], ttft_slo_s, tpot_slo_s), runs[best], cap, ttft_slo_s,
                   tpot_slo_s)
