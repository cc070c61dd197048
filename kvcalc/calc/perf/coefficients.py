"""The perf model's coefficients: what `kvcalc verify` fits on a card and `--calibration` loads.

The latency model keeps each roofline term separate so that one coefficient scales each (the BLIS approach:
a roofline multiplied term by term by coefficients fitted to real runs). For one engine step on one GPU:

    t_weights   = weight_bytes / (B x weight_bw_eff)
    t_gemm      = sum_K gemm_flops[K] / (F[dtype] x gemm_eff[dtype] x s(M) x d(K))   dense GEMMs of M rows
    t_experts   = sum_K expert_flops[K] / (F[dtype] x gemm_eff[dtype] x moe_gemm_eff x s(M_e) x d(K))
    t_kv        = kv_bytes / (B x kv_bw_eff)                 t_attention = attention_flops / (F[bf16] x attention_eff)
    t_step      = R(t_weights, t_gemm) + sum over expert groups (R(t_expert_weights, t_experts) + t_activations)
                  + R(t_kv, t_attention) + layers x layer_overhead_s + step_overhead_s
                  + requests x request_overhead_s + t_comm
    s(M)        = M / (max(M, gemm_rows_min) + gemm_rows_half x M / (M + gemm_rows_half))   rows (M_e per expert)
    d(K)        = K / (K + gemm_depth_half)                                      depth of a GEMM
    R(a, b)     = max(a, b) + overlap_loss x min(a, b)                           (all in calc/perf/shape.py)
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

from kvcalc.calc.perf.shape import GEMM_ROWS_MIN, depth_efficiency, row_efficiency
from kvcalc.spec.base import record


@record
class PerfCoefficients:
    """Efficiencies (fractions of the datasheet ceiling) and fixed costs (seconds) of the perf model.
    The shape terms default to the plain roofline here (no row dependence, grouped GEMMs as dense ones, a
    sharp max); `defaults.default_coefficients` sets kvcalc's values."""

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
    gemm_rows_half: float = 0.0
    moe_gemm_eff: float = 1.0
    overlap_loss: float = 0.0
    gemm_depth_half: float = 0.0
    gemm_rows_min: float = GEMM_ROWS_MIN

    def gemm_efficiency(self, dtype: str) -> float:
        """gemm_eff for `dtype` (bf16, fp16, fp8, fp4, int8), falling back to bf16's."""
        return self.gemm_eff.get(dtype, self.gemm_eff.get("bf16", 1.0))

    def depth_efficiency(self, depth: float) -> float:
        """d(K) = K / (K + gemm_depth_half) for a GEMM of depth K (calc/perf/shape.py)."""
        return depth_efficiency(depth, self.gemm_depth_half)

    def row_efficiency(self, rows: float) -> float:
        """s(M) = M / (max(M, gemm_rows_min) + gemm_rows_half x M / (M + gemm_rows_half)) for a GEMM of `rows`
        rows (calc/perf/shape.py)."""
        return row_efficiency(rows, self.gemm_rows_half, self.gemm_rows_min)
