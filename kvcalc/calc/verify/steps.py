"""The harness's decode and prefill steps, extrapolated to the whole model, and the perf model's prediction
of each (calc/perf/step.py `step_cost` on the harness's perf model, calc/verify/traffic.py).

The measured side is the GPU work of a step: K layers per signature in a CUDA graph, extrapolated
(calc/verify/layout.py), plus the head. It has no engine scheduler, so the engine's per-step and per-request
CPU costs are set to 0 for the comparison (`harness_coefficients`).
"""

from __future__ import annotations

from typing import Any

from kvcalc.calc.perf.calibrate import StepPoint
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.model import PerfModel
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.verify.layout import extrapolate, signature_groups
from kvcalc.spec.base import record, replace

#: What the harness's timings can constrain: its step is the layers plus the head, every part of which the
#: model's byte, FLOP and per-kernel terms describe; it has no scheduler, so no per-step or per-request cost.
HARNESS_TERMS = ("weight_bw_eff", "kv_bw_eff", "gemm_eff", "attention_eff", "layer_overhead_s", "moe_gemm_eff")
#: What a calibration file carries: the card's efficiencies (the overheads of torch's unfused kernels are
#: not an engine's; the engine's own overheads stay the defaults).
CARD_TERMS = ("weight_bw_eff", "kv_bw_eff", "gemm_eff", "attention_eff", "moe_gemm_eff")


@record
class MeasuredStep:
    """One whole-model step the harness timed: decode of `batch` sequences at `context` tokens, or a prefill
    of `context` tokens (batch 1); `kv_bytes` is the decode runs' contiguous cache, `kernels` what the step
    launched (None where the profiler did not count, e.g. on a CPU)."""

    phase: str
    batch: int
    context: int
    measured_s: float
    kv_bytes: float | None = None
    kernels: float | None = None


@record
class StepPrediction:
    """A measured step, the perf model's terms for it (the fit's point), its StepCost and the predicted time."""

    step: MeasuredStep
    point: StepPoint
    cost: Any
    predicted_s: float


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


def measured_steps(raw: dict[str, Any], plan: DeploymentPlan) -> list[MeasuredStep]:
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
        steps.append(MeasuredStep(
            phase="decode", batch=batch, context=context, kv_bytes=extrapolate(kv, counts),
            measured_s=extrapolate(_per_layer(rows), counts, heads[batch]["median_s"]),
            kernels=_kernels(rows, counts, heads[batch])))
    prefill = raw.get("prefill") or {}
    heads = {h["tokens"]: h for h in prefill.get("head", [])}
    for tokens in sorted({r["tokens"] for r in prefill.get("stack", [])}):
        rows = [r for r in prefill["stack"] if r["tokens"] == tokens]
        if set(counts) - {r["signature"] for r in rows} or tokens not in heads:
            continue
        steps.append(MeasuredStep(
            phase="prefill", batch=1, context=tokens, kernels=_kernels(rows, counts, heads[tokens]),
            measured_s=extrapolate(_per_layer(rows), counts, heads[tokens]["median_s"])))
    return steps


def predict_step(plan: DeploymentPlan, pm: PerfModel, step: MeasuredStep, coeffs: PerfCoefficients
                 ) -> StepPrediction:
    """The perf model's terms for a measured step and the predicted time for the harness: step_cost's time
    with the fixed per-layer term charged for the kernels the harness launched (counted by the profiler, in
    units of a dense layer's DENSE_LAYER_KERNELS) instead of an engine's:
    predicted = time_s + (kernels / DENSE_LAYER_KERNELS - layer_units) x layer_overhead_s."""
    from kvcalc.calc.perf.kernels import DENSE_LAYER_KERNELS
    from kvcalc.calc.perf.step import step_cost

    if step.phase == "decode":
        cost = step_cost(pm, coeffs, decode_contexts=[step.context - 1] * step.batch)
    else:
        cost = step_cost(pm, coeffs, prefill=[(0, step.context)])
    units = cost.layer_units if step.kernels is None else step.kernels / DENSE_LAYER_KERNELS
    predicted = cost.time_s + (units - cost.layer_units) * coeffs.layer_overhead_s
    gpu = plan.gpu
    point = StepPoint(
        label=f"{plan.model.id} {step.phase} b={step.batch} L={step.context}",
        measured_s=step.measured_s, weight_bytes=cost.weight_bytes, kv_bytes=cost.kv_bytes,
        gemm_flops=cost.gemm_flops, attention_flops=cost.attention_flops, layers=units,
        requests=cost.requests, bandwidth_bytes_per_s=gpu.memory_bandwidth_bytes_per_s,
        gemm_peak_flops=gpu.flops(pm.sixteen_bit), attention_peak_flops=gpu.flops(pm.sixteen_bit),
        comm_s=cost.t_comm, expert_weight_bytes=cost.expert_weight_bytes, expert_gemm_flops=cost.expert_gemm_flops,
        gemm_shape_flops=cost.gemm_shape_flops, expert_shape_flops=cost.expert_shape_flops,
        expert_activation_bytes=cost.expert_activation_bytes,
    )
    return StepPrediction(step=step, point=point, cost=cost, predicted_s=predicted)


def predict_steps(raw: dict[str, Any], plan: DeploymentPlan, coeffs: PerfCoefficients) -> list[StepPrediction]:
    """Every whole-model step of `raw` with its prediction on the harness's perf model (traffic.py)."""
    from kvcalc.calc.perf.model import perf_model
    from kvcalc.calc.verify.traffic import harness_perf_model

    pm = harness_perf_model(perf_model(plan))
    return [predict_step(plan, pm, step, coeffs) for step in measured_steps(raw, plan)]
