"""The step-time model: hand-worked bytes, FLOPs and times (kvcalc/calc/perf)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.perf.attention import AttentionGroup
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.model import perf_model
from kvcalc.calc.perf.moe import experts_touched
from kvcalc.calc.perf.precision import compute_dtype
from kvcalc.calc.perf.step import step_cost
from kvcalc.calc.quant import parse_quant
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.layers import TensorSpec

ROOFLINE = PerfCoefficients(weight_bw_eff=1.0, kv_bw_eff=1.0, gemm_eff={"bf16": 1.0}, attention_eff=1.0,
                            layer_overhead_s=0.0, step_overhead_s=0.0)


def _pm(model: str = "llama-3.1-8b", gpu: str = "h100", **parallel: int):
    spec, card = load_model(model), find_gpu(gpu)
    return perf_model(plan_deployment(spec, card, Parallel(**parallel), EngineSettings()))


# Llama-3.1-8B per layer: q 4096x4096 + k,v 1024x4096 each + o 4096x4096 + gate/up/down 3 x 14336 x 4096
# = 16,777,216 x 2 + 4,194,304 x 2 + 176,160,768 = 218,103,808 linear params (+ 2 norms of 4096).
LLAMA8B_LINEAR_PER_LAYER = 2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 14336 * 4096
LLAMA8B_HEAD = 128256 * 4096  # lm_head 525,336,576 (vocab already a multiple of 64)


def test_llama8b_decode_batch1_bytes_and_roofline_time():
    # Read per step: 32 layers x (218,103,808 + 8,192 norm) + head 525,336,576 + final norm 4,096
    # = 7,504,924,672 params x 2 B = 15,009,849,344 B. The "~16.06 GB" also counts the input
    # embedding table (525,336,576 x 2 = 1.05 GB), of which a decode step gathers one row only.
    # KV: one token of 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 B = 131,072 B, read once and written once.
    pm = _pm()
    cost = step_cost(pm, ROOFLINE, decode_contexts=[0])
    weights = (32 * (LLAMA8B_LINEAR_PER_LAYER + 2 * 4096) + LLAMA8B_HEAD + 4096) * 2
    assert weights == 15_009_849_344
    assert cost.weight_bytes == weights
    assert cost.kv_bytes == 2 * 131_072
    # memory-bound: (15,009,849,344 + 262,144) B / 3.35e12 B/s = 4.4806 ms
    assert cost.bound == "memory"
    assert cost.time_s == pytest.approx((weights + 262_144) / 3.35e12, rel=1e-9)
    assert cost.time_s == pytest.approx(4.4806e-3, rel=1e-4)


def test_llama8b_prefill_flops_causal():
    # 2,048-token prefill: GEMMs 2 x 6,979,321,856 x 2,048 + lm_head for the one sampled token
    # 2 x 525,336,576; attention 32 layers x 2,048 x 2,049 / 2 = 2,098,176 pairs x 2 x (128 + 128) x 32 heads.
    pm = _pm()
    cost = step_cost(pm, ROOFLINE, prefill=[(0, 2048)])
    gemm = 2 * 32 * LLAMA8B_LINEAR_PER_LAYER * 2048 + 2 * LLAMA8B_HEAD
    attention = 32 * 2_098_176 * 2 * 256 * 32
    assert cost.gemm_flops == pytest.approx(gemm, rel=1e-12)
    assert cost.attention_flops == pytest.approx(attention, rel=1e-12)
    # compute-bound: GEMMs 28.6 TFLOP / 989.4e12 = 28.9 ms; attention 1.10 TFLOP / 989.4e12 = 1.11 ms
    assert cost.bound == "compute"
    assert cost.time_s == pytest.approx(gemm / 989.4e12 + attention / 989.4e12, rel=1e-9)


def test_window_and_chunk_pairs():
    # window 4, 2 cached + 5 new tokens: positions 3..7 see min(j, 4) = 3+4+4+4+4 = 19 keys
    assert AttentionGroup(kind="sliding", layers=1, window=4).keys(2, 5) == 19
    # chunk 4: positions 3..7 see ((j-1) mod 4) + 1 = 3+4+1+2+3 = 13 keys
    assert AttentionGroup(kind="chunked", layers=1, chunk=4).keys(2, 5) == 13
    # full: 5 x 2 + 5 x 6 / 2 = 25
    assert AttentionGroup(kind="full", layers=1).keys(2, 5) == 25
    # decode with 10 tokens before it: full 11, window 4 -> 4, chunk 4 -> (10 mod 4) + 1 = 3
    assert AttentionGroup(kind="full", layers=1).decode_keys(10) == 11
    assert AttentionGroup(kind="sliding", layers=1, window=4).decode_keys(10) == 4
    assert AttentionGroup(kind="chunked", layers=1, chunk=4).decode_keys(10) == 3


def test_sliding_window_caps_decode_kv():
    # gpt-oss-20b: 12 sliding(128) + 12 full layers, 8 KV heads x 64 x 2 x 2 B = 2,048 B per token and layer.
    # decode at context 9,999: full layers read 10,000 keys, sliding 128; + one write per layer.
    pm = _pm("gpt-oss-20b")
    cost = step_cost(pm, ROOFLINE, decode_contexts=[9999])
    assert cost.kv_bytes == 12 * 2048 * (10_000 + 1) + 12 * 2048 * (128 + 1)


def test_moe_expert_touch():
    # E = 8, k = 2: one token touches 2; two tokens 8 (1 - 0.75^2) = 3.5; many tokens -> 8
    assert experts_touched(8, 2, 1) == pytest.approx(2.0)
    assert experts_touched(8, 2, 2) == pytest.approx(3.5)
    assert experts_touched(8, 2, 10_000) == pytest.approx(8.0)
    assert experts_touched(8, 2, 0) == 0.0


def test_moe_decode_reads_touched_share():
    # Mixtral-8x7B (E 8, k 2): one token reads 2/8 of the routed expert bytes, two tokens 3.5/8.
    pm = _pm("mixtral-8x7b", tp=2)
    stage = pm.stages[0]
    experts = sum(g.bytes_on_gpu for g in stage.experts)
    one = step_cost(pm, ROOFLINE, decode_contexts=[0])
    two = step_cost(pm, ROOFLINE, decode_contexts=[0, 0])
    assert one.weight_bytes == pytest.approx(stage.dense_weight_bytes + experts * 2 / 8)
    assert two.weight_bytes == pytest.approx(stage.dense_weight_bytes + experts * 3.5 / 8)


def test_tp_allreduce_time():
    # tp 2, one decode token: message 4,096 x 2 B = 8,192 B; ring puts 2 x (2-1)/2 x 8,192 = 8,192 B on the
    # link; 32 layers x 2 all-reduces x (8 us + 8,192 / (450e9 x 0.8)) = 64 x 8.02276 us = 513.46 us.
    pm = _pm(tp=2)
    coeffs = replace(ROOFLINE, comm_latency_s=8e-6, comm_bw_eff=0.8)
    cost = step_cost(pm, coeffs, decode_contexts=[0])
    assert cost.t_comm == pytest.approx(64 * (8e-6 + 8192 / (450e9 * 0.8)), rel=1e-9)
    assert cost.comm_bytes == 64 * 8192


def test_overheads_add():
    # 32 layers x 10 us + 1 ms per step + 3 requests x 20 us = 1.38 ms on top of the kernels
    pm = _pm()
    coeffs = replace(ROOFLINE, layer_overhead_s=10e-6, step_overhead_s=1e-3, request_overhead_s=20e-6)
    base = step_cost(pm, ROOFLINE, decode_contexts=[5, 5, 5])
    cost = step_cost(pm, coeffs, decode_contexts=[5, 5, 5])
    assert cost.overhead_s == pytest.approx(1.38e-3)
    assert cost.time_s - base.time_s == pytest.approx(1.38e-3)


def test_compute_dtype_by_card():
    t = TensorSpec(name="blk.0.ffn_up.weight", shape=(14336, 4096), role="ffn_up", layer=0)
    fp8, nvfp4 = parse_quant("fp8"), parse_quant("nvfp4")
    assert compute_dtype(fp8, t, find_gpu("h100")) == "fp8"
    assert compute_dtype(fp8, t, find_gpu("a100-80gb")) == "bf16"  # no FP8 tensor cores: Marlin, 16-bit
    assert compute_dtype(nvfp4, t, find_gpu("b200")) == "fp4"
    assert compute_dtype(nvfp4, t, find_gpu("h100")) == "bf16"
    assert compute_dtype(parse_quant("gptq:4:128"), t, find_gpu("h100")) == "bf16"
    head = TensorSpec(name="output.weight", shape=(128256, 4096), role="output")
    assert compute_dtype(fp8, head, find_gpu("h100")) == "bf16"  # lm_head kept 16-bit


def test_fp8_weights_halve_linear_bytes():
    # FP8 per-tensor: 1 B per linear weight (+ 4 B scale per matrix); lm_head and norms stay bf16.
    spec, card = load_model("llama-3.1-8b"), find_gpu("h100")
    plan = plan_deployment(spec, card, Parallel(), EngineSettings(), weight_format=parse_quant("fp8"))
    cost = step_cost(perf_model(plan), ROOFLINE, decode_contexts=[0])
    expected = 32 * (LLAMA8B_LINEAR_PER_LAYER + 7 * 4 + 2 * 4096 * 2) + LLAMA8B_HEAD * 2 + 4096 * 2
    assert cost.weight_bytes == expected


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 256), extra=st.integers(1, 64), context=st.integers(0, 32_000))
def test_decode_time_non_decreasing_in_batch(batch, extra, context):
    pm = _pm("qwen3-30b-a3b")
    from kvcalc.calc.perf.defaults import default_coefficients

    coeffs = default_coefficients(pm.gpu)
    small = step_cost(pm, coeffs, decode_contexts=[context] * batch).time_s
    large = step_cost(pm, coeffs, decode_contexts=[context] * (batch + extra)).time_s
    assert large >= small


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 64), context=st.integers(0, 100_000), more=st.integers(1, 50_000))
def test_decode_time_non_decreasing_in_context(batch, context, more):
    pm = _pm("gpt-oss-20b")
    from kvcalc.calc.perf.defaults import default_coefficients

    coeffs = default_coefficients(pm.gpu)
    assert (step_cost(pm, coeffs, decode_contexts=[context + more] * batch).time_s
            >= step_cost(pm, coeffs, decode_contexts=[context] * batch).time_s)


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(1.0, 4.0), batch=st.integers(1, 512), prefill=st.integers(0, 8192))
def test_more_bandwidth_never_slower(scale, batch, prefill):
    spec, card = load_model("llama-3.1-8b"), find_gpu("h100")
    faster = replace(card, memory_bandwidth_bytes_per_s=int(card.memory_bandwidth_bytes_per_s * scale))
    chunks = [(0, prefill)] if prefill else []
    slow = step_cost(perf_model(plan_deployment(spec, card, Parallel(), EngineSettings())), ROOFLINE,
                     decode_contexts=[1000] * batch, prefill=chunks)
    fast = step_cost(perf_model(plan_deployment(spec, faster, Parallel(), EngineSettings())), ROOFLINE,
                     decode_contexts=[1000] * batch, prefill=chunks)
    assert fast.time_s <= slow.time_s


@settings(max_examples=50, deadline=None)
@given(e=st.integers(1, 512), k=st.integers(1, 16), b=st.integers(0, 5000), more=st.integers(0, 5000))
def test_touched_experts_bounded_and_monotone(e, k, b, more):
    k = min(k, e)
    assert experts_touched(e, k, b) <= e + 1e-9
    assert experts_touched(e, k, b + more) >= experts_touched(e, k, b) - 1e-9


@pytest.mark.parametrize(("model", "gpu", "parallel"), [("llama-3.1-8b", "h100", {}),
                                                         ("qwen3-30b-a3b", "h100", {"tp": 2}),
                                                         ("gemma-2-9b", "a100", {}), ("llama-3.1-8b", "l4", {"pp": 4})])
def test_step_timer_reuses_its_terms_without_changing_a_bit(model, gpu, parallel):
    # StepTimer keeps each stage's linear and comm time per (tokens, sampled) and each attention shape's counts
    # per micro-batch: a timer that has already timed other steps gives exactly (==, not approx) what a fresh
    # one does, and on one stage without async CPU overlap (sglang) exactly step_cost's time; decode_run_times'
    # row j is the step at contexts + j
    from kvcalc.calc.perf.defaults import default_coefficients
    from kvcalc.calc.perf.step import StepTimer, decode_run_times, step_time

    pm = _pm(model, gpu, **parallel)
    coeffs = default_coefficients(pm.gpu)
    steps = [([100, 2000, 37], [(0, 512), (512, 300)], [False, True]), ([5, 6, 7, 8, 9], [], []),
             ([], [(0, 1)], [True]), ([100, 2000, 37], [(0, 512), (512, 300)], [False, True]), ([4000] * 64, [], [])]
    used = StepTimer(pm, coeffs)
    for _ in range(2):
        for contexts, prefill, sampled in steps:
            fresh = StepTimer(pm, coeffs)
            assert used.step_time(contexts, prefill, sampled) == fresh.step_time(contexts, prefill, sampled)
    run = decode_run_times(pm, coeffs, [100, 2000, 37], 5)
    assert list(run) == [step_time(pm, coeffs, decode_contexts=[100 + j, 2000 + j, 37 + j]) for j in range(5)]
    one = replace(pm, plan=replace(pm.plan, engine="sglang"))
    if len(pm.stages) == 1:
        for contexts, prefill, sampled in steps:
            cost = step_cost(one, coeffs, decode_contexts=contexts, prefill=prefill, sampled_prefills=sum(sampled))
            assert step_time(one, coeffs, decode_contexts=contexts, prefill=prefill, sampled=sampled) == cost.time_s
