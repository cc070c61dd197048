"""A request mix: fixed lengths or a distribution of (input, output) token lengths, reduced to what sizing needs.

Capacity follows the mean request (Little's law is linear in each request's holding time, so the fleet's
throughput is set by the mean input and output lengths); the engine must admit the longest request
(max_model_len >= the largest input + output); percentiles say how far the tail sits from the mean.
Percentiles are nearest-rank over the weighted lengths (the smallest value whose cumulative weight reaches q).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from kvcalc.spec.base import record


@record
class RequestShape:
    """One kind of request and how often it occurs (weight: a count or a share)."""

    input_tokens: int
    output_tokens: int
    weight: float = 1.0


@record
class LengthStats:
    mean: float
    p50: int
    p90: int
    p99: int
    max: int


@record
class MixSummary:
    """What sizing reads from a mix. `source` names the file (or 'fixed')."""

    source: str
    requests: int
    input: LengthStats
    output: LengthStats
    longest_request_tokens: int


def percentile(values: Sequence[int], weights: Sequence[float], q: float) -> int:
    """Nearest-rank weighted percentile: the smallest value whose cumulative weight is >= q x total weight."""
    pairs = sorted(zip(values, weights, strict=True))
    total = math.fsum(weights)
    goal = q * total
    running = 0.0
    for value, weight in pairs:
        running += weight
        if running >= goal - 1e-12 * total:
            return value
    return pairs[-1][0]


def _stats(values: Sequence[int], weights: Sequence[float]) -> LengthStats:
    total = math.fsum(weights)
    mean = math.fsum(v * w for v, w in zip(values, weights, strict=True)) / total
    return LengthStats(mean=mean, p50=percentile(values, weights, 0.5), p90=percentile(values, weights, 0.9),
                       p99=percentile(values, weights, 0.99), max=max(values))


def summarize_mix(shapes: Sequence[RequestShape], source: str) -> MixSummary:
    """Means, nearest-rank percentiles and the longest request of `shapes` (at least one, positive weights)."""
    if not shapes:
        raise ValueError("a request mix needs at least one request")
    weights = [s.weight for s in shapes]
    if any(w <= 0 for w in weights):
        raise ValueError("request weights must be positive")
    return MixSummary(
        source=source,
        requests=len(shapes),
        input=_stats([s.input_tokens for s in shapes], weights),
        output=_stats([s.output_tokens for s in shapes], weights),
        longest_request_tokens=max(s.input_tokens + s.output_tokens for s in shapes),
    )


def fixed_mix(input_tokens: int, output_tokens: int) -> MixSummary:
    """Every request alike."""
    return summarize_mix([RequestShape(input_tokens=input_tokens, output_tokens=output_tokens)], "fixed")
