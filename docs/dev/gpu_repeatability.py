"""Run-to-run spread of `kvcalc verify`'s timings: the same suite run twice on (different) H100 machines.

Pairs every decode and prefill stack measurement of two raw files (same model, layer kind, batch, context or
tokens) and prints the median and worst relative difference of their median times, per model and overall.

Usage: python docs/dev/gpu_repeatability.py docs/validation-h100.json docs/validation-h100-run2.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def _points(raw: dict[str, Any]) -> dict[tuple[Any, ...], float]:
    """(model, phase, signature, batch, context/tokens) -> median seconds."""
    out: dict[tuple[Any, ...], float] = {}
    for model in raw["models"]:
        for phase in ("decode", "prefill"):
            for row in (model.get(phase) or {}).get("stack", []):
                size = row.get("context", row.get("tokens"))
                out[(model["model"], phase, row["signature"], row.get("batch", 1), size)] = row["median_s"]
    return out


def main(first: str, second: str) -> None:
    a = _points(json.loads(Path(first).read_text()))
    b = _points(json.loads(Path(second).read_text()))
    common = sorted(a.keys() & b.keys())
    by_model: dict[str, list[float]] = {}
    for key in common:
        by_model.setdefault(key[0], []).append(100 * (b[key] - a[key]) / a[key])
    print("| model | points | median difference | worst |")
    print("|---|---|---|---|")
    every: list[float] = []
    for model, diffs in by_model.items():
        every += diffs
        worst = max(diffs, key=abs)
        print(f"| {model} | {len(diffs)} | {statistics.median(diffs):+.1f} % | {worst:+.1f} % |")
    worst = max(every, key=abs)
    print(f"| all | {len(every)} | {statistics.median(every):+.1f} % (median abs "
          f"{statistics.median(abs(d) for d in every):.1f} %) | {worst:+.1f} % |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
