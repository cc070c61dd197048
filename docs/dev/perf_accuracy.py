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

from kvcalc.calc.perf.runs import running_cap  # noqa: E402
from kvcalc.calc.quant import parse_quant  # noqa: E402
from kvcalc.report.perf import perf_report, plan_for  # noqa: E402
from kvcalc.sources.calibration import Calibration  # noqa: E402
from kvcalc.sources.hardware import find_gpu  # noqa: E402
from kvcalc.sources.resolve import load_model  # noqa: E402
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


#: Rows that set a default constant (engine step/front-end costs, the per-layer cost): the rest never informed a
#: value, so their errors are the out-of-sample figure.
USED_FOR_DEFAULTS = frozenset({"r042", "r043", "r046", "r047", "r048", "r049", "r064", "r073"})

#: Pure roofline for comparison: every efficiency 1, no fixed cost (a Calibration applied like a user's file).
ROOFLINE = Calibration(card="datasheet", driver="-", torch="-", date="2026-12-06", values={
    "weight_bw_eff": 1.0, "kv_bw_eff": 1.0, "attention_eff": 1.0, "comm_bw_eff": 1.0,
    "gemm_eff": {"bf16": 1.0, "fp16": 1.0, "fp8": 1.0, "int8": 1.0, "fp4": 1.0}, "layer_overhead_s": 0.0,
    "step_overhead_s": 0.0, "request_overhead_s": 0.0, "comm_latency_s": 0.0, "frontend_latency_s": 0.0})


def _report(row: dict[str, str], calibration: Any = None) -> Any:
    """The row's scenario through `kvcalc.report.perf.perf_report`, exactly as `kvcalc perf` runs it."""
    engine, scenario = row["kvcalc_engine"], row["kvcalc_scenario"]
    model, gpu = load_model(row["kvcalc_model"]), find_gpu(row["kvcalc_gpu"])
    fmt = parse_quant(row["kvcalc_quant"], model=model) if row["kvcalc_quant"] else None
    i, o, n = int(row["kvcalc_input"]), int(row["kvcalc_output"]), int(row["kvcalc_n"])
    offline = scenario in ("static", "saturate")
    settings = EngineSettings(name=engine, usage="llm" if offline and engine == "vllm" else "serve",  # type: ignore[arg-type]
                              kv_cache_dtype=row["kvcalc_kv"] or None)
    parallel = Parallel(tp=int(row["kvcalc_tp"]))
    common = dict(input_tokens=i, output_tokens=o, weight_format=fmt, calibration=calibration)
    if scenario == "serve":
        return perf_report(model, gpu, parallel, settings, concurrency=n, **common)
    if scenario == "saturate":  # the engine full: as many clients as it runs at once
        cap, _ = running_cap(plan_for(model, gpu, parallel, settings, fmt, i, o), i, o)
        return perf_report(model, gpu, parallel, settings, concurrency=max(cap, 1), **common)
    return perf_report(model, gpu, parallel, settings, batch=n, **common)


def predict(row: dict[str, str], calibration: Any = None) -> float:
    """The row's metric as kvcalc predicts it, in the row's unit."""
    r = _report(row, calibration)
    i, o = r.input_tokens, r.output_tokens
    metric = row["metric"]
    if metric in ("tpot_ms", "itl_ms"):
        return 1e3 * (r.itl_p99_s if row["statistic"] == "p99" else r.tpot_s)
    if metric == "ttft_ms":
        return 1e3 * r.ttft_s
    if metric in ("output_tok_s_per_user", "decode_tok_s"):
        return 1.0 / r.tpot_s
    if metric == "prefill_tok_s":
        return i / r.ttft_s
    if metric == "e2e_latency_s":
        return r.e2e_s
    if metric == "output_tok_s_total":
        return r.tokens_per_s_total
    if metric == "total_tok_s":
        return r.requests_per_s * (i + o)
    raise ValueError(f"no prediction for metric {metric}")


def measured(row: dict[str, str]) -> float:
    return float(row["value"].replace(",", "").split()[0])


def results(calibration: Any = None) -> list[dict[str, Any]]:
    out = []
    for row in _rows():
        value, pred = measured(row), predict(row, calibration)
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


def markdown(rows: list[dict[str, Any]], roofline: list[dict[str, Any]]) -> str:
    summary, base = _summary(rows), _summary(roofline)
    lines = [
        "# Accuracy: `kvcalc perf` against published measurements",
        "",
        "Regenerate with `.venv/bin/python docs/dev/perf_accuracy.py > docs/accuracy-perf.md`. Rows: "
        "`docs/dev/perf_devset.tsv` (each with its URL). Every row runs through the same API as `kvcalc perf` "
        "with **default coefficients** (no calibration file, nothing tuned per row).",
        "",
        "## Summary",
        "",
        "| class | rows | median abs error | worst abs error | median signed error | target | pure roofline "
        "(median / signed) |",
        "|---|---|---|---|---|---|---|",
    ]
    targets = {"TPOT": "<= 15 %", "TTFT": "<= 25 %"}
    for cls in ("TPOT", "TTFT", "E2E", "throughput"):
        if cls in summary:
            n, med, worst, signed = summary[cls]
            lines.append(f"| {cls} | {n} | {med:.1%} | {worst:.0%} | {signed:+.1%} | {targets.get(cls, '-')} | "
                         f"{base[cls][1]:.0%} / {base[cls][3]:+.0%} |")
    held_out = _summary([r for r in rows if r["id"] not in USED_FOR_DEFAULTS])
    lines += ["", "Rows that never informed a default (all but " + ", ".join(sorted(USED_FOR_DEFAULTS)) + "): " +
              "; ".join(f"{c} median {held_out[c][1]:.1%} ({held_out[c][0]} rows)" for c in ("TPOT", "TTFT")
                        if c in held_out) + "."]
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
    sys.stdout.write(markdown(rows, results(ROOFLINE)))


if __name__ == "__main__":
    main()
