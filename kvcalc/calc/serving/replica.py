"""One replica under load: the largest concurrency that meets TTFT and TPOT targets and fits the KV cache.

`perf_capacity` is the answer `kvcalc serve` prints: the perf model's own SLO search
(`kvcalc.calc.perf.slo.max_concurrency_under_slo`, a closed-loop simulation of the engine's scheduler over the
same DeploymentPlan as `fit`), so capacity and cost never disagree with `perf` and `fit`. It simulates every
step, 0.05-0.5 s a deployment, too slow to try hundreds of layouts in `kvcalc plan`; `screen_capacity` is the
steady state of the same step costs in closed form (1-3 ms), used to screen the plan search before the winner
is confirmed by `confirmed_capacity`: the perf search itself, started from the screened concurrency and
widened until the boundary is bracketed (`perf.slo.bracket`) instead of from C = 1 and the cap (both assume, as
bisection does, that TTFT and TPOT grow with concurrency, so both find the same boundary). At concurrency C,
requests of I input and O output tokens:

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
from kvcalc.calc.perf.runs import MIXED_PREFILL_ENGINES, prefill_step, running_cap
from kvcalc.calc.perf.slo import SloResult, excess, failing_target, largest_meeting, max_concurrency_under_slo
from kvcalc.calc.perf.step import step_cost
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.serving.capacity import CapacityLimit, ReplicaCapacity
from kvcalc.spec.base import record


def perf_capacity(pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int, output_tokens: int,
                  ttft_slo_s: float, tpot_slo_s: float,
                  hint: int | None = None) -> tuple[ReplicaCapacity | None, SloResult]:
    """The perf model's SLO search (started from `hint`, when given) as a ReplicaCapacity (None when even one
    request misses a target)."""
    slo = max_concurrency_under_slo(pm, coeffs, input_tokens, output_tokens, ttft_slo_s, tpot_slo_s, hint=hint)
    if slo.max_concurrency < 1 or slo.binding == "unmet":
        return None, slo
    limit: CapacityLimit = slo.binding
    return ReplicaCapacity(max_concurrency=slo.max_concurrency, ttft_s=slo.ttft_s, tpot_s=slo.tpot_s,
                           prefill_s=prefill_step(pm, coeffs, input_tokens).time_s, output_tokens=output_tokens,
                           limit=limit), slo


def confirmed_capacity(pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int, output_tokens: int,
                       ttft_slo_s: float, tpot_slo_s: float, hint: int) -> ReplicaCapacity | None:
    """The perf model's SLO answer, found from the screened `hint` outwards (module docstring); None when one
    client misses a target."""
    return perf_capacity(pm, coeffs, input_tokens, output_tokens, ttft_slo_s, tpot_slo_s, hint=hint)[0]


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


def screen_capacity(plan: DeploymentPlan, pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int,
                    output_tokens: int, ttft_slo_s: float, tpot_slo_s: float) -> ReplicaCapacity | None:
    """The largest screened concurrency meeting both targets within the engine's cap (both latencies grow
    with C); None when even one request misses a target or none fits."""
    cap, cap_limit = running_cap(plan, input_tokens, output_tokens)
    if cap < 1:
        return None
    points: dict[int, LoadPoint] = {}

    def at(c: int) -> float:
        points[c] = load_point(pm, coeffs, plan, c, input_tokens, output_tokens)
        return excess(points[c], ttft_slo_s, tpot_slo_s)

    g_one = at(1)
    if g_one > 0:
        return None
    g_cap = at(cap) if cap > 1 else g_one
    limit: CapacityLimit = "kv_cache" if cap_limit == "kv_cache" else "max_num_seqs"
    best = cap
    if g_cap > 0:
        best = largest_meeting(at, 1, cap, g_one, g_cap)
        over = points.get(best + 1) or load_point(pm, coeffs, plan, best + 1, input_tokens, output_tokens)
        limit = failing_target(over, ttft_slo_s, tpot_slo_s)
    point = points[best]
    return ReplicaCapacity(max_concurrency=best, ttft_s=point.ttft_s, tpot_s=point.tpot_s,
                           prefill_s=prefill_step(pm, coeffs, input_tokens).time_s, output_tokens=output_tokens,
                           limit=limit)
