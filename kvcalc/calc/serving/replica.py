"""One replica under load: the largest concurrency that meets TTFT and TPOT targets and fits the KV cache.

Every step time comes from the perf model (`kvcalc.calc.perf.step.step_cost` over the same DeploymentPlan as
`fit`), so capacity and cost never disagree with `perf` and `fit`. The steady state at concurrency C, with
requests of I input and O output tokens under chunked prefill (vLLM V1 / Sarathi-Serve: a prompt is split into
chunks of at most max_num_batched_tokens that ride along with the running decodes):

    t_dec(C)    = step_cost(C decodes at context I + O/2)                 mean context over a request's decode
    t_chunk_k   = step_cost(C decodes + prefill chunk k) - t_dec(C)       what chunk k adds to the step it joins
    prefill_s   = sum_k t_chunk_k                                         GPU time of one request's prompt
    TPOT(C)     = t_dec(C) + C x prefill_s / (O - 1)
    TTFT(C)     = frontend + t_dec(C) / 2 + sum_k (t_dec(C) + t_chunk_k)

TPOT: during one request's O - 1 decode steps, C new requests arrive (Little's law: lambda x W = C) and each
prompt's chunks stretch the steps they join. TTFT: the front end (tokenize, HTTP, detokenize; perf's
`frontend_latency_s`), half a step's wait for the running step to end, then the prompt's chunk steps. Queueing
for a free slot is not modelled: headroom keeps the fleet below the concurrency this finds.

C is capped by the engine (`plan.requests_at(I + O)`: whole requests the KV pool holds, and max_num_seqs),
and both latencies grow with C, so the largest C meeting both targets is found by bisection.
"""

from __future__ import annotations

from typing import Any

from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.model import PerfModel
from kvcalc.calc.perf.step import step_cost
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.serving.capacity import CapacityLimit, ReplicaCapacity
from kvcalc.spec.base import record


@record
class LoadPoint:
    """Latencies of one replica at `concurrency` requests in flight."""

    concurrency: int
    ttft_s: float
    tpot_s: float
    decode_step_s: float
    prefill_s: float


def prefill_chunks(input_tokens: int, chunk: int) -> list[tuple[int, int]]:
    """A prompt as (prior, new) chunks of at most `chunk` tokens."""
    return [(start, min(chunk, input_tokens - start)) for start in range(0, input_tokens, chunk)]


def load_point(pm: PerfModel, coeffs: PerfCoefficients, plan: DeploymentPlan, concurrency: int,
               input_tokens: int, output_tokens: int) -> LoadPoint:
    """TTFT, TPOT and prefill GPU time at `concurrency` (module docstring)."""
    import numpy as np

    contexts: Any = np.full(concurrency, input_tokens + output_tokens / 2.0)
    t_dec = step_cost(pm, coeffs, decode_contexts=contexts).time_s
    chunk_costs = []
    chunks = prefill_chunks(input_tokens, plan.max_num_batched_tokens)
    for i, piece in enumerate(chunks):
        mixed = step_cost(pm, coeffs, decode_contexts=contexts, prefill=[piece],
                          sampled_prefills=1 if i == len(chunks) - 1 else 0)
        chunk_costs.append(max(0.0, mixed.time_s - t_dec))
    prefill_s = sum(chunk_costs)
    decode_steps = max(1, output_tokens - 1)
    tpot = t_dec + concurrency * prefill_s / decode_steps
    ttft = coeffs.frontend_latency_s + t_dec / 2.0 + len(chunks) * t_dec + prefill_s
    return LoadPoint(concurrency=concurrency, ttft_s=ttft, tpot_s=tpot, decode_step_s=t_dec, prefill_s=prefill_s)


def _meets(point: LoadPoint, ttft_slo_s: float, tpot_slo_s: float) -> bool:
    return point.ttft_s <= ttft_slo_s and point.tpot_s <= tpot_slo_s


def _limit(point: LoadPoint, ttft_slo_s: float) -> CapacityLimit:
    return "ttft_slo" if point.ttft_s > ttft_slo_s else "tpot_slo"


def engine_cap(plan: DeploymentPlan, input_tokens: int, output_tokens: int) -> tuple[int, CapacityLimit]:
    """Requests of I + O tokens the engine runs at once, and which limit sets it."""
    whole = int(plan.concurrency_at(input_tokens + output_tokens))
    if plan.max_num_seqs is not None and plan.max_num_seqs < whole:
        return plan.max_num_seqs, "max_num_seqs"
    return whole, "kv_cache"


def replica_capacity(plan: DeploymentPlan, pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int,
                     output_tokens: int, ttft_slo_s: float, tpot_slo_s: float
                     ) -> tuple[ReplicaCapacity | None, LoadPoint]:
    """The largest concurrency meeting both targets within the engine's cap, and the load point that decided
    it; (None, point at concurrency 1) when even one request misses a target or none fits."""
    cap, cap_limit = engine_cap(plan, input_tokens, output_tokens)
    first = load_point(pm, coeffs, plan, 1, input_tokens, output_tokens)
    if cap < 1 or not _meets(first, ttft_slo_s, tpot_slo_s):
        return None, first
    top = load_point(pm, coeffs, plan, cap, input_tokens, output_tokens)
    if _meets(top, ttft_slo_s, tpot_slo_s):
        best, limit = top, cap_limit
    else:
        lo, hi, best, failing = 1, cap, first, top  # lo meets, hi fails
        while hi - lo > 1:
            mid = (lo + hi) // 2
            point = load_point(pm, coeffs, plan, mid, input_tokens, output_tokens)
            if _meets(point, ttft_slo_s, tpot_slo_s):
                lo, best = mid, point
            else:
                hi, failing = mid, point
        limit = _limit(failing, ttft_slo_s)
    capacity = ReplicaCapacity(max_concurrency=best.concurrency, ttft_s=best.ttft_s, tpot_s=best.tpot_s,
                               prefill_s=best.prefill_s, output_tokens=output_tokens, limit=limit)
    return capacity, best
