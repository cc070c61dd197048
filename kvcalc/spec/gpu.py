"""One accelerator as kvcalc sees it: memory, bandwidth, dense peaks, caches, links and price.

Units everywhere: bytes (integers; GiB = 2**30), bytes/s (decimal, as vendors print: 1 TB/s = 1e12 B/s),
FLOP/s **dense** (no 2:4 structured sparsity; datasheets that print sparse figures are halved) and, for int8,
OP/s. The numbers come from `hardware/<key>.yaml`, where each one cites its datasheet.
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import Annotated, Literal

from kvcalc.bounds import MAX_BYTES, MAX_RATE
from kvcalc.errors import InputError
from kvcalc.spec.base import record
from kvcalc.spec.validate import Check, Gt, Le, MinLen

#: Dtypes a peak can be listed for. int8 is in OP/s; fp32 is the vector (non-tensor-core) rate.
PeakDtype = Literal["bf16", "fp16", "fp8", "fp4", "int8", "tf32", "fp32"]
PEAK_DTYPES: tuple[str, ...] = ("bf16", "fp16", "fp8", "fp4", "int8", "tf32", "fp32")

# Other spellings of the same element types (torch / HF config / ggml / engine names).
_DTYPE_ALIASES: dict[str, str] = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "f16": "fp16",
    "float32": "fp32",
    "float": "fp32",
    "f32": "fp32",
    "fp8_e4m3": "fp8",
    "fp8_e5m2": "fp8",
    "float8": "fp8",
    "nvfp4": "fp4",
    "mxfp4": "fp4",
}

# Dates are ISO 8601, as precise as the source: "2026", "2026-06" or "2026-05-22".
_DATE_RE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9._+-]*$")

# Bounded (kvcalc.bounds): byte counts and rates above 2^60 / 1e18 are typos or hostile input, not hardware.
PositiveInt = Annotated[int, Gt(0), Le(MAX_BYTES)]
PositiveFloat = Annotated[float, Gt(0), Le(MAX_RATE), Check(lambda v: _finite(v))]


def normalize_dtype(dtype: str) -> str:
    """`bfloat16` -> `bf16`, `float16` -> `fp16`, `fp8_e4m3` -> `fp8`; other names come back lower-cased."""
    key = dtype.strip().lower().replace("torch.", "")
    return _DTYPE_ALIASES.get(key, key)


def _finite(value: float) -> None:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("Input should be a finite number")


def _check_date(value: str) -> None:
    if not _DATE_RE.match(value):
        raise ValueError(f"date '{value}' is not ISO 8601 (YYYY, YYYY-MM or YYYY-MM-DD)")


def _check_key(value: str) -> None:
    if not _KEY_RE.match(value):
        raise ValueError(f"key '{value}' must be lower-case letters, digits, '.', '_', '+' or '-'")


def _check_aliases(value: list[str]) -> None:
    for alias in value:
        if not alias or alias != alias.strip().lower():
            raise ValueError(f"alias '{alias}' must be lower-case with no surrounding spaces")
    if len(set(value)) != len(value):
        raise ValueError("aliases repeat a name")


IsoDate = Annotated[str, Check(_check_date)]
NonEmptyStr = Annotated[str, MinLen(1)]


@record
class Interconnect:
    """GPU-to-GPU and host links, each **per direction** (a ring all-reduce moves data both ways at once).

    Marketing figures are usually the bidirectional total ("NVLink 900 GB/s" = 450e9 B/s per direction).
    A card without a scale-up fabric (L40S, GeForce) talks to its peers over PCIe: then both fields hold the
    PCIe rate.
    """

    name: NonEmptyStr
    bytes_per_s_per_direction: PositiveInt
    """Scale-up link (NVLink, Infinity Fabric ...) per GPU, bytes/s in one direction."""
    pcie_bytes_per_s_per_direction: PositiveInt
    """Host link, bytes/s in one direction (PCIe Gen4 x16 = 32e9, Gen5 x16 = 64e9)."""


#: How a price was offered: `on-demand` (a cloud's list price for a dedicated instance, billed while it runs),
#: `serverless` (a per-second list price billed only while a worker runs), `marketplace` (a host-set live rate
#: on a marketplace such as Vast.ai), `market-survey` (a median or index over many providers).
PriceKind = Literal["on-demand", "serverless", "marketplace", "market-survey"]


@record
class Price:
    """A reference price for one GPU for one hour, with its date, the kind of offer and the source that stated
    it (a cloud list price or a dated survey; the source text says which provider and page)."""

    usd_per_gpu_hour: PositiveFloat
    date: IsoDate
    source: NonEmptyStr
    kind: PriceKind = "on-demand"


@record
class MeasuredEfficiency:
    """A measurement on a real card: `value` is the measured rate as a fraction of the datasheet peak."""

    quantity: NonEmptyStr
    """What was measured, e.g. `bf16_gemm` (dense matmul FLOP/s) or `hbm_copy` (device-to-device copy B/s)."""
    value: PositiveFloat
    """Measured / datasheet peak (dimensionless; may exceed 1 where real clocks beat the rated boost)."""
    date: IsoDate
    card: NonEmptyStr
    """The card and software it ran on, as the driver names them (`NVIDIA H100 80GB HBM3, torch 2.11`)."""
    command: NonEmptyStr
    """How to reproduce it, including the raw measured figure."""


@record
class CardCalibration:
    """Efficiencies `kvcalc verify` measured on this card and shipped as `hardware/calibration/<key>.yaml`
    (attached when the catalogue loads the card): fractions of the datasheet ceilings. Which of them the perf
    defaults use is decided in `kvcalc.calc.perf.defaults` (CALIBRATED_CARD_TERMS)."""

    source: NonEmptyStr
    """The file and what it measured on: path, card, driver, torch, date."""
    weight_bw_eff: PositiveFloat | None = None
    kv_bw_eff: PositiveFloat | None = None
    attention_eff: PositiveFloat | None = None
    gemm_eff: dict[PeakDtype, PositiveFloat] = field(default_factory=dict)


@record
class GpuSpec:
    """An accelerator (GPU, Apple SoC GPU, Gaudi ...) and the numbers kvcalc's formulas need.

    All byte counts are bytes, bandwidths bytes/s, peaks FLOP/s dense (not sparse).
    """

    name: NonEmptyStr
    """Display name, e.g. "NVIDIA H100 SXM5 80GB"."""
    key: Annotated[str, Check(_check_key)]
    """File stem of `hardware/<key>.yaml`, e.g. "h100-sxm"."""
    aliases: Annotated[list[str], Check(_check_aliases)] = field(default_factory=list)
    """Other lower-case names that resolve to this entry ("h100", "h100-sxm5")."""
    vendor: NonEmptyStr
    kind: Literal["datacenter", "workstation", "consumer", "apple", "cpu"]
    memory_bytes: PositiveInt
    """Nominal capacity in bytes; vendor "80 GB" of HBM/GDDR is 80 GiB = 85,899,345,920 bytes."""
    usable_memory_bytes: PositiveInt
    """What the driver hands out in total: torch `mem_get_info()[1]` (= `total_memory`) on CUDA and ROCm;
    on Apple the default GPU wired-memory limit (Metal `recommendedMaxWorkingSetSize`)."""
    memory_bandwidth_bytes_per_s: PositiveInt
    """Vendor peak DRAM bandwidth, bytes/s (decimal)."""
    peak_flops: dict[PeakDtype, PositiveFloat]
    """Dense peak FLOP/s (int8: OP/s) per dtype; a dtype is absent when the chip has no such path."""
    architecture: str | None = None
    """Compute target: `sm_90` (NVIDIA, compute capability 9.0), `gfx942` (AMD), `apple-m4`, `gaudi3`.
    Engines choose kernels and refuse formats by it (calc/engines/platforms.py)."""
    node_gpus: PositiveInt | None = None
    """GPUs one node holds over its scale-up links (8 per HGX; 72 in a GB200 NVL72 NVLink domain): a tensor-
    parallel group larger than this crosses nodes."""
    sm_count: PositiveInt | None = None
    """NVIDIA SMs / AMD CUs / Apple GPU cores."""
    sram_per_sm_bytes: PositiveInt | None = None
    """Largest shared memory (NVIDIA) / LDS (AMD) one SM or CU can give a kernel, bytes."""
    l2_cache_bytes: PositiveInt | None = None
    interconnect: Interconnect | None = None
    price: Price | None = None
    measured: list[MeasuredEfficiency] = field(default_factory=list)
    calibration: CardCalibration | None = None
    """The shipped calibration of this card (hardware/calibration/<key>.yaml), None when there is none."""
    sources: Annotated[list[str], MinLen(1)]
    """Datasheets and documents the numbers come from (URLs or repo@commit paths)."""

    def __post_init__(self) -> None:
        if self.usable_memory_bytes > self.memory_bytes * 1.1:
            raise ValueError(
                f"usable_memory_bytes {self.usable_memory_bytes} exceeds memory_bytes {self.memory_bytes} "
                "by more than 10%"
            )
        if self.key in self.aliases:
            raise ValueError(f"alias '{self.key}' repeats the key")

    @property
    def cuda_capability(self) -> tuple[int, int] | None:
        """NVIDIA compute capability from `architecture` (`sm_90` -> (9, 0), `sm_120` -> (12, 0)); None off CUDA."""
        arch = self.architecture or ""
        if not arch.startswith("sm_") or not arch[3:].isdigit():
            return None
        digits = arch[3:]
        return int(digits[:-1]), int(digits[-1])

    @property
    def platform(self) -> str:
        """cuda, rocm, metal, gaudi or cpu: the software stack an engine needs for this accelerator."""
        arch = self.architecture or ""
        if self.kind == "apple" or arch.startswith("apple"):
            return "metal"
        if self.kind == "cpu":
            return "cpu"
        if arch.startswith("gfx") or self.vendor.upper() == "AMD":
            return "rocm"
        if arch.startswith("gaudi"):
            return "gaudi"
        return "cuda"

    def flops(self, dtype: str) -> float:
        """Dense peak FLOP/s (int8: OP/s) for `dtype` (`bf16`, `bfloat16`, `fp8_e4m3` ...).

        Raises InputError naming the dtypes this accelerator lists when it has no peak for `dtype`.
        """
        key = normalize_dtype(dtype)
        for listed_dtype, value in self.peak_flops.items():
            if listed_dtype == key:
                return value
        listed = ", ".join(d for d in PEAK_DTYPES if d in self.peak_flops)
        raise InputError(f"{self.name} has no dense {dtype} peak listed; available: {listed}")

    def ridge_point(self, dtype: str = "bf16") -> float:
        """Roofline ridge point in FLOP/byte: `peak_flops[dtype] / memory_bandwidth_bytes_per_s`.

        A kernel whose arithmetic intensity (FLOP per byte moved from DRAM) is below this is memory-bound;
        above it, compute-bound (Williams, Waterman & Patterson, "Roofline", CACM 2009).
        H100 SXM bf16: 989.4e12 / 3.35e12 = 295.3 FLOP/byte.
        """
        return self.flops(dtype) / self.memory_bandwidth_bytes_per_s
