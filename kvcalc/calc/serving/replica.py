"""One replica under load: the largest concurrency that meets TTFT and TPOT targets and fits the KV cache.

`perf_capacity` is the answer `kvcalc serve` prints: the perf model's own SLO search
(`kvcalc.calc.perf.slo.max_concurrency_under_slo`, a closed-loop simulation of the engine's scheduler over the
same DeploymentPlan as `fit`), so capacity and cost never disagree with `perf` and `fit`. It simulates every
step, 0.05-0.5 s a deployment, too slow to try hundreds of layouts in `kvcalc plan`; `screen_capacity` is the
steady state of the same step costs in closed form (1-3 ms), used to screen the plan search before the winner
is confirmed by `confirmed_capacity`: the same closed-loop runs and the same criterion as the perf search, but
started from the screened concurrency and widened until the boundary is bracketed (2-4 runs instead of ~11;
both searches assume, as bisection does, that TTFT and TPOT grow with concurrency, so both find the same
boundary). At concurrency C, requests of I input and O output tokens:

    t_dec(C)    = step_cost(C decodes at context I + O/2)                 mean context over a request's decode
    t_chunk_k   = step_cost(C decodes + prompt chunk k) - t_dec(C)        engines that mix prefill into decode
                  steps (vLLM V1, TRT-LLM, llama.cpp); step_cost(chunk k) alone where prefill runs on its
                  own (SGLang by default), per perf.runs.MIXED_PREFILL_ENGINES
    TPOT(C)     = t_dec(C) + C x sum_k t_chunk_k / (O - 1)
    TTFT(C)     = frontend + t_dec(C) / 2 + sum_k (t_dec(C) + t_chunk_k)

TPOT: during one request's O - 1 decode steps C new requests arrive (Little's law: lambda x W = C) and each
prompt's chunks stretch the steps they join. TTFT: the front end, half a step's wait for the running step, then
the prompt's chunk steps. Prompts are chunked at max_num_batched_tokens. The screen agrees with the simulation
to about 1% on Llama-3.1-8B/70B and Qwen3-30B-A3B on H100 (tests/test_serve_cli.py).

For splitting cost between input and output tokens both report `prefill_s`, the GPU time of the prompt as one
step on its own (`perf.runs.prefill_step`).
"""

from __future__ import annotations

from typing import Any

from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.model import PerfModel
from kvcalc.calc.perf.runs import MIXED_PREFILL_ENGINES, prefill_step, run_serving, running_cap
from kvcalc.calc.perf.scheduler import RunStats
from kvcalc.calc.perf.slo import SloResult, max_concurrency_under_slo
from kvcalc.calc.perf.step import step_cost
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.serving.capacity import CapacityLimit, ReplicaCapacity
from kvcalc.spec.base import record


def perf_capacity(pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int, output_tokens: int,
                  ttft_slo_s: float, tpot_slo_s: float) -> tuple[ReplicaCapacity | None, SloResult]:
    """The perf model's SLO search as a ReplicaCapacity (None when even one request misses a target)."""
    slo = max_concurrency_under_slo(pm, coeffs, input_tokens, output_tokens, ttft_slo_s, tpot_slo_s)
    if slo.max_concurrency < 1 or slo.binding == "unmet":
        return None, slo
    limit: CapacityLimit = slo.binding
    return ReplicaCapacity(max_concurrency=slo.max_concurrency, ttft_s=slo.ttft_s, tpot_s=slo.tpot_s,
                           prefill_s=prefill_step(pm, coeffs, input_tokens).time_s, output_tokens=output_tokens,
                           limit=limit), slo


def _run_excess(stats: RunStats, ttft_slo_s: float, tpot_slo_s: float) -> float:
    """max(TTFT / target, TPOT / target) - 1 of a run: <= 0 meets both targets (perf.slo's criterion)."""
    return max(stats.ttft_s / ttft_slo_s, stats.tpot_s / tpot_slo_s) - 1.0


def _toward_boundary(c: int, g: float) -> int:
    """Step from c to the estimated boundary c / (1 + g) (latencies about proportional to c), at least 1."""
    return max(1, abs(c - round(c / (1.0 + g))))


def _bracket(excess: object, hint: int, cap: int) -> tuple[int, float, int | None, float]:
    """(lo, excess(lo), hi, excess(hi)) with excess(lo) <= 0 < excess(hi), walking from `hint` toward the
    estimated boundary (doubling the step when the estimate undershoots); hi None when the cap meets; lo 0
    when one client misses."""
    c = min(max(hint, 1), cap)
    g = excess(c)  # type: ignore[operator]
    if g <= 0:
        lo, g_lo, step = c, g, _toward_boundary(c, g)
        while lo < cap:
            nxt = min(cap, lo + step)
            g = excess(nxt)  # type: ignore[operator]
            if g > 0:
                return lo, g_lo, nxt, g
            lo, g_lo, step = nxt, g, max(2 * step, _toward_boundary(nxt, g))
        return lo, g_lo, None, 0.0
    hi, g_hi, step = c, g, _toward_boundary(c, g)
    while hi > 1:
        nxt = max(1, hi - step)
        g = excess(nxt)  # type: ignore[operator]
        if g <= 0:
            return nxt, g, hi, g_hi
        hi, g_hi, step = nxt, g, max(2 * step, _toward_boundary(nxt, g))
    return 0, 0.0, 1, g_hi


def confirmed_capacity(pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int, output_tokens: int,
                       ttft_slo_s: float, tpot_slo_s: float, hint: int) -> ReplicaCapacity | None:
    """The perf model's SLO answer (closed-loop runs, mean TTFT and TPOT against the targets, capped by
    running_cap), found from `hint` outwards (module docstring); None when one client misses a target."""
    cap, cap_binding = running_cap(pm.plan, input_tokens, output_tokens)
    cap = max(cap, 1)
    runs: dict[int, RunStats] = {}

    def excess(c: int) -> float:
        if c not in runs:
            runs[c] = run_serving(pm, coeffs, c, input_tokens, output_tokens, measure=max(c, 16))
        return _run_excess(runs[c], ttft_slo_s, tpot_slo_s)

    lo, g_lo, hi, g_hi = _bracket(excess, hint, cap)
    if lo == 0:
        return None
    limit: CapacityLimit = "kv_cache" if cap_binding == "kv_cache" else "max_num_seqs"
    if hi is not None:
        lo = _largest_meeting(excess, lo, hi, g_lo, g_hi)
        excess(lo + 1)  # a no-op when the search already ran it
        over = runs[lo + 1]
        limit = "ttft_slo" if over.ttft_s / ttft_slo_s >= over.tpot_s / tpot_slo_s else "tpot_slo"
    best = runs[lo]
    return ReplicaCapacity(max_concurrency=lo, ttft_s=best.ttft_s, tpot_s=best.tpot_s,
                           prefill_s=prefill_step(pm, coeffs, input_tokens).time_s, output_tokens=output_tokens,
                           limit=limit)


@record
class LoadPoint:
    """Screened latencies of one replica at `concurrency` requests in flight."""

    concurrency: int
    ttft_s: float
    tpot_s: float
    decode_step_s: float
    chunk_s: float


def prefill_chunks(input_tokens: int, chunk: int) -> list[tuple[int, int]]:
    """A prompt as (prior, new) chunks of at most `chunk` tokens."""
    return [(start, min(chunk, input_tokens - start)) for start in range(0, input_tokens, chunk)]


def load_point(pm: PerfModel, coeffs: PerfCoefficients, plan: DeploymentPlan, concurrency: int,
               input_tokens: int, output_tokens: int) -> LoadPoint:
    """Screened TTFT and TPOT at `concurrency` (module docstring)."""
    import numpy as np

    contexts: Any = np.full(concurrency, input_tokens + output_tokens / 2.0)
    t_dec = step_cost(pm, coeffs, decode_contexts=contexts).time_s
    mixed = plan.engine in MIXED_PREFILL_ENGINES
    chunks = prefill_chunks(input_tokens, plan.max_num_batched_tokens)
    chunk_s = 0.0
    for i, piece in enumerate(chunks):
        sampled = 1 if i == len(chunks) - 1 else 0
        if mixed:
            with_chunk = step_cost(pm, coeffs, decode_contexts=contexts, prefill=[piece], sampled_prefills=sampled)
            chunk_s += max(0.0, with_chunk.time_s - t_dec)
        else:
            chunk_s += step_cost(pm, coeffs, prefill=[piece], sampled_prefills=sampled).time_s
    tpot = t_dec + concurrency * chunk_s / max(1, output_tokens - 1)
    ttft = coeffs.frontend_latency_s + t_dec / 2.0 + len(chunks) * t_dec + chunk_s
    return LoadPoint(concurrency=concurrency, ttft_s=ttft, tpot_s=tpot, decode_step_s=t_dec, chunk_s=chunk_s)


def _excess(point: LoadPoint, ttft_slo_s: float, tpot_slo_s: float) -> float:
    """How far the worse of the two latencies is over its target, as a ratio minus 1 (<= 0 meets both)."""
    return max(point.ttft_s / ttft_slo_s, point.tpot_s / tpot_slo_s) - 1.0


def _largest_meeting(at: object, lo: int, hi: int, g_lo: float, g_hi: float) -> int:
    """Largest c in [lo, hi) with excess(c) <= 0, given excess(lo) <= 0 < excess(hi) and excess growing with c:
    regula falsi on the excess (the latencies are close to linear in c) with the Illinois halving, so a few
    evaluations replace a bisection's log2(hi - lo)."""
    side = 0
    while hi - lo > 1:
        frac = -g_lo / (g_hi - g_lo) if g_hi > g_lo else 0.5
        mid = min(hi - 1, max(lo + 1, lo + round(frac * (hi - lo))))
        g = at(mid)  # type: ignore[operator]
        if g <= 0:
            lo, g_lo = mid, g
            g_hi = g_hi / 2 if side == 1 else g_hi
            side = 1
        else:
            hi, g_hi = mid, g
            g_lo = g_lo / 2 if side == -1 else g_lo
            side = -1
    return lo


def screen_capacity(plan: DeploymentPlan, pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int,
                    output_tokens: int, ttft_slo_s: float, tpot_slo_s: float) -> ReplicaCapacity | None:
    """The largest screened concurrency meeting both targets within the engine's cap (both latencies grow
    with C); None when even one request misses a target or none fits."""
    cap, cap_limit = running_cap(plan, input_tokens, output_tokens)
    if cap < 1:
        return None
    points: dict[int, LoadPoint] = {}

    def excess(c: int) -> float:
        points[c] = load_point(pm, coeffs, plan, c, input_tokens, output_tokens)
        return _excess(points[c], ttft_slo_s, tpot_slo_s)

    g_one = excess(1)
    if g_one > 0:
        return None
    g_cap = excess(cap) if cap > 1 else g_one
    limit: CapacityLimit = "kv_cache" if cap_limit == "kv_cache" else "max_num_seqs"
    best = cap
    if g_cap > 0:
        best = _largest_meeting(excess, 1, cap, g_one, g_cap)
        over = points.get(best + 1) or load_point(pm, coeffs, plan, best + 1, input_tokens, output_tokens)
        limit = "ttft_slo" if over.ttft_s / ttft_slo_s >= over.tpot_s / tpot_slo_s else "tpot_slo"
    point = points[best]
    return ReplicaCapacity(max_concurrency=best, ttft_s=point.ttft_s, tpot_s=point.tpot_s,
                           prefill_s=prefill_step(pm, coeffs, input_tokens).time_s, output_tokens=output_tokens,
                           limit=limit)
