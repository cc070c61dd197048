"""What the perf model charges one GEMM kernel, for `kvcalc verify`'s decode-shape GEMM records."""

from __future__ import annotations

from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.kernels import DENSE_LAYER_KERNELS
from kvcalc.calc.perf.shape import roofline
from kvcalc.spec.gpu import GpuSpec


def gemm_kernel_time(rows: int, n: int, k: int, dtype: str, weight_bytes: float, gpu: GpuSpec,
                     coeffs: PerfCoefficients) -> float:
    """One (rows x k) @ (k x n) product as the perf model times each of a step's GEMMs (calc/perf/step.py: the
    weight's bytes and the product's FLOPs, activations not charged):

        R(weight_bytes / (B x weight_bw_eff), 2 rows n k / (F[dtype] x gemm_eff[dtype] x s(rows) x d(k)))
            + layer_overhead_s / DENSE_LAYER_KERNELS

    with R the roofline of calc/perf/shape.py and the fixed cost of one of a dense layer's kernels."""
    t_memory = weight_bytes / (gpu.memory_bandwidth_bytes_per_s * coeffs.weight_bw_eff)
    rate = gpu.flops(dtype) * coeffs.gemm_efficiency(dtype) * coeffs.row_efficiency(rows) * coeffs.depth_efficiency(k)
    t_compute = 2.0 * rows * n * k / rate
    return float(roofline(t_memory, t_compute, coeffs.overlap_loss)) + coeffs.layer_overhead_s / DENSE_LAYER_KERNELS
