"""The least-squares calibration (calc/perf/calibrate.py) on synthetic points with known coefficients, and
the calibration file written from a fit (sources/calibration.py) read back."""

from __future__ import annotations

import numpy as np
import pytest

from kvcalc.calc.perf.calibrate import (
    FIT_TERMS,
    StepPoint,
    fit_coefficients,
    fit_latency_bandwidth,
    nnls,
    step_time,
)
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.spec.base import replace

B = 3.35e12  # H100 SXM bandwidth, B/s
F = 989.4e12  # H100 SXM dense bf16, FLOP/s

TRUE = PerfCoefficients(weight_bw_eff=0.8, kv_bw_eff=0.6, gemm_eff={"bf16": 0.7}, attention_eff=0.4,
                        layer_overhead_s=20e-6, step_overhead_s=1e-3, request_overhead_s=5e-6)
PRIOR = PerfCoefficients(weight_bw_eff=0.9, kv_bw_eff=0.75, gemm_eff={"bf16": 0.72}, attention_eff=0.55,
                         layer_overhead_s=8e-6, step_overhead_s=0.0)


def point(label: str, *, w: float, kv: float, g: float, a: float, layers: float, requests: int = 1) -> StepPoint:
    return StepPoint(label=label, measured_s=1.0, weight_bytes=w, kv_bytes=kv, gemm_flops=g, attention_flops=a,
                     layers=layers, requests=requests, bandwidth_bytes_per_s=B, gemm_peak_flops=F,
                     attention_peak_flops=F)


def synthetic(coeffs: PerfCoefficients, noise: float = 0.0, seed: int = 0) -> list[StepPoint]:
    """Decode steps (batch b, context L) and prefills (N tokens) of four model sizes, timed by `coeffs`."""
    rng = np.random.default_rng(seed)
    out = []
    for layers, weights in ((32, 16e9), (48, 6e9), (80, 140e9), (24, 10e9)):
        for batch in (1, 8, 32, 128, 512):
            for context in (1024, 8192):
                p = point(f"{layers} d b={batch} L={context}", w=weights, kv=batch * context * layers * 4096.0,
                          g=weights * batch, a=4.0 * layers * 4096 * context * batch, layers=layers,
                          requests=batch)
                out.append(p)
        for n in (512, 4096, 16384):
            out.append(point(f"{layers} p N={n}", w=weights, kv=2.0 * n * layers * 4096, g=weights * n,
                             a=2.0 * layers * 4096 * n * n, layers=layers))
    return [replace(p, measured_s=step_time(p, coeffs)[0] * (1 + noise * rng.standard_normal())) for p in out]


def test_step_time_is_the_two_rooflines_plus_fixed_costs() -> None:
    # W = 16e9 B at 3.35e12 x 0.8 = 5.970 ms vs G = 16e9 FLOP at 989.4e12 x 0.7 = 0.0231 ms -> 5.970 ms;
    # KV = 1e9 B at 3.35e12 x 0.6 = 0.4975 ms vs A = 1e12 FLOP at 989.4e12 x 0.4 = 2.527 ms -> 2.527 ms;
    # + 32 x 20 us + 1 ms + 4 x 5 us = 1.660 ms: 5.970 + 2.527 + 1.660 = 10.157 ms, the sides disagree: mixed.
    p = point("x", w=16e9, kv=1e9, g=16e9, a=1e12, layers=32, requests=4)
    t, regime = step_time(p, TRUE)
    assert t == pytest.approx(16e9 / (B * 0.8) + 1e12 / (F * 0.4) + 32 * 20e-6 + 1e-3 + 4 * 5e-6)
    assert t == pytest.approx(10.157e-3, rel=1e-3)
    assert regime == "mixed"


def test_fit_recovers_known_coefficients() -> None:
    fit = fit_coefficients(synthetic(TRUE), PRIOR)
    c = fit.coefficients
    assert set(fit.fitted) == set(FIT_TERMS)
    assert c.weight_bw_eff == pytest.approx(0.8, rel=1e-6)
    assert c.kv_bw_eff == pytest.approx(0.6, rel=1e-6)
    assert c.gemm_eff["bf16"] == pytest.approx(0.7, rel=1e-6)
    assert c.attention_eff == pytest.approx(0.4, rel=1e-6)
    assert c.layer_overhead_s == pytest.approx(20e-6, rel=1e-6)
    assert c.step_overhead_s == pytest.approx(1e-3, rel=1e-6)
    assert c.request_overhead_s == pytest.approx(5e-6, rel=1e-6)
    assert fit.max_abs_error_pct < 1e-6


def test_fit_with_two_percent_noise_stays_close() -> None:
    fit = fit_coefficients(synthetic(TRUE, noise=0.02), PRIOR)
    c = fit.coefficients
    assert c.weight_bw_eff == pytest.approx(0.8, rel=0.05)
    assert c.kv_bw_eff == pytest.approx(0.6, rel=0.05)
    assert c.gemm_eff["bf16"] == pytest.approx(0.7, rel=0.05)
    assert c.attention_eff == pytest.approx(0.4, rel=0.05)
    assert fit.median_abs_error_pct < 3.0


def test_only_asked_terms_move_and_unconstrained_ones_keep_the_prior() -> None:
    decode_only = [p for p in synthetic(TRUE) if " d " in p.label and p.requests <= 32]
    fit = fit_coefficients(decode_only, PRIOR, terms=("weight_bw_eff", "kv_bw_eff", "gemm_eff", "attention_eff"))
    # decode steps never make GEMMs or attention bind at these sizes: those stay at the prior
    assert fit.coefficients.gemm_eff["bf16"] == 0.72 and fit.coefficients.attention_eff == 0.55
    assert fit.coefficients.layer_overhead_s == 8e-6  # not asked for
    assert "gemm_eff" not in fit.fitted and "weight_bw_eff" in fit.fitted
    assert fit.notes and "gemm_eff" in fit.notes[0]


def test_one_layer_count_cannot_separate_per_layer_from_per_step_cost() -> None:
    one_model = [p for p in synthetic(TRUE) if p.layers == 32]
    fit = fit_coefficients(one_model, PRIOR)
    assert "step_overhead_s" not in fit.fitted  # its column is a multiple of the per-layer one
    assert fit.coefficients.step_overhead_s == PRIOR.step_overhead_s


def test_efficiencies_are_bounded_by_one() -> None:
    # a card that looks faster than its datasheet (the prior's bandwidth term overstated) fits e_w = 1, not more
    fast = replace(TRUE, weight_bw_eff=1.3)
    fit = fit_coefficients(synthetic(fast), PRIOR)
    assert fit.coefficients.weight_bw_eff == pytest.approx(1.0)


def test_nnls_matches_a_hand_solved_system() -> None:
    # min ||A x - b||, x >= 0, A = [[1, 0], [0, 1], [1, 1]], b = [1, -1, 0]: the unconstrained solution is
    # (1, -1); with x2 >= 0, x2 = 0 and x1 minimises (x1 - 1)^2 + x1^2 -> x1 = 0.5
    x = nnls(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([1.0, -1.0, 0.0]))
    assert x == pytest.approx([0.5, 0.0])


def test_latency_bandwidth_fit_recovers_alpha_beta() -> None:
    sizes = [16e3, 256e3, 4e6, 64e6, 256e6]
    times = [7e-6 + n / 350e9 for n in sizes]  # 7 us + n / 350 GB/s
    fit = fit_latency_bandwidth(sizes, times)
    assert fit.latency_s == pytest.approx(7e-6, rel=1e-6)
    assert fit.bandwidth_bytes_per_s == pytest.approx(350e9, rel=1e-6)
    with pytest.raises(ValueError):
        fit_latency_bandwidth([1e6], [1e-3])


def test_step_time_equals_the_perf_models_step_cost() -> None:
    """The fit's formula is the perf model's: same time for the same terms and coefficients (the routed
    experts' bytes, FLOPs and activation traffic, and the GEMMs' FLOPs over their shape efficiencies, as
    calc/verify/steps.py's predict_step passes them)."""
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.calc.perf.defaults import default_coefficients
    from kvcalc.calc.perf.model import perf_model
    from kvcalc.calc.perf.step import step_cost
    from kvcalc.sources.hardware import find_gpu
    from kvcalc.sources.resolve import load_model
    from kvcalc.spec.deployment import EngineSettings, Parallel

    gpu = find_gpu("h100")
    plan = plan_deployment(load_model("qwen3-30b-a3b"), gpu, Parallel(), EngineSettings(), context=8192)
    pm = perf_model(plan)
    coeffs = default_coefficients(gpu)
    for cost in (step_cost(pm, coeffs, decode_contexts=[4095] * 16), step_cost(pm, coeffs, prefill=[(0, 4096)])):
        p = StepPoint(label="x", measured_s=1.0, weight_bytes=cost.weight_bytes, kv_bytes=cost.kv_bytes,
                      gemm_flops=cost.gemm_flops, attention_flops=cost.attention_flops, layers=cost.layer_units,
                      requests=cost.requests, bandwidth_bytes_per_s=gpu.memory_bandwidth_bytes_per_s,
                      gemm_peak_flops=gpu.flops("bf16"), attention_peak_flops=gpu.flops("bf16"),
                      comm_s=cost.t_comm, expert_weight_bytes=cost.expert_weight_bytes,
                      expert_gemm_flops=cost.expert_gemm_flops, gemm_shape_flops=cost.gemm_shape_flops,
                      expert_shape_flops=cost.expert_shape_flops, expert_activation_bytes=cost.expert_activation_bytes)
        assert step_time(p, coeffs)[0] == pytest.approx(cost.time_s, rel=1e-9)


def test_calibration_file_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kvcalc.sources.calibration import Calibration, load_calibration, write_calibration

    fit = fit_coefficients(synthetic(TRUE), PRIOR)
    c = fit.coefficients
    values = {"weight_bw_eff": round(c.weight_bw_eff, 4), "kv_bw_eff": round(c.kv_bw_eff, 4),
              "gemm_eff": {"bf16": round(c.gemm_eff["bf16"], 4)}, "attention_eff": round(c.attention_eff, 4)}
    path = write_calibration(tmp_path / "h100.yaml", Calibration(
        card="NVIDIA H100 80GB HBM3", driver="580.159.04", torch="2.11.0+cu130", date="2026-12-06",
        values=values, gpu="h100-sxm", command="kvcalc verify llama-3.1-8b"))
    back = load_calibration(path)
    assert back.values == values and back.gpu == "h100-sxm"
    applied = back.apply(PRIOR)
    assert applied.weight_bw_eff == 0.8 and applied.kv_bw_eff == 0.6 and applied.gemm_eff["bf16"] == 0.7
    assert applied.layer_overhead_s == PRIOR.layer_overhead_s  # not in the file: the prior stays
    assert "calibration" in applied.sources["weight_bw_eff"]
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary left behind


def test_shipped_calibration_is_found_by_gpu_key() -> None:
    from kvcalc.sources.calibration import shipped_calibration

    h100 = shipped_calibration("h100-sxm")
    assert h100 is not None and h100.gpu == "h100-sxm" and h100.card.startswith("NVIDIA H100")
    assert 0 < h100.values["weight_bw_eff"] <= 1 and 0 < h100.values["gemm_eff"]["bf16"] <= 1
    assert shipped_calibration("t4") is None


def test_a_term_the_points_cannot_separate_keeps_its_prior_instead_of_its_bound() -> None:
    # One dense model: the weight bytes are the same in every decode step and only the layer units (kernels
    # counted / 9) differ, 32 and 40, so weight reads and per-layer cost trade against each other.
    # W / B = 16.75e9 / 3.35e12 = 5 ms; measured 6.0 and 6.4 ms. Unbounded: 5a + 32 o = 6.0, 5a + 40 o = 6.4
    # -> o = 0.4 / 8 = 50 us, a = (6.0 - 1.6) / 5 = 0.88 = 1 / e_w: e_w = 1.14, so the bounded fit pins e_w = 1.
    # The columns (time shares) are w = (5/6, 5/6.4), L = (32/6, 40/6.4): cos = 0.9939, sin = 0.110 < 1/sqrt(10).
    # So e_w keeps the prior 1/1.04 (weights 5 x 1.04 = 5.2 ms) and o alone is fitted on relative errors:
    # min ((32 o - 0.8) / 6)^2 + ((40 o - 1.2) / 6.4)^2 -> 32 (32 o - 0.8) / 36 + 40 (40 o - 1.2) / 40.96 = 0
    # -> x 1474.56: 41943.04 o - 1048.576 + 57600 o - 1728 = 0 -> o = 2776.576 / 99543.04 ms = 27.893 us.
    prior = replace(PRIOR, weight_bw_eff=1 / 1.04)
    points = [replace(point(f"d{i}", w=16.75e9, kv=0.0, g=0.0, a=0.0, layers=layers, requests=0), measured_s=t)
              for i, (layers, t) in enumerate(((32, 6.0e-3), (40, 6.4e-3)))]
    fit = fit_coefficients(points, prior, terms=("weight_bw_eff", "layer_overhead_s"))
    assert fit.coefficients.weight_bw_eff == 1 / 1.04
    assert fit.fitted == ("layer_overhead_s",)
    assert fit.coefficients.layer_overhead_s == pytest.approx(27.893e-6, rel=1e-4)
    assert any("weight_bw_eff" in n and "layer_overhead_s" in n and "bound" in n for n in fit.notes)


def _moe_points(coeffs: PerfCoefficients) -> list[StepPoint]:
    """Prefills of one MoE model (dense GEMMs a tenth of the GEMM FLOPs; the expert GEMMs' row efficiency
    falling at small n, so the two GEMM columns differ) timed by `coeffs`."""
    out = []
    for n in (2048, 4096, 8192, 16384):
        p = StepPoint(label=f"moe p N={n}", measured_s=1.0, weight_bytes=10e9, kv_bytes=n * 48 * 4096.0,
                      gemm_flops=6e9 * n, attention_flops=2.0 * 48 * 512 * n * n, layers=48,
                      bandwidth_bytes_per_s=B, gemm_peak_flops=F, attention_peak_flops=F,
                      expert_weight_bytes=8e9, expert_gemm_flops=5.4e9 * n,
                      expert_shape_flops=5.4e9 * n * (1 + 4096 / n))  # fewer rows per expert at small n
        out.append(replace(p, measured_s=step_time(p, coeffs)[0]))
    return out


def test_a_grouped_gemm_never_fits_faster_than_a_dense_one() -> None:
    # Timed with expert GEMMs at 0.75 of peak and dense GEMMs at 0.5 (moe_gemm_eff 1.5, faster than dense):
    # the fit may not return moe_gemm_eff > 1, so it holds it at 1 and fits one GEMM rate for both
    truth = replace(TRUE, gemm_eff={"bf16": 0.5}, moe_gemm_eff=1.5)
    prior = replace(TRUE, gemm_eff={"bf16": 0.72}, moe_gemm_eff=0.65)  # every other term the truth's
    fit = fit_coefficients(_moe_points(truth), prior, terms=("gemm_eff", "moe_gemm_eff"))
    assert fit.coefficients.moe_gemm_eff == 1.0 and any("its bound 1" in n for n in fit.notes)
    assert 0.5 < fit.coefficients.gemm_eff["bf16"] < 0.75
    # a truth inside the bound (expert GEMMs at 0.7 x 0.6 = 0.42 of peak) is left alone: the dense GEMMs are
    # under 3 % of these steps, so gemm_eff keeps its prior 0.72 and the expert rate comes out about 0.42 / 0.72
    inside = replace(TRUE, moe_gemm_eff=0.6)
    fit = fit_coefficients(_moe_points(inside), prior, terms=("gemm_eff", "moe_gemm_eff"))
    assert fit.coefficients.gemm_eff["bf16"] == 0.72
    assert fit.coefficients.moe_gemm_eff == pytest.approx(0.42 / 0.72, rel=5e-3)  # less the dense GEMMs' share


def test_one_moe_model_takes_gemm_eff_from_the_measured_ceiling() -> None:
    from kvcalc.calc.verify.calibration import single_model_prior
    from kvcalc.calc.verify.steps import HARNESS_TERMS

    ceilings = {"gemm": [{"shape": "large", "dtype": "bf16", "flops_per_s": 798.33e12}],
                "kernel": {"per_kernel_s": 1.2e-6}}
    shaped = replace(PRIOR, gemm_rows_half=64.0, gemm_depth_half=720.0)  # calc/perf/defaults.py's shape terms
    prior, terms, notes = single_model_prior(shaped, ceilings, F, experts=True)
    # 798.33 / 989.4 = 0.806883 of peak at 8192^3, over s(8192) d(8192) = 0.992308 x 0.919210 = 0.912137
    assert prior.gemm_eff["bf16"] == pytest.approx(0.806883 / 0.912137, rel=1e-5)
    assert "gemm_eff" not in terms and "moe_gemm_eff" in terms and notes
    # an empty kernel's cost x 9 is the per-layer prior, still fitted (real kernels cost more than empty ones)
    assert prior.layer_overhead_s == pytest.approx(9 * 1.2e-6) and "layer_overhead_s" in terms
    dense, dense_terms, _ = single_model_prior(PRIOR, ceilings, F, experts=False)
    assert dense.gemm_eff == PRIOR.gemm_eff and dense_terms == HARNESS_TERMS
