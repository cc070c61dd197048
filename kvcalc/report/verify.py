"""`kvcalc verify`: each measurement beside kvcalc's prediction for the same model and settings, and the
calibration fitted to the timings.

Built from the raw measurement record (bench/suite.py) and the DeploymentPlan it was measured for, so a saved
record is re-read without a GPU whenever the perf model changes. Predictions:
- ceilings: the hardware file's datasheet figures (copy bandwidth, dense peaks, ridge point); decode-shape
  GEMMs by the roofline max(bytes / B, FLOPs / F);
- weights: the plan's weight bytes (whole model) and kvcalc's bytes per layer (PlainFormat);
- KV: the plan's pool (blocks x bytes per block) and `calc.kv.bytes_per_sequence` x batch;
- decode (TPOT) and prefill (TTFT): `calc.perf.step.step_cost` on the plan's PerfModel. The measured side is
  the GPU work of a step (K layers per signature in a CUDA graph, extrapolated, plus the head); it has no
  engine scheduler, so the engine's per-step and per-request CPU costs are set to 0 for this comparison;
- attention memory: `calc.attention_memory` (flash extra bytes, torch math backend peak).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import field
from typing import Any

from kvcalc.bench.layout import extrapolate, signature_groups
from kvcalc.calc.kv import bytes_per_sequence
from kvcalc.calc.perf.calibrate import CalibrationFit, StepPoint, fit_coefficients
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.weights import PlainFormat
from kvcalc.spec.base import record, replace
from kvcalc.spec.dtypes import storage_type

#: What the harness's timings can constrain (it has no engine scheduler: no per-request cost).
HARNESS_TERMS = ("weight_bw_eff", "kv_bw_eff", "gemm_eff", "attention_eff", "layer_overhead_s",
                 "step_overhead_s")
#: What a calibration file carries: the card's efficiencies (the overheads of torch's unfused kernels are
#: not an engine's; the engine's own overheads stay the defaults).
CARD_TERMS = ("weight_bw_eff", "kv_bw_eff", "gemm_eff", "attention_eff")


@record
class VerifyRecord:
    """One quantity: predicted (None where kvcalc makes no prediction), measured, error = (p - m) / m."""

    quantity: str
    predicted: float | None
    measured: float
    unit: str
    error_pct: float | None
    settings: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@record
class CalibrationReport:
    """The coefficients fitted to this run's timings, the residual of each point, and what was written."""

    coefficients: dict[str, Any]
    fitted: list[str]
    written: list[str]
    median_abs_error_pct: float
    max_abs_error_pct: float
    residuals: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    file: str | None = None


@record
class VerifyReport:
    """`kvcalc verify --json`: the card and software, every measurement beside its prediction, and the
    calibration when fitted."""

    model: str
    gpu: str
    card: str
    driver: str
    torch: str
    cuda: str
    date: str
    engine: str
    dtype: str
    kv_dtype: str
    records: list[VerifyRecord]
    calibration: CalibrationReport | None = None
    notes: list[str] = field(default_factory=list)


def error_pct(predicted: float | None, measured: float) -> float | None:
    """(predicted - measured) / measured x 100; None without a prediction or a measurement."""
    if predicted is None or not measured:
        return None
    return 100.0 * (predicted - measured) / measured


def _rec(quantity: str, predicted: float | None, measured: float, unit: str, note: str = "",
         **settings: Any) -> VerifyRecord:
    return VerifyRecord(quantity=quantity, predicted=predicted, measured=measured, unit=unit,
                        error_pct=error_pct(predicted, measured), settings=settings, note=note)


# ---- ceilings ----------------------------------------------------------------------------------------------

def ceiling_records(ceilings: dict[str, Any], plan: DeploymentPlan) -> list[VerifyRecord]:
    """Copy bandwidth and GEMM rates against the datasheet; decode shapes against the roofline."""
    gpu = plan.gpu
    if not ceilings or "copy" not in ceilings:
        return []
    bw = ceilings["copy"]["bytes_per_s"]
    out = [_rec("copy_bandwidth", gpu.memory_bandwidth_bytes_per_s, bw, "B/s",
                "predicted = datasheet", bytes_moved=ceilings["copy"]["bytes_moved"])]
    large_bf16 = None
    for g in ceilings.get("gemm", []):
        peak = gpu.flops(g["dtype"])
        if g["shape"] == "large":
            out.append(_rec(f"gemm_{g['dtype']}", peak, g["flops_per_s"], "FLOP/s", "predicted = dense peak",
                            m=g["m"], n=g["n"], k=g["k"]))
            large_bf16 = g["flops_per_s"] if g["dtype"] == "bf16" else large_bf16
        else:
            flops = 2.0 * g["m"] * g["n"] * g["k"]
            roofline = max(g["bytes"] / gpu.memory_bandwidth_bytes_per_s, flops / peak)
            out.append(_rec(f"gemm_{g['dtype']}_decode", flops / roofline, g["flops_per_s"], "FLOP/s",
                            "predicted = roofline max(bytes/B, FLOPs/F)", m=g["m"], n=g["n"], k=g["k"]))
    if large_bf16:
        out.append(_rec("ridge_point_bf16", gpu.ridge_point("bf16"), large_bf16 / bw, "FLOP/B",
                        "measured = bf16 GEMM rate / copy bandwidth"))
    return out


# ---- bytes -------------------------------------------------------------------------------------------------

def weight_records(weights: dict[str, Any], plan: DeploymentPlan) -> list[VerifyRecord]:
    """Each measured layer kind and the whole model against kvcalc's bytes (PlainFormat of the dtype)."""
    if not weights or "layers" not in weights:
        return []
    model, fmt = plan.model, PlainFormat(weights["dtype"])
    out = []
    per_signature: dict[str, float] = {}
    for row in weights["layers"]:
        layer = model.layers[row["index"]]
        predicted = sum(fmt.tensor_bytes(t, t.numel) for t in layer.tensors)
        per_signature.setdefault(row["signature"], row["bytes"])
        if not weights["whole_model"] or row["index"] == signature_groups(model)[row["signature"]][0]:
            out.append(_rec("weights_layer_bytes", predicted, row["bytes"], "B", layer=row["index"],
                            signature=row["signature"], params=row["params"]))
    globals_predicted = sum(fmt.tensor_bytes(t, t.numel) for t in model.global_tensors)
    out.append(_rec("weights_globals_bytes", globals_predicted, weights["globals_bytes"], "B"))
    counts = {s: len(idx) for s, idx in signature_groups(model).items()}
    if weights["whole_model"]:
        measured = float(weights["total_allocated_bytes"])
        note = "every layer built on the card"
    else:
        measured = extrapolate(per_signature, counts, weights["globals_bytes"])
        note = f"extrapolated from one layer of each of {len(counts)} layer kinds"
    out.append(_rec("weights_bytes", plan.devices[0].weights_bytes, measured, "B", note,
                    layers=model.num_layers))
    return out


def hf_records(hf: dict[str, Any], plan: DeploymentPlan) -> list[VerifyRecord]:
    """transformers' own model of the first K layers: parameters against kvcalc's."""
    if not hf or "params" not in hf:
        return []
    model, k = plan.model, hf["layers"]
    params = sum(t.numel for t in model.global_tensors) + sum(model.layers[i].params for i in range(k))
    return [_rec("transformers_params", params, hf["params"], "params",
                 f"transformers {hf['transformers']} from_config, first {k} layers", layers=k),
            _rec("transformers_bytes", 2 * params, hf["allocated_bytes"], "B",
                 "includes transformers' buffers (rotary tables)", layers=k)]


def paged_kv_records(kv: dict[str, Any], plan: DeploymentPlan) -> list[VerifyRecord]:
    """The pool allocated as vLLM lays it out against blocks x the plan's bytes per block."""
    if not kv or "allocated_bytes" not in kv:
        return []
    pool = plan.kv_pool
    return [_rec("kv_pool_bytes", kv["blocks"] * pool.block_bytes, kv["allocated_bytes"], "B",
                 f"{kv['tensors']} KV tensors, {kv['layout']} layout", blocks=kv["blocks"],
                 block_size=pool.block_size, engine=plan.engine)]


# ---- time --------------------------------------------------------------------------------------------------

def harness_coefficients(base: PerfCoefficients) -> PerfCoefficients:
    """`base` with the engine's CPU-side costs removed (no scheduler, sampler or front end in the harness)."""
    return replace(base, step_overhead_s=0.0, request_overhead_s=0.0, frontend_latency_s=0.0)


def _per_layer(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {r["signature"]: r["median_s"] / len(r["layers"]) for r in rows}


def measured_steps(raw: dict[str, Any], plan: DeploymentPlan) -> list[dict[str, Any]]:
    """Whole-model decode and prefill times extrapolated from the stacks (layout.extrapolate) plus the head;
    configurations some layer kind could not run are left out."""
    counts = {s: len(i) for s, i in signature_groups(plan.model).items()}
    steps = []
    decode = raw.get("decode") or {}
    head = {h["batch"]: h["median_s"] for h in decode.get("head", [])}
    configs = sorted({(r["batch"], r["context"]) for r in decode.get("stack", [])})
    for batch, context in configs:
        rows = [r for r in decode["stack"] if r["batch"] == batch and r["context"] == context]
        if set(counts) - {r["signature"] for r in rows} or batch not in head:
            continue
        kv = {r["signature"]: r["kv_bytes"] / len(r["layers"]) for r in rows}
        steps.append({"phase": "decode", "batch": batch, "context": context,
                      "measured_s": extrapolate(_per_layer(rows), counts, head[batch]),
                      "kv_bytes": extrapolate(kv, counts)})
    prefill = raw.get("prefill") or {}
    head_p = {h["tokens"]: h["median_s"] for h in prefill.get("head", [])}
    for tokens in sorted({r["tokens"] for r in prefill.get("stack", [])}):
        rows = [r for r in prefill["stack"] if r["tokens"] == tokens]
        if set(counts) - {r["signature"] for r in rows} or tokens not in head_p:
            continue
        steps.append({"phase": "prefill", "batch": 1, "context": tokens,
                      "measured_s": extrapolate(_per_layer(rows), counts, head_p[tokens])})
    return steps


def step_point(plan: DeploymentPlan, pm: Any, step: dict[str, Any], coeffs: PerfCoefficients
               ) -> tuple[StepPoint, float]:
    """The perf model's terms for a measured step and its predicted time under `coeffs`."""
    from kvcalc.calc.perf.step import step_cost

    if step["phase"] == "decode":
        cost = step_cost(pm, coeffs, decode_contexts=[step["context"] - 1] * step["batch"])
    else:
        cost = step_cost(pm, coeffs, prefill=[(0, step["context"])])
    gpu = plan.gpu
    point = StepPoint(
        label=f"{plan.model.id} {step['phase']} b={step['batch']} L={step['context']}",
        measured_s=step["measured_s"], weight_bytes=cost.weight_bytes, kv_bytes=cost.kv_bytes,
        gemm_flops=cost.gemm_flops, attention_flops=cost.attention_flops,
        layers=sum(s.layers for s in pm.stages), requests=cost.requests,
        bandwidth_bytes_per_s=gpu.memory_bandwidth_bytes_per_s, gemm_peak_flops=gpu.flops(pm.sixteen_bit),
        attention_peak_flops=gpu.flops(pm.sixteen_bit), comm_s=cost.t_comm,
    )
    return point, cost.time_s


def time_records(raw: dict[str, Any], plan: DeploymentPlan, coeffs: PerfCoefficients
                 ) -> tuple[list[VerifyRecord], list[StepPoint]]:
    """TPOT and TTFT against `step_cost`, the contiguous KV bytes, and the fit's points."""
    from kvcalc.calc.perf.model import perf_model

    pm = perf_model(plan)
    kv = storage_type(plan.kv_dtype)
    records, points = [], []
    for step in measured_steps(raw, plan):
        point, predicted = step_point(plan, pm, step, coeffs)
        points.append(point)
        settings = {"batch": step["batch"], "context": step["context"]}
        if step["phase"] == "decode":
            records.append(_rec("decode_step_s", predicted, step["measured_s"], "s", "TPOT", **settings))
            records.append(_rec("kv_cache_bytes", step["batch"] * bytes_per_sequence(plan.model, step["context"], kv),
                                step["kv_bytes"], "B", "contiguous cache of the decode runs", **settings))
        else:
            records.append(_rec("prefill_s", predicted, step["measured_s"], "s", "TTFT (batch 1)", **settings))
    return records, points


# ---- attention memory --------------------------------------------------------------------------------------

def attention_records(attention: dict[str, Any]) -> list[VerifyRecord]:
    """Peak bytes of flash and math SDPA against calc.attention_memory (when that module is present)."""
    if not attention or "rows" not in attention:
        return []
    try:
        from kvcalc.calc.attention_memory import AttentionShape, flash_extra, naive_peak
    except ImportError:
        AttentionShape = None  # noqa: N806 - the module arrives with `kvcalc attention`
    out = []
    for row in attention["rows"]:
        predicted = None
        if AttentionShape is not None:
            shape = AttentionShape(seq_len=row["tokens"], heads=row["heads"], head_dim=row["head_dim"])
            predicted = (sum(flash_extra(shape).values()) if row["backend"] == "flash"
                         else naive_peak(shape, "torch-math").bytes)
        out.append(_rec(f"attention_{row['backend']}_peak_bytes", predicted, row["peak_bytes"], "B",
                        tokens=row["tokens"], heads=row["heads"], head_dim=row["head_dim"]))
        out.append(_rec(f"attention_{row['backend']}_s", None, row["median_s"], "s", tokens=row["tokens"]))
    return out


# ---- the report --------------------------------------------------------------------------------------------

def calibration_report(fit: CalibrationFit, written: Sequence[str], file: str | None = None) -> CalibrationReport:
    c = fit.coefficients
    values = {name: getattr(c, name) for name in HARNESS_TERMS}
    residuals = [{"label": r.label, "measured_s": r.measured_s, "fitted_s": r.fitted_s, "error_pct": r.error_pct,
                  "regime": r.regime} for r in fit.residuals]
    return CalibrationReport(coefficients=values, fitted=list(fit.fitted), written=list(written),
                             median_abs_error_pct=fit.median_abs_error_pct, max_abs_error_pct=fit.max_abs_error_pct,
                             residuals=residuals, notes=list(fit.notes), file=file)


def verify_report(raw: dict[str, Any], plan: DeploymentPlan, base: PerfCoefficients, *,
                  calibrate: bool = True) -> tuple[VerifyReport, CalibrationFit | None]:
    """Every record of `raw` beside its prediction; with `calibrate`, the fit to its timings."""
    coeffs = harness_coefficients(base)
    records = ceiling_records(raw.get("ceilings") or {}, plan)
    records += weight_records(raw.get("weights") or {}, plan)
    records += hf_records(raw.get("hf_check") or {}, plan)
    records += paged_kv_records(raw.get("paged_kv") or {}, plan)
    timed, points = time_records(raw, plan, coeffs)
    records += timed
    records += attention_records(raw.get("attention") or {})
    fit = None
    if calibrate and points:
        fit = fit_coefficients(points, coeffs, terms=HARNESS_TERMS, source=calibration_source(raw["card"]))
    card = raw["card"]
    report = VerifyReport(
        model=plan.model.id, gpu=plan.gpu.key, card=card.get("name", ""), driver=card.get("driver", ""),
        torch=card.get("torch", ""), cuda=card.get("cuda", ""), date=card.get("date", ""), engine=plan.engine,
        dtype=raw.get("dtype", ""), kv_dtype=plan.kv_dtype, records=records,
        calibration=calibration_report(fit, CARD_TERMS) if fit else None,
        notes=list(raw.get("notes", [])) + _skipped(raw),
    )
    return report, fit


def calibration_source(card: dict[str, Any]) -> str:
    return f"kvcalc verify on {card.get('name', '?')}, driver {card.get('driver', '?')}, {card.get('date', '?')}"


def _skipped(raw: dict[str, Any]) -> list[str]:
    out = []
    for part in ("decode", "prefill"):
        for s in (raw.get(part) or {}).get("skipped", []):
            where = ", ".join(f"{k}={v}" for k, v in s.items() if k != "reason")
            out.append(f"{part} skipped ({where}): {s['reason']}")
    return out


def median_abs_error(records: Sequence[VerifyRecord], quantity: str) -> float | None:
    errors = [abs(r.error_pct) for r in records if r.quantity == quantity and r.error_pct is not None]
    return statistics.median(errors) if errors else None
