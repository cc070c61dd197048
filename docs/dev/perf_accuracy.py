"""Predict every row of docs/dev/perf_devset.tsv through kvcalc's perf API and print docs/accuracy-perf.md.

    .venv/bin/python docs/dev/perf_accuracy.py > docs/accuracy-perf.md
    .venv/bin/python docs/dev/perf_accuracy.py --summary      # one line per metric class (median / worst)

Each row is planned exactly as `kvcalc perf` plans it (profile, GPU, tp, engine, weight format), with the
default coefficients of that engine and card: nothing is tuned per row. Scenarios:
serve = closed loop of N clients (`vllm bench serve --max-concurrency N`); static = one batch of N requests
offline (`vllm bench latency`, llama-bench, TRT-LLM's gptSessionBenchmark); burst = N requests sent at once
to a server (`--request-rate inf`); saturate = an offline throughput run with the engine full.
"""

from __future__ import annotations

import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kvcalc.calc.deploy import plan_deployment  # noqa: E402
from kvcalc.calc.perf.defaults import default_coefficients  # noqa: E402
from kvcalc.calc.perf.model import perf_model  # noqa: E402
from kvcalc.calc.perf.runs import run_serving, run_static, running_cap  # noqa: E402
from kvcalc.calc.quant import parse_quant  # noqa: E402
from kvcalc.sources.hardware import find_gpu  # noqa: E402
from kvcalc.sources.resolve import load_model  # noqa: E402
from kvcalc.spec.base import replace  # noqa: E402
from kvcalc.spec.deployment import EngineSettings, Parallel  # noqa: E402

#: metric -> (class, unit shown)
CLASSES = {
    "tpot_ms": "TPOT", "itl_ms": "TPOT", "output_tok_s_per_user": "TPOT", "decode_tok_s": "TPOT",
    "ttft_ms": "TTFT", "prefill_tok_s": "TTFT", "e2e_latency_s": "E2E",
    "output_tok_s_total": "throughput", "total_tok_s": "throughput",
}


def _rows() -> list[dict[str, str]]:
    text = (ROOT / "docs/dev/perf_devset.tsv").read_text().splitlines()
    return list(csv.DictReader([line for line in text if not line.startswith("#")], delimiter="\t"))


def _stats(row: dict[str, str]) -> tuple[Any, int, int]:
    """Run the row's scenario; returns (RunStats, input, output)."""
    engine, scenario = row["kvcalc_engine"], row["kvcalc_scenario"]
    online = scenario in ("serve", "burst")
    settings = EngineSettings(name=engine, usage="serve" if online or engine != "vllm" else "llm")  # type: ignore[arg-type]
    model, gpu = load_model(row["kvcalc_model"]), find_gpu(row["kvcalc_gpu"])
    fmt = parse_quant(row["kvcalc_quant"], model=model) if row["kvcalc_quant"] else None
    i, o, n = int(row["kvcalc_input"]), int(row["kvcalc_output"]), int(row["kvcalc_n"])
    settings = replace(settings, kv_cache_dtype=row["kvcalc_kv"] or None)
    plan = plan_deployment(model, gpu, Parallel(tp=int(row["kvcalc_tp"])), settings, weight_format=fmt,
                           context=max(i + o, 4096))
    pm = perf_model(plan)
    coeffs = default_coefficients(gpu, engine, online=online)
    if scenario == "serve":
        return run_serving(pm, coeffs, n, i, o), i, o
    if scenario == "saturate":
        cap, _ = running_cap(plan, i, o)
        return run_serving(pm, coeffs, max(cap, 1), i, o), i, o
    return run_static(pm, coeffs, n, i, o), i, o


def predict(row: dict[str, str]) -> float:
    """The row's metric as kvcalc predicts it, in the row's unit."""
    stats, i, o = _stats(row)
    metric = row["metric"]
    if metric in ("tpot_ms", "itl_ms"):
        return 1e3 * (stats.itl_p99_s if row["statistic"] == "p99" else stats.tpot_s)
    if metric == "ttft_ms":
        return 1e3 * stats.ttft_s
    if metric in ("output_tok_s_per_user", "decode_tok_s"):
        return 1.0 / stats.tpot_s
    if metric == "prefill_tok_s":
        return i / stats.ttft_s
    if metric == "e2e_latency_s":
        return stats.e2e_s
    if metric == "output_tok_s_total":
        return stats.output_tokens_per_s
    if metric == "total_tok_s":
        return stats.requests_per_s * (i + o)
    raise ValueError(f"no prediction for metric {metric}")


def measured(row: dict[str, str]) -> float:
    return float(row["value"].replace(",", "").split()[0])


def results() -> list[dict[str, Any]]:
    out = []
    for row in _rows():
        value, pred = measured(row), predict(row)
        out.append({**row, "measured": value, "predicted": pred, "error": (pred - value) / value,
                    "class": CLASSES[row["metric"]]})
    return out


def _summary(rows: list[dict[str, Any]]) -> dict[str, tuple[int, float, float, float]]:
    by: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by[r["class"]].append(r["error"])
    return {k: (len(v), statistics.median(abs(e) for e in v), max(abs(e) for e in v),
                statistics.median(v)) for k, v in by.items()}


def _group_table(rows: list[dict[str, Any]], key: str) -> list[str]:
    lines = [f"| {key} | class | rows | median abs error | worst |", "|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        groups[(r[key], r["class"])].append(abs(r["error"]))
    for (name, cls), errs in sorted(groups.items()):
        lines.append(f"| {name} | {cls} | {len(errs)} | {statistics.median(errs):.0%} | {max(errs):.0%} |")
    return lines


def markdown(rows: list[dict[str, Any]]) -> str:
    summary = _summary(rows)
    lines = [
        "# Accuracy: `kvcalc perf` against published measurements",
        "",
        "Regenerate with `.venv/bin/python docs/dev/perf_accuracy.py > docs/accuracy-perf.md`. Rows: "
        "`docs/dev/perf_devset.tsv` (each with its URL). Every row runs through the same API as `kvcalc perf` "
        "with **default coefficients** (no calibration file, nothing tuned per row).",
        "",
        "## Summary",
        "",
        "| class | rows | median abs error | worst abs error | median signed error | target |",
        "|---|---|---|---|---|---|",
    ]
    targets = {"TPOT": "<= 15 %", "TTFT": "<= 25 %"}
    for cls in ("TPOT", "TTFT", "E2E", "throughput"):
        if cls in summary:
            n, med, worst, signed = summary[cls]
            lines.append(f"| {cls} | {n} | {med:.1%} | {worst:.0%} | {signed:+.1%} | {targets.get(cls, '-')} |")
    lines += ["", "## By engine", "", *_group_table(rows, "engine"), "", "## By GPU", "",
              *_group_table(rows, "gpu"), "", "## Every row", "",
              "| id | engine | gpu | tp | model | scenario | in/out | metric | measured | predicted | error |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| [{r['id']}]({r['url']}) | {r['engine']} | {r['gpu']} | {r['kvcalc_tp']} | {r['kvcalc_model']}"
            f" {r['kvcalc_quant']} | {r['kvcalc_scenario']} {r['kvcalc_n']} | {r['kvcalc_input']}/"
            f"{r['kvcalc_output']} | {r['metric']} ({r['statistic']}) | {r['measured']:.4g} | "
            f"{r['predicted']:.4g} | {r['error']:+.0%} |")
    notes = ROOT / "docs/dev/perf_accuracy_notes.md"
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def main() -> None:
    rows = results()
    if "--summary" in sys.argv:
        for cls, (n, med, worst, signed) in _summary(rows).items():
            print(f"{cls:10s} rows {n:3d}  median {med:6.1%}  worst {worst:6.0%}  signed median {signed:+.1%}")
        if "--rows" in sys.argv:
            for r in rows:
                print(f"{r['id']} {r['engine']:7s} {r['gpu']:9s} {r['kvcalc_model']:14s} {r['metric']:18s} "
                      f"{r['measured']:10.4g} {r['predicted']:10.4g} {r['error']:+6.0%}")
        return
    sys.stdout.write(markdown(rows))


if __name__ == "__main__":
    main()
