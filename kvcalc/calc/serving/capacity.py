"""What one replica sustains: Little's law over the SLO-constrained concurrency.

A replica that keeps `C` requests in flight, each holding its slot for `W` seconds, completes `C / W` requests
per second in steady state (Little's law, L = lambda W: J. D. C. Little, "A Proof for the Queuing Formula
L = lambda W", Operations Research 9(3), 1961). A request holds its slot from arrival to its last token:

    W = ttft + (output_tokens - 1) x tpot

(TTFT covers the prefill and the first token; each later token costs one decode step, TPOT, vLLM
`benchmarks/serve.py::calculate_metrics`: tpot = (latency - ttft) / (output_len - 1)).
"""

from __future__ import annotations

from typing import Literal

from kvcalc.spec.base import record

#: What stopped a replica from taking more concurrent requests.
CapacityLimit = Literal["ttft_slo", "tpot_slo", "kv_cache", "max_num_seqs", "none"]


def request_latency_s(ttft_s: float, tpot_s: float, output_tokens: float) -> float:
    """Seconds a request holds its slot: `ttft + (output_tokens - 1) x tpot`."""
    if output_tokens < 1:
        raise ValueError(f"output_tokens must be >= 1, got {output_tokens}")
    return ttft_s + (output_tokens - 1) * tpot_s


def requests_per_s(concurrency: float, ttft_s: float, tpot_s: float, output_tokens: float) -> float:
    """Little's law: `concurrency / (ttft + (output_tokens - 1) x tpot)` requests per second."""
    latency = request_latency_s(ttft_s, tpot_s, output_tokens)
    if latency <= 0:
        raise ValueError(f"request latency must be positive, got {latency}")
    return concurrency / latency


@record
class ReplicaCapacity:
    """One replica at the largest concurrency that meets the SLOs and fits its KV cache.

    `prefill_s` is the GPU time one request's prefill occupies the replica (used only to split cost between
    input and output tokens); `limit` names what capped the concurrency."""

    max_concurrency: int
    ttft_s: float
    tpot_s: float
    prefill_s: float
    output_tokens: float
    limit: CapacityLimit = "none"

    @property
    def latency_s(self) -> float:
        return request_latency_s(self.ttft_s, self.tpot_s, self.output_tokens)

    @property
    def requests_per_s(self) -> float:
        return requests_per_s(self.max_concurrency, self.ttft_s, self.tpot_s, self.output_tokens)

    @property
    def decode_s(self) -> float:
        """GPU time one request's decode occupies the replica: its (output - 1) steps, each shared by
        `max_concurrency` requests: `(output - 1) x tpot / concurrency`."""
        return (self.output_tokens - 1) * self.tpot_s / self.max_concurrency
