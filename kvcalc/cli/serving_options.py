"""Options shared by `kvcalc serve` and `kvcalc plan`: durations, rates, fractions, price overrides, and the
atomic write of a plot. Parsing only; no arithmetic beyond unit conversion."""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path

from kvcalc.errors import InputError

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e-?\d+)?)\s*(ms|s|m|min|h)?\s*$", re.IGNORECASE)
_DURATION_SCALE = {"ms": 1e-3, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_seconds(text: str, what: str, *, allow_zero: bool = False) -> float:
    """`1s` -> 1.0, `60ms` -> 0.06, `2m` -> 120, `0.5` -> 0.5 (bare numbers are seconds)."""
    match = _DURATION_RE.match(text)
    if not match:
        raise InputError(f"{what} '{text}' is not a duration; use e.g. 1s, 60ms, 2m, 0.5")
    value = float(match.group(1)) * _DURATION_SCALE[(match.group(2) or "").lower()]
    if not math.isfinite(value) or value > 7 * 86400 or (value <= 0 and not allow_zero):
        raise InputError(f"{what} '{text}' must be {'' if allow_zero else 'above 0 and '}at most a week")
    return value


def parse_positive(value: float, what: str, *, maximum: float = 1e9) -> float:
    if not math.isfinite(value) or not 0 < value <= maximum:
        raise InputError(f"{what} must be a number above 0 and at most {maximum:g}, got {value}")
    return value


def parse_headroom(value: float) -> float:
    if not math.isfinite(value) or not 0 <= value <= 10:
        raise InputError(f"--headroom must be between 0 (none) and 10, got {value}; 0.2 keeps 20% spare capacity")
    return value


def parse_prices(values: list[str]) -> dict[str, float]:
    """`--price h100=2.49 --price a100=1.5` (or comma-separated) -> {gpu key: USD per GPU-hour}; GPU names
    resolve like --gpu (key or alias)."""
    from kvcalc.sources.hardware import find_gpu

    out: dict[str, float] = {}
    for item in (part for value in values for part in value.split(",") if part.strip()):
        name, _, usd = item.partition("=")
        try:
            price = float(usd)
        except ValueError:
            price = float("nan")
        if not name.strip() or not math.isfinite(price) or not 0 < price <= 1000:
            raise InputError(f"--price '{item}' must be GPU=USD_PER_GPU_HOUR with 0 < USD <= 1000, e.g. h100=2.49")
        out[find_gpu(name.strip()).key] = price
    return out


def parse_list(value: str | None, what: str) -> list[str] | None:
    """`h100,h200` -> ['h100', 'h200']; None stays None."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise InputError(f"{what} is empty; give a comma-separated list")
    return items


def write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    target = Path(path).expanduser()
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {target}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
