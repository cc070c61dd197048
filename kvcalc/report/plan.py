"""`kvcalc plan`: the cheapest deployments that meet the SLOs, as a Pareto front of $ per million tokens vs TPOT
(report records + builder over calc/serving/search)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import field
from typing import Any

from kvcalc.calc.serving.pareto import pareto_front
from kvcalc.calc.serving.pricing import no_price_message, price_for
from kvcalc.calc.serving.search import Candidate, SearchTarget, confirm, search
from kvcalc.calc.weights import WeightFormat
from kvcalc.report.explain import Derivation
from kvcalc.report.serve import SPLIT_RULE, Workload
from kvcalc.spec.base import record
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec

#: The catalogue `kvcalc plan` searches when --gpus is not given (priced datacenter cards).
DEFAULT_GPUS = ("h100", "h200", "a100-80gb", "l40s", "mi300x")


@record
class PlanReport:
    model: str
    hf_repo: str | None
    workload: Workload
    gpus: list[str]
    quants: list[str]
    engines: list[str]
    max_gpus: int
    searched: int
    planned: int
    feasible: int
    search_s: float
    plans: list[Candidate]
    best: Candidate | None
    skipped: dict[str, str]
    reason: str | None
    assumptions: list[str]
    explain: list[Derivation] = field(default_factory=list)
    coefficients_source: str = ""


def _target(work: Workload, context: int | None) -> SearchTarget:
    return SearchTarget(
        requests_per_s=work.requests_per_s, input_tokens=work.input_tokens, output_tokens=work.output_tokens,
        mean_input_tokens=work.mix.input.mean, mean_output_tokens=work.mix.output.mean,
        ttft_slo_s=work.ttft_slo_s, tpot_slo_s=work.tpot_slo_s, headroom=work.headroom,
        context=context or work.mix.longest_request_tokens,
    )


def _explain(best: Candidate, work: Workload) -> list[Derivation]:
    return [
        Derivation(figure="Cheapest plan's replicas", formula="ceil(demand x (1 + headroom) / requests/s per replica)",
                   substituted=f"ceil({work.requests_per_s:g} x {1 + work.headroom:g} / {best.requests_per_s:.4f})",
                   value=f"{best.replicas} x {best.count} GPUs"),
        Derivation(figure="Its $ per million tokens", formula="GPUs x price / (3600 x demand) / tokens x 1e6",
                   substituted=f"{best.gpus_total} x {best.price_usd_per_gpu_hour:g} / (3600 x "
                   f"{work.requests_per_s:g}) / {work.mix.input.mean + work.mix.output.mean:g} x 1e6",
                   value=f"${best.cost_per_million_tokens:.4f}", source=best.price_source),
        Derivation(figure="Pareto front", formula="keep a plan unless another is no worse in both $/M tokens and "
                   "TPOT and better in one", substituted="sweep by ascending $/M tokens, keep falling TPOT",
                   value="see plans[]", source="kvcalc/calc/serving/pareto.py"),
    ]


def plan_search(
    model: ModelSpec,
    gpus: Sequence[GpuSpec],
    formats: Sequence[tuple[str, WeightFormat | None]],
    engines: Sequence[str],
    settings_for: object,
    work: Workload,
    *,
    max_gpus: int = 16,
    context: int | None = None,
    explain: bool = True,
    calibration: Any = None,
) -> PlanReport:
    """Search, keep the Pareto front of $/M tokens vs TPOT, and pick the cheapest (ties: lower TPOT).
    `calibration` (a --calibration file) applies to the card it was measured on (every card when it names none)."""
    priced, skipped = [], {}
    for gpu in gpus:
        price = price_for(gpu, work.prices)
        if price is None:
            skipped[gpu.key] = no_price_message(gpu)
        else:
            priced.append((gpu, price))
    started = time.perf_counter()
    result = search(model, priced, [f for _, f in formats], engines, settings_for, _target(work, context),  # type: ignore[arg-type]
                    max_gpus, calibration=calibration)
    confirmed, rejected = confirm(result)
    elapsed = time.perf_counter() - started
    best = min(confirmed, key=lambda c: (c.cost_per_million_tokens, c.tpot_s)) if confirmed else None
    floor = best.cost_per_million_tokens if best else float("inf")
    replaced = {(c.gpu, c.parallel, c.quant, c.engine) for c in confirmed + rejected}
    pool = [c for c in result.candidates if (c.gpu, c.parallel, c.quant, c.engine) not in replaced
            and (c.cost_per_million_tokens > floor or best is None)] + confirmed
    front = pareto_front(pool, x=lambda c: c.cost_per_million_tokens, y=lambda c: c.tpot_s)
    return PlanReport(
        model=model.id, hf_repo=model.hf_repo, workload=work, gpus=[g.key for g in gpus],
        quants=[name for name, _ in formats], engines=list(engines), max_gpus=max_gpus, searched=result.searched,
        planned=result.planned, feasible=len(result.candidates) - len(rejected), search_s=elapsed, plans=front,
        best=best, skipped=skipped, coefficients_source=_coefficients_source(gpus, calibration),
        reason=None if best else "no searched configuration fits and meets both targets; relax the SLOs, raise "
        "--max-gpus or add GPUs and formats",
        assumptions=[
            "layouts: TP only within a node (<= 8 GPUs), TP 8 x PP beyond; MoE models also try ep = tp",
            "each plan sized for the load with the same headroom and replica model as kvcalc serve; plans are "
            "screened with the closed-form steady state of the perf model's step costs (capacity_model 'screen'), "
            "the cheapest confirmed by its closed-loop SLO search (capacity_model 'perf', as kvcalc serve prints); "
            "screened plans no dearer than the confirmed cheapest are not listed (the confirmed one stands for them)",
            SPLIT_RULE,
        ],
        explain=_explain(best, work) if (best and explain) else [],
    )


def _coefficients_source(gpus: Sequence[GpuSpec], calibration: Any) -> str:
    """The timing coefficients the search used: defaults per card and engine, the cards' shipped calibrations,
    and a --calibration file on the card it was measured on."""
    text = "kvcalc defaults per card and engine (kvcalc.calc.perf.defaults)"
    shipped = [g.key for g in gpus if g.calibration is not None]
    if shipped:
        text += f"; shipped calibration of {', '.join(shipped)}"
    if calibration is not None:
        text += f"; {calibration.describe()} on {calibration.gpu or 'every card'}"
    return text
