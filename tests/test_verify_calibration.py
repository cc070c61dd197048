"""What a calibration file carries from one `kvcalc verify` run (calc/verify/calibration.py), worked by hand."""

from __future__ import annotations

import pytest

from kvcalc.calc.verify.calibration import calibration_values, fp8_ratio
from kvcalc.sources.hardware import find_gpu


def _large(dtype: str, flops: float) -> dict[str, object]:
    return {"dtype": dtype, "shape": "large", "m": 8192, "n": 8192, "k": 8192, "flops_per_s": flops}


def test_fp8_gemm_efficiency_is_scaled_from_the_measured_ratio() -> None:
    gpu = find_gpu("h100")
    bf16, fp8 = gpu.flops("bf16"), gpu.flops("fp8")
    # bf16 ran at 80 % of its peak and FP8 at 60 % of its own: FP8 keeps 0.6 / 0.8 = 0.75 of bf16's share
    ceilings = {"gemm": [_large("bf16", 0.8 * bf16), _large("fp8", 0.6 * fp8),
                         {"dtype": "fp8", "shape": "decode", "m": 16, "n": 4096, "k": 4096, "flops_per_s": 1e12}]}
    assert fp8_ratio(ceilings, gpu) == pytest.approx(0.75)
    coefficients = {"gemm_eff": {"bf16": 0.7, "fp16": 0.7}, "kv_bw_eff": 0.934912, "layer_overhead_s": 2.5e-5}
    values = calibration_values(coefficients, ["gemm_eff", "kv_bw_eff"], "bf16", fp8_ratio(ceilings, gpu))
    # gemm_eff of the measured dtype only, FP8 = 0.7 x 0.75 = 0.525; other terms to 4 significant figures;
    # a term not asked for (the harness's per-layer cost) is not carried
    assert values == {"gemm_eff": {"bf16": 0.7, "fp8": 0.525}, "kv_bw_eff": 0.9349}


def test_no_fp8_measurement_no_fp8_efficiency() -> None:
    gpu = find_gpu("h100")
    ceilings = {"gemm": [_large("bf16", 0.8 * gpu.flops("bf16"))]}
    assert fp8_ratio(ceilings, gpu) is None
    assert calibration_values({"gemm_eff": {"bf16": 0.61234}}, ["gemm_eff"], "bf16", None) == {
        "gemm_eff": {"bf16": 0.6123}}
