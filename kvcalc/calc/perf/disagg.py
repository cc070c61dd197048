"""Prefill/decode disaggregation (DistServe, Zhong et al. 2024, arXiv:2401.09670; Splitwise, Patel et al.
2024): prefill replicas only prefill, decode replicas only decode, and each request's prompt KV moves
from one to the other.

For one replica of the plan's layout:
- prefill rate = prompts per second when every step is a full prefill chunk: k = budget // input prompts per
  step (input < budget), else one prompt over ceil(input / budget) chunk steps;
- decode rate = B / (output x t_decode(B)), B the largest decode batch whose step at the mean context
  (input + output / 2) meets the TPOT target and whose KV fits (requests of input + output tokens);
- for a request rate R: R / prefill rate prefill replicas and R / decode rate decode replicas;
- KV moved per request = the prompt's KV over the whole model (every layer, the logical heads once), sent at
  NETWORK_BYTES_PER_S between nodes (one 400 Gb/s NIC per GPU, as DGX H100/B200 have: ConnectX-7) or the
  card's scale-up link within a node.
"""

from __future__ import annotations

import math

from kvcalc.calc import kv as kvmod
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.comm import link_bytes_per_s
from kvcalc.calc.perf.model import PerfModel
from kvcalc.calc.perf.runs import decode_step, running_cap
from kvcalc.calc.perf.step import step_cost
from kvcalc.spec.base import record
from kvcalc.spec.dtypes import storage_type

#: 400 Gb/s per GPU (NVIDIA ConnectX-7 in DGX H100 / HGX B200: one NIC per GPU) = 50e9 B/s.
NETWORK_BYTES_PER_S = 50e9


@record
class Disaggregation:
    """Prefill and decode replicas for `request_rate` requests/s (module docstring)."""

    gpus_per_replica: int
    prefill_requests_per_s: float
    decode_requests_per_s: float
    decode_batch: int
    request_rate: float
    prefill_replicas: int
    decode_replicas: int
    prefill_gpus: int
    decode_gpus: int
    kv_bytes_per_request: int
    kv_transfer_s_network: float
    kv_transfer_s_scale_up: float


def prefill_rate(pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int) -> float:
    """Prompts per second of a replica that only prefills (module docstring)."""
    budget = pm.plan.max_num_batched_tokens
    if input_tokens < budget:
        k = budget // input_tokens
        return k / step_cost(pm, coeffs, prefill=[(0, input_tokens)] * k).time_s
    total, done = 0.0, 0
    while done < input_tokens:
        chunk = min(budget, input_tokens - done)
        total += step_cost(pm, coeffs, prefill=[(done, chunk)], sampled_prefills=0).time_s
        done += chunk
    return 1.0 / total


def decode_batch_for(pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int, output_tokens: int,
                     tpot_slo_s: float) -> int:
    """Largest decode batch (<= the KV cap) whose step at the mean context meets the TPOT target; 0 if
    even one request misses it."""
    cap, _ = running_cap(pm.plan, input_tokens, output_tokens)
    context = input_tokens + output_tokens // 2
    lo, hi = 0, max(cap, 0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if decode_step(pm, coeffs, mid, context).time_s <= tpot_slo_s:
            lo = mid
        else:
            hi = mid - 1
    return lo


def disaggregate(pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int, output_tokens: int,
                 tpot_slo_s: float, request_rate: float) -> Disaggregation:
    """Prefill and decode replicas and GPUs for `request_rate` (module docstring)."""
    plan = pm.plan
    gpus = plan.parallel.gpus
    p_rate = prefill_rate(pm, coeffs, input_tokens)
    batch = decode_batch_for(pm, coeffs, input_tokens, output_tokens, tpot_slo_s)
    context = input_tokens + output_tokens // 2
    d_rate = batch / (output_tokens * decode_step(pm, coeffs, batch, context).time_s) if batch else 0.0
    kv_bytes = kvmod.bytes_per_sequence(plan.model, input_tokens, storage_type(plan.kv_dtype))
    p_reps = math.ceil(request_rate / p_rate) if request_rate > 0 else 0
    d_reps = math.ceil(request_rate / d_rate) if request_rate > 0 and d_rate > 0 else 0
    return Disaggregation(
        gpus_per_replica=gpus, prefill_requests_per_s=p_rate, decode_requests_per_s=d_rate,
        decode_batch=batch, request_rate=request_rate, prefill_replicas=p_reps, decode_replicas=d_reps,
        prefill_gpus=p_reps * gpus, decode_gpus=d_reps * gpus, kv_bytes_per_request=kv_bytes,
        kv_transfer_s_network=kv_bytes / NETWORK_BYTES_PER_S,
        kv_transfer_s_scale_up=kv_bytes / link_bytes_per_s(plan.gpu),
    )
