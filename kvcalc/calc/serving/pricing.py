"""Which price a cost uses: a user override (`--price h100=2.49`) wins over the catalogue's dated price in
`hardware/<key>.yaml`; a GPU with neither gets no cost, never a guessed one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from kvcalc.spec.base import record
from kvcalc.spec.gpu import GpuSpec


@record
class PriceUsed:
    """The USD per GPU-hour a cost was computed at and where it came from."""

    gpu: str
    usd_per_gpu_hour: float
    origin: Literal["override", "catalogue"]
    kind: str
    date: str | None
    source: str

    def describe(self) -> str:
        """One line for people: `$2.69/GPU-h, on-demand, 2026-05-22, <source>`."""
        when = f", {self.date}" if self.date else ""
        return f"${self.usd_per_gpu_hour:g}/GPU-h ({self.origin}, {self.kind}{when}): {self.source}"


def price_for(gpu: GpuSpec, overrides: Mapping[str, float]) -> PriceUsed | None:
    """The override for `gpu.key` if given, else the catalogue price, else None."""
    if gpu.key in overrides:
        return PriceUsed(gpu=gpu.key, usd_per_gpu_hour=overrides[gpu.key], origin="override", kind="user",
                         date=None, source=f"--price {gpu.key}={overrides[gpu.key]:g}")
    if gpu.price is None:
        return None
    p = gpu.price
    return PriceUsed(gpu=gpu.key, usd_per_gpu_hour=p.usd_per_gpu_hour, origin="catalogue", kind=p.kind,
                     date=p.date, source=p.source)


def no_price_message(gpu: GpuSpec) -> str:
    return (f"{gpu.key} has no dated price in the catalogue (hardware/{gpu.key}.yaml); "
            f"pass --price {gpu.key}=USD_PER_GPU_HOUR for costs")
