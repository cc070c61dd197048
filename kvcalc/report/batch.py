"""`kvcalc batch`: the largest concurrency meeting TTFT and TPOT targets within the KV budget, the chunked-prefill
budget's effect, and prefill/decode disaggregation (report records + builder; arithmetic in calc/perf)."""

from __future__ import annotations

from typing import Any

from kvcalc.calc.perf.disagg import Disaggregation, disaggregate
from kvcalc.calc.perf.model import perf_model
from kvcalc.calc.perf.runs import run_serving
from kvcalc.calc.perf.slo import SloResult, max_concurrency_under_slo
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import InputError
from kvcalc.report.explain import Derivation
from kvcalc.report.perf import Efficiency, coefficients_for, efficiencies, plan_for
from kvcalc.spec.base import record, replace
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec

BUDGETS = (512, 1024, 2048, 4096, 8192, 16384)


@record
class BudgetRow:
    """Closed-loop run at the SLO concurrency with max_num_batched_tokens = `budget`."""

    max_num_batched_tokens: int
    ttft_s: float
    tpot_s: float
    itl_p50_s: float
    itl_p99_s: float
    tokens_per_s_total: float


@record
class BatchReport:
    """`batch --json`: max_concurrency, binding (ttft_slo | tpot_slo | kv_cache | max_num_seqs | unmet),
    ttft_s and tpot_s at that concurrency; then the budget sweep and the disaggregated split."""

    model: str
    gpu: str
    gpus: int
    engine: str
    engine_version: str
    parallel: Parallel
    weight_format: str
    kv_dtype: str
    input_tokens: int
    output_tokens: int
    ttft_slo_s: float
    tpot_slo_s: float
    max_concurrency: int
    binding: str
    ttft_s: float
    tpot_s: float
    itl_p99_s: float
    tokens_per_s_per_user: float
    tokens_per_s_total: float
    requests_per_s: float
    kv_limit: int
    max_num_batched_tokens: int
    budgets: tuple[BudgetRow, ...]
    disaggregation: Disaggregation
    efficiencies: dict[str, Efficiency]
    coefficients_source: str
    warnings: tuple[str, ...] = ()
    explain: tuple[Derivation, ...] = ()


def budget_sweep(model: ModelSpec, gpu: GpuSpec, parallel: Parallel, settings: EngineSettings,
                 weight_format: WeightFormat | None, calibration: Any | None, input_tokens: int,
                 output_tokens: int, concurrency: int, budgets: tuple[int, ...],
                 context: int | None = None) -> tuple[BudgetRow, ...]:
    """The same clients under each chunked-prefill budget: each budget is planned again (its activation
    peak changes the KV pool), then run."""
    rows = []
    for budget in budgets:
        plan = plan_for(model, gpu, parallel, replace(settings, max_num_batched_tokens=budget), weight_format,
                        input_tokens, output_tokens, context)
        coeffs = coefficients_for(plan, calibration, online=True, enforce_eager=settings.enforce_eager)
        stats = run_serving(perf_model(plan), coeffs, concurrency, input_tokens, output_tokens,
                            measure=max(concurrency, 16))
        rows.append(BudgetRow(max_num_batched_tokens=budget, ttft_s=stats.ttft_s, tpot_s=stats.tpot_s,
                              itl_p50_s=stats.itl_p50_s, itl_p99_s=stats.itl_p99_s,
                              tokens_per_s_total=stats.output_tokens_per_s))
    return tuple(rows)


def _derivations(r: BatchReport, slo: SloResult) -> tuple[Derivation, ...]:
    d = r.disaggregation
    return (
        Derivation(figure="max concurrency", formula="largest C <= KV cap with mean TTFT <= SLO and TPOT <= SLO",
                   substituted=f"cap {slo.kv_limit}; at C={r.max_concurrency}: TTFT {r.ttft_s * 1e3:.1f} ms, "
                               f"TPOT {r.tpot_s * 1e3:.2f} ms",
                   value=f"{r.max_concurrency} ({r.binding})", source="calc/perf/slo.py (regula falsi)"),
        Derivation(figure="prefill replicas : decode replicas", formula="rate / prefill rate : rate / decode rate",
                   substituted=f"{d.request_rate:.3g} / {d.prefill_requests_per_s:.3g} : {d.request_rate:.3g} / "
                               f"{d.decode_requests_per_s:.3g}",
                   value=f"{d.prefill_replicas} : {d.decode_replicas}", source="calc/perf/disagg.py (DistServe)"),
    )


def batch_report(
    model: ModelSpec,
    gpu: GpuSpec,
    parallel: Parallel,
    settings: EngineSettings,
    *,
    input_tokens: int,
    output_tokens: int,
    ttft_slo_s: float,
    tpot_slo_s: float,
    weight_format: WeightFormat | None = None,
    calibration: Any | None = None,
    request_rate: float | None = None,
    explain: bool = False,
    context: int | None = None,
) -> BatchReport:
    """Largest concurrency under both targets, budget sweep at it, and the disaggregated split."""
    if ttft_slo_s <= 0 or tpot_slo_s <= 0:
        raise InputError("--ttft-slo and --tpot-slo must be positive durations, e.g. 500ms and 50ms")
    plan = plan_for(model, gpu, parallel, settings, weight_format, input_tokens, output_tokens, context)
    pm = perf_model(plan)
    coeffs = coefficients_for(plan, calibration, online=True, enforce_eager=settings.enforce_eager)
    slo = max_concurrency_under_slo(pm, coeffs, input_tokens, output_tokens, ttft_slo_s, tpot_slo_s)
    budgets = tuple(sorted({*BUDGETS, plan.max_num_batched_tokens}))
    sweep = budget_sweep(model, gpu, parallel, settings, weight_format, calibration, input_tokens, output_tokens,
                         max(slo.max_concurrency, 1), budgets, context)
    rate = request_rate if request_rate is not None else slo.requests_per_s
    disagg = disaggregate(pm, coeffs, input_tokens, output_tokens, tpot_slo_s, rate)
    warnings = list(plan.warnings)
    if slo.binding == "unmet":
        warnings.append(f"even one request misses a target: TTFT {slo.ttft_s * 1e3:.1f} ms (target "
                        f"{ttft_slo_s * 1e3:.0f}), TPOT {slo.tpot_s * 1e3:.2f} ms (target {tpot_slo_s * 1e3:.0f})")
    report = BatchReport(
        model=model.id, gpu=gpu.name, gpus=parallel.gpus, engine=plan.engine, engine_version=plan.engine_version,
        parallel=parallel, weight_format=plan.weight_format.name, kv_dtype=plan.kv_dtype,
        input_tokens=input_tokens, output_tokens=output_tokens, ttft_slo_s=ttft_slo_s, tpot_slo_s=tpot_slo_s,
        max_concurrency=slo.max_concurrency, binding=slo.binding, ttft_s=slo.ttft_s, tpot_s=slo.tpot_s,
        itl_p99_s=slo.itl_p99_s, tokens_per_s_per_user=slo.tokens_per_s_per_user,
        tokens_per_s_total=slo.tokens_per_s_total, requests_per_s=slo.requests_per_s, kv_limit=slo.kv_limit,
        max_num_batched_tokens=plan.max_num_batched_tokens, budgets=sweep, disaggregation=disagg,
        efficiencies=efficiencies(coeffs), coefficients_source=coeffs.source, warnings=tuple(warnings),
    )
    return replace(report, explain=_derivations(report, slo)) if explain else report


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def render_batch(out: Any, r: BatchReport) -> None:
    """Rich output for `kvcalc batch`."""
    from rich.table import Table

    p = r.parallel
    out.print(f"[bold]{r.model}[/bold] on {r.gpus} x {r.gpu} (tp={p.tp} pp={p.pp} ep={p.ep}), {r.engine} "
              f"{r.engine_version}, {r.input_tokens:,} in / {r.output_tokens:,} out")
    out.print(f"targets: TTFT <= {_ms(r.ttft_slo_s)}, TPOT <= {_ms(r.tpot_slo_s)}", markup=False)
    out.print(f"[bold]max concurrency {r.max_concurrency}[/bold] (limit: {r.binding}; KV and max_num_seqs admit "
              f"{r.kv_limit}): TTFT {_ms(r.ttft_s)}, TPOT {_ms(r.tpot_s)}, ITL p99 {_ms(r.itl_p99_s)}, "
              f"{r.tokens_per_s_per_user:,.1f} tokens/s per user, {r.tokens_per_s_total:,.0f} tokens/s total")
    t = Table(title=f"Chunked-prefill budget at concurrency {max(r.max_concurrency, 1)} (now "
                    f"{r.max_num_batched_tokens:,})", title_justify="left")
    for col in ("max_num_batched_tokens", "TTFT", "TPOT", "ITL p50", "ITL p99", "tokens/s"):
        t.add_column(col, justify="right")
    for row in r.budgets:
        t.add_row(f"{row.max_num_batched_tokens:,}", _ms(row.ttft_s), _ms(row.tpot_s), _ms(row.itl_p50_s),
                  _ms(row.itl_p99_s), f"{row.tokens_per_s_total:,.0f}")
    out.print(t)
    d = r.disaggregation
    out.print(f"Disaggregated at {d.request_rate:.3g} requests/s: {d.prefill_replicas} prefill + "
              f"{d.decode_replicas} decode replicas = {d.prefill_gpus} + {d.decode_gpus} GPUs (one replica "
              f"prefills {d.prefill_requests_per_s:.3g} req/s, decodes {d.decode_requests_per_s:.3g} req/s at batch "
              f"{d.decode_batch}); KV moved per request {d.kv_bytes_per_request / 1e6:,.1f} MB = "
              f"{d.kv_transfer_s_network * 1e3:.1f} ms at 400 Gb/s", markup=False)
    out.print(f"efficiencies: {r.coefficients_source} (kvcalc perf lists each with its source)", markup=False)
