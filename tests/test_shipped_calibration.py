"""The shipped calibration (hardware/calibration/<key>.yaml) as the card's default (issue #11), and
`--calibration FILE` on top of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvcalc.calc.perf.defaults import CALIBRATED_CARD_TERMS, KV_BW_EFF, default_coefficients
from kvcalc.sources.calibration import Calibration, shipped_calibration
from kvcalc.sources.hardware import find_gpu, load_gpu_file
from kvcalc.spec.base import replace

ROOT = Path(__file__).resolve().parents[1]


def test_catalogue_attaches_the_shipped_file_to_its_card_only():
    h100 = find_gpu("h100")
    assert h100.calibration is not None
    # hardware/calibration/h100-sxm.yaml: kv_bw_eff 0.9349, gemm bf16 0.687, weight 0.7694, attention 0.4249
    assert (h100.calibration.kv_bw_eff, h100.calibration.weight_bw_eff) == (0.9349, 0.7694)
    assert h100.calibration.gemm_eff["bf16"] == 0.687
    assert "hardware/calibration/h100-sxm.yaml" in h100.calibration.source
    assert find_gpu("a100-80gb").calibration is None  # no file shipped for it
    # a user's --gpu-file is taken as written (no shipped file attached, even under the same stem)
    assert load_gpu_file(ROOT / "hardware" / "h100-sxm.yaml").calibration is None


def test_defaults_take_the_card_terms_that_measure_the_card():
    h100 = find_gpu("h100")
    c = default_coefficients(h100, "vllm")
    assert CALIBRATED_CARD_TERMS == ("kv_bw_eff",)
    assert c.kv_bw_eff == 0.9349  # from the shipped file, not the 0.75 assumption
    assert "hardware/calibration/h100-sxm.yaml" in c.sources["kv_bw_eff"]
    assert "hardware/calibration/h100-sxm.yaml" in c.source
    # the harness's kernel-bound terms stay: copy 0.902 and 8192^3 GEMM 0.716 from hardware/h100-sxm.yaml,
    # attention 0.40. gemm_eff is the large-shape asymptote (calc/perf/shape.py): 0.716 / (s(8192) d(8192))
    # = 0.716 / (8192 / (8192 + 64 x 8192 / 8256) x 8192 / (8192 + 720)) = 0.716 / (0.992308 x 0.919210)
    # = 0.784968; FP8 = x 0.8 = 0.627974
    assert c.weight_bw_eff == 0.902 and c.attention_eff == 0.40
    assert c.gemm_eff["bf16"] == pytest.approx(0.784968, rel=1e-6)
    assert c.gemm_eff["fp8"] == pytest.approx(0.627974, rel=1e-6)
    # engine-level overheads are untouched by the card's file (vLLM: 0.9 ms per step, 35 us per layer)
    assert (c.step_overhead_s, c.layer_overhead_s) == (0.9e-3, 35e-6)
    bare = default_coefficients(replace(h100, calibration=None), "vllm")
    assert bare.kv_bw_eff == KV_BW_EFF == 0.75
    assert "calibration" not in bare.source


def test_calibration_file_overrides_shipped_and_engine_terms():
    h100 = find_gpu("h100")
    user = Calibration(card="x", driver="d", torch="t", date="2026-12-01",
                       values={"kv_bw_eff": 0.5, "weight_bw_eff": 0.8, "step_overhead_s": 0.002})
    c = user.apply(default_coefficients(h100, "vllm"))
    assert (c.kv_bw_eff, c.weight_bw_eff, c.step_overhead_s) == (0.5, 0.8, 0.002)
    assert c.sources["kv_bw_eff"].startswith("calibration")
    # the shipped file passed as --calibration applies all four of its terms
    shipped = shipped_calibration("h100-sxm")
    assert shipped is not None
    full = shipped.apply(default_coefficients(h100, "vllm"))
    assert (full.weight_bw_eff, full.attention_eff, full.gemm_eff["bf16"]) == (0.7694, 0.4249, 0.687)
    assert full.step_overhead_s == 0.9e-3  # the file holds no overheads: the engine's stay


CALIBRATION = """kind: kvcalc-calibration
version: 1
card: NVIDIA H100 80GB HBM3
gpu: h100-sxm
driver: '1'
torch: '2'
date: '2026-12-01'
coefficients:
  weight_bw_eff: 0.45
"""


@pytest.fixture
def calibration_file(tmp_path: Path) -> str:
    path = tmp_path / "h100.yaml"
    path.write_text(CALIBRATION)
    return str(path)


TIMED = ("perf", "batch", "spec", "serve", "plan", "prefix", "paged")


@pytest.mark.parametrize("name", TIMED)
def test_every_command_that_predicts_time_takes_calibration(name: str) -> None:
    from kvcalc.cli.app import click_command

    command = click_command([name]).commands[name]  # type: ignore[attr-defined]
    assert any("--calibration" in p.opts for p in command.params)


def test_calibration_reaches_every_timing(calibration_file: str) -> None:
    import kvcalc
    from kvcalc.spec.workload import TraceRequest

    cal = calibration_file
    assert cal in kvcalc.batch("llama-3.1-8b", input_tokens=500, output_tokens=64, calibration=cal).coefficients_source
    spec = kvcalc.speculative("llama-3.1-8b", method="eagle", calibration=cal)
    assert cal in spec.assumptions["step_model"].value
    served = [kvcalc.serve("llama-3.1-8b", rps=2, input_tokens=500, output_tokens=64, tpot_slo="30ms",
                           calibration=c) for c in (None, cal)]
    assert cal in served[1].coefficients_source
    # weights streamed at 0.45 of 3.35 TB/s instead of 0.902: each decode step is slower, so fewer requests
    # meet the 30 ms TPOT target on one replica
    base, slow = (r.per_replica for r in served)
    assert base is not None and slow is not None and slow.max_concurrency < base.max_concurrency
    fleet = kvcalc.plan_fleet("llama-3.1-8b", rps=2, input_tokens=500, output_tokens=64, gpus="h100",
                              engines="vllm", max_gpus=1, calibration=cal)
    assert cal in fleet.coefficients_source
    prefix = kvcalc.prefix("llama-3.1-8b", prefix_tokens=2000, requests_per_s=5, calibration=cal)
    assert cal in prefix.economics.ttft_source  # type: ignore[union-attr]
    trace = [TraceRequest(id="a", arrival_s=0.0, prompt_tokens=100, output_tokens=4)]
    start, _, _ = kvcalc.paged_trace("llama-3.1-8b", trace=trace, context=8192, calibration=cal)
    assert cal in start.step_source
