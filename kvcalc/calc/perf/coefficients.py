"""The perf model's coefficients: what `kvcalc verify` fits on a card and `--calibration` loads.

The latency model keeps each roofline term separate so that one coefficient scales each (the BLIS approach:
a roofline multiplied term by term by coefficients fitted to real runs). For one engine step on one GPU:

    t_weights   = weight_bytes / (B x weight_bw_eff)         t_gemm      = gemm_flops / (F[dtype] x gemm_eff[dtype])
    t_kv        = kv_bytes / (B x kv_bw_eff)                 t_attention = attention_flops / (F[bf16] x attention_eff)
    t_step      = max(t_weights, t_gemm) + max(t_kv, t_attention) + layers x layer_overhead_s + step_overhead_s
                  + requests x request_overhead_s + t_comm
    t_comm      = per collective: latency + bytes / (link bandwidth x comm_bw_eff); a TP all-reduce over n
                  ranks: latency = comm_latency_s + 2 (n - 1) x comm_hop_latency_s (ring, calc/perf/comm.py)

(GEMMs and attention are separate kernels, so each takes its own roofline and the two add: calc/perf/step.py.)
A request's TTFT in online serving also pays `frontend_latency_s` once (HTTP, tokenization, detokenizing and
streaming the first chunk), which offline benchmarks (`vllm bench latency`) do not.

with B the card's memory bandwidth and F its dense peak FLOP/s from the hardware file. A coefficient of 1
(and overheads of 0) is the pure roofline. Defaults and their sources live with the perf model; a calibration
file measured on the card replaces them (`source` says which applies).
"""

from __future__ import annotations

from dataclasses import field

from kvcalc.spec.base import record


@record
class PerfCoefficients:
    """Efficiencies (fractions of the datasheet ceiling) and fixed costs (seconds) of the perf model."""

    weight_bw_eff: float
    kv_bw_eff: float
    gemm_eff: dict[str, float]
    attention_eff: float
    layer_overhead_s: float
    step_overhead_s: float
    request_overhead_s: float = 0.0
    comm_latency_s: float = 0.0
    comm_bw_eff: float = 1.0
    frontend_latency_s: float = 0.0
    source: str = ""
    comm_hop_latency_s: float = 0.0
    sources: dict[str, str] = field(default_factory=dict)

    def gemm_efficiency(self, dtype: str) -> float:
        """gemm_eff for `dtype` (bf16, fp16, fp8, fp4, int8), falling back to bf16's."""
        return self.gemm_eff.get(dtype, self.gemm_eff.get("bf16", 1.0))
