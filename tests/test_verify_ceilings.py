"""The perf model's time for one GEMM kernel (calc/verify/ceilings.py), worked by hand."""

from __future__ import annotations

import pytest

from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.verify.ceilings import gemm_kernel_time
from kvcalc.sources.hardware import find_gpu

COEFFS = PerfCoefficients(weight_bw_eff=0.9, kv_bw_eff=0.9, gemm_eff={"bf16": 0.7}, attention_eff=0.4,
                          layer_overhead_s=9e-6, step_overhead_s=0.0, gemm_rows_half=64.0,
                          gemm_depth_half=720.0)


def test_large_gemm_is_compute_bound_at_its_shaped_rate() -> None:
    # 4096 x 8192 @ 8192 x 8192 in bf16 on an H100 (989.4 TFLOP/s): s(4096) = 4096 / (4096 + 64 x 4096 / 4160)
    # = 0.984848, d(8192) = 8192 / 8912 = 0.919210; 2 x 4096 x 8192^2 = 549,755,813,888 FLOPs at
    # 989.4e12 x 0.7 x 0.984848 x 0.919210 = 626.97 TFLOP/s = 876.85 us. Memory: 268,435,456 B / (3.35e12 x 0.9)
    # = 89.0 us, below. Plus one kernel's fixed cost 9 us / 9 = 1 us.
    s = 4096 / (4096 + 64 * 4096 / 4160)
    d = 8192 / 8912
    expected = 549_755_813_888 / (989.4e12 * 0.7 * s * d) + 1e-6
    assert expected == pytest.approx(877.85e-6, rel=1e-4)
    got = gemm_kernel_time(4096, 8192, 8192, "bf16", 268_435_456, find_gpu("h100"), COEFFS)
    assert got == pytest.approx(expected, rel=1e-12)


def test_decode_gemm_is_memory_bound_at_the_weight_rate() -> None:
    # 1 row against a 14336 x 4096 bf16 weight: 117,440,512 B / (3.35e12 x 0.9) = 38.952 us + 1 us
    got = gemm_kernel_time(1, 14336, 4096, "bf16", 117_440_512, find_gpu("h100"), COEFFS)
    assert got == pytest.approx(117_440_512 / (3.35e12 * 0.9) + 1e-6, rel=1e-12)
    assert got == pytest.approx(39.952e-6, rel=1e-4)


def test_cpu_gemm_rate_reports_one_product() -> None:
    pytest.importorskip("torch")
    from kvcalc.bench.ceilings import gemm_rate

    # (4 x 32 + 64 x 32) x 2 B = 4,352 B of operands per copy; 3 x 10,000 B of "L2" takes ceil(30,000 / 4,352)
    # = 7 copies, timed together and divided by 7
    g = gemm_rate(4, 64, 32, "bf16", "cpu", l2_bytes=10_000, runs=3)
    assert (g["copies"], g["graph"], g["runs"]) == (7, False, 3)
    assert g["bytes"] == 4_352 + 4 * 64 * 2
    assert 0 < g["min_s"] <= g["median_s"] <= g["max_s"]
    assert g["flops_per_s"] == pytest.approx(2 * 4 * 64 * 32 / g["median_s"], rel=1e-12)
