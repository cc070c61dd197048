"""The whole measurement on the CPU build of torch (tiny model): the raw record's shape, and the report built
from it agrees with kvcalc on every byte; on a CUDA machine the same suite runs on the GPU (skipped in CI)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from kvcalc.bench.suite import RAW_SCHEMA, SuiteOptions, run_suite  # noqa: E402
from kvcalc.calc.deploy import plan_deployment  # noqa: E402
from kvcalc.calc.perf.defaults import default_coefficients  # noqa: E402
from kvcalc.calc.weights import PlainFormat  # noqa: E402
from kvcalc.report.verify import verify_report  # noqa: E402
from kvcalc.sources.hardware import find_gpu  # noqa: E402
from kvcalc.spec.deployment import EngineSettings, Parallel  # noqa: E402
from tests.test_bench_modules import tiny  # noqa: E402

SMALL = SuiteOptions(stack=1, batches=(1, 2), contexts=(64,), prompts=(16, 32), attention_lengths=(32,),
                     decode_runs=2, prefill_runs=2, hf_layers=1, ceilings=False)


def _run(name: str, device: str) -> tuple[dict, object]:  # type: ignore[type-arg]
    model = tiny(name)
    plan = plan_deployment(model, find_gpu("h100"), Parallel(), EngineSettings(), weight_format=PlainFormat("bf16"),
                           context=4096)
    card = {"name": "cpu", "driver": "", "torch": torch.__version__, "date": "2026-12-06", "sm_count": 1,
            "l2_cache_bytes": 0}
    return run_suite(plan, SMALL, device=device, card=card), plan


@pytest.mark.parametrize("name", ["deepseek_v2", "gpt_oss"])
def test_suite_on_cpu_agrees_on_bytes(name: str) -> None:
    raw, plan = _run(name, "cpu")
    assert raw["schema"] == RAW_SCHEMA and raw["notes"] == []
    assert {r["batch"] for r in raw["decode"]["stack"]} == {1, 2}
    report, fit = verify_report(raw, plan, default_coefficients(plan.gpu))  # type: ignore[arg-type]
    by = {}
    for r in report.records:
        by.setdefault(r.quantity, []).append(r)
    for quantity in ("weights_bytes", "weights_globals_bytes", "kv_cache_bytes", "kv_pool_bytes"):
        assert by[quantity] and all(r.error_pct == 0 for r in by[quantity]), quantity
    assert len(by["decode_step_s"]) == 2 and len(by["prefill_s"]) == 2
    assert fit is not None and report.calibration is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_suite_on_the_gpu() -> None:
    from kvcalc.bench.selfcheck import run_checks

    assert all(e < 2e-2 for e in run_checks([tiny("deepseek_v2"), tiny("gpt_oss")], "cuda").values())
    raw, plan = _run("qwen3_moe", "cuda")
    assert raw["notes"] == [] and all(r["graph"] for r in raw["decode"]["stack"])
    report, _ = verify_report(raw, plan, default_coefficients(plan.gpu))  # type: ignore[arg-type]
    assert all(r.error_pct == 0 for r in report.records if r.quantity == "kv_cache_bytes")


def test_attention_rows_on_cpu_say_how_they_were_timed() -> None:
    from kvcalc.bench.attention import FLASH_RUNS, measure_attention

    rows = measure_attention(2, 64, [128], "cpu", runs=2)["rows"]
    flash, math = rows
    # flash: fresh inputs, FLASH_RUNS runs (graph replays on CUDA, eager here); math: eager, `runs` runs
    assert (flash["backend"], flash["graph"], flash["runs"]) == ("flash", False, FLASH_RUNS)
    assert (math["backend"], math["graph"], math["runs"]) == ("math", False, 2)
    assert 0 < flash["min_s"] <= flash["median_s"] <= flash["max_s"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_flash_attention_is_timed_as_graph_replays_on_the_gpu() -> None:
    from kvcalc.bench.attention import measure_attention

    flash = measure_attention(8, 128, [1024], "cuda")["rows"][0]
    assert flash["backend"] == "flash" and flash["graph"] is True


def test_graph_or_eager_runs_eagerly_off_cuda() -> None:
    from kvcalc.bench.timing import time_graph_or_eager

    calls = []
    timing, graph = time_graph_or_eager(lambda: calls.append(1), refresh=None, device="cpu", warmup=2, runs=3)
    assert graph is False and timing.runs == 3 and len(calls) == 5  # 2 warm-up + 3 timed, no capture
