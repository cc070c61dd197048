"""One speculative step costed on the card (`kvcalc.calc.spec_cost`): draft passes, verification, engine costs.

The coefficients are fixed here (not the perf defaults) so the arithmetic below stays worked by hand."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.drafts import draft_network
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.step import step_cost
from kvcalc.calc.spec_cost import ENGINE_SPEC_COSTS, DraftShape, EngineSpecCosts, SpecTimer, engine_spec_costs
from kvcalc.errors import InputError
from kvcalc.report.spec import _speedup, resolve_acceptance
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.deployment import EngineSettings, Parallel

COEFFS = PerfCoefficients(weight_bw_eff=0.9, kv_bw_eff=0.75, gemm_eff={"bf16": 0.7}, attention_eff=0.4,
                          layer_overhead_s=35e-6, step_overhead_s=1e-3, request_overhead_s=0.0)
COSTS = EngineSpecCosts(engine="vllm", pass_overhead_s=0.5e-3, step_overhead_s=1e-3, source="test")


@functools.cache
def timer(method: str = "eagle3", gpu: str = "h100", context: int = 4096) -> SpecTimer:
    target, card = load_model("llama-3.1-8b"), find_gpu(gpu)
    plan = plan_deployment(target, card, Parallel(), EngineSettings())
    network = draft_network(method, target)
    draft_plan = plan_deployment(network.model, card, Parallel(), EngineSettings()) if network else None
    return SpecTimer(plan, draft_plan, context, coeffs=COEFFS, costs=COSTS)


def test_eagle3_draft_pass_by_hand() -> None:
    first, later = timer().pass_kernels(1, DraftShape(gamma=3))
    # A later pass at batch 1 reads the whole head: 424,685,568 params x 2 B = 849,371,136 B at 3.35 TB/s x 0.9
    # = 2.81714e-4 s; its one layer's KV: 8 KV heads x 128 x 2 (K, V) x 2 B = 4,096 B per token, 4,096 cached +
    # 1 written = 16,781,312 B at 3.35 TB/s x 0.75 = 6.679e-6 s; one Llama layer's fixed cost 35e-6 s.
    # (Its GEMMs, 2 x 424.7M FLOPs at 989 TFLOP/s x 0.7 = 1.2e-6 s, hide under the weight read.)
    assert later == pytest.approx(2.81714e-4 + 6.679e-6 + 35e-6, rel=2e-3)
    # The first pass runs over gamma + 1 = 4 tokens: the same weights, KV read once plus 4 written.
    assert first == pytest.approx(later, rel=5e-3) and first >= later


def test_vllm_step_is_verify_plus_passes_plus_host_costs() -> None:
    t = timer()
    shape = DraftShape(gamma=3)
    s = t.step(1, shape)
    first, later = t.pass_kernels(1, shape)
    verify, bound = t.verify(1, shape)
    assert s.draft_kernels_s == pytest.approx(first + 2 * later)  # one pass over 4 tokens, two over 1
    assert s.draft_overhead_s == pytest.approx(3 * 0.5e-3)  # 3 passes x h
    assert s.step_overhead_s == pytest.approx(1e-3)
    assert s.spec_step_s == pytest.approx(verify + first + 2 * later + 1.5e-3 + 1e-3)
    # 4 tokens of an 8B model at batch 1 stay memory-bound: verifying costs a decode step (within 0.5 %)
    assert bound == "memory" and verify == pytest.approx(t.target(1), rel=5e-3)


def test_ngram_drafts_for_free_and_verifies_only_matches() -> None:
    t = timer("ngram")
    shape = DraftShape(gamma=3, proposal_rate=1.0)
    s = t.step(4, shape)
    assert s.draft_step_s == 0 and s.step_overhead_s == 0 and s.spec_step_s == s.verify_step_s
    # B p = 4 x 0.5 = 2 sequences verify 4 tokens, 2 verify 1: exactly that step
    half, _ = t.verify(4, DraftShape(gamma=3, proposal_rate=0.5))
    direct = step_cost(t.pm, COEFFS, prefill=[(4096, 4)] * 2 + [(4096, 1)] * 2, sampled_prefills=2 * 4 + 2)
    assert half == pytest.approx(direct.time_s)
    # B p = 1.2: 0.8 of the step with 1 drafting + 0.2 of the step with 2 drafting
    quarter, _ = t.verify(4, DraftShape(gamma=3, proposal_rate=0.25))
    mixed, _ = t.verify(4, DraftShape(gamma=3, proposal_rate=0.3))
    assert mixed == pytest.approx(0.8 * quarter + 0.2 * half)


def test_tree_verifies_its_tokens_and_drafts_topk_per_pass() -> None:
    t = timer()
    chain, tree = DraftShape(gamma=5), DraftShape(gamma=5, topk=4, verify_tokens=8)
    assert chain.tokens_verified == 6 and tree.tokens_verified == 8 and tree.is_tree and not chain.is_tree
    first, later = t.pass_kernels(8, tree)
    assert t.step(8, tree).draft_kernels_s == pytest.approx(first + 4 * later)
    assert later >= t.pass_kernels(8, chain)[1]  # 4 candidates per sequence cost at least one
    assert t.verify(64, tree)[0] >= t.verify(64, chain)[0]
    assert tree.with_gamma(3).tokens_verified == 8 and tree.with_gamma(9).tokens_verified == 10


def test_cost_ratio_drafts_at_c_times_a_decode_step() -> None:
    base = timer()
    t = SpecTimer(base.pm.plan, None, 4096, ratio=0.1, coeffs=COEFFS, costs=COSTS)
    s = t.step(1, DraftShape(gamma=4))
    # 4 passes x 0.1 x t_decode, no engine host costs (Leviathan's c)
    assert s.draft_step_s == pytest.approx(0.4 * t.target(1)) and s.step_overhead_s == 0


def test_engine_costs_are_sourced() -> None:
    assert engine_spec_costs("sglang") is ENGINE_SPEC_COSTS["sglang"]
    assert engine_spec_costs("llamacpp") is ENGINE_SPEC_COSTS["vllm"]
    for costs in ENGINE_SPEC_COSTS.values():
        assert costs.source and costs.pass_overhead_s >= 0 and costs.step_overhead_s >= 0
    assert "20780" in ENGINE_SPEC_COSTS["vllm"].source and "4247" in ENGINE_SPEC_COSTS["sglang"].source


def test_bad_shapes() -> None:
    with pytest.raises(InputError, match="--gamma"):
        DraftShape(gamma=0)
    with pytest.raises(InputError, match="--topk"):
        DraftShape(gamma=2, topk=0)
    with pytest.raises(InputError, match="proposal rate"):
        DraftShape(gamma=2, proposal_rate=1.5)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 7), st.integers(0, 300), st.integers(1, 100))
def test_speedup_non_increasing_beyond_the_crossover(gamma: int, start: int, step: int) -> None:
    # A100, context 256: verification of B (gamma + 1) tokens turns compute-bound and speculation stops paying
    t, acc, shape = timer(gpu="a100-80gb", context=256), resolve_acceptance("eagle3"), DraftShape(gamma=gamma)
    cross = next(b for b in range(1, 400) if _speedup(t, acc, shape, b) < 1)
    b1 = cross + start
    assert _speedup(t, acc, shape, b1 + step) <= _speedup(t, acc, shape, b1) + 1e-9


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.integers(1, 512), st.sampled_from(["eagle", "eagle3", "ngram"]))
def test_speedup_never_exceeds_tokens_per_pass(gamma: int, batch: int, method: str) -> None:
    t, acc = timer(method, context=1024), resolve_acceptance(method)
    e = acc.expected_tokens(gamma)
    assert _speedup(t, acc, DraftShape(gamma=gamma), batch) <= e * (1 + 1e-9)
