"""Advice (calc/advice.py): a search over plans; every suggestion is re-planned and runs the load, and the
engine's refusals are never suggested. Also the max-context search of a plan."""

from __future__ import annotations

import kvcalc
from kvcalc.calc.advice import advise_plan
from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.engines.settings import VllmSettings
from kvcalc.report.fit import FitReport
from kvcalc.sources.hardware import find_gpu
from kvcalc.spec.deployment import Parallel
from tests.conftest import CODELLAMA_7B, build


def _changes(report: FitReport) -> dict[str, str | None]:
    return {a.change: a.note for a in report.advice}


def test_tp_beyond_a_node_is_named_and_pipeline_offered() -> None:
    # Llama-3.1-405B in bf16 (~756 GiB) on H100s (8 per HGX node): tp 16 runs but crosses nodes; 2 stages of
    # tp 8 keep every all-reduce inside a node
    changes = _changes(kvcalc.fit("llama-405b", gpu="h100", context="8K"))
    assert "crosses nodes" in (changes["--tp 16"] or "") and "nodes hold 8" in (changes["--tp 16"] or "")
    assert "--tp 8 --pp 2" in changes


def test_larger_cards_kv_dtype_and_formats_are_offered() -> None:
    # Llama-3.1-70B on one H100 at 8K: the least TP (2), a larger card per vendor (B200; MI300X), a 4-bit format
    changes = _changes(kvcalc.fit("llama-70b", gpu="h100", context="8K"))
    assert {"--tp 2", "--gpu b200", "--gpu mi300x", "--quant awq:4:128"} <= changes.keys()
    # Llama-3.1-8B at 128K on a V100: an FP8 KV cache halves the 16 GiB request; FP8 *weights* are refused on
    # compute capability 7.0 (vLLM's minimum is 7.5), so never offered
    v100 = _changes(kvcalc.fit("llama-3.1-8b", gpu="v100-sxm2-32gb"))
    assert "--kv-dtype fp8" in v100 and not any(c.startswith("--quant fp8") for c in v100)


def test_every_suggestion_runs_the_load_when_planned_again() -> None:
    report = kvcalc.fit("llama-3.1-8b", gpu="h100", context="8K", concurrency=300)
    changes = _changes(report)
    assert {"--tp 8", "--concurrency 55", "--dp 6"} <= changes.keys()
    assert all(a.fits for a in report.advice)
    dp = kvcalc.fit("llama-3.1-8b", gpu="h100", context="8K", concurrency=300, dp=6)
    assert dp.fits and dp.capacity.total_max_concurrency >= 300


def test_refused_context_only_gets_the_derived_length() -> None:
    # vLLM refuses 1M for a 131,072-token model whatever the GPUs: no --tp / --gpu suggestion, only the context
    changes = _changes(kvcalc.fit("llama-70b", gpu="h100", tp=4, context="1M"))
    assert list(changes) == ["--context 131072"]


def test_no_advice_when_it_fits() -> None:
    plan = plan_deployment(build(CODELLAMA_7B), find_gpu("h100"), Parallel(), VllmSettings(), context=8192)
    assert advise_plan(plan, 1, []) == []


def test_max_context_search_by_hand() -> None:
    # a uniform model: a request of L tokens takes ceil(L / 16) blocks, so c requests fit while
    # c x ceil(L / 16) <= usable blocks, i.e. L <= floor(usable / c) x 16. The search must return exactly that.
    plan = plan_deployment(build(CODELLAMA_7B), find_gpu("h100"), Parallel(), VllmSettings(), context=16384)
    usable = plan.kv_pool.usable_blocks
    assert usable == plan.kv_pool.num_blocks - 1  # vLLM >= 0.25 reserves the null block
    for c in (1, 3, 7, 64):
        best = plan.max_context_at(c, 10**9)
        assert best == usable // c * 16
        assert plan.blocks_per_request(best) * c <= usable < plan.blocks_per_request(best + 1) * c
