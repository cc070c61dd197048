"""Calibration files: perf coefficients measured on one card (`kvcalc verify` writes them, `--calibration`
reads them).

    kind: kvcalc-calibration
    version: 1
    card: "NVIDIA H100 80GB HBM3"          # as the driver names it
    gpu: h100-sxm                          # hardware file key (optional)
    engine: vllm                           # engine the overheads were measured with (optional)
    driver: "580.159.04"
    torch: "2.11.0+cu130"
    date: "2026-11-28"
    command: "kvcalc verify ..."           # how to reproduce (optional)
    coefficients:                          # any subset of PerfCoefficients' fields; the rest stay default
      weight_bw_eff: 0.88
      gemm_eff: {bf16: 0.72, fp8: 0.63}
      step_overhead_s: 0.0012

Read with `yaml.safe_load`; every problem is one InputError naming the file and the field. Written
atomically: a temporary file in the same folder, then `os.replace`, so a reader never sees half a file.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvcalc.errors import InputError
from kvcalc.spec.base import record, replace

if TYPE_CHECKING:
    from kvcalc.calc.perf.coefficients import PerfCoefficients
    from kvcalc.spec.gpu import CardCalibration

KIND = "kvcalc-calibration"
VERSION = 1
_META_REQUIRED = ("card", "driver", "torch", "date")
_META_OPTIONAL = ("gpu", "engine", "command")
#: Coefficient -> (lowest, highest) accepted: efficiencies are fractions of a datasheet ceiling (a little
#: above 1 where real clocks beat the rated boost), fixed costs are seconds.
_RANGES: dict[str, tuple[float, float]] = {
    "weight_bw_eff": (0.01, 1.5), "kv_bw_eff": (0.01, 1.5), "attention_eff": (0.01, 1.5),
    "comm_bw_eff": (0.01, 1.5), "layer_overhead_s": (0.0, 0.1), "step_overhead_s": (0.0, 1.0),
    "request_overhead_s": (0.0, 0.1), "comm_latency_s": (0.0, 0.1), "frontend_latency_s": (0.0, 10.0),
    "moe_gemm_eff": (0.01, 1.5), "gemm_rows_half": (0.0, 4096.0), "gemm_rows_min": (1.0, 256.0),
    "gemm_depth_half": (0.0, 65536.0),
    "overlap_loss": (0.0, 1.0),
}
_GEMM_DTYPES = ("bf16", "fp16", "fp8", "int8", "fp4")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@record
class Calibration:
    """A calibration file's metadata and the coefficients it measured (`values`: a subset of
    PerfCoefficients' fields)."""

    card: str
    driver: str
    torch: str
    date: str
    values: dict[str, Any]
    gpu: str | None = None
    engine: str | None = None
    command: str | None = None
    path: str = ""

    def describe(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"calibration{where}: {self.card}, driver {self.driver}, torch {self.torch}, {self.date}"

    def apply(self, base: PerfCoefficients) -> PerfCoefficients:
        """`base` with every measured value replaced; `sources` names this file for those."""
        sources = dict(base.sources)
        changes: dict[str, Any] = {}
        for name, value in self.values.items():
            if name == "gemm_eff":
                changes[name] = {**base.gemm_eff, **value}
            else:
                changes[name] = value
            sources[name] = self.describe()
        return replace(base, **changes, sources=sources, source=self.describe())


def _number(path: Path, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{path}: field 'coefficients.{name}': expected a number, got {value!r}")
    return float(value)


def _check_value(path: Path, name: str, value: Any) -> Any:
    if name == "gemm_eff":
        if not isinstance(value, dict) or not value:
            raise InputError(f"{path}: field 'coefficients.gemm_eff': expected a mapping dtype -> fraction "
                             f"({', '.join(_GEMM_DTYPES)})")
        out = {}
        for dtype, eff in value.items():
            if dtype not in _GEMM_DTYPES:
                raise InputError(f"{path}: field 'coefficients.gemm_eff.{dtype}': unknown dtype; use "
                                 f"{', '.join(_GEMM_DTYPES)}")
            number = _number(path, f"gemm_eff.{dtype}", eff)
            if not 0.01 <= number <= 1.5:
                raise InputError(f"{path}: field 'coefficients.gemm_eff.{dtype}': {number} is outside 0.01-1.5")
            out[dtype] = number
        return out
    if name not in _RANGES:
        raise InputError(f"{path}: field 'coefficients.{name}': unknown coefficient; known: "
                         f"{', '.join(sorted([*_RANGES, 'gemm_eff']))}")
    number = _number(path, name, value)
    low, high = _RANGES[name]
    if not low <= number <= high:
        raise InputError(f"{path}: field 'coefficients.{name}': {number} is outside {low}-{high}")
    return number


def parse_calibration(data: Any, path: Path) -> Calibration:
    """Validate a loaded mapping into a Calibration (InputError on the first problem)."""
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping with kind: {KIND}, got {type(data).__name__}")
    if data.get("kind") != KIND:
        raise InputError(f"{path}: field 'kind': expected '{KIND}', got {data.get('kind')!r}")
    if data.get("version") != VERSION:
        raise InputError(f"{path}: field 'version': expected {VERSION}, got {data.get('version')!r}")
    known = {"kind", "version", "coefficients", *_META_REQUIRED, *_META_OPTIONAL}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{path}: field '{unknown[0]}': unknown field")
    for name in _META_REQUIRED:
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise InputError(f"{path}: field '{name}': required text (card, driver, torch and date say what "
                             "was measured)")
    if not _DATE_RE.match(data["date"]):
        raise InputError(f"{path}: field 'date': expected YYYY-MM-DD, got {data['date']!r}")
    coefficients = data.get("coefficients")
    if not isinstance(coefficients, dict) or not coefficients:
        raise InputError(f"{path}: field 'coefficients': expected a non-empty mapping of measured values")
    values = {str(k): _check_value(path, str(k), v) for k, v in coefficients.items()}
    def optional(name: str) -> str | None:
        return str(data[name]) if data.get(name) is not None else None

    return Calibration(card=data["card"], driver=data["driver"], torch=data["torch"], date=data["date"],
                       values=values, path=str(path), gpu=optional("gpu"), engine=optional("engine"),
                       command=optional("command"))


def load_calibration(path: str | Path, *, shipped: bool = False) -> Calibration:
    """Read and validate a calibration file: bounded, yaml's safe loader (`sources.untrusted`); a `shipped`
    one (hardware/calibration/) through the data cache, so `perf` does not import yaml."""
    from kvcalc.bounds import MAX_YAML_FILE_BYTES

    path = Path(path)
    if shipped:
        from kvcalc.sources.datacache import load_yaml_file

        return parse_calibration(load_yaml_file(path, "calibration file"), path)
    from kvcalc.sources.untrusted import parse_yaml, read_text

    return parse_calibration(parse_yaml(read_text(path, MAX_YAML_FILE_BYTES, "calibration file"), str(path)), path)


def calibration_document(calibration: Calibration) -> dict[str, Any]:
    """The mapping a calibration file holds (what `write_calibration` dumps), in plain YAML types: metadata as
    str (torch's `__version__` is a str subclass, which PyYAML's safe dumper refuses), coefficients as float
    (numpy scalars from a fit likewise)."""
    doc: dict[str, Any] = {"kind": KIND, "version": VERSION}
    for name in (*_META_REQUIRED, *_META_OPTIONAL):
        value = getattr(calibration, name)
        if value is not None:
            doc[name] = str(value)
    doc["coefficients"] = {str(k): _plain(v) for k, v in calibration.values.items()}
    return doc


def _plain(value: Any) -> Any:
    """A real number (numpy scalars included, bool not) as float, a mapping's values likewise (gemm_eff);
    anything else as it is, for `parse_calibration` to refuse with its own message."""
    from numbers import Real

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Real) and not isinstance(value, bool):
        return float(value)
    return value


def write_calibration(path: str | Path, calibration: Calibration) -> Path:
    """Validate and write `calibration` atomically (temporary file in the same folder + os.replace)."""
    import yaml

    from kvcalc.sources.atomic import write_atomic

    path = Path(path)
    doc = calibration_document(calibration)
    parse_calibration(doc, path)  # never write a file that would not load
    return write_atomic(path, yaml.safe_dump(doc, sort_keys=False))


def calibration_dir() -> Path:
    """Where the shipped calibration files live: `hardware/calibration/` (source tree or installed copy)."""
    from kvcalc.sources.profiles import data_dir

    return data_dir("hardware") / "calibration"


def shipped_calibration(gpu_key: str) -> Calibration | None:
    """The calibration measured by `kvcalc verify` on this card and shipped as `hardware/calibration/<key>.yaml`
    (the default for that card), or None when there is none. Parsed through the data cache (no PyYAML import
    once cached: the hardware catalogue reads it for every card it loads)."""
    path = calibration_dir() / f"{gpu_key}.yaml"
    if not path.is_file():
        return None
    calibration = load_calibration(path, shipped=True)
    return replace(calibration, path=f"hardware/calibration/{gpu_key}.yaml")


def card_calibration(calibration: Calibration) -> CardCalibration:
    """The card-level efficiencies of a calibration (what GpuSpec.calibration carries; overheads stay out)."""
    from kvcalc.spec.gpu import CardCalibration

    values = calibration.values
    return CardCalibration(
        source=calibration.describe(), weight_bw_eff=values.get("weight_bw_eff"), kv_bw_eff=values.get("kv_bw_eff"),
        attention_eff=values.get("attention_eff"), gemm_eff=dict(values.get("gemm_eff", {})),
    )
