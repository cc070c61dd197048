"""`kvcalc verify`: each measurement beside kvcalc's prediction for the same model and settings, and the
calibration fitted to the timings (rendered by report/verify_render.py).

Built from the raw measurement record (bench/suite.py) and the DeploymentPlan it was measured for, so a saved
record is re-read without a GPU whenever the perf model changes. The step predictions, the fit and the
communication fits are calc/verify/'s; this module pairs each with its measurement. Predictions:
- ceilings: the hardware file's datasheet figures (copy bandwidth, dense peaks, ridge point); decode-shape
  GEMMs by the perf model's time for one GEMM kernel (calc/verify/ceilings.py);
- weights: the plan's weight bytes (whole model) and kvcalc's bytes per layer (PlainFormat);
- KV: the plan's pool (blocks x bytes per block) and `calc.kv.bytes_per_sequence` x batch;
- decode (TPOT) and prefill (TTFT): calc/verify/steps.py (`step_cost` on the harness's perf model, without
  the engine's per-step and per-request CPU costs: the harness has no scheduler);
- attention: `calc.attention_memory` (flash extra bytes, torch math backend peak; flash time at FA2's rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from typing import Any

from kvcalc.calc.kv import bytes_per_sequence
from kvcalc.calc.parallel import weights_per_stage
from kvcalc.calc.perf.calibrate import CalibrationFit, StepPoint
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.verify.calibration import RunFit, fit_run
from kvcalc.calc.verify.ceilings import gemm_kernel_time
from kvcalc.calc.verify.comm import collective_fits, collective_series, communication_values
from kvcalc.calc.verify.layout import extrapolate, signature_groups
from kvcalc.calc.verify.steps import HARNESS_TERMS, StepPrediction, harness_coefficients, predict_steps
from kvcalc.calc.weights import PlainFormat
from kvcalc.report.explain import Derivation
from kvcalc.spec.base import record, replace
from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.gpu import GpuSpec


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
    """Copy bandwidth and GEMM rates against the datasheet; decode shapes against the perf model's GEMM."""
    gpu = plan.gpu
    if not ceilings or "copy" not in ceilings:
        return []
    bw = ceilings["copy"]["bytes_per_s"]
    out = [_rec("copy_bandwidth", gpu.memory_bandwidth_bytes_per_s, bw, "B/s",
                "predicted = datasheet", bytes_moved=ceilings["copy"]["bytes_moved"])]
    large_bf16 = None
    for g in ceilings.get("gemm", []):
        if g["shape"] == "large":
            out.append(_rec(f"gemm_{g['dtype']}", gpu.flops(g["dtype"]), g["flops_per_s"], "FLOP/s",
                            "predicted = dense peak", m=g["m"], n=g["n"], k=g["k"]))
            large_bf16 = g["flops_per_s"] if g["dtype"] == "bf16" else large_bf16
        else:
            out.append(_decode_gemm_record(g, gpu, coeffs))
    if large_bf16:
        out.append(_rec("ridge_point_bf16", gpu.ridge_point("bf16"), large_bf16 / bw, "FLOP/B",
                        "measured = bf16 GEMM rate / copy bandwidth"))
    if "kernel" in ceilings:
        out.append(_rec("kernel_fixed_s", None, ceilings["kernel"]["per_kernel_s"], "s",
                        "a CUDA graph of tiny kernels; no prediction: 9 x this is the prior of the per-layer cost "
                        "the calibration fits (real kernels cost more than empty ones)"))
    return out


def _decode_gemm_record(g: dict[str, Any], gpu: GpuSpec, coeffs: PerfCoefficients) -> VerifyRecord:
    """A decode-shape GEMM of M = batch rows against the perf model's time for the product that ran
    (calc/verify/ceilings.py), as FLOP/s of the batch's own M. FP8 products run with M padded to a multiple
    of 16 (torch._scaled_mm), so both rates count the batch's 2 x M x N x K FLOPs over the padded product's
    time."""
    rows = int(g.get("batch", g["m"]))
    weight_bytes = g["n"] * g["k"] * storage_type(g["dtype"]).block_bytes
    predicted_s = gemm_kernel_time(g["m"], g["n"], g["k"], g["dtype"], weight_bytes, gpu, coeffs)
    useful = rows / g["m"]
    settings: dict[str, Any] = {"m": rows, "n": g["n"], "k": g["k"]}
    note = "predicted = the perf model's GEMM: R(bytes / weight rate, FLOPs / GEMM rate) + one kernel's fixed cost"
    if rows != g["m"]:
        settings["padded_m"] = g["m"]
        note += f"; run with M padded to {g['m']} rows (torch._scaled_mm), FLOP/s of the batch's {rows}"
    return _rec(f"gemm_{g['dtype']}_decode", 2.0 * rows * g["n"] * g["k"] / predicted_s, g["flops_per_s"] * useful,
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

def step_derivation(p: StepPrediction, coeffs: PerfCoefficients) -> Derivation:
    """The predicted step time with its terms substituted (calc/perf/step.py)."""
    step, cost = p.step, p.cost
    what = "decode step" if step.phase == "decode" else "prefill"
    return Derivation(
        figure=f"{what} b={step.batch} L={step.context}",
        formula="max(t_weights, t_gemm) per GEMM shape (dense; experts) + t_routed + max(t_kv, t_attention) + "
                "layer_units x layer_overhead_s",
        substituted=(f"max({cost.t_weights * 1e3:.3f}, {cost.t_gemm * 1e3:.3f}) ms + "
                     f"{cost.t_expert_activations * 1e3:.3f} ms + max({cost.t_kv * 1e3:.3f}, "
                     f"{cost.t_attention * 1e3:.3f}) ms + {p.point.layers:.1f} x "
                     f"{coeffs.layer_overhead_s * 1e6:.1f} us"),
        value=f"{p.predicted_s * 1e3:.3f} ms (measured {step.measured_s * 1e3:.3f} ms)",
        source="calc/perf/step.py step_cost; t_routed = the harness's routed-row bytes (calc/verify/traffic.py) / "
               "(B x weight_bw_eff); layer_units = kernels the harness launched / 9 (calc/perf/kernels.py); no "
               "engine step or request cost (the harness has no scheduler)",
    )


def time_records(raw: dict[str, Any], plan: DeploymentPlan, coeffs: PerfCoefficients, explain: bool = False
                 ) -> tuple[list[VerifyRecord], list[StepPoint], list[Derivation]]:
    """TPOT and TTFT against the perf model (calc/verify/steps.py), the contiguous KV bytes, the fit's points
    and (when asked) how each prediction was computed."""
    kv = storage_type(plan.kv_dtype)
    records = []
    predictions = predict_steps(raw, plan, coeffs)
    for p in predictions:
        step = p.step
        settings = {"batch": step.batch, "context": step.context}
        if step.phase == "decode":
            records.append(_rec("decode_step_s", p.predicted_s, step.measured_s, "s", "TPOT", **settings))
            per_sequence = bytes_per_sequence(plan.model, step.context, kv)
            records.append(_rec("kv_cache_bytes", step.batch * per_sequence, step.kv_bytes or 0.0, "B",
                                "contiguous cache of the decode runs", **settings))
        else:
            records.append(_rec("prefill_s", p.predicted_s, step.measured_s, "s", "TTFT (batch 1)", **settings))
    derivations = [step_derivation(p, coeffs) for p in predictions] if explain else []
    return records, [p.point for p in predictions], derivations


# ---- attention memory --------------------------------------------------------------------------------------

def attention_records(attention: dict[str, Any], gpu: GpuSpec) -> list[VerifyRecord]:
    """Peak bytes of flash and math SDPA against calc.attention_memory (`kvcalc attention`'s model), and the
    flash backend's time against `kvcalc attention`'s FlashAttention-2 time (torch's flash backend is FA2):
    the tile model (`kvcalc.calc.attention_time`) at the card's SM count. kvcalc gives only a lower bound for
    the math backend's time, so that one is measured only."""
    if not attention or "rows" not in attention:
        return []
    from kvcalc.calc.attention_memory import AttentionShape, flash_extra, naive_peak
    from kvcalc.calc.attention_time import FA2, flash_time

    out = []
    for row in attention["rows"]:
        shape = AttentionShape(seq_len=row["tokens"], heads=row["heads"], head_dim=row["head_dim"])
        flash = row["backend"] == "flash"
        predicted = sum(flash_extra(shape).values()) if flash else naive_peak(shape, "torch-math").bytes
        out.append(_rec(f"attention_{row['backend']}_peak_bytes", predicted, row["peak_bytes"], "B",
                        tokens=row["tokens"], heads=row["heads"], head_dim=row["head_dim"]))
        if not flash:
            out.append(_rec("attention_math_s", None, row["median_s"], "s", tokens=row["tokens"], graph=False))
            continue
        fraction = FA2.fraction(gpu, "bf16")
        ft = flash_time(shape, FA2, gpu.flops("bf16"), fraction, gpu.sm_count, gpu.cuda_capability)
        basis = (f"predicted = FlashAttention-2's tile model ({ft.block_q} x {ft.block_kv} tiles, "
                 f"{FA2.setup_iterations} setup iterations, {fraction:.1%} of the bf16 peak)")
        out.append(_rec("attention_flash_s", ft.time_s, row["median_s"], "s", basis, tokens=row["tokens"],
                        graph=row.get("graph", False)))
    return out


# ---- the report --------------------------------------------------------------------------------------------

def calibration_report(fit: CalibrationFit, written: Sequence[str], file: str | None = None) -> CalibrationReport:
    """The fit's coefficients (the harness terms), residuals and notes, and the terms a file carries."""
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
    records += attention_records(raw.get("attention") or {}, plan.gpu)
    run = fit_run(points, coeffs, raw.get("ceilings") or {}, plan.gpu, raw["card"]) if calibrate and points else None
    comm_records, comm_values = communication(raw.get("comm") or {}, plan, coeffs)
    records += comm_records
    card = raw["card"]
    report = VerifyReport(
        model=plan.model.id, gpu=plan.gpu.key, card=card.get("name", ""), driver=card.get("driver", ""),
        torch=card.get("torch", ""), cuda=card.get("cuda", ""), date=card.get("date", ""), engine=plan.engine,
        dtype=raw.get("dtype", ""), kv_dtype=plan.kv_dtype, records=records,
        calibration=_calibration(run, comm_values), notes=list(raw.get("notes", [])) + _skipped(raw),
        explain=derivations,
    )
    return report, run.fit if run is not None else None


def _calibration(run: RunFit | None, comm: dict[str, float]) -> CalibrationReport | None:
    """The fit's report; a calibration file carries the card terms fitted and those the card's ceilings
    measured in their place (RunFit.written), and the communication terms."""
    if run is None and not comm:
        return None
    if run is None:
        return CalibrationReport(coefficients=dict(comm), fitted=list(comm), written=list(comm),
                                 median_abs_error_pct=0.0, max_abs_error_pct=0.0, residuals=[])
    report = calibration_report(run.fit, run.written + list(comm))
    return replace(report, coefficients={**report.coefficients, **comm})


def _skipped(raw: dict[str, Any]) -> list[str]:
    out = []
    for part in ("decode", "prefill"):
        for s in (raw.get(part) or {}).get("skipped", []):
            where = ", ".join(f"{k}={v}" for k, v in s.items() if k != "reason")
            out.append(f"{part} skipped ({where}): {s['reason']}")
    return out


# ---- communication (several GPUs) --------------------------------------------------------------------------

def communication(comm: dict[str, Any], plan: DeploymentPlan, coeffs: PerfCoefficients
                  ) -> tuple[list[VerifyRecord], dict[str, float]]:
    """Each collective and size against `calc.perf.comm.collective_time`, the fitted latency and bus bandwidth
    against the perf model's, and the communication coefficients (calc/verify/comm.py)."""
    if not comm or "rows" not in comm:
        return [], {}
    from kvcalc.calc.perf.comm import collective_time, link_bytes_per_s

    gpu, ranks = plan.gpu, comm["ranks"]
    series = collective_series(comm)
    fits = collective_fits(series)
    out: list[VerifyRecord] = []
    for (name, graph), rows in series.items():
        for r in rows:
            out.append(_rec(f"{name}_s", collective_time(r["wire_bytes"], gpu, coeffs), r["median_s"], "s",
                            ranks=ranks, message_bytes=r["message_bytes"], graph=graph))
        fit = fits.get((name, graph))
        if fit is None:
            continue
        note = (f"fitted t = latency + wire bytes / bandwidth over {fit.points} sizes "
                f"(max error {fit.max_abs_error_pct:.1f} %)")
        out.append(_rec(f"{name}_latency_s", coeffs.comm_latency_s, fit.latency_s, "s", note, ranks=ranks,
                        graph=graph))
        out.append(_rec(f"{name}_bus_bandwidth", link_bytes_per_s(gpu) * coeffs.comm_bw_eff,
                        fit.bandwidth_bytes_per_s, "B/s", note, ranks=ranks, graph=graph))
    return out, communication_values(fits, gpu)
