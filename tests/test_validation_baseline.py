"""docs/validation.md's timing tables: "before" is kvcalc's defaults without any calibration file (the shipped
hardware/calibration/h100-sxm.yaml must not move the baseline it is measured against), and the tables in the
doc are what docs/dev/gpu_verify_report.py prints from the committed raw record."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from pathlib import Path
from types import ModuleType

import pytest

from kvcalc.sources.hardware import find_gpu

ROOT = Path(__file__).resolve().parents[1]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_verify_report", ROOT / "docs" / "dev" / "gpu_verify_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_before_is_the_defaults_without_any_calibration_file() -> None:
    h100 = find_gpu("h100")
    assert h100.calibration is not None and h100.calibration.kv_bw_eff == 0.9349  # the catalogue attaches it
    before = _script().uncalibrated_coefficients(h100)
    # calc/perf/defaults.py with no file: KV_BW_EFF 0.75 assumed (not the shipped 0.9349), weights the hardware
    # file's hbm_copy 0.902, attention 0.40, vLLM's 35 us per layer in a CUDA graph; the harness has no
    # scheduler, sampler or front end, so those three are 0
    assert before.kv_bw_eff == 0.75
    assert (before.weight_bw_eff, before.attention_eff, before.layer_overhead_s) == (0.902, 0.40, 35e-6)
    assert (before.step_overhead_s, before.request_overhead_s, before.frontend_latency_s) == (0.0, 0.0, 0.0)
    assert "calibration" not in before.source


@pytest.fixture(scope="module")
def printed() -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        _script().main([str(ROOT / "docs" / "validation-h100.json")])
    return out.getvalue()


def test_the_doc_holds_the_tables_the_script_prints(printed: str) -> None:
    doc = (ROOT / "docs" / "validation.md").read_text(encoding="utf-8")
    assert "without any calibration file (weight reads 0.902, KV reads 0.75" in printed
    rows = [line for line in printed.splitlines() if line.startswith("| ")]
    assert len(rows) > 100
    stale = [line for line in rows if line not in doc]
    assert not stale, f"docs/validation.md differs from gpu_verify_report.py: {stale[:3]}"


def test_before_prose_matches_the_table(printed: str) -> None:
    # the prose quotes the per-model TPOT medians before calibration as a range: lowest and highest of the table
    medians = [float(m) for m in re.findall(r"^\| [\w.-]+ \| (?:yes|no) \| ([\d.]+) %", printed, re.M)]
    assert len(medians) == 10
    doc = (ROOT / "docs" / "validation.md").read_text(encoding="utf-8")
    assert f"decode within {min(medians):.1f}-{max(medians):.0f} % median per model" in doc
