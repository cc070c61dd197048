"""The engine scheduler per request (calc/perf/scheduler.py, policy.py): open-loop traces worked step by step,
KV admission and preemption by each engine's rule, pipeline micro-batch cycles, async scheduling, ring
all-reduce latency, data-parallel replicas, vendor bandwidth, properties."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.comm import allreduce_latency
from kvcalc.calc.perf.defaults import default_coefficients
from kvcalc.calc.perf.model import perf_model
from kvcalc.calc.perf.policy import policy_for
from kvcalc.calc.perf.runs import run_rate, run_serving
from kvcalc.calc.perf.scheduler import run_closed_loop, run_open_loop
from kvcalc.calc.perf.step import expert_replicas, stage_work, step_cost, step_time
from kvcalc.calc.perf.workload import fixed_lengths, sharegpt_lengths
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import EngineSettings, Parallel

ROOFLINE = PerfCoefficients(weight_bw_eff=1.0, kv_bw_eff=1.0, gemm_eff={"bf16": 1.0}, attention_eff=1.0,
                            layer_overhead_s=0.0, step_overhead_s=0.0)


def _pm(model: str = "llama-3.1-8b", gpu: str = "h100", engine: str = "vllm", parallel: Parallel | None = None,
        **options: object):
    plan = plan_deployment(load_model(model), find_gpu(gpu), parallel or Parallel(),
                           EngineSettings(name=engine, **options))  # type: ignore[arg-type]
    return perf_model(plan)


def _decodes(pm, contexts_per_step):
    return sum(step_time(pm, ROOFLINE, decode_contexts=c) for c in contexts_per_step)


def test_open_loop_trace_worked_by_hand():
    # vLLM: A (prompt 100, 3 out) at t = 0; B (prompt 50, 2 out) arrives half-way through A's first decode.
    # step 1: A's prefill (0, 100) -> A's first token at s1. A decodes one step alone (context 100), then B
    # is waiting: the next step mixes A's last decode (context 101) with B's whole prompt (0, 50): A finishes
    # and B has its first token at s1 + d100 + m; B decodes once more (context 50).
    pm = _pm()
    s1 = step_time(pm, ROOFLINE, prefill=[(0, 100)])
    d100 = step_time(pm, ROOFLINE, decode_contexts=[100])
    mixed = step_time(pm, ROOFLINE, decode_contexts=[101], prefill=[(0, 50)])
    d50 = step_time(pm, ROOFLINE, decode_contexts=[50])
    tb = s1 + d100 / 2
    stats = run_open_loop(pm, ROOFLINE, policy_for(pm.plan), [100, 50], [3, 2], [0.0, tb])
    a_done = s1 + d100 + mixed
    assert stats.ttft_s == pytest.approx((s1 + (a_done - tb)) / 2)
    assert stats.e2e_s == pytest.approx((a_done + (a_done + d50 - tb)) / 2)
    assert stats.duration_s == pytest.approx(a_done + d50)
    assert stats.preemptions == 0 and stats.prefill_steps == 2


def test_sglang_runs_the_new_prefill_alone():
    # the same trace on SGLang: B's prefill is a step of its own (A's decode waits), then both decode:
    # A's last token comes one step later than on vLLM, in a step with B's first decode (contexts 101 and 50)
    pm = _pm(engine="sglang")
    s1 = step_time(pm, ROOFLINE, prefill=[(0, 100)])
    d100 = step_time(pm, ROOFLINE, decode_contexts=[100])
    alone = step_time(pm, ROOFLINE, prefill=[(0, 50)])
    both = step_time(pm, ROOFLINE, decode_contexts=[101, 50])
    tb = s1 + d100 / 2
    stats = run_open_loop(pm, ROOFLINE, policy_for(pm.plan), [100, 50], [3, 2], [0.0, tb])
    b_first = s1 + d100 + alone
    assert stats.ttft_s == pytest.approx((s1 + (b_first - tb)) / 2)
    assert stats.duration_s == pytest.approx(b_first + both)


def test_vllm_preemption_with_prefix_cache_worked_by_hand():
    # pool of 8 blocks of 16 tokens; A and B (prompt 32, 40 out) both at t = 0.
    # step 1 prefills both (2 blocks each). They decode together while contexts 32..63 need <= 4 blocks each
    # (32 steps, 8 blocks). At context 64 each needs a 5th block: 2 > 0 free, so B (admitted last) is
    # preempted (vLLM running.pop()): its 4 blocks are freed and kept cached, and A decodes alone (context 64).
    # A's 5th block evicts one of B's cached blocks (the end of its prefix): 48 tokens stay cached.
    # A decodes 6 more steps (contexts 65..70) and finishes at 40 tokens. B is readmitted with its 48 cached
    # tokens: it recomputes only 65 - 48 = 17 (its prompt + 33 outputs = 65 tokens), samples its 34th token,
    # and decodes 6 more steps (contexts 65..70).
    pm = _pm()
    policy = replace(policy_for(pm.plan), pool_blocks=8)
    s1 = step_time(pm, ROOFLINE, prefill=[(0, 32), (0, 32)])
    both = _decodes(pm, [[c, c] for c in range(32, 64)])
    alone = step_time(pm, ROOFLINE, decode_contexts=[64])
    tail = _decodes(pm, [[c] for c in range(65, 71)])
    resume = step_time(pm, ROOFLINE, prefill=[(48, 17)])
    a_done = s1 + both + alone + tail
    b_done = a_done + resume + tail
    stats = run_open_loop(pm, ROOFLINE, policy, [32, 32], [40, 40], [0.0, 0.0])
    assert stats.preemptions == 1
    assert stats.ttft_s == pytest.approx(s1)
    assert stats.e2e_s == pytest.approx((a_done + b_done) / 2)
    # without the prefix cache B recomputes all 65 tokens
    no_cache = run_open_loop(pm, ROOFLINE, replace(policy, prefix_cache=False), [32, 32], [40, 40], [0.0, 0.0])
    full = step_time(pm, ROOFLINE, prefill=[(0, 65)])
    assert no_cache.e2e_s == pytest.approx((a_done + a_done + full + tail) / 2)


def test_trtllm_admits_whole_requests_only():
    # TensorRT-LLM GUARANTEED_NO_EVICT: blocks for prompt + output at admission. A pool that holds one request
    # of 100 + 20 tokens (4 blocks of 32) keeps B waiting until A is done: B's first token comes after A's
    # 20 tokens and its own prefill.
    pm = _pm(engine="trtllm")
    assert pm.plan.blocks_per_request(120) == 4
    policy = replace(policy_for(pm.plan), pool_blocks=5)
    prefill = step_time(pm, ROOFLINE, prefill=[(0, 100)])
    a_done = prefill + _decodes(pm, [[c] for c in range(100, 119)])
    stats = run_open_loop(pm, ROOFLINE, policy, [100, 100], [20, 20], [0.0, 0.0])
    assert stats.preemptions == 0 and stats.peak_running == 1
    assert stats.ttft_s == pytest.approx((prefill + a_done + prefill) / 2)


def test_pipeline_cycle_overlaps_micro_batches():
    # pp = 2, 4 decodes at context 0: two micro-batches of 2 requests each; every request advances once per
    # cycle = max(latency of one micro-batch through both stages, 2 x the slower stage's time). With the
    # roofline, a stage's time = max(weights / B, GEMMs / F) + max(KV / B, attention / F) + its hand-off.
    pm = _pm(parallel=Parallel(pp=2))
    gpu = pm.gpu
    bw, peak = gpu.memory_bandwidth_bytes_per_s, gpu.flops("bf16")
    rows = np.zeros((1, 2))
    stage_times = []
    for i, stage in enumerate(pm.stages):
        work = stage_work(stage, rows, [], 2, i == len(pm.stages) - 1)
        gemm = sum(work.gemm.values()) / peak
        kv, attn = float(work.kv_bytes[0]) / bw, float(work.attention_flops[0]) / peak
        stage_times.append(max(work.weight_bytes / bw, gemm) + max(kv, attn))
    latency = step_cost(pm, ROOFLINE, decode_contexts=[0, 0]).time_s
    handoff = latency - sum(stage_times)  # stage 0's send of 2 tokens x 4,096 x 2 B over NVLink
    assert handoff == pytest.approx(2 * 4096 * 2 / 450e9)
    slowest = max(stage_times[0] + handoff, stage_times[1])
    assert step_time(pm, ROOFLINE, decode_contexts=[0, 0, 0, 0]) == pytest.approx(max(latency, 2 * slowest))
    # one request: nothing to overlap, the cycle is the latency
    assert step_time(pm, ROOFLINE, decode_contexts=[0]) == pytest.approx(
        step_cost(pm, ROOFLINE, decode_contexts=[0]).time_s)


def test_async_scheduling_overlaps_per_request_cpu_work():
    # vLLM >= 0.14: t = max(t_gpu + step_overhead, requests x request_overhead); 0.11: the sum.
    coeffs = replace(ROOFLINE, step_overhead_s=1e-3, request_overhead_s=2e-3)
    new, old = _pm(version="0.31.0"), _pm(version="0.11.0")
    assert new.async_cpu and not old.async_cpu
    gpu = step_cost(new, ROOFLINE, decode_contexts=[10] * 4).time_s
    assert step_time(old, coeffs, decode_contexts=[10] * 4) == pytest.approx(gpu + 1e-3 + 4 * 2e-3)
    assert step_time(new, coeffs, decode_contexts=[10] * 4) == pytest.approx(max(gpu + 1e-3, 4 * 2e-3))
    assert not _pm(version="0.31.0", parallel=Parallel(pp=2)).async_cpu  # the batch queue instead


def test_ring_allreduce_latency_grows_with_ranks():
    # NVLink defaults from 6 us on 2 GPUs and 12.5 us on 8: hop h = 6.5 / 12 us, base 6 - 2h us;
    # 4 GPUs: base + 2 x 3 x h = 6 + 4 x 0.541667 = 8.1667 us
    c = default_coefficients(find_gpu("h100"))
    assert allreduce_latency(2, c) == pytest.approx(6e-6)
    assert allreduce_latency(8, c) == pytest.approx(12.5e-6)
    assert allreduce_latency(4, c) == pytest.approx(6e-6 + 4 * 6.5e-6 / 12)
    # a tp = 4 decode step pays it twice per layer: 32 layers x 2 x latency + bytes
    pm = _pm(parallel=Parallel(tp=4))
    coeffs = replace(ROOFLINE, comm_latency_s=c.comm_latency_s, comm_hop_latency_s=c.comm_hop_latency_s,
                     comm_bw_eff=0.8)
    wire = 2 * 3 / 4 * 4096 * 2  # ring: 2 (n - 1) / n of one token's 8,192 B
    assert step_cost(pm, coeffs, decode_contexts=[0]).t_comm == pytest.approx(
        64 * (allreduce_latency(4, c) + wire / (450e9 * 0.8)))


@pytest.mark.parametrize(("gpu", "value"), [("h100", 0.902), ("mi300x", 0.81), ("m4-max-128", 0.907),
                                             ("m2-ultra-192", 0.907), ("l40s", 0.85)])
def test_weight_bandwidth_by_vendor(gpu, value):
    # measured copy (H100), else the vendor's figure (AMD MI300X BabelStream 81 %; Apple fitted to llama.cpp
    # decode on an M2 Ultra and an M3 Max, docs/dev/metal_fit.py), else the generic 0.85
    assert default_coefficients(find_gpu(gpu)).weight_bw_eff == value


def test_experts_serve_every_replicas_tokens():
    # attention data parallel x 4 with EP 4: a GPU holds 2 of Mixtral's 8 experts whole; every replica
    # dispatches its tokens to them, so a step of 1 local token routes 4 tokens through this GPU's experts:
    # 3 tokens' more expert FLOPs than the replica's own
    one = _pm("mixtral-8x7b", parallel=Parallel(tp=1, dp=4, ep=4))
    assert expert_replicas(one.parallel) == 4 and expert_replicas(Parallel(tp=4, ep=4)) == 1
    stage = one.stages[0]
    rows = np.zeros((1, 1))
    local = stage_work(stage, rows, [], 1, True, expert_share=1)
    shared = stage_work(stage, rows, [], 1, True, expert_share=4)
    expert_flops = sum(sum(g.flops_per_token.values()) for g in stage.experts)
    assert sum(shared.gemm.values()) - sum(local.gemm.values()) == pytest.approx(3 * expert_flops)


def test_data_parallel_replicas_share_the_load():
    # 8 clients on dp = 2: each replica runs 4 (same TTFT/TPOT as one replica with 4), throughput doubles
    single = _pm()
    double = _pm(parallel=Parallel(dp=2))
    four = run_serving(single, ROOFLINE, 4, 500, 50, lengths=fixed_lengths(500, 50))
    eight = run_serving(double, ROOFLINE, 8, 500, 50)
    assert eight.tpot_s == pytest.approx(four.tpot_s, rel=1e-6)
    assert eight.output_tokens_per_s == pytest.approx(2 * four.output_tokens_per_s, rel=1e-6)


@given(rate=st.floats(0.5, 40.0), factor=st.floats(1.2, 4.0))
@settings(max_examples=8, deadline=None)
def test_ttft_does_not_fall_as_the_rate_rises(rate, factor):
    pm = _pm()
    coeffs = default_coefficients(pm.gpu)
    slow = run_rate(pm, coeffs, 120, rate, fixed_lengths(1500, 100), seed=3)
    fast = run_rate(pm, coeffs, 120, rate * factor, fixed_lengths(1500, 100), seed=3)
    assert fast.ttft_s >= slow.ttft_s * 0.999


@given(dp=st.integers(2, 4))
@settings(max_examples=3, deadline=None)
def test_more_replicas_are_never_slower(dp):
    coeffs = default_coefficients(find_gpu("h100"))
    base = run_rate(_pm(), coeffs, 200, 30.0, sharegpt_lengths(), seed=1)
    more = run_rate(_pm(parallel=Parallel(dp=dp)), coeffs, 200, 30.0, sharegpt_lengths(), seed=1)
    assert more.ttft_s <= base.ttft_s * 1.001 and more.e2e_s <= base.e2e_s * 1.001


def test_burst_of_1000_variable_requests_is_fast():
    # the standard ShareGPT burst (1,000 requests at once) on a KV-limited deployment, in well under a few
    # seconds even on a loaded machine (vectorised decode stretches; ~0.3 s alone)
    pm = _pm("qwen3-32b", "a100-80gb", version="0.11.0")
    start = time.perf_counter()
    stats = run_rate(pm, default_coefficients(pm.gpu), 1000, math.inf, sharegpt_lengths())
    assert time.perf_counter() - start < 5.0
    assert stats.measured_requests == 1000 and stats.preemptions > 0  # the KV cache runs out, requests wait


def test_closed_loop_from_the_start_measures_every_request():
    # vllm bench serve --max-concurrency 2 --num-prompts 4 with identical requests: two waves of two
    pm = _pm()
    policy = policy_for(pm.plan)
    s = step_time(pm, ROOFLINE, prefill=[(0, 200), (0, 200)])
    dec = _decodes(pm, [[c, c] for c in range(200, 204)])
    stats = run_closed_loop(pm, ROOFLINE, policy, [200] * 4, [5] * 4, 2, 0.0, 4, from_start=True)
    assert stats.measured_requests == 4
    assert stats.ttft_s == pytest.approx(s)  # each wave's prompts share one step
    assert stats.duration_s == pytest.approx(2 * (s + dec))
    assert stats.requests_per_s == pytest.approx(4 / (2 * (s + dec)))
