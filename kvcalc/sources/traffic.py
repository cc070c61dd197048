"""Traffic profiles: a day of request rates from a CSV (or JSON lines) file, one row per interval.

Columns: a rate (`rps`, `requests_per_s`, `qps` or `rate`, requests per second) and optionally a start time
(`hour`, `minute`, `start_s`, or `time` as HH:MM[:SS]). With a time column the interval length is the step
between rows, which must be constant and positive; without one every row lasts `default_interval_s`.

    hour,rps
    0,2.5
    1,1.8
"""

from __future__ import annotations

import itertools
from pathlib import Path

from kvcalc.errors import InputError
from kvcalc.sources.tabular import number, pick_column, read_rows
from kvcalc.spec.base import record

RATE_COLUMNS = ("rps", "requests_per_s", "qps", "rate")
_TIME_SCALE = {"hour": 3600.0, "minute": 60.0, "start_s": 1.0}
MAX_RPS = 1e7


@record
class TrafficProfile:
    source: str
    interval_s: float
    rps: list[float]


def _clock_seconds(value: object, where: str) -> float:
    parts = str(value).strip().split(":")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise InputError(f"{where}: time must be HH:MM or HH:MM:SS, got {value!r}")
    h, m, s = (int(p) for p in [*parts, "0"][:3])
    if m > 59 or s > 59:
        raise InputError(f"{where}: time {value!r} is not a clock time")
    return h * 3600.0 + m * 60.0 + s


def _start_times(rows: list[tuple[int, dict[str, object]]], column: str, path: str) -> list[float]:
    out = []
    for line, row in rows:
        where = f"{path}, line {line}"
        if column == "time":
            out.append(_clock_seconds(row[column], where))
        else:
            out.append(number(row[column], column, where, maximum=1e9) * _TIME_SCALE[column])
    return out


def _interval(starts: list[float], path: str) -> float:
    steps = {round(b - a, 6) for a, b in itertools.pairwise(starts)}
    if len(steps) != 1 or min(steps) <= 0:
        raise InputError(f"traffic profile {path}: rows must be equally spaced in time and increasing "
                         f"(found steps of {sorted(steps)} s)")
    return steps.pop()


def load_traffic(path: str | Path, default_interval_s: float = 3600.0) -> TrafficProfile:
    """Read a traffic profile (module docstring); InputError on any malformed row."""
    name = str(path)
    rows = read_rows(path, "traffic profile")
    rate_col = pick_column(rows[0][1], RATE_COLUMNS)
    if rate_col is None:
        raise InputError(f"traffic profile {name}: no rate column; name one of {', '.join(RATE_COLUMNS)}")
    rates = [number(row.get(rate_col), rate_col, f"{name}, line {line}", maximum=MAX_RPS) for line, row in rows]
    time_col = pick_column(rows[0][1], ("time", *_TIME_SCALE))
    interval = default_interval_s
    if time_col is not None and len(rows) > 1:
        interval = _interval(_start_times(rows, time_col, name), name)
    if sum(rates) <= 0:
        raise InputError(f"traffic profile {name}: every rate is zero")
    return TrafficProfile(source=name, interval_s=interval, rps=rates)
