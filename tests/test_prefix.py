"""Prefix caching's economics and prefill FLOPs, worked by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.paging.economics import Prices, prefix_economics
from kvcalc.calc.paging.prefill import keys_before, matmul_params_per_token, prefill_flops
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.sources.hardware import find_gpu
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import EngineSettings, Parallel
from tests.conftest import CODELLAMA_7B, GPT_OSS_20B, build

BLOCK_BYTES = 16 * 524_288  # CodeLlama-7B: 524,288 B of KV per token, 16 tokens per block


def plan_of(config: dict, engine: str = "vllm", num_blocks: int = 10_000) -> DeploymentPlan:
    plan = plan_deployment(build(config), find_gpu("h100"), Parallel(), EngineSettings(name=engine),  # type: ignore[arg-type]
                           context=8192)
    return replace(plan, kv_pool=replace(plan.kv_pool, num_blocks=num_blocks))


def test_keys_attended_closed_forms() -> None:
    assert keys_before("full", None, 6) == 1 + 2 + 3 + 4 + 5 + 6
    assert keys_before("sliding", 4, 6) == 1 + 2 + 3 + 4 + 4 + 4
    assert keys_before("chunked", 4, 6) == 1 + 2 + 3 + 4 + 1 + 2


def test_prefill_flops_by_hand() -> None:
    model = build(CODELLAMA_7B)
    # per layer: q,k,v,o 4 x 4096^2 + gated MLP 3 x 4096 x 11008 + 2 norms of 4096; 32 layers + final norm
    matmul = 32 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 4096
    assert matmul_params_per_token(model) == matmul == 6_476_271_616
    # attention: 32 layers x 2 x 32 heads x (128 + 128) per key; keys over positions 0..2991 = 2992 x 2993 / 2
    attention = 32 * 2 * 32 * 256 * (2992 * 2993 // 2)
    assert prefill_flops(model, 0, 2992) == 2 * matmul * 2992 + attention
    # a span [a, b) adds the keys of positions a..b-1 only
    assert prefill_flops(model, 100, 200) == 2 * matmul * 100 + 32 * 2 * 32 * 256 * (200 * 201 // 2 - 100 * 101 // 2)


def test_sliding_layers_attend_to_the_window_only() -> None:
    model = build(GPT_OSS_20B)  # 12 sliding(128) + 12 full layers, 64 heads x 64
    per_key = 2 * 64 * (64 + 64)
    full = 12 * per_key * (1000 * 1001 // 2)
    sliding = 12 * per_key * (128 * 129 // 2 + (1000 - 128) * 128)
    assert prefill_flops(model, 0, 1000) - 2 * matmul_params_per_token(model) * 1000 == full + sliding


def test_prefix_economics_by_hand() -> None:
    plan = plan_of(CODELLAMA_7B)
    e = prefix_economics(plan, prefix_tokens=3000, unique_tokens=400, output_tokens=256, requests_per_s=20,
                         prices=Prices(input_per_mtok=3.0, cached_per_mtok=0.3), change_points=[40])
    # floor(3000 / 16) = 187 blocks = 2,992 tokens of a 3,400-token prompt
    assert e.cached_tokens_per_request == 2992 and e.hit_rate_tokens == pytest.approx(2992 / 3400)
    assert e.private_prefix_tokens == 3000 - 2992  # the partial block: every request writes its own copy
    assert e.shared_blocks_per_copy == 187 and e.shared_bytes_per_copy == 187 * BLOCK_BYTES
    # a request holds ceil(3656 / 16) = 229 blocks, 229 - 187 = 42 of its own
    assert (e.blocks_per_request, e.private_blocks_per_request) == (229, 42)
    # 10,000 blocks, 9,999 usable (block 0 is vLLM's null block)
    assert e.max_concurrency_unshared == pytest.approx(9_999 / 229)
    assert e.max_concurrency_shared == pytest.approx((9_999 - 187) / 42)
    # at the unshared limit of floor(43.66) = 43 requests, 42 copies of the prefix are freed
    assert e.kv_bytes_saved_at_unshared_capacity == 42 * 187 * BLOCK_BYTES
    # 2,992 x (3.0 - 0.3) / 1e6 = $0.0080784 per request; x 20/s x 86,400 s = $13,959.4752 per day
    assert e.usd_saved_per_request == pytest.approx(0.0080784)
    assert e.usd_saved_per_day == pytest.approx(13_959.4752)
    assert e.ttft_saved_s == pytest.approx(e.prefill_flops_saved_per_request / plan.gpu.peak_flops["bf16"])
    by_change = {i.change_at: (i.cached_tokens, i.lost_tokens) for i in e.invalidations}
    # a change at token 0 loses everything; at 1,500: floor(1500/16) = 93 blocks = 1,488 kept; at 2,999 (in the
    # partial last block, which was never cached): nothing lost; at 40: blocks 0-1 = 32 kept
    assert by_change == {0: (0, 2992), 1500: (1488, 1504), 2999: (2992, 0), 40: (32, 2960)}


def test_tenant_isolation_costs_copies() -> None:
    plan = plan_of(CODELLAMA_7B)
    e = prefix_economics(plan, prefix_tokens=3000, unique_tokens=400, output_tokens=256, requests_per_s=20,
                         tenants=5, isolate=True)
    # five salted copies of 187 blocks: (10,000 - 5 x 187) / 42 requests; 4 extra copies, 4 extra cold prefills
    assert e.copies == 5 and e.max_concurrency_shared == pytest.approx((9_999 - 935) / 42)
    assert e.isolation_extra_bytes == 4 * 187 * BLOCK_BYTES
    assert e.isolation_cold_prefill_flops == 4 * e.prefill_flops_saved_per_request
    shared = prefix_economics(plan, prefix_tokens=3000, unique_tokens=400, output_tokens=256, requests_per_s=20,
                              tenants=5, isolate=False)
    assert shared.copies == 1 and shared.isolation_extra_bytes == 0


def test_sglang_reuses_every_prefix_token() -> None:
    e = prefix_economics(plan_of(CODELLAMA_7B, engine="sglang", num_blocks=200_000), prefix_tokens=3000,
                         unique_tokens=400, output_tokens=0, requests_per_s=1, change_points=[40])
    assert e.cached_tokens_per_request == 3000 and e.shared_blocks_per_copy == 3000
    assert {i.change_at: i.cached_tokens for i in e.invalidations}[40] == 40


def test_whole_prompt_shared_keeps_the_last_token() -> None:
    # no unique tokens: at most P - 1 = 2,999 tokens may hit -> floor(2999/16) = 187 blocks (vLLM), 2,999 (SGLang)
    assert prefix_economics(plan_of(CODELLAMA_7B), prefix_tokens=3000, unique_tokens=0, output_tokens=0,
                            requests_per_s=1).cached_tokens_per_request == 2992
    assert prefix_economics(plan_of(CODELLAMA_7B, "sglang", 200_000), prefix_tokens=3000, unique_tokens=0,
                            output_tokens=0, requests_per_s=1).cached_tokens_per_request == 2999


@given(st.integers(1, 20_000), st.integers(0, 5000))
def test_hit_rate_in_unit_interval_and_more_prefix_saves_more(prefix, unique) -> None:
    plan = PLAN
    a = prefix_economics(plan, prefix_tokens=prefix, unique_tokens=unique, output_tokens=0, requests_per_s=1)
    b = prefix_economics(plan, prefix_tokens=prefix + 16, unique_tokens=unique, output_tokens=0, requests_per_s=1)
    assert 0.0 <= a.hit_rate_tokens <= 1.0
    assert a.prefill_flops_saved_per_request <= b.prefill_flops_saved_per_request


PLAN = plan_of(CODELLAMA_7B, num_blocks=100_000)


def test_ttft_saved_is_the_prefill_difference() -> None:
    # with a prefill time of 0.1 ms per new token: 3,400 tokens cold, 408 after a 2,992-token hit
    e = prefix_economics(plan_of(CODELLAMA_7B), prefix_tokens=3000, unique_tokens=400, output_tokens=0,
                         requests_per_s=1, prefill_seconds=lambda prior, new: new * 1e-4, prefill_source="test")
    assert e.ttft_saved_s == pytest.approx((3400 - 408) * 1e-4) and e.ttft_source == "test"


def test_perf_prefill_runs_in_chunks_of_the_batch_budget() -> None:
    from kvcalc.calc.paging.timing import PerfTiming

    timing = PerfTiming(plan_of(CODELLAMA_7B))
    chunk = timing.plan.max_num_batched_tokens
    whole = timing.prefill_seconds(0, 2 * chunk + 100)
    steps = [timing.step_seconds([], [(0, chunk)]), timing.step_seconds([], [(chunk, chunk)]),
             timing.step_seconds([], [(2 * chunk, 100)])]
    assert whole == pytest.approx(sum(steps))
    assert timing.prefill_seconds(2992, 408) < timing.prefill_seconds(0, 3400)
