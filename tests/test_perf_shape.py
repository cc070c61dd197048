"""GEMM efficiency by shape (calc/perf/shape.py): rows per GEMM and per expert, depth, the per-kernel roofline,
MoE activation traffic, the chunked-scan prefill of recurrent layers, and verify's fit of moe_gemm_eff.
Every number is worked by hand in the comments."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.perf.calibrate import StepPoint, fit_coefficients, step_time
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.defaults import default_coefficients
from kvcalc.calc.perf.model import perf_model, recurrent_prefill_flops
from kvcalc.calc.perf.moe import activation_bytes_per_token
from kvcalc.calc.perf.shape import depth_efficiency, roofline, row_efficiency, rows_per_expert
from kvcalc.calc.perf.step import step_cost
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import EngineSettings, Parallel

F = 989.4e12  # H100 SXM dense bf16 FLOP/s
B = 3.35e12  # H100 SXM bytes/s
ROOFLINE = PerfCoefficients(weight_bw_eff=1.0, kv_bw_eff=1.0, gemm_eff={"bf16": 1.0}, attention_eff=1.0,
                            layer_overhead_s=0.0, step_overhead_s=0.0)
SHAPED = replace(ROOFLINE, gemm_eff={"bf16": 0.8}, gemm_rows_half=64.0, gemm_depth_half=720.0, moe_gemm_eff=0.65)


def _pm(model: str, **parallel: int):
    return perf_model(plan_deployment(load_model(model), find_gpu("h100"), Parallel(**parallel), EngineSettings()))


def test_row_efficiency_by_hand():
    # s(M) = M / (max(M, 16) + 64 M / (M + 64)):
    # M = 1: 1 / (16 + 64 / 65) = 1 / 16.9846 = 0.058877 (one row pays a 16-row MMA)
    # M = 128: 128 / (128 + 64 x 128 / 192) = 128 / 170.667 = 0.75
    # M = 8192: 8192 / (8192 + 64 x 8192 / 8256) = 8192 / 8255.504 = 0.992308
    assert row_efficiency(1, 64) == pytest.approx(0.058877, rel=1e-5)
    assert row_efficiency(128, 64) == pytest.approx(0.75)
    assert row_efficiency(8192, 64) == pytest.approx(0.992308, rel=1e-6)
    assert row_efficiency(5, 0) == 1.0 and row_efficiency(0, 64) == 0.0  # the plain roofline; no rows


def test_depth_efficiency_reproduces_deepgemm_dense_fp8():
    # d(K) = K / (K + 720); DeepGEMM README (H800, M = 4096, FP8 peak 1979 TFLOP/s): 0.7186 x d(K) x 1979 gives
    # K = 512: 0.7186 x 0.41558 x 1979 = 591 (published 590), 1536: 0.7186 x 0.68085 x 1979 = 968 (990),
    # 2048: 0.7186 x 0.73988 x 1979 = 1052 (1025), 7168: 0.7186 x 0.90873 x 1979 = 1292 (1304),
    # 16384: 0.7186 x 0.95785 x 1979 = 1362 (1358): within 3 %.
    assert depth_efficiency(768, 720) == pytest.approx(768 / 1488)
    for depth, published in ((512, 590), (1536, 990), (2048, 1025), (7168, 1304), (16384, 1358)):
        assert 0.7186 * depth_efficiency(depth, 720) * 1979 == pytest.approx(published, rel=0.03)
    assert depth_efficiency(100, 0) == 1.0


def test_rows_per_expert_by_hand():
    # Qwen3-30B-A3B, 2,048 tokens, 128 experts top-8: (1 - 8/128)^2048 ~ 1e-57, all 128 touched:
    # M_e = 2048 x 8 / 128 = 128 rows. One token: k experts touched with one row each.
    assert rows_per_expert(2048, 128, 8) == pytest.approx(128.0)
    assert rows_per_expert(1, 128, 8) == pytest.approx(1.0)
    # Mixtral, 4 tokens, 8 experts top-2: E_t = 8 (1 - 0.75^4) = 5.46875, M_e = 8 / 5.46875 = 1.4629
    assert rows_per_expert(4, 8, 2) == pytest.approx(8 / 5.46875)
    assert rows_per_expert(0, 8, 2) == 0.0


def test_roofline_overlap_loss():
    # R(a, b) = max(a, b) + c min(a, b): c = 0 is the sharp roofline; c = 0.2 adds a fifth of the smaller side
    assert roofline(3.0, 1.0) == 3.0
    assert roofline(3.0, 1.0, 0.2) == pytest.approx(3.2)
    assert roofline(1.0, 3.0, 0.2) == pytest.approx(3.2)


def test_moe_activation_bytes_by_hand():
    # Qwen3-30B-A3B (h 2048, I 768, k 8): per routed row 2 B x (3 x 768 + 2048 x 9/8) = 2 x 4,608 = 9,216 B;
    # a token's 8 rows 73,728 B per layer; EP 4 sends 2 of the 8 here: 18,432 B
    assert activation_bytes_per_token(2048, 768, 8) == pytest.approx(73_728)
    assert activation_bytes_per_token(2048, 768, 8, ep=4) == pytest.approx(18_432)
    pm = _pm("qwen3-30b-a3b")
    (group,) = pm.stages[0].experts
    assert group.activation_bytes_per_token == pytest.approx(48 * 73_728)


def test_qwen3_prefill_experts_by_hand():
    # A 2,048-token prefill of Qwen3-30B-A3B (48 MoE layers, 128 experts of 768, top-8, hidden 2048) on an H100,
    # gemm_eff 0.8, moe_gemm_eff 0.65, M_half 64, K0 720. Per token and layer the 8 experts' FLOPs are
    # gate + up 2 x 8 x 2 x 768 x 2048 = 50,331,648 at K = 2048 (d = 2048 / 2768) and down 2 x 8 x 2048 x 768
    # = 25,165,824 at K = 768 (d = 768 / 1488): 50,331,648 x 1.3515625 + 25,165,824 x 1.9375
    # = 68,026,368 + 48,758,784 = 116,785,152 FLOPs at the large-shape rate. x 48 layers x 2,048 tokens
    # = 11,480,447,582,208, over s(M_e = 128) = 0.75: 15,307,263,442,944; at 989.4e12 x 0.8 x 0.65 FLOP/s:
    # 29.752 ms. All 128 experts are read: 48 x 128 x 3 x 768 x 2048 x 2 B = 57,982,058,496 B / 3.35e12 =
    # 17.308 ms, so the experts are compute-bound (29.75 ms), and their rows' round trip outside the GEMMs
    # costs 2,048 x 48 x 73,728 B = 7,247,757,312 B / 3.35e12 = 2.1635 ms.
    pm = _pm("qwen3-30b-a3b")
    cost = step_cost(pm, SHAPED, prefill=[(0, 2048)])
    assert cost.expert_gemm_flops == pytest.approx(48 * 2048 * (50_331_648 + 25_165_824))
    assert cost.t_experts == pytest.approx(15_307_263_442_944 / (989.4e12 * 0.8 * 0.65), rel=1e-9)
    assert cost.t_experts == pytest.approx(29.752e-3, rel=1e-4)
    assert cost.t_expert_weights == pytest.approx(57_982_058_496 / B, rel=1e-9)
    assert cost.t_expert_activations == pytest.approx(7_247_757_312 / B, rel=1e-9)


def test_each_gemm_shape_takes_its_own_roofline():
    # A 256-token Qwen3-30B-A3B prefill: the dense GEMMs (M = 256) and the experts (M_e = 16) are separate
    # kernels, so the step pays R(dense) + R(experts) + activations + R(KV, attention), not R(sum, sum)
    pm = _pm("qwen3-30b-a3b")
    c = step_cost(pm, SHAPED, prefill=[(0, 256)])
    dense = max(c.t_weights - c.t_expert_weights, c.t_gemm - c.t_experts)
    experts = max(c.t_expert_weights, c.t_experts)
    attention = max(c.t_kv, c.t_attention)
    assert c.time_s == pytest.approx(dense + experts + c.t_expert_activations + attention, rel=1e-9)
    assert c.time_s > max(c.t_weights, c.t_gemm) + c.t_expert_activations + attention


def test_recurrent_prefill_flops_by_hand():
    # Mamba-2 SSD, Nemotron-3-Nano (64 heads of 64, d_state 128, 8 groups, chunk 128) per token and layer:
    # 64 x (2 x 128 x 64 + 4 x 128 x 64) + 8 x 2 x 128 x 128 = 64 x 49,152 + 262,144 = 3,407,872
    nano = load_model("nemotron-3-nano-30b-a3b")
    mamba = next(layer.mixer for layer in nano.layers if layer.mixer is not None and layer.mixer.kind == "mamba")
    assert recurrent_prefill_flops(mamba, 1) == 3_407_872
    # Gated DeltaNet, Qwen3-Next (32 value heads, d_k = d_v = 128, chunk 64):
    # 32 x (2 x 64 x (2 x 128 + 128) + 6 x 128 x 128) = 32 x (49,152 + 98,304) = 4,718,592
    nxt = load_model("qwen3-next-80b-a3b")
    linear = next(layer.mixer for layer in nxt.layers if layer.mixer is not None and layer.mixer.kind == "linear")
    assert recurrent_prefill_flops(linear, 1) == 4_718_592
    # a prefill token costs the chunked scan, a decode token the recurrence (4 x state elements):
    # 23 Mamba layers x (3,407,872 - 4 x 64 x 64 x 128) = 23 x 1,310,720 more per prefill token
    pm = _pm("nemotron-3-nano-30b-a3b")
    prefill = step_cost(pm, ROOFLINE, prefill=[(0, 1)]).attention_flops
    decode = step_cost(pm, ROOFLINE, decode_contexts=[0]).attention_flops
    assert prefill - decode == pytest.approx(23 * (3_407_872 - 4 * 64 * 64 * 128))


@settings(max_examples=60, deadline=None)
@given(st.floats(0.5, 1e5), st.floats(0.5, 1e5), st.floats(0, 256))
def test_shape_efficiencies_bounded_and_rising(a, b, half):
    low, high = sorted((a, b))
    for f in (row_efficiency, depth_efficiency):
        assert 0 < f(low, half) <= f(high, half) <= 1.0


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.sampled_from(["qwen3-30b-a3b", "llama-3.1-8b"]))
def test_step_time_rises_with_batch_and_tokens(a, b, model):
    pm = _pm(model)
    coeffs = default_coefficients(find_gpu("h100"))
    low, high = sorted((a, b))
    t = [step_cost(pm, coeffs, decode_contexts=[1000] * n).time_s for n in (low, high)]
    p = [step_cost(pm, coeffs, prefill=[(0, 8 * n)]).time_s for n in (low, high)]
    assert t[0] <= t[1] * (1 + 1e-12) and p[0] <= p[1] * (1 + 1e-12)


def _moe_point(label: str, *, w: float, we: float, g: float, ge: float, kv: float, a: float, layers: float,
               requests: int, act: float) -> StepPoint:
    return StepPoint(label=label, measured_s=1.0, weight_bytes=w + we, kv_bytes=kv, gemm_flops=g + ge,
                     attention_flops=a, layers=layers, requests=requests, bandwidth_bytes_per_s=B,
                     gemm_peak_flops=F, attention_peak_flops=F, expert_weight_bytes=we, expert_gemm_flops=ge,
                     gemm_shape_flops=g, expert_shape_flops=ge, expert_activation_bytes=act)


def test_fit_recovers_moe_gemm_eff():
    # Synthetic MoE steps (experts' FLOPs ~ the dense ones' x 2, at a quarter of their rows' efficiency)
    # timed by known coefficients: the fit returns them, moe_gemm_eff = (1 / 0.7) / (1 / (0.7 x 0.6)) = 0.6
    true = replace(ROOFLINE, weight_bw_eff=0.85, kv_bw_eff=0.9, gemm_eff={"bf16": 0.7}, attention_eff=0.35,
                   layer_overhead_s=25e-6, moe_gemm_eff=0.6)
    prior = replace(true, weight_bw_eff=0.9, gemm_eff={"bf16": 0.72}, attention_eff=0.4, layer_overhead_s=8e-6,
                    moe_gemm_eff=1.0)  # kv_bw_eff as true: these prefill-like points hardly read KV
    points = []
    for layers, dense, experts in ((48, 1.5e9, 60e9), (32, 1.8e9, 90e9), (26, 1.2e9, 30e9)):
        for n in (1, 16, 256, 1024, 4096, 16384):
            p = _moe_point(f"{layers} n={n}", w=dense, we=experts * min(1.0, n / 256), g=dense * n,
                           ge=2 * dense * n * 4, kv=n * layers * 4096.0, a=4.0 * layers * 4096 * n * n / 2,
                           layers=layers * 2.4, requests=1, act=n * layers * 70_000.0)
            points.append(replace(p, measured_s=step_time(p, true)[0]))
    fit = fit_coefficients(points, prior, terms=("weight_bw_eff", "gemm_eff", "attention_eff", "layer_overhead_s",
                                                 "moe_gemm_eff"))
    c = fit.coefficients
    assert "moe_gemm_eff" in fit.fitted
    assert c.moe_gemm_eff == pytest.approx(0.6, rel=1e-6)
    assert c.gemm_eff["bf16"] == pytest.approx(0.7, rel=1e-6)
    assert c.weight_bw_eff == pytest.approx(0.85, rel=1e-6)
    # dense-only points never ask for it
    dense_only = [replace(p, expert_weight_bytes=0.0, expert_gemm_flops=0.0, expert_shape_flops=0.0,
                          expert_activation_bytes=0.0) for p in points]
    assert "moe_gemm_eff" not in fit_coefficients(dense_only, prior).fitted
