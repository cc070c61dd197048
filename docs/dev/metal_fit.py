"""llama.cpp on Apple GPUs (Metal): fit the per-layer cost and the streaming efficiency of decode, then check them
on rows the fit never saw (dev script; no GPU needed).

Decode of one token at batch 1 is memory-bound once the GEMMs are matrix-vector products (calc/perf/shape.py
GEMV_ROWS_MIN), so kvcalc's step is linear in the two unknowns:

    t = t_other + L x c + X / e          X = bytes read / bandwidth, L = layers, c = per-layer cost, e = efficiency

t_other, L and X of each row come from kvcalc itself (three evaluations of the row at different c and e), and
(c, 1/e) minimise the squared relative error over the fit rows: linear least squares with each row weighted by
1/t_measured. One e for every Apple chip: fitted apart, the M2 Ultra's two dies stream at 0.888 and the M3 Max's
one at 0.922, too close to keep two figures (the 0.47 kvcalc used to give Ultra chips was their share of a small
model's per-layer cost, not their bandwidth).

Fit rows: XiongjieDai/GPU-Benchmarks-on-LLM-Inference's May-2024 llama-bench tg512 table (Llama-3-8B and 70B,
Q4_K_M and F16, on an M2 Ultra and an M3 Max: perf_accuracy.METAL_FIT_ROWS). Held out:
the same README's Dec-2023 Llama-2 table (another llama.cpp, other models) and llama.cpp discussion #4167
(Llama-2-7B Q4_0 tg128 on M2 Ultra, M4 Pro, M4 Max).

Usage: PYTHONPATH=. python docs/dev/metal_fit.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_accuracy import METAL_FIT_ROWS, _rows, measured, predict

from kvcalc.sources.calibration import Calibration
from kvcalc.sources.resolve import load_model

FIT = METAL_FIT_ROWS
HELD_OUT = tuple(f"r{i}" for i in range(171, 184))

#: kvcalc's Apple terms before this fit: weight_bw_eff 0.69 (0.47 on two-die Ultra chips), llama.cpp's CUDA
#: per-layer cost (20 us) and the tensor-core MMA's 16-row minimum.
BEFORE = {"layer_overhead_s": 20e-6, "gemm_rows_min": 16.0}


def _calibration(c: float, e: float) -> Calibration:
    return Calibration(card="metal fit", driver="-", torch="-", date="2026-12-07",
                       values={"layer_overhead_s": c, "weight_bw_eff": e})


def _seconds(row: dict[str, str], cal: Any = None) -> float:
    """Seconds per decoded token as kvcalc predicts the row (its metric is tokens/s)."""
    return 1.0 / predict(row, cal)


def _terms(row: dict[str, str]) -> tuple[float, float, float]:
    """(t_other, L, X) of the row: t = t_other + L c + X / e (module docstring), from three evaluations."""
    base = _seconds(row, _calibration(0.0, 1.0))
    layers = (_seconds(row, _calibration(1e-3, 1.0)) - base) / 1e-3
    x = _seconds(row, _calibration(0.0, 0.5)) - base  # X / 0.5 - X / 1
    return base - x, layers, x


def fit(rows: list[dict[str, str]]) -> tuple[float, float]:
    """(c, e) by weighted linear least squares (module docstring)."""
    a, b = [], []
    for row in rows:
        other, layers, x = _terms(row)
        t = 1.0 / measured(row)
        a.append([layers / t, x / t])
        b.append((t - other) / t)
    c, u = np.linalg.lstsq(np.array(a), np.array(b), rcond=None)[0]
    return float(c), 1.0 / float(u)


def _before(row: dict[str, str]) -> Calibration:
    ultra = "ultra" in row["kvcalc_gpu"]
    return Calibration(card="before", driver="-", torch="-", date="2026-12-06",
                       values={**BEFORE, "weight_bw_eff": 0.47 if ultra else 0.69})


def _error(row: dict[str, str], cal: Any) -> float:
    return (predict(row, cal) - measured(row)) / measured(row)


def table(rows: list[dict[str, str]], fitted: tuple[float, float]) -> tuple[list[float], list[float]]:
    """Print each row before and after the fit; (errors before, errors after)."""
    c, e = fitted
    errors, earlier = [], []
    print("| row | card | model | format | measured tok/s | kvcalc before | error | fitted | error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        cal = _calibration(c, e)
        before, after = predict(row, _before(row)), predict(row, cal)
        err = _error(row, cal)
        errors.append(err)
        earlier.append((before - measured(row)) / measured(row))
        layers = load_model(row["kvcalc_model"]).num_layers
        print(f"| {row['id']} | {row['kvcalc_gpu']} | {row['kvcalc_model']} ({layers} layers) | {row['kvcalc_quant']} "
              f"| {measured(row):g} | {before:.2f} | {(before - measured(row)) / measured(row):+.1%} | {after:.2f} "
              f"| {err:+.1%} |")
    return earlier, errors


def main() -> None:
    rows = {r["id"]: r for r in _rows()}
    fitted = fit([rows[i] for i in FIT])
    c, e = fitted
    print(f"fitted on {len(FIT)} rows: c = {c * 1e6:.1f} us per layer, e = {e:.3f}\n")
    fit_rows = table([rows[i] for i in FIT], fitted)
    print()
    held = table([rows[i] for i in HELD_OUT], fitted)
    for name, (before, after) in (("fit", fit_rows), ("held out", held)):
        print(f"{name}: median |error| {_median(before):.1%} -> {_median(after):.1%}, worst "
              f"{max(abs(e) for e in before):.1%} -> {max(abs(e) for e in after):.1%}")


def _median(errors: list[float]) -> float:
    return statistics.median(abs(e) for e in errors)


if __name__ == "__main__":
    main()
