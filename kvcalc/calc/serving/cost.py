"""What serving costs: $ per hour and per request, and $ per million input, output and all tokens.

    cost per hour    = gpus x price per GPU-hour
    cost per request = cost per hour / (3600 x demand requests/s)     (the fleet as provisioned, idle headroom
                                                                       included: what each served request pays)
    blended $/M tok  = cost per request / (input + output tokens) x 1e6

Splitting a request's cost between its input and output tokens: by each phase's share of the replica's GPU time.
The prefill of a request occupies the replica for `prefill_s`; its decode takes `output - 1` steps of `tpot`, each
shared by the `concurrency` requests in flight, so `decode_s = (output - 1) x tpot / concurrency`:

    input share      = prefill_s / (prefill_s + decode_s)
    $/M input tokens = cost per request x input share / input tokens x 1e6
    $/M output tokens = cost per request x (1 - input share) / output tokens x 1e6

so input x $/M-in + output x $/M-out = cost per request x 1e6 exactly. (API price lists charge input and output
separately for the same reason: prefill is a large batched GEMM, decode a bandwidth-bound step per token.)
"""

from __future__ import annotations

from kvcalc.spec.base import record

SECONDS_PER_HOUR = 3600.0


def input_share(prefill_s: float, decode_s: float) -> float:
    """`prefill_s / (prefill_s + decode_s)`: the fraction of a request's GPU time spent on its input."""
    total = prefill_s + decode_s
    if total <= 0:
        raise ValueError("a request must take some GPU time")
    return prefill_s / total


@record
class TokenCost:
    """Costs in USD at the fleet's provisioned size for a demand of `demand_rps`."""

    per_hour: float
    per_day: float
    per_request: float
    per_million_input_tokens: float
    per_million_output_tokens: float
    per_million_tokens: float
    input_share: float


def token_cost(
    gpus: int, usd_per_gpu_hour: float, demand_rps: float, input_tokens: float, output_tokens: float,
    share_of_input: float,
) -> TokenCost:
    """The costs of the module docstring; `input_tokens`/`output_tokens` are per request (means for a mix)."""
    if demand_rps <= 0 or input_tokens <= 0 or output_tokens <= 0:
        raise ValueError("demand, input and output tokens must be positive")
    per_hour = gpus * usd_per_gpu_hour
    per_request = per_hour / (SECONDS_PER_HOUR * demand_rps)
    return TokenCost(
        per_hour=per_hour,
        per_day=per_hour * 24.0,
        per_request=per_request,
        per_million_input_tokens=per_request * share_of_input / input_tokens * 1e6,
        per_million_output_tokens=per_request * (1.0 - share_of_input) / output_tokens * 1e6,
        per_million_tokens=per_request / (input_tokens + output_tokens) * 1e6,
        input_share=share_of_input,
    )
