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
from kvcalc.calc.parallel import weights_per_stage
from kvcalc.calc.perf.calibrate import CalibrationFit, StepPoint, fit_coefficients
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.weights import PlainFormat
from kvcalc.report.explain import Derivation
from kvcalc.spec.base import record, replace
from kvcalc.spec.dtypes import storage_type

#: What the harness's timings can constrain: its step is the layers plus the head, every part of which the
#: model's byte, FLOP and per-kernel terms describe; it has no scheduler, so no per-step or per-request cost.
HARNESS_TERMS = ("weight_bw_eff", "kv_bw_eff", "gemm_eff", "attention_eff", "layer_overhead_s", "moe_gemm_eff")
#: What a calibration file carries: the card's efficiencies (the overheads of torch's unfused kernels are
#: not an engine's; the engine's own overheads stay the defaults).
CARD_TERMS = ("weight_bw_eff", "kv_bw_eff", "gemm_eff", "attention_eff", "moe_gemm_eff")


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
    explain: list[Derivation] = field(default_factory=list)


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

def ceiling_records(ceilings: dict[str, Any], plan: DeploymentPlan, coeffs: PerfCoefficients
                    ) -> list[VerifyRecord]:
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
            out.append(_decode_gemm_record(g, gpu.memory_bandwidth_bytes_per_s, peak))
    if large_bf16:
        out.append(_rec("ridge_point_bf16", gpu.ridge_point("bf16"), large_bf16 / bw, "FLOP/B",
                        "measured = bf16 GEMM rate / copy bandwidth"))
    if "kernel" in ceilings:
        from kvcalc.calc.perf.kernels import DENSE_LAYER_KERNELS

        out.append(_rec("kernel_fixed_s", coeffs.layer_overhead_s / DENSE_LAYER_KERNELS,
                        ceilings["kernel"]["per_kernel_s"], "s", "predicted = layer_overhead_s / 9 kernels; "
                        "measured = a CUDA graph of tiny kernels"))
    return out


def _decode_gemm_record(g: dict[str, Any], bandwidth: float, peak: float) -> VerifyRecord:
    """A decode-shape GEMM of M = batch rows against the roofline max(bytes/B, FLOPs/F) of the product that ran,
    labelled with the batch's own M. FP8 products run with M padded to a multiple of 16 (torch._scaled_mm), so
    both rates count the batch's 2 x M x N x K FLOPs over the padded product's time."""
    rows = int(g.get("batch", g["m"]))
    roofline_s = max(g["bytes"] / bandwidth, 2.0 * g["m"] * g["n"] * g["k"] / peak)
    useful = rows / g["m"]
    settings: dict[str, Any] = {"m": rows, "n": g["n"], "k": g["k"]}
    note = "predicted = roofline max(bytes/B, FLOPs/F)"
    if rows != g["m"]:
        settings["padded_m"] = g["m"]
        note += f"; run with M padded to {g['m']} rows (torch._scaled_mm), FLOP/s of the batch's {rows}"
    return _rec(f"gemm_{g['dtype']}_decode", 2.0 * rows * g["n"] * g["k"] / roofline_s, g["flops_per_s"] * useful,
                "FLOP/s", note, **settings)


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
    predicted = weights_per_stage(model, plan.parallel, fmt)[0].weights_bytes
    out.append(_rec("weights_bytes", predicted, measured, "B", note, layers=model.num_layers))
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
    settings = {"blocks": kv["blocks"], "block_size": pool.block_size, "engine": plan.engine}
    out = []
    if "tensor_bytes" in kv:
        out.append(_rec("kv_pool_bytes", kv["blocks"] * pool.block_bytes, kv["tensor_bytes"], "B",
                        f"{kv['tensors']} KV tensors, {kv['layout']} layout", **settings))
    out.append(_rec("kv_pool_allocated_bytes", kv["blocks"] * pool.block_bytes, kv["allocated_bytes"], "B",
                    "allocator growth (large blocks rounded up to 2 MiB)", **settings))
    return out


# ---- time --------------------------------------------------------------------------------------------------

def harness_coefficients(base: PerfCoefficients) -> PerfCoefficients:
    """`base` with the engine's CPU-side costs removed (no scheduler, sampler or front end in the harness)."""
    return replace(base, step_overhead_s=0.0, request_overhead_s=0.0, frontend_latency_s=0.0)


def _per_layer(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {r["signature"]: r["median_s"] / len(r["layers"]) for r in rows}


def _kernels(rows: list[dict[str, Any]], counts: dict[str, int], head: dict[str, Any] | None) -> float | None:
    """Kernels of the whole step: sum over layer kinds of count x kernels per layer, plus the head's;
    None when a count is missing (CPU runs)."""
    if head is None or head.get("kernels") is None or any(r.get("kernels") is None for r in rows):
        return None
    per_layer = {r["signature"]: r["kernels"] / len(r["layers"]) for r in rows}
    return extrapolate(per_layer, counts, head["kernels"])


def measured_steps(raw: dict[str, Any], plan: DeploymentPlan) -> list[dict[str, Any]]:
    """Whole-model decode and prefill times extrapolated from the stacks (layout.extrapolate) plus the head,
    with the kernels such a step launches; configurations some layer kind could not run are left out."""
    counts = {s: len(i) for s, i in signature_groups(plan.model).items()}
    steps = []
    decode = raw.get("decode") or {}
    heads = {h["batch"]: h for h in decode.get("head", [])}
    for batch, context in sorted({(r["batch"], r["context"]) for r in decode.get("stack", [])}):
        rows = [r for r in decode["stack"] if r["batch"] == batch and r["context"] == context]
        if set(counts) - {r["signature"] for r in rows} or batch not in heads:
            continue
        kv = {r["signature"]: r["kv_bytes"] / len(r["layers"]) for r in rows}
        steps.append({"phase": "decode", "batch": batch, "context": context,
                      "measured_s": extrapolate(_per_layer(rows), counts, heads[batch]["median_s"]),
                      "kv_bytes": extrapolate(kv, counts), "kernels": _kernels(rows, counts, heads[batch])})
    prefill = raw.get("prefill") or {}
    heads = {h["tokens"]: h for h in prefill.get("head", [])}
    for tokens in sorted({r["tokens"] for r in prefill.get("stack", [])}):
        rows = [r for r in prefill["stack"] if r["tokens"] == tokens]
        if set(counts) - {r["signature"] for r in rows} or tokens not in heads:
            continue
        steps.append({"phase": "prefill", "batch": 1, "context": tokens,
                      "measured_s": extrapolate(_per_layer(rows), counts, heads[tokens]["median_s"]),
                      "kernels": _kernels(rows, counts, heads[tokens])})
    return steps


def step_point(plan: DeploymentPlan, pm: Any, step: dict[str, Any], coeffs: PerfCoefficients
               ) -> tuple[StepPoint, Any, float]:
    """The perf model's terms for a measured step, its StepCost, and the predicted time for the harness:
    step_cost's time with the fixed per-layer term charged for the kernels the harness launched (counted
    by the profiler, in units of a dense layer's DENSE_LAYER_KERNELS) instead of an engine's."""
    from kvcalc.calc.perf.kernels import DENSE_LAYER_KERNELS
    from kvcalc.calc.perf.step import step_cost

    if step["phase"] == "decode":
        cost = step_cost(pm, coeffs, decode_contexts=[step["context"] - 1] * step["batch"])
    else:
        cost = step_cost(pm, coeffs, prefill=[(0, step["context"])])
    units = cost.layer_units if step.get("kernels") is None else step["kernels"] / DENSE_LAYER_KERNELS
    predicted = cost.time_s + (units - cost.layer_units) * coeffs.layer_overhead_s
    gpu = plan.gpu
    point = StepPoint(
        label=f"{plan.model.id} {step['phase']} b={step['batch']} L={step['context']}",
        measured_s=step["measured_s"], weight_bytes=cost.weight_bytes, kv_bytes=cost.kv_bytes,
        gemm_flops=cost.gemm_flops, attention_flops=cost.attention_flops, layers=units,
        requests=cost.requests, bandwidth_bytes_per_s=gpu.memory_bandwidth_bytes_per_s,
        gemm_peak_flops=gpu.flops(pm.sixteen_bit), attention_peak_flops=gpu.flops(pm.sixteen_bit),
        comm_s=cost.t_comm, expert_weight_bytes=cost.expert_weight_bytes, expert_gemm_flops=cost.expert_gemm_flops,
        gemm_shape_flops=cost.gemm_shape_flops, expert_shape_flops=cost.expert_shape_flops,
        expert_activation_bytes=cost.expert_activation_bytes,
    )
    return point, cost, predicted


def step_derivation(step: dict[str, Any], cost: Any, coeffs: PerfCoefficients, units: float,
                    predicted: float) -> Derivation:
    """The predicted step time with its terms substituted (calc/perf/step.py)."""
    what = "decode step" if step["phase"] == "decode" else "prefill"
    return Derivation(
        figure=f"{what} b={step['batch']} L={step['context']}",
        formula="max(t_weights, t_gemm) per GEMM shape (dense; experts) + t_routed + max(t_kv, t_attention) + "
                "layer_units x layer_overhead_s",
        substituted=(f"max({cost.t_weights * 1e3:.3f}, {cost.t_gemm * 1e3:.3f}) ms + "
                     f"{cost.t_expert_activations * 1e3:.3f} ms + max({cost.t_kv * 1e3:.3f}, "
                     f"{cost.t_attention * 1e3:.3f}) ms + {units:.1f} x {coeffs.layer_overhead_s * 1e6:.1f} us"),
        value=f"{predicted * 1e3:.3f} ms (measured {step['measured_s'] * 1e3:.3f} ms)",
        source="calc/perf/step.py step_cost; t_routed = the harness's routed-row bytes (bench/traffic.py) / (B x "
               "weight_bw_eff); layer_units = kernels the harness launched / 9 (calc/perf/kernels.py); no engine "
               "step or request cost (the harness has no scheduler)",
    )


def time_records(raw: dict[str, Any], plan: DeploymentPlan, coeffs: PerfCoefficients, explain: bool = False
                 ) -> tuple[list[VerifyRecord], list[StepPoint], list[Derivation]]:
    """TPOT and TTFT against `step_cost`, the contiguous KV bytes, the fit's points and (when asked) how each
    prediction was computed."""
    from kvcalc.bench.traffic import harness_perf_model
    from kvcalc.calc.perf.model import perf_model

    pm = harness_perf_model(perf_model(plan))
    kv = storage_type(plan.kv_dtype)
    records, points, derivations = [], [], []
    for step in measured_steps(raw, plan):
        point, cost, predicted = step_point(plan, pm, step, coeffs)
        points.append(point)
        if explain:
            derivations.append(step_derivation(step, cost, coeffs, point.layers, predicted))
        settings = {"batch": step["batch"], "context": step["context"]}
        if step["phase"] == "decode":
            records.append(_rec("decode_step_s", predicted, step["measured_s"], "s", "TPOT", **settings))
            per_sequence = bytes_per_sequence(plan.model, step["context"], kv)
            records.append(_rec("kv_cache_bytes", step["batch"] * per_sequence, step["kv_bytes"], "B",
                                "contiguous cache of the decode runs", **settings))
        else:
            records.append(_rec("prefill_s", predicted, step["measured_s"], "s", "TTFT (batch 1)", **settings))
    return records, points, derivations


# ---- attention memory --------------------------------------------------------------------------------------

def attention_records(attention: dict[str, Any]) -> list[VerifyRecord]:
    """Peak bytes of flash and math SDPA against calc.attention_memory (`kvcalc attention`'s model)."""
    if not attention or "rows" not in attention:
        return []
    from kvcalc.calc.attention_memory import AttentionShape, flash_extra, naive_peak

    out = []
    for row in attention["rows"]:
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
                  calibrate: bool = True, explain: bool = False) -> tuple[VerifyReport, CalibrationFit | None]:
    """Every record of `raw` beside its prediction; with `calibrate`, the fit to its timings (and to the
    communication timings, when `raw` has them)."""
    coeffs = harness_coefficients(base)
    records = ceiling_records(raw.get("ceilings") or {}, plan, coeffs)
    records += weight_records(raw.get("weights") or {}, plan)
    records += hf_records(raw.get("hf_check") or {}, plan)
    records += paged_kv_records(raw.get("paged_kv") or {}, plan)
    timed, points, derivations = time_records(raw, plan, coeffs, explain)
    records += timed
    records += attention_records(raw.get("attention") or {})
    fit: CalibrationFit | None = None
    measured: tuple[str, ...] = ()
    if calibrate and points:
        experts = any(p.expert_gemm_flops for p in points)
        prior, terms, notes = single_model_prior(coeffs, raw.get("ceilings") or {}, plan.gpu.flops("bf16"), experts)
        fit = fit_coefficients(points, prior, terms=terms, source=calibration_source(raw["card"]))
        fit = replace(fit, notes=(*notes, *fit.notes))
        measured = tuple(t for t in HARNESS_TERMS if t not in terms and t in CARD_TERMS)  # from the ceilings
    comm_records, comm_values = communication(raw.get("comm") or {}, plan, coeffs)
    records += comm_records
    card = raw["card"]
    report = VerifyReport(
        model=plan.model.id, gpu=plan.gpu.key, card=card.get("name", ""), driver=card.get("driver", ""),
        torch=card.get("torch", ""), cuda=card.get("cuda", ""), date=card.get("date", ""), engine=plan.engine,
        dtype=raw.get("dtype", ""), kv_dtype=plan.kv_dtype, records=records,
        calibration=_calibration(fit, comm_values, measured),
        notes=list(raw.get("notes", [])) + _skipped(raw), explain=derivations,
    )
    return report, fit


def _calibration(fit: CalibrationFit | None, comm: dict[str, float], measured: Sequence[str] = ()
                 ) -> CalibrationReport | None:
    """The fit's report; a calibration file carries the card terms fitted and those the card's ceilings
    measured in their place (`measured`: a MoE model's gemm_eff, the rate its moe_gemm_eff is relative to)."""
    if fit is None and not comm:
        return None
    if fit is None:
        return CalibrationReport(coefficients=dict(comm), fitted=list(comm), written=list(comm),
                                 median_abs_error_pct=0.0, max_abs_error_pct=0.0, residuals=[])
    report = calibration_report(fit, [t for t in CARD_TERMS if t in fit.fitted or t in measured] + list(comm))
    return replace(report, coefficients={**report.coefficients, **comm})


def calibration_values(report: VerifyReport, card_terms: Sequence[str] | None = None) -> dict[str, Any]:
    """The coefficients a calibration file carries: the fitted card terms (gemm_eff for the measured dtype
    plus FP8 scaled by the measured FP8/bf16 large-GEMM efficiency ratio, when both were measured) and the
    communication terms."""
    cal = report.calibration
    if cal is None:
        return {}
    wanted = list(card_terms) if card_terms is not None else cal.written
    values: dict[str, Any] = {}
    for name in wanted:
        value = cal.coefficients.get(name)
        if name == "gemm_eff" and isinstance(value, dict):
            dtype = report.dtype or "bf16"
            value = {dtype: round(value[dtype], 4)}
            ratio = _fp8_ratio(report)
            if ratio is not None:
                value["fp8"] = round(value[dtype] * ratio, 4)
        elif isinstance(value, float):
            value = float(f"{value:.4g}")
        if value is not None:
            values[name] = value
    return values


def _fp8_ratio(report: VerifyReport) -> float | None:
    """(measured FP8 / FP8 peak) / (measured bf16 / bf16 peak) at the large GEMM shape."""
    shares = {}
    for r in report.records:
        if r.quantity in ("gemm_bf16", "gemm_fp8") and r.predicted:
            shares[r.quantity] = r.measured / r.predicted
    if len(shares) < 2:
        return None
    return shares["gemm_fp8"] / shares["gemm_bf16"]


def single_model_prior(coeffs: PerfCoefficients, ceilings: dict[str, Any], peak_bf16: float, experts: bool
                       ) -> tuple[PerfCoefficients, tuple[str, ...], tuple[str, ...]]:
    """What one model's steps cannot separate is taken from the card's own measurements (prior, terms to fit,
    notes). Where the per-kernel cost of an empty kernel was measured, 9 of it is the prior per-layer cost; it
    is still fitted, because real kernels cost more than empty ones (2.8 us against 1.2 us on an H100,
    docs/validation.md), and where the steps cannot tell it from the weight reads (a dense model reads the same
    weights every decode step) the fit keeps the weight rate's prior instead. A MoE model's dense GEMMs
    are a small share beside its expert GEMMs, and the fit trades one for the other (Qwen3-30B-A3B alone:
    gemm_eff 0.41 with moe_gemm_eff at its bound 1, docs/validation.md): gemm_eff is the measured 8192^3 bf16
    GEMM over its shape factor (calc/perf/shape.py), and moe_gemm_eff is fitted against it."""
    from kvcalc.calc.perf.shape import measured_gemm_shape

    terms: tuple[str, ...] = HARNESS_TERMS
    notes: list[str] = []
    if "kernel" in ceilings:
        from kvcalc.calc.perf.kernels import DENSE_LAYER_KERNELS

        coeffs = replace(coeffs, layer_overhead_s=ceilings["kernel"]["per_kernel_s"] * DENSE_LAYER_KERNELS)
    large = [g for g in ceilings.get("gemm", []) if g.get("shape") == "large" and g.get("dtype") == "bf16"
             and (g.get("flops_per_s") or 0) > 0]
    if experts and large and peak_bf16 > 0:
        shape = measured_gemm_shape(coeffs.gemm_rows_half, coeffs.gemm_depth_half)
        gemm = min(1.0, large[0]["flops_per_s"] / peak_bf16 / shape)
        coeffs = replace(coeffs, gemm_eff={**coeffs.gemm_eff, "bf16": gemm})
        terms = tuple(t for t in terms if t != "gemm_eff")
        notes.append(f"gemm_eff {gemm:.3f} from this card's 8192^3 bf16 GEMM (not fitted: one MoE model's steps "
                     "cannot tell its dense GEMMs from its expert GEMMs)")
    return coeffs, terms, tuple(notes)


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


# ---- communication (several GPUs) --------------------------------------------------------------------------

def communication(comm: dict[str, Any], plan: DeploymentPlan, coeffs: PerfCoefficients
                  ) -> tuple[list[VerifyRecord], dict[str, float]]:
    """Each collective and size against `calc.perf.comm.collective_time`, the fitted latency and bus bandwidth
    against the perf model's, and the communication coefficients fitted from the all-reduce (its CUDA-graph
    timing where there is one: engines run decode collectives inside graphs)."""
    if not comm or "rows" not in comm:
        return [], {}
    from kvcalc.calc.perf.calibrate import fit_latency_bandwidth
    from kvcalc.calc.perf.comm import collective_time, link_bytes_per_s

    gpu, link, ranks = plan.gpu, link_bytes_per_s(plan.gpu), comm["ranks"]
    out: list[VerifyRecord] = []
    fits = {}
    for key in sorted({(r["collective"], r["graph"]) for r in comm["rows"]}):
        rows = sorted((r for r in comm["rows"] if (r["collective"], r["graph"]) == key),
                      key=lambda r: r["message_bytes"])
        name, graph = key
        for r in rows:
            out.append(_rec(f"{name}_s", collective_time(r["wire_bytes"], gpu, coeffs), r["median_s"], "s",
                            ranks=ranks, message_bytes=r["message_bytes"], graph=graph))
        if len(rows) < 2:
            continue
        fit = fit_latency_bandwidth([r["wire_bytes"] for r in rows], [r["median_s"] for r in rows])
        fits[key] = fit
        note = (f"fitted t = latency + wire bytes / bandwidth over {fit.points} sizes "
                f"(max error {fit.max_abs_error_pct:.1f} %)")
        out.append(_rec(f"{name}_latency_s", coeffs.comm_latency_s, fit.latency_s, "s", note, ranks=ranks,
                        graph=graph))
        out.append(_rec(f"{name}_bus_bandwidth", link * coeffs.comm_bw_eff, fit.bandwidth_bytes_per_s, "B/s",
                        note, ranks=ranks, graph=graph))
    chosen = fits.get(("all_reduce", True)) or fits.get(("all_reduce", False))
    values = {}
    if chosen is not None:
        values = {"comm_latency_s": chosen.latency_s, "comm_bw_eff": chosen.bandwidth_bytes_per_s / link}
    return out, values


# ---- human output ------------------------------------------------------------------------------------------

def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1e3:,.3f} ms"
    if unit in ("B", "params"):
        return f"{value:,.0f}" + (" B" if unit == "B" else "")
    if unit == "B/s":
        return f"{value / 1e12:,.3f} TB/s" if value >= 1e11 else f"{value / 1e9:,.2f} GB/s"
    if unit == "FLOP/s":
        return f"{value / 1e12:,.1f} TFLOP/s"
    return f"{value:,.1f} {unit}"


def _coefficient(name: str, value: Any) -> str:
    """A fitted coefficient for people: efficiencies to 3 decimals (per dtype for GEMMs), times in us."""
    if isinstance(value, dict):
        return ", ".join(f"{dtype} {v:.3f}" for dtype, v in value.items())
    if isinstance(value, float) and name.endswith("_s"):
        return f"{value * 1e6:.2f} us"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def render_verify(console: Any, report: VerifyReport) -> None:
    """Rich tables: each measurement beside its prediction, then the calibration."""
    from rich.table import Table

    console.print(f"[bold]{report.model}[/bold] on {report.card} (hardware file {report.gpu}), driver "
                  f"{report.driver}, torch {report.torch}, {report.date}; {report.dtype} weights, "
                  f"{report.kv_dtype} KV, {report.engine} layout")
    table = Table(show_lines=False)
    for column in ("quantity", "settings", "predicted", "measured", "error"):
        table.add_column(column, justify="left" if column in ("quantity", "settings") else "right")
    for r in report.records:
        settings = " ".join(f"{k}={v}" for k, v in r.settings.items())
        error = "-" if r.error_pct is None else f"{r.error_pct:+.2f} %"
        table.add_row(r.quantity, settings, _fmt(r.predicted, r.unit), _fmt(r.measured, r.unit), error)
    console.print(table)
    cal = report.calibration
    if cal is None:
        return
    console.print(f"\n[bold]Calibration[/bold] (fitted: {', '.join(cal.fitted) or 'nothing'}); residuals: median "
                  f"{cal.median_abs_error_pct:.1f} %, worst {cal.max_abs_error_pct:.1f} %")
    for name, value in cal.coefficients.items():
        mark = " (written)" if name in cal.written and cal.file else ""
        console.print(f"  {name} = {_coefficient(name, value)}{mark}", markup=False)
    for note in cal.notes:
        console.print(f"  {note}")
    if cal.file:
        console.print(f"written to {cal.file}")
