"""Tables for docs/validation.md and the shipped calibration file, from a raw record of docs/dev/gpu_verify.py
(no GPU needed: re-run whenever the perf model changes).

The timing coefficients are fitted on the CALIBRATE models' decode and prefill points together (several
models, so the per-kernel cost and the efficiencies separate) and the error is reported on the other models
before (kvcalc's defaults without any calibration file: `uncalibrated_coefficients`) and after calibration.

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


def uncalibrated_coefficients(gpu: Any) -> Any:
    """"Before": kvcalc's defaults for `gpu` with no calibration file at all (the catalogue attaches the shipped
    hardware/calibration/<key>.yaml to the card; it is detached here, so the baseline does not move when that file
    is refitted), less the engine's CPU-side costs the harness does not have."""
    from kvcalc.calc.perf.defaults import default_coefficients
    from kvcalc.calc.verify.steps import harness_coefficients
    from kvcalc.spec.base import replace

    return harness_coefficients(default_coefficients(replace(gpu, calibration=None), "vllm", cuda_graphs=True,
                                                     online=False))


def pct(values: list[float]) -> str:
    if not values:
        return "-"
    a = [abs(v) for v in values]
    return f"{statistics.median(a):.1f} % / {max(a):.1f} %"


def errors(pts: list[Any], coeffs: Any, step_time: Any) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"decode": [], "prefill": []}
    for p in pts:
        phase = "decode" if " decode " in p.label else "prefill"
        out[phase].append(100 * (step_time(p, coeffs)[0] - p.measured_s) / p.measured_s)
    return out


def ceilings_table(raw: dict[str, Any], gpu: Any) -> None:
    ceil = raw["ceilings"]
    copy = ceil["copy"]["bytes_per_s"]
    print("### Ceilings\n\n| quantity | datasheet | measured | measured / datasheet |\n|---|---|---|---|")
    print(f"| device-to-device copy (2 GiB, read + write) | {gpu.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s | "
          f"{copy / 1e12:.3f} TB/s | {copy / gpu.memory_bandwidth_bytes_per_s:.3f} |")
    bf16 = None
    for g in ceil["gemm"]:
        if g["shape"] != "large":
            continue
        peak = gpu.flops(g["dtype"])
        bf16 = g["flops_per_s"] if g["dtype"] == "bf16" else bf16
        print(f"| {g['dtype']} GEMM 8192^3 | {peak / 1e12:.1f} TFLOP/s | {g['flops_per_s'] / 1e12:.1f} TFLOP/s | "
              f"{g['flops_per_s'] / peak:.3f} |")
    if bf16:
        print(f"| ridge point (bf16 GEMM / copy) | {gpu.ridge_point('bf16'):.0f} FLOP/B | {bf16 / copy:.0f} FLOP/B | "
              f"{bf16 / copy / gpu.ridge_point('bf16'):.3f} |")
    decode = [g for g in ceil["gemm"] if g["shape"] == "decode" and g["dtype"] == "bf16"]
    print("\nDecode-shape bf16 GEMMs (M = batch rows x the 14336 x 4096 MLP weight, weights rotated past L2): "
          + ", ".join(f"M={g['m']}: {g['median_s'] * 1e6:.1f} us = {g['bytes'] / g['median_s'] / 1e12:.2f} TB/s"
                      for g in decode))
    att = raw.get("attention", {}).get("rows", [])
    if att:
        print("\nAttention (32 heads x 128, batch 1, causal), peak extra bytes and time (flash: CUDA-graph replays "
              "where marked g, else eager calls; kvcalc: FlashAttention-2's tile model):\n")
        print("| N | flash peak (B) | kvcalc attention (B) | flash ms | kvcalc ms | err | math peak (B) "
              "| kvcalc attention (B) | math ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        from kvcalc.report.verify import attention_records

        predicted = {(r.quantity, r.settings["tokens"]): r.predicted for r in attention_records(raw["attention"], gpu)}
        for n in sorted({r["tokens"] for r in att}):
            f = next(r for r in att if r["tokens"] == n and r["backend"] == "flash")
            m = next((r for r in att if r["tokens"] == n and r["backend"] == "math"), None)
            math_cells = (f"{m['peak_bytes']:,} | {predicted['attention_math_peak_bytes', n]:,} | "
                          f"{m['median_s'] * 1e3:.2f}" if m else "skipped (would not fit) | - | -")
            flash_s = predicted["attention_flash_s", n]
            timed = f"{f['median_s'] * 1e3:.3f}{' g' if f.get('graph') else ''}"
            print(f"| {n:,} | {f['peak_bytes']:,} | {predicted['attention_flash_peak_bytes', n]:,} | {timed} | "
                  f"{flash_s * 1e3:.3f} | {100 * (flash_s / f['median_s'] - 1):+.1f} % | {math_cells} |")
    kernel = ceil.get("kernel")
    if kernel:
        print(f"\nFixed cost of one kernel inside a CUDA graph: {kernel['per_kernel_s'] * 1e6:.2f} us")


def torch_params(raw: dict[str, Any], model: Any) -> int:
    """Parameters of the torch modules: every layer's when the whole model was built, else one layer of each
    kind times how many layers share it."""
    from kvcalc.calc.verify.layout import extrapolate, signature_groups

    weights = raw["weights"]
    if weights["whole_model"]:
        return int(weights["globals_params"] + sum(r["params"] for r in weights["layers"]))
    counts = {k: len(v) for k, v in signature_groups(model).items()}
    return int(extrapolate({r["signature"]: r["params"] for r in weights["layers"]}, counts, weights["globals_params"]))


def bytes_tables(reports: dict[str, Any], raws: dict[str, Any]) -> None:
    from kvcalc.calc.params import params_total
    from kvcalc.sources.resolve import load_model

    print("\n### Weights and KV cache\n")
    print("| model | params kvcalc | params torch | weights predicted (B) | allocated (B) | err | KV cache of the "
          "decode runs | KV pool predicted (B) | allocated (B) | err | transformers, 2 layers |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for model, report in reports.items():
        rec: dict[str, list[Any]] = {}
        for r in report.records:
            rec.setdefault(r.quantity, []).append(r)
        w, pool = rec["weights_bytes"][0], rec["kv_pool_allocated_bytes"][0]
        kv = rec["kv_cache_bytes"]
        hf = rec["transformers_params"][0]
        spec = load_model(model)
        print(f"| {model} | {params_total(spec):,} | {torch_params(raws[model], spec):,} | {w.predicted:,.0f} | "
              f"{w.measured:,.0f} | {w.error_pct:+.3f} % | {len(kv)} configs, "
              f"{'all to the byte' if all(r.error_pct == 0 for r in kv) else 'DIFFER'} | {pool.predicted:,.0f} | "
              f"{pool.measured:,.0f} | {pool.error_pct:+.3f} % | "
              f"{'params equal' if hf.error_pct == 0 else f'{hf.error_pct:+.3f} %'} |")


def detail(model: str, pts: list[Any], prior: Any, fitted: Any, step_time: Any, held_out: bool) -> None:
    tag = "held out" if held_out else "calibration set"
    print(f"\n#### {model} ({tag})\n")
    print("| step | measured ms | before ms | err | after ms | err |\n|---|---|---|---|---|---|")
    for p in pts:
        b, a = step_time(p, prior)[0], step_time(p, fitted)[0]
        label = p.label.split(" ", 1)[1]
        before, after = 100 * (b - p.measured_s) / p.measured_s, 100 * (a - p.measured_s) / p.measured_s
        print(f"| {label} | {p.measured_s * 1e3:.3f} | {b * 1e3:.3f} | {before:+.1f} % | {a * 1e3:.3f} | "
              f"{after:+.1f} % |")


def weight_stream_line(points: dict[str, list[Any]], joint: Any) -> None:
    """weight_bw_eff fitted on each model's batch-1 decode steps alone, every other term at the joint fit: how
    the rate at which weights stream depends on the model's matrices."""
    from kvcalc.calc.perf.calibrate import fit_coefficients

    rates = []
    for model, pts in points.items():
        small = [p for p in pts if " decode b=1 " in p.label]
        if small:
            fit = fit_coefficients(small, joint, terms=("weight_bw_eff",))
            rates.append(f"{model} {fit.coefficients.weight_bw_eff:.2f}")
    print("\nWeight streaming by model (weight_bw_eff fitted on its batch-1 decode steps alone, every other term at "
          "the joint fit): " + ", ".join(rates) + ".\n")


def other_machine(path: str, gpu: Any, prior: Any, fitted: Any) -> None:
    """The fit above applied to the steps another machine measured (nothing refitted): per model, the median /
    worst absolute error of its decode and prefill steps."""
    from kvcalc.calc.perf.calibrate import step_time
    from kvcalc.report.verify import time_records

    with open(path, encoding="utf-8") as handle:
        doc = json.load(handle)
    print(f"\n### The same calibration on another machine's measurements ({path}, {doc['card']['date']})\n")
    print("| model | held out | TPOT error (median / worst) | TTFT error |\n|---|---|---|---|")
    seen: set[str] = set()
    for raw in doc["models"]:
        if "skipped" in raw or raw["model"] in seen:
            continue
        seen.add(raw["model"])
        after = errors(time_records(raw, plan_for(raw, gpu), prior)[1], fitted, step_time)
        held = "yes" if raw["model"] not in CALIBRATE else "no"
        print(f"| {raw['model']} | {held} | {pct(after['decode'])} | {pct(after['prefill'])} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("raw")
    parser.add_argument("--calibration-out")
    parser.add_argument("--check", help="another raw record (a second machine): this fit's errors on its steps")
    args = parser.parse_args(argv)

    from kvcalc.calc.perf.calibrate import fit_coefficients, step_time
    from kvcalc.calc.verify.steps import CARD_TERMS, HARNESS_TERMS
    from kvcalc.report.verify import time_records, verify_report
    from kvcalc.sources.hardware import find_gpu

    with open(args.raw, encoding="utf-8") as handle:
        doc = json.load(handle)
    gpu = find_gpu(doc["gpu"])
    prior = uncalibrated_coefficients(gpu)
    reports, points, held, raws = {}, {}, {}, {}
    for raw in doc["models"]:
        if "skipped" in raw or raw["model"] in reports:  # the last entry is the --quick rerun of a model
            continue
        plan = plan_for(raw, gpu)
        report, _ = verify_report(raw, plan, prior, calibrate=False)
        reports[raw["model"]], points[raw["model"]] = report, time_records(raw, plan, prior)[1]
        raws[raw["model"]] = raw
    train = [p for m in CALIBRATE if m in points for p in points[m]]
    fit = fit_coefficients(train, prior, terms=HARNESS_TERMS, source=f"docs/validation.md ({gpu.key})")
    c = fit.coefficients
    card = doc["card"]
    print(f"## {card['name']}: driver {card['driver']}, torch {card['torch']}, CUDA {card.get('cuda')}, "
          f"{card['date']}\n")
    checks = ", ".join(f"{k} {v:.1e}" for k, v in doc["selfcheck"].items())
    print(f"Self-checks (relative error vs references): {checks}")
    print(f"nvidia-smi at start: {card.get('nvidia_smi_start')}; at end: {card.get('nvidia_smi_end')}\n")
    ceilings_table(doc["models"][0], gpu)
    bytes_tables(reports, raws)
    print(f"\n### Timing calibration\n\nFitted on {', '.join(m for m in CALIBRATE if m in points)} ({len(train)} "
          f"points; residuals median {fit.median_abs_error_pct:.1f} %, worst {fit.max_abs_error_pct:.1f} %; fitted: "
          f"{', '.join(fit.fitted)}): weight_bw_eff {c.weight_bw_eff:.3f}, kv_bw_eff {c.kv_bw_eff:.3f}, "
          f"gemm_eff bf16 {c.gemm_eff['bf16']:.3f}, moe_gemm_eff {c.moe_gemm_eff:.3f}, attention_eff "
          f"{c.attention_eff:.3f}, layer_overhead_s "
          f"{c.layer_overhead_s * 1e6:.2f} us per 9 kernels ({c.layer_overhead_s / 9 * 1e6:.2f} us per kernel). "
          f"Not fitted (kvcalc's defaults, calc/perf/shape.py): gemm_rows_half {c.gemm_rows_half:g} rows, "
          f"gemm_depth_half {c.gemm_depth_half:g}, overlap_loss {c.overlap_loss:g}. "
          f"Before = kvcalc's defaults for the card without any calibration file (weight reads "
          f"{prior.weight_bw_eff:g}, KV reads {prior.kv_bw_eff:g}, attention {prior.attention_eff:g}, "
          f"{prior.layer_overhead_s * 1e6:g} us per dense layer; engine step and request costs 0, as the harness "
          "has none).\n")
    print("| model | held out | TPOT error before (median / worst) | after | TTFT error before | after |")
    print("|---|---|---|---|---|---|")
    for model, pts in points.items():
        before, after = errors(pts, prior, step_time), errors(pts, c, step_time)
        held[model] = model not in CALIBRATE
        print(f"| {model} | {'yes' if held[model] else 'no'} | {pct(before['decode'])} | {pct(after['decode'])} | "
              f"{pct(before['prefill'])} | {pct(after['prefill'])} |")
    weight_stream_line(points, c)
    for model in ("llama-3.1-8b", "qwen3-30b-a3b", "deepseek-v2-lite", "gpt-oss-20b", "llama-3.1-70b"):
        if model in points:
            detail(model, points[model], prior, c, step_time, held[model])
    if args.check:
        other_machine(args.check, gpu, prior, c)
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
