"""Tables for docs/validation.md and the shipped calibration file, from a raw record of docs/dev/gpu_verify.py
(no GPU needed: re-run whenever the perf model changes).

The timing coefficients are fitted on the CALIBRATE models' decode and prefill points together (several
models, so the per-kernel cost and the efficiencies separate) and the error is reported on the other models
before (kvcalc's defaults) and after calibration.

Usage: PYTHONPATH=. python docs/dev/gpu_verify_report.py docs/validation-h100.json [--calibration-out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

#: Calibrated on one model of each kind (dense GQA, sliding + MoE, MLA + MoE is held back); the rest are held out.
CALIBRATE = ("llama-3.1-8b", "qwen3-30b-a3b", "gemma-2-9b", "mixtral-8x7b")


def plan_for(raw: dict[str, Any], gpu: Any) -> Any:
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.calc.weights import PlainFormat
    from kvcalc.sources.resolve import load_model
    from kvcalc.spec.deployment import EngineSettings, Parallel

    settings = EngineSettings(name=raw.get("engine", "vllm"), kv_cache_dtype=raw.get("kv_dtype"))
    return plan_deployment(load_model(raw["model"]), gpu, Parallel(), settings,
                           weight_format=PlainFormat(raw.get("dtype", "bf16")), context=raw.get("max_model_len"))


def pct(values: list[float]) -> str:
    if not values:
        return "-"
    a = [abs(v) for v in values]
    return f"{statistics.median(a):.1f} % / {max(a):.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("raw")
    parser.add_argument("--calibration-out")
    args = parser.parse_args()

    from kvcalc.calc.perf.calibrate import fit_coefficients, step_time
    from kvcalc.calc.perf.defaults import default_coefficients
    from kvcalc.report.verify import CARD_TERMS, HARNESS_TERMS, harness_coefficients, verify_report
    from kvcalc.sources.hardware import find_gpu

    with open(args.raw, encoding="utf-8") as handle:
        doc = json.load(handle)
    gpu = find_gpu(doc["gpu"])
    base = default_coefficients(gpu, "vllm", cuda_graphs=True, online=False)
    prior = harness_coefficients(base)
    reports, points = {}, {}
    for raw in doc["models"]:
        if "skipped" in raw or (raw.get("options", {}).get("stack") == 2 and raw["model"] in reports):
            continue
        if raw["model"] in reports:  # the --quick rerun of a model
            continue
        plan = plan_for(raw, gpu)
        report, fit = verify_report(raw, plan, base, calibrate=False)
        from kvcalc.report.verify import time_records

        _, pts, _ = time_records(raw, plan, prior)
        reports[raw["model"]], points[raw["model"]] = report, pts
    train = [p for m in CALIBRATE if m in points for p in points[m]]
    fit = fit_coefficients(train, prior, terms=HARNESS_TERMS, source=f"docs/validation.md ({gpu.key})")
    c = fit.coefficients
    print(f"## {doc['card']['name']}: driver {doc['card']['driver']}, torch {doc['card']['torch']}, "
          f"{doc['card']['date']}\n")
    print(f"Fitted on {', '.join(m for m in CALIBRATE if m in points)} ({len(train)} points; residuals median "
          f"{fit.median_abs_error_pct:.1f} %, worst {fit.max_abs_error_pct:.1f} %; fitted: {', '.join(fit.fitted)}):")
    print(f"weight_bw_eff {c.weight_bw_eff:.3f}, kv_bw_eff {c.kv_bw_eff:.3f}, gemm_eff bf16 "
          f"{c.gemm_eff['bf16']:.3f}, attention_eff {c.attention_eff:.3f}, layer_overhead_s "
          f"{c.layer_overhead_s * 1e6:.2f} us per 9 kernels ({c.layer_overhead_s / 9 * 1e6:.2f} us per kernel)\n")
    print("| model | held out | TPOT error before (median / worst) | after | TTFT error before | after |")
    print("|---|---|---|---|---|---|")
    for model, pts in points.items():
        before = {"decode": [], "prefill": []}
        after = {"decode": [], "prefill": []}
        for p in pts:
            phase = "decode" if " decode " in p.label else "prefill"
            before[phase].append(100 * (step_time(p, prior)[0] - p.measured_s) / p.measured_s)
            after[phase].append(100 * (step_time(p, c)[0] - p.measured_s) / p.measured_s)
        held = "no" if model in CALIBRATE else "yes"
        print(f"| {model} | {held} | {pct(before['decode'])} | {pct(after['decode'])} | {pct(before['prefill'])} | "
              f"{pct(after['prefill'])} |")
    print("\n| model | weights predicted (B) | measured (B) | err | KV pool predicted | measured | err |")
    print("|---|---|---|---|---|---|---|")
    for model, report in reports.items():
        rec = {r.quantity: r for r in report.records}
        w, kv = rec.get("weights_bytes"), rec.get("kv_pool_bytes")
        if w and kv:
            print(f"| {model} | {w.predicted:,.0f} | {w.measured:,.0f} | {w.error_pct:+.3f} % | {kv.predicted:,.0f} | "
                  f"{kv.measured:,.0f} | {kv.error_pct:+.3f} % |")
    if args.calibration_out:
        from kvcalc.sources.calibration import Calibration, write_calibration

        values = {name: round(getattr(c, name), 4) for name in CARD_TERMS if name != "gemm_eff"}
        values["gemm_eff"] = {"bf16": round(c.gemm_eff["bf16"], 4), "fp16": round(c.gemm_eff["bf16"], 4)}
        card = doc["card"]
        write_calibration(args.calibration_out, Calibration(
            card=card["name"], driver=card["driver"], torch=card["torch"], date=card["date"], values=values,
            gpu=gpu.key, command=f"PYTHONPATH=. python docs/dev/gpu_verify_report.py {args.raw}"))
        print(f"\nwrote {args.calibration_out}")


if __name__ == "__main__":
    main()
