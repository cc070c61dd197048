"""`kvcalc plan`: the search space, pruning, the Pareto front, the cheapest plan and its launch command."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest

from kvcalc.calc.serving.search import layouts
from kvcalc.sources.resolve import load_model
from kvcalc.spec.deployment import Parallel

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "160"}
PLAN = ("plan", "llama-70b", "--rps", "12", "--input", "2k", "--output", "300", "--ttft-slo", "1s",
        "--tpot-slo", "60ms")


def kvcalc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvcalc", *args], capture_output=True, text=True, env=ENV,
                          timeout=180)


@pytest.fixture(scope="module")
def doc() -> dict:
    r = kvcalc(*PLAN, "--gpus", "h100,a100-80gb,l40s", "--quant", "bf16,fp8", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_layouts_tp_within_a_node_then_pp() -> None:
    # Llama-70B (64 heads, 8 KV heads): 1, 2, 4, 8 GPUs as TP; 16 as TP 8 x PP 2
    assert layouts(load_model("llama-70b"), 16) == [Parallel(tp=1), Parallel(tp=2), Parallel(tp=4), Parallel(tp=8),
                                                    Parallel(tp=8, pp=2)]
    # an MoE model also tries ep = tp from 2 GPUs up
    moe = layouts(load_model("qwen3-30b-a3b"), 4)
    assert moe == [Parallel(tp=1), Parallel(tp=2), Parallel(tp=2, ep=2), Parallel(tp=4), Parallel(tp=4, ep=4)]


def test_json_contract(doc: dict) -> None:
    assert doc["plans"] and doc["best"] == doc["plans"][0]
    for p in doc["plans"]:
        assert {"gpu", "count", "parallel", "quant", "engine", "cost_per_million_tokens", "tpot_s", "ttft_s",
                "launch"} <= p.keys()
        assert p["tpot_s"] <= 0.060 and p["ttft_s"] <= 1.0
        assert p["launch"].startswith(("vllm serve meta-llama/Llama-3.1-70B",
                                       "python -m sglang.launch_server --model-path meta-llama/Llama-3.1-70B"))
    # 3 GPUs x 5 layouts x 2 formats x 2 engines = 60 layouts searched
    assert doc["searched"] == 60 and doc["feasible"] >= len(doc["plans"])


def test_front_is_sorted_and_non_dominated(doc: dict) -> None:
    plans = doc["plans"]
    costs = [p["cost_per_million_tokens"] for p in plans]
    tpots = [p["tpot_s"] for p in plans]
    assert costs == sorted(costs)
    assert all(b < a for a, b in itertools.pairwise(tpots))  # each dearer plan buys a lower TPOT


def test_weights_that_cannot_fit_are_pruned_before_planning(doc: dict) -> None:
    # bf16 Llama-70B (141 GB) cannot fit one 80 GB or 48 GB card, nor two L40S: pruned before planning
    assert doc["planned"] < doc["searched"]
    assert not any(p["quant"] == "bf16" and p["count"] == 1 for p in doc["plans"])


def test_cheaper_price_wins(doc: dict) -> None:
    r = kvcalc(*PLAN, "--gpus", "h100,a100-80gb,l40s", "--quant", "bf16,fp8", "--price", "l40s=0.01", "--json")
    best = json.loads(r.stdout)["best"]
    assert best["gpu"] == "l40s" and best["price_source"].startswith("$0.01/GPU-h (override")
    assert best["cost_per_million_tokens"] < doc["best"]["cost_per_million_tokens"]


def test_unpriced_gpu_is_skipped_with_a_warning() -> None:
    r = kvcalc(*PLAN, "--gpus", "h100,rtx-3090", "--quant", "fp8", "--engines", "vllm", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert "rtx-3090" in doc["skipped"] and "--price rtx-3090=" in r.stderr
    assert {p["gpu"] for p in doc["plans"]} == {"h100-sxm"}


def test_nothing_meets_the_targets_exit_1() -> None:
    r = kvcalc(*PLAN[:-2], "--tpot-slo", "1ms", "--gpus", "l40s", "--engines", "vllm", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["best"] is None and doc["plans"] == [] and doc["reason"]


@pytest.mark.parametrize(("args", "needle"), [(("--engines", "trtllm"), "--engines"),
                                              (("--gpus", "h999"), "unknown GPU"),
                                              (("--quant", "fp7"), "fp7")])
def test_bad_input_exit_2(args: tuple[str, ...], needle: str) -> None:
    r = kvcalc(*PLAN, *args, "--json")
    assert r.returncode == 2 and r.stdout == "" and needle in r.stderr


def test_default_catalogue_search_time_is_reported() -> None:
    r = kvcalc(*PLAN, "--json")
    doc = json.loads(r.stdout)
    # 5 GPUs x 5 layouts x 1 format x 2 engines; the timing is measured, not asserted tightly (shared CI)
    assert doc["searched"] == 50 and 0 < doc["search_s"] < 10


def test_best_plan_agrees_with_kvcalc_serve(doc: dict) -> None:
    best = doc["best"]
    assert best["capacity_model"] == "perf"
    quant = best["quant"].split(":")[0]
    r = kvcalc("serve", "llama-70b", "--rps", "12", "--input", "2k", "--output", "300", "--ttft-slo", "1s",
               "--tpot-slo", "60ms", "--gpu", best["gpu"], "--tp", str(best["parallel"]["tp"]), "--pp",
               str(best["parallel"]["pp"]), "--quant", quant, "--engine", best["engine"], "--json")
    served = json.loads(r.stdout)
    assert served["per_replica"]["max_concurrency"] == best["max_concurrency"]
    assert served["replicas"] == best["replicas"]
    assert served["cost"]["per_million_tokens"] == pytest.approx(best["cost_per_million_tokens"])
    assert served["launch"]["command"] == best["launch"]


@pytest.mark.parametrize("hint", [1, 40, 94, 150, 500])
def test_confirmation_finds_the_perf_searchs_answer_from_any_hint(hint: int) -> None:
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.calc.perf.defaults import default_coefficients
    from kvcalc.calc.perf.model import perf_model
    from kvcalc.calc.perf.slo import max_concurrency_under_slo
    from kvcalc.calc.serving.replica import confirmed_capacity
    from kvcalc.sources.hardware import find_gpu
    from kvcalc.spec.deployment import EngineSettings

    gpu = find_gpu("h100")
    plan = plan_deployment(load_model("llama-70b"), gpu, Parallel(tp=4), EngineSettings(), context=2300)
    pm, coeffs = perf_model(plan), default_coefficients(gpu, "vllm")
    slo = max_concurrency_under_slo(pm, coeffs, 2000, 300, 1.0, 0.060)
    cap = confirmed_capacity(pm, coeffs, 2000, 300, 1.0, 0.060, hint=hint)
    assert cap is not None and (cap.max_concurrency, cap.limit) == (slo.max_concurrency, slo.binding)
    assert cap.tpot_s == pytest.approx(slo.tpot_s)
