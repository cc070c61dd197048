"""Calibration files: load, validate, apply, write atomically (kvcalc/sources/calibration.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvcalc.calc.perf.defaults import default_coefficients
from kvcalc.errors import InputError
from kvcalc.sources.calibration import Calibration, load_calibration, write_calibration
from kvcalc.sources.hardware import find_gpu
from kvcalc.spec.base import replace

GOOD = """\
kind: kvcalc-calibration
version: 1
card: "NVIDIA H100 80GB HBM3"
gpu: h100-sxm
driver: "580.159.04"
torch: "2.11.0+cu130"
date: "2026-11-28"
coefficients:
  weight_bw_eff: 0.88
  gemm_eff: {fp8: 0.61}
  step_overhead_s: 0.0012
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cal.yaml"
    path.write_text(text)
    return path


def test_load_and_apply_replaces_only_measured_values(tmp_path):
    cal = load_calibration(_write(tmp_path, GOOD))
    assert cal.card == "NVIDIA H100 80GB HBM3" and cal.date == "2026-11-28"
    base = default_coefficients(find_gpu("h100"))
    applied = cal.apply(base)
    assert applied.weight_bw_eff == 0.88
    assert applied.step_overhead_s == 0.0012
    assert applied.gemm_eff["fp8"] == 0.61
    assert applied.gemm_eff["bf16"] == base.gemm_eff["bf16"]  # not measured: default kept
    assert applied.kv_bw_eff == base.kv_bw_eff
    assert "580.159.04" in applied.sources["weight_bw_eff"]
    assert applied.sources["kv_bw_eff"] == base.sources["kv_bw_eff"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("weight_bw_eff: 0.88", "weight_bw_eff: 3.0"), "outside"),
        (("weight_bw_eff: 0.88", "weight_bw_eff: fast"), "expected a number"),
        (("weight_bw_eff: 0.88", "warp_speed: 0.88"), "unknown coefficient"),
        (("fp8: 0.61", "fp9: 0.61"), "unknown dtype"),
        (('date: "2026-11-28"', 'date: "yesterday"'), "YYYY-MM-DD"),
        (('driver: "580.159.04"\n', ""), "'driver'"),
        (("kind: kvcalc-calibration", "kind: something"), "'kind'"),
        (("version: 1", "version: 7"), "'version'"),
        (("step_overhead_s: 0.0012", "step_overhead_s: -1"), "outside"),
    ],
)
def test_bad_files_are_input_errors(tmp_path, change, message):
    with pytest.raises(InputError, match=message):
        load_calibration(_write(tmp_path, GOOD.replace(*change)))


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="not valid YAML"):
        load_calibration(_write(tmp_path, "kind: [unclosed"))
    with pytest.raises(InputError, match="cannot read"):
        load_calibration(tmp_path / "absent.yaml")
    with pytest.raises(InputError, match="expected a mapping"):
        load_calibration(_write(tmp_path, "- a list\n"))


def test_write_round_trip_is_atomic(tmp_path):
    cal = Calibration(card="NVIDIA H100 80GB HBM3", driver="580", torch="2.11", date="2026-11-28",
                      values={"kv_bw_eff": 0.7, "gemm_eff": {"bf16": 0.7}}, engine="vllm")
    path = write_calibration(tmp_path / "h100.yaml", cal)
    again = load_calibration(path)
    assert again.values == cal.values and again.engine == "vllm"
    assert [p.name for p in tmp_path.iterdir()] == ["h100.yaml"]  # no temporary file left behind


def test_write_takes_torch_version_objects_and_numpy_scalars(tmp_path):
    """On a GPU, `verify --calibration-out` passed torch.__version__ (a str subclass, TorchVersion) and PyYAML's
    safe dumper refused it: exit 70 on the first real run. Metadata is written as str, coefficients as float."""
    import numpy as np

    class TorchVersion(str):  # what torch.__version__ is
        pass

    cal = Calibration(card="NVIDIA H100 80GB HBM3", driver="580.159.04", torch=TorchVersion("2.11.0+cu130"),
                      date="2026-12-07", values={"kv_bw_eff": np.float64(0.93), "gemm_eff": {"bf16": np.float32(0.5)}})
    again = load_calibration(write_calibration(tmp_path / "h100.yaml", cal))
    assert again.torch == "2.11.0+cu130" and type(again.torch) is str
    assert again.values == {"kv_bw_eff": 0.93, "gemm_eff": {"bf16": 0.5}}
    # only numbers are converted: a string or a bool is still refused by the validator, not written as a float
    for bad in ("0.9", True, None):
        with pytest.raises(InputError):
            write_calibration(tmp_path / "bad.yaml", replace(cal, values={"kv_bw_eff": bad}))


def test_write_refuses_invalid(tmp_path):
    bad = Calibration(card="x", driver="1", torch="2", date="2026-11-28", values={"kv_bw_eff": 9.0})
    with pytest.raises(InputError):
        write_calibration(tmp_path / "bad.yaml", bad)
    assert not list(tmp_path.iterdir())
