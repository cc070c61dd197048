"""Scheduler simulation, static batch, closed loop, SLO search, disaggregation, long context (calc/perf)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.defaults import default_coefficients
from kvcalc.calc.perf.disagg import disaggregate, prefill_rate
from kvcalc.calc.perf.longctx import rope_context_check
from kvcalc.calc.perf.model import perf_model
from kvcalc.calc.perf.runs import compute_bound_batch, decode_step, run_serving, run_static, running_cap
from kvcalc.calc.perf.slo import max_concurrency_under_slo
from kvcalc.calc.perf.step import step_cost
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import EngineSettings, Parallel

ROOFLINE = PerfCoefficients(weight_bw_eff=1.0, kv_bw_eff=1.0, gemm_eff={"bf16": 1.0}, attention_eff=1.0,
                            layer_overhead_s=0.0, step_overhead_s=0.0)


def _pm(model: str = "llama-3.1-8b", gpu: str = "h100", engine: str = "vllm", **engine_options: object):
    plan = plan_deployment(load_model(model), find_gpu(gpu), Parallel(),
                           EngineSettings(name=engine, **engine_options))  # type: ignore[arg-type]
    return perf_model(plan)


def test_static_batch_one_request_step_by_step():
    # one request, 100-token prompt, 3 output tokens: step 1 prefills (0, 100) and samples token 1;
    # steps 2 and 3 decode with 100 and 101 tokens before the new one.
    pm = _pm()
    s1 = step_cost(pm, ROOFLINE, prefill=[(0, 100)]).time_s
    d1 = step_cost(pm, ROOFLINE, decode_contexts=[100]).time_s
    d2 = step_cost(pm, ROOFLINE, decode_contexts=[101]).time_s
    stats = run_static(pm, ROOFLINE, 1, 100, 3)
    assert stats.ttft_s == pytest.approx(s1)
    assert stats.e2e_s == pytest.approx(s1 + d1 + d2)
    assert stats.tpot_s == pytest.approx((d1 + d2) / 2)  # (e2e - TTFT) / (3 - 1)


def test_chunked_prefill_shares_steps_with_decodes():
    # vLLM V1, budget 8192, two 6,000-token prompts: step 1 = A (0, 6000) + B (0, 2192);
    # step 2 = A decodes (6,000 before it) + B's rest (2192, 3808) in the same step.
    pm = _pm(max_num_batched_tokens=8192)
    s1 = step_cost(pm, ROOFLINE, prefill=[(0, 6000), (0, 2192)], sampled_prefills=1).time_s
    s2 = step_cost(pm, ROOFLINE, decode_contexts=[6000], prefill=[(2192, 3808)]).time_s
    stats = run_static(pm, ROOFLINE, 2, 6000, 2)
    assert stats.ttft_s == pytest.approx((s1 + (s1 + s2)) / 2)  # A after step 1, B after step 2
    # A finished its 2 tokens in step 2; B decodes once more (6,000 before it) in step 3
    s3 = step_cost(pm, ROOFLINE, decode_contexts=[6000]).time_s
    assert stats.e2e_s == pytest.approx(((s1 + s2) + (s1 + s2 + s3)) / 2)


def test_sglang_prefill_runs_alone():
    # SGLang (no mixed chunk): step 2 prefills B's rest alone and A's decode waits for step 3.
    pm = _pm(engine="sglang", max_num_batched_tokens=8192)
    s1 = step_cost(pm, ROOFLINE, prefill=[(0, 6000), (0, 2192)], sampled_prefills=1).time_s
    s2 = step_cost(pm, ROOFLINE, prefill=[(2192, 3808)]).time_s
    stats = run_static(pm, ROOFLINE, 2, 6000, 2)
    assert stats.ttft_s == pytest.approx((s1 + (s1 + s2)) / 2)


def test_closed_loop_single_client():
    # one client: TTFT = front end + the prompt's prefill step; TPOT = mean decode step over the output.
    pm = _pm()
    coeffs = replace(ROOFLINE, frontend_latency_s=0.03)
    stats = run_serving(pm, coeffs, 1, 1000, 4)
    prefill = step_cost(pm, coeffs, prefill=[(0, 1000)]).time_s
    decodes = [step_cost(pm, coeffs, decode_contexts=[c]).time_s for c in (1000, 1001, 1002)]
    assert stats.ttft_s == pytest.approx(0.03 + prefill)
    assert stats.tpot_s == pytest.approx(sum(decodes) / 3)
    # Little's law: one client sends one request per e2e; 4 output tokens each
    assert stats.output_tokens_per_s == pytest.approx(4 / stats.e2e_s)


def test_running_cap_from_the_plan():
    pm = _pm()
    plan = pm.plan
    cap, binding = running_cap(plan, 2000, 256)
    assert cap == int(plan.concurrency_at(2256)) and binding == "kv_cache"
    cap, binding = running_cap(_pm(max_num_seqs=8).plan, 2000, 256)
    assert (cap, binding) == (8, "max_num_seqs")


def test_queueing_beyond_the_cap_raises_ttft():
    pm = _pm(max_num_seqs=4)
    coeffs = default_coefficients(pm.gpu)
    at_cap = run_serving(pm, coeffs, 4, 500, 64)
    over = run_serving(pm, coeffs, 8, 500, 64)
    assert over.running_cap == 4
    assert over.ttft_s > at_cap.ttft_s + 0.5 * at_cap.e2e_s  # waits for about one request to finish


def test_compute_bound_batch_is_the_ridge_point_for_dense_bf16():
    # Llama-3.1-8B bf16 at context 0, pure roofline: bytes ~ 2 x params, FLOPs ~ 2 x params x B, so decode
    # turns compute-bound near B = peak / bandwidth = 989.4e12 / 3.35e12 = 295.3 (the ridge point);
    # the lm_head and KV terms move it by a token or two.
    assert compute_bound_batch(_pm(), ROOFLINE, 0) in (295, 296, 297)


def test_long_context_stays_memory_bound():
    # at 128k tokens of context the KV read grows with B as fast as the FLOPs: never compute-bound
    assert compute_bound_batch(_pm(), ROOFLINE, 128_000, limit=4096) is None


def test_slo_search_meets_targets_and_names_the_limit():
    pm = _pm()
    coeffs = default_coefficients(pm.gpu)
    result = max_concurrency_under_slo(pm, coeffs, 1000, 128, ttft_slo_s=1.0, tpot_slo_s=0.015)
    assert result.binding == "tpot_slo"
    assert result.tpot_s <= 0.015 and result.ttft_s <= 1.0
    beyond = run_serving(pm, coeffs, result.max_concurrency + 1, 1000, 128,
                         measure=max(result.max_concurrency + 1, 16))
    assert beyond.tpot_s > 0.015
    loose = max_concurrency_under_slo(_pm(max_num_seqs=16), coeffs, 1000, 128, 60.0, 1.0)
    assert (loose.max_concurrency, loose.binding) == (16, "max_num_seqs")
    unmet = max_concurrency_under_slo(pm, coeffs, 1000, 128, 60.0, 1e-4)
    assert (unmet.max_concurrency, unmet.binding) == (0, "unmet")


def _bisection(at, cap: int) -> int:
    """The search max_concurrency_under_slo ran before regula falsi: 0 when 1 misses, cap when cap meets, else
    plain bisection over [1, cap] for the largest c with at(c) <= 0."""
    if at(1) > 0:
        return 0
    if at(cap) <= 0:
        return cap
    lo, hi = 1, cap
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if at(mid) <= 0 else (lo, mid)
    return lo


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5000), st.floats(0.001, 2.0), st.floats(0.2, 6.0), st.integers(1, 50), st.floats(0.0, 1.2),
       st.integers(1, 6000))
def test_regula_falsi_finds_what_bisection_finds(cap, boundary, power, plateau, floor, hint):
    # any excess growing with c (here: a power curve from floor - 1 at c = 1, flat in plateaus of `plateau`
    # clients, crossing 0 near boundary x cap, beyond the cap, or above 0 from c = 1): the regula falsi from
    # (1, cap), and the walk from any hint followed by it, give the bisection's answer
    from kvcalc.calc.perf.slo import bracket, largest_meeting

    def at(c: int) -> float:
        x = ((c - 1) // plateau * plateau) / max(cap - 1, 1)
        return floor - 1.0 + (x / boundary) ** power

    expected = _bisection(at, cap)
    g1, gc = at(1), at(cap)
    plain = 0 if g1 > 0 else cap if gc <= 0 else largest_meeting(at, 1, cap, g1, gc)
    lo, g_lo, hi, g_hi = bracket(at, hint, cap)
    walked = lo if hi is None or lo == 0 else largest_meeting(at, lo, hi, g_lo, g_hi)
    assert plain == walked == expected


@pytest.mark.parametrize(("gpu", "inp", "out", "ttft", "tpot"), [("h100", 1000, 128, 1.0, 0.015),
                                                                  ("l4", 512, 128, 2.0, 0.1),
                                                                  ("a100", 2000, 100, 0.25, 1.0)])
def test_slo_search_answers_as_bisection_did(gpu, inp, out, ttft, tpot):
    # on the simulated runs themselves (Llama-3.1-8B): the same concurrency, figures and binding as bisection
    # over [1, cap] with the same criterion, from fewer runs
    from kvcalc.calc.perf.slo import excess

    pm = _pm(gpu=gpu)
    coeffs = default_coefficients(pm.gpu)
    runs: dict = {}

    def at(c: int) -> float:
        if c not in runs:
            runs[c] = run_serving(pm, coeffs, c, inp, out, measure=max(c, 16))
        return excess(runs[c], ttft, tpot)

    expected = _bisection(at, max(running_cap(pm.plan, inp, out)[0], 1))
    bisection_runs = len(runs)
    result = max_concurrency_under_slo(pm, coeffs, inp, out, ttft, tpot)
    assert result.max_concurrency == expected > 1
    assert (result.ttft_s, result.tpot_s) == (runs[expected].ttft_s, runs[expected].tpot_s)
    searched: list[int] = []
    counted = max_concurrency_under_slo.__globals__["run_serving"]
    try:
        max_concurrency_under_slo.__globals__["run_serving"] = lambda *a, **k: searched.append(a[2]) or counted(*a, **k)
        max_concurrency_under_slo(pm, coeffs, inp, out, ttft, tpot)
    finally:
        max_concurrency_under_slo.__globals__["run_serving"] = counted
    assert len(searched) < bisection_runs


def test_disaggregation_prefill_rate_and_kv_moved():
    pm = _pm(max_num_batched_tokens=8192)
    # 2,000-token prompts: 8192 // 2000 = 4 prompts per prefill step
    step = step_cost(pm, ROOFLINE, prefill=[(0, 2000)] * 4).time_s
    assert prefill_rate(pm, ROOFLINE, 2000) == pytest.approx(4 / step)
    d = disaggregate(pm, ROOFLINE, 2000, 200, tpot_slo_s=0.05, request_rate=10.0)
    # KV of the prompt: 2,000 tokens x 131,072 B (32 layers x 8 KV heads x 128 x 2 x 2 B) = 262,144,000 B,
    # 5.24 ms at 50e9 B/s (400 Gb/s)
    assert d.kv_bytes_per_request == 262_144_000
    assert d.kv_transfer_s_network == pytest.approx(262_144_000 / 50e9)
    assert d.prefill_replicas == -(-10 // d.prefill_requests_per_s)
    assert decode_step(pm, ROOFLINE, d.decode_batch, 2100).time_s <= 0.05


def test_rope_checks():
    llama = load_model("llama-3.1-8b")  # llama3 rope x8 from 8,192 to 131,072
    inside = rope_context_check(llama, 50_000)
    assert inside.warning is None and inside.trained_context == 8192 and inside.supported_context == 131072
    assert "rely on the scaling" in inside.note
    beyond = rope_context_check(llama, 200_000)
    assert beyond.warning is not None and "131,072" in beyond.warning
    mistral = load_model("mistral-7b")
    assert rope_context_check(mistral, (mistral.max_position_embeddings or 0) + 1).warning is not None


@settings(max_examples=6, deadline=None)
@given(c=st.integers(1, 24), more=st.integers(1, 24))
def test_tpot_non_decreasing_in_concurrency(c, more):
    pm = _pm("qwen3-8b")
    coeffs = default_coefficients(pm.gpu)
    low = run_serving(pm, coeffs, c, 512, 64).tpot_s
    high = run_serving(pm, coeffs, c + more, 512, 64).tpot_s
    assert high >= low * 0.98  # phases are random draws: allow 2 % noise between runs
