"""Hypothesis profiles for the fuzz suite (tests/test_fuzz_*.py).

- `kvcalc-fast` (default): a modest example budget, derandomized, so the whole fuzz suite stays within ~20 s
  of a normal `pytest` run and gives the same cases each time.
- `kvcalc-long` (`KVCALC_FUZZ=long`): randomized, ~40x the budget; more than 10,000 cases over the suite.
  `python -m pytest tests/test_fuzz_parsers.py tests/test_fuzz_cli.py` with `KVCALC_FUZZ=long` runs it
  and prints a summary per target (`FUZZ` lines, with `-s`).

Each fuzz test asks for `budget(weight)` examples: weight x the profile's base count.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, settings

LONG = os.environ.get("KVCALC_FUZZ") == "long"
BASE = 1000 if LONG else 25

settings.register_profile(
    "kvcalc-fast",
    max_examples=BASE,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.register_profile(
    "kvcalc-long",
    max_examples=BASE,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)
settings.load_profile("kvcalc-long" if LONG else "kvcalc-fast")

#: What each target saw: cases, outcomes (exit code or result kind) and the slowest case, in seconds.
STATS: dict[str, dict[str, Any]] = defaultdict(
    lambda: {"cases": 0, "outcomes": defaultdict(int), "max_s": 0.0, "slowest": "", "over_1s": 0}
)
#: A case taking longer fails: it catches hangs and blow-ups (`perf --concurrency 2147483647` never returned).
#: The contract is an answer within a second; cases over one second are counted and the slowest named in the
#: summary (docs/reliability.md records them): on a shared 2-core machine a one-second bound would fail on load.
MAX_SECONDS = 30.0
SLOW_SECONDS = 1.0


def budget(weight: float = 1.0) -> settings:
    """Settings asking for `weight` x the profile's base number of examples."""
    return settings(max_examples=max(1, int(BASE * weight)))


class Timer:
    """Record one case of `target`: its outcome and duration; fails when the case took too long."""

    def __init__(self, target: str, case: object = None) -> None:
        self.target = target
        self.case = case

    def __enter__(self) -> Timer:
        log = os.environ.get("KVCALC_FUZZ_LOG")
        if log:  # the case about to run, written first: a case the kernel kills (out of memory) is the last line
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(f"{self.target}\t{self.case!r}\n")
        self.start = time.perf_counter()
        self.outcome = "?"
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.perf_counter() - self.start
        entry = STATS[self.target]
        entry["cases"] += 1
        entry["outcomes"][self.outcome if exc[0] is None else "failure"] += 1
        entry["over_1s"] += seconds > SLOW_SECONDS
        if seconds > entry["max_s"]:
            entry["max_s"] = seconds
            entry["slowest"] = repr(self.case)[:160] if self.case is not None else ""
        if exc[0] is None:
            assert seconds < MAX_SECONDS, f"{self.target}: a case took {seconds:.2f} s"


def summary() -> str:
    lines = []
    for target, entry in sorted(STATS.items()):
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(entry["outcomes"].items(), key=lambda kv: str(kv[0])))
        slowest = f" ({entry['slowest']})" if entry["slowest"] else ""
        lines.append(f"FUZZ {target}: {entry['cases']} cases ({outcomes}); {entry['over_1s']} over 1 s; "
                     f"slowest {entry['max_s']:.3f} s{slowest}")
    return "\n".join(lines)
