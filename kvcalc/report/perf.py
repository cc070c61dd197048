"""`kvcalc perf`: TTFT, TPOT and throughput of a deployment, which bound each phase is on, and why
(report records + builder; the arithmetic lives in kvcalc/calc/perf)."""

from __future__ import annotations

from typing import Any

from kvcalc.calc import kv as kvmod
from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.parallel import comm_per_token
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.defaults import default_coefficients
from kvcalc.calc.perf.longctx import RopeCheck, rope_context_check
from kvcalc.calc.perf.model import PerfModel, perf_model
from kvcalc.calc.perf.moe import experts_touched
from kvcalc.calc.perf.runs import (
    compute_bound_batch,
    decode_step,
    prefill_step,
    run_serving,
    run_static,
    running_cap,
)
from kvcalc.calc.perf.scheduler import RunStats
from kvcalc.calc.perf.step import StepCost
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import InputError
from kvcalc.report.explain import Derivation
from kvcalc.spec.base import record, replace
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec

TABLE_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@record
class Phase:
    """One phase's step: work, time terms (seconds) and which roofline bound it is on."""

    tokens: int
    batch: int
    flops: float
    bytes: float
    weight_bytes: float
    kv_bytes: float
    time_s: float
    t_memory_s: float
    t_compute_s: float
    t_comm_s: float
    overhead_s: float
    bound: str
    arithmetic_intensity: float


@record
class Efficiency:
    value: float | dict[str, float]
    source: str


@record
class BatchRow:
    """A decode step of `batch` requests at the mean context (no prefill in the step)."""

    batch: int
    step_s: float
    tokens_per_s_per_user: float
    tokens_per_s_total: float
    bound: str
    arithmetic_intensity: float
    fits: bool


@record
class ExpertTouch:
    tokens: int
    experts_touched: float
    weight_bytes_read: float


@record
class MoeSummary:
    """Mixture of experts: what a GPU holds vs what a token uses, and how a batch touches experts."""

    num_experts: int
    top_k: int
    weights_held_bytes: int
    active_bytes_per_token: float
    touch: tuple[ExpertTouch, ...]
    ep_bytes_per_token: int


@record
class LongContext:
    """KV per request at input + output tokens, the quadratic term's share of the prefill, RoPE check."""

    context: int
    kv_bytes_per_request: int
    kv_bytes_per_request_per_gpu: int
    attention_share_of_prefill: float
    cp: int
    rope: RopeCheck


@record
class PerfReport:
    """`perf --json`: the JSON contract is ttft_s, tpot_s, tokens_per_s_per_user, tokens_per_s_total,
    prefill.{flops,bytes,bound}, decode.{flops,bytes,bound,arithmetic_intensity}, ridge_point, efficiencies."""

    model: str
    gpu: str
    gpus: int
    engine: str
    engine_version: str
    parallel: Parallel
    weight_format: str
    kv_dtype: str
    mode: str
    batch: int | None
    concurrency: int | None
    input_tokens: int
    output_tokens: int
    ttft_s: float
    tpot_s: float
    itl_p50_s: float
    itl_p99_s: float
    e2e_s: float
    tokens_per_s_per_user: float
    tokens_per_s_total: float
    requests_per_s: float
    running_requests: float
    running_cap: int
    running_cap_binding: str
    prefill: Phase
    decode: Phase
    ridge_point: float
    ridge_dtype: str
    compute_bound_batch: int | None
    efficiencies: dict[str, Efficiency]
    coefficients_source: str
    table: tuple[BatchRow, ...]
    moe: MoeSummary | None
    long_context: LongContext
    warnings: tuple[str, ...] = ()
    explain: tuple[Derivation, ...] = ()


def phase(cost: StepCost, tokens: int, batch: int) -> Phase:
    return Phase(
        tokens=tokens, batch=batch, flops=cost.flops, bytes=cost.bytes, weight_bytes=cost.weight_bytes,
        kv_bytes=cost.kv_bytes, time_s=cost.time_s, t_memory_s=cost.t_mem, t_compute_s=cost.t_compute,
        t_comm_s=cost.t_comm, overhead_s=cost.overhead_s, bound=cost.bound,
        arithmetic_intensity=cost.arithmetic_intensity,
    )


def main_gemm_dtype(pm: PerfModel) -> str:
    """The tensor-core dtype most of the GEMM FLOPs run at (what the ridge point is quoted for)."""
    totals: dict[str, float] = {}
    for stage in pm.stages:
        for d, f in stage.gemm_flops_per_token.items():
            totals[d] = totals.get(d, 0.0) + f
        for g in stage.experts:
            for d, f in g.flops_per_token.items():
                totals[d] = totals.get(d, 0.0) + f
    return max(totals, key=lambda d: totals[d]) if totals else pm.sixteen_bit


def efficiencies(coeffs: PerfCoefficients) -> dict[str, Efficiency]:
    names = ("weight_bw_eff", "kv_bw_eff", "gemm_eff", "attention_eff", "layer_overhead_s", "step_overhead_s",
             "request_overhead_s", "comm_latency_s", "comm_bw_eff", "frontend_latency_s")
    return {n: Efficiency(value=getattr(coeffs, n), source=coeffs.sources.get(n, coeffs.source)) for n in names}


def moe_summary(pm: PerfModel, plan: DeploymentPlan) -> MoeSummary | None:
    groups = [g for s in pm.stages for g in s.experts]
    if not groups:
        return None
    e, k = groups[0].num_experts, groups[0].top_k
    dense = sum(s.dense_weight_bytes for s in pm.stages)
    experts = sum(g.bytes_on_gpu for g in groups)
    touch = tuple(
        ExpertTouch(tokens=b, experts_touched=experts_touched(e, k, b),
                    weight_bytes_read=dense + experts * experts_touched(e, k, b) / e)
        for b in (1, 4, 16, 64, 256, 1024)
    )
    comm = comm_per_token(plan.model, plan.parallel)
    return MoeSummary(num_experts=e, top_k=k, weights_held_bytes=sum(d.weights_bytes for d in plan.devices),
                      active_bytes_per_token=dense + experts * k / e, touch=touch,
                      ep_bytes_per_token=comm.ep_alltoall_bytes)


def long_context(pm: PerfModel, plan: DeploymentPlan, input_tokens: int, output_tokens: int,
                 prefill: StepCost) -> LongContext:
    context = input_tokens + output_tokens
    kv = storage_type(plan.kv_dtype)
    whole = kvmod.bytes_per_sequence(plan.model, context, kv)
    per_gpu = kvmod.bytes_per_sequence(plan.model, context, kv, tp=plan.parallel.tp) // plan.parallel.cp
    kernels = prefill.t_gemm + prefill.t_attention
    return LongContext(context=context, kv_bytes_per_request=whole, kv_bytes_per_request_per_gpu=per_gpu,
                       attention_share_of_prefill=prefill.t_attention / kernels if kernels else 0.0,
                       cp=plan.parallel.cp, rope=rope_context_check(plan.model, context))


def batch_table(pm: PerfModel, coeffs: PerfCoefficients, context: int, cap: int) -> tuple[BatchRow, ...]:
    rows = []
    for b in TABLE_BATCHES:
        cost = decode_step(pm, coeffs, b, context)
        rows.append(BatchRow(batch=b, step_s=cost.time_s, tokens_per_s_per_user=1.0 / cost.time_s,
                             tokens_per_s_total=b / cost.time_s, bound=cost.bound,
                             arithmetic_intensity=cost.arithmetic_intensity, fits=b <= cap))
    return tuple(rows)


def plan_for(model: ModelSpec, gpu: GpuSpec, parallel: Parallel, settings: EngineSettings,
             weight_format: WeightFormat | None, input_tokens: int, output_tokens: int) -> DeploymentPlan:
    """The deployment plan perf and batch read: max_model_len as the engine defaults it, raised to
    input + output when the requests need more, or lowered to it when the default would not start."""
    if input_tokens < 0 or output_tokens < 1:
        raise InputError(f"--input must be >= 0 and --output >= 1 tokens, got {input_tokens} and {output_tokens}")
    need = input_tokens + output_tokens
    default = model.max_position_embeddings or 4096
    plan = plan_deployment(model, gpu, parallel, settings, weight_format=weight_format,
                           context=need if need > default else None)
    if plan.startup_error and need < plan.max_model_len:  # as a user would: --max-model-len input + output
        shorter = plan_deployment(model, gpu, parallel, settings, weight_format=weight_format, context=need)
        if not shorter.startup_error:
            note = (f"the default max_model_len {plan.max_model_len:,} would not start ({plan.startup_error}); "
                    f"planned with max_model_len = input + output = {need:,}")
            return replace(shorter, warnings=(*shorter.warnings, note))
    if plan.startup_error:
        raise InputError(f"the engine would not start: {plan.startup_error} (kvcalc fit shows the memory and "
                         "what would make it fit)")
    return plan


def coefficients_for(plan: DeploymentPlan, calibration: Any | None, online: bool,
                     enforce_eager: bool) -> PerfCoefficients:
    base = default_coefficients(plan.gpu, plan.engine, cuda_graphs=not enforce_eager, online=online)
    return calibration.apply(base) if calibration is not None else base


def _derivations(r: PerfReport, coeffs: PerfCoefficients, gpu: GpuSpec) -> tuple[Derivation, ...]:
    bw = gpu.memory_bandwidth_bytes_per_s
    d = r.decode
    return (
        Derivation(figure="decode bytes per step", formula="weights read (experts: touched share) + KV read",
                   substituted=f"{d.weight_bytes:,.0f} + {d.kv_bytes:,.0f}", value=f"{d.bytes:,.0f} B",
                   source="calc/perf/model.py, moe.py"),
        Derivation(figure="decode memory time", formula="weights / (B x weight_bw_eff) + KV / (B x kv_bw_eff)",
                   substituted=f"{d.weight_bytes:,.0f} / ({bw:.3g} x {coeffs.weight_bw_eff:.3f}) + {d.kv_bytes:,.0f}"
                               f" / ({bw:.3g} x {coeffs.kv_bw_eff:.3f})",
                   value=f"{d.t_memory_s * 1e3:.3f} ms", source=coeffs.sources.get("weight_bw_eff", "")),
        Derivation(figure="decode step", formula="max(t_weights, t_gemm) + max(t_kv, t_attn) + comm + overheads",
                   substituted=f"memory {d.t_memory_s * 1e3:.3f} ms, compute {d.t_compute_s * 1e3:.3f} ms, comm "
                               f"{d.t_comm_s * 1e3:.3f} ms, overheads {d.overhead_s * 1e3:.3f} ms",
                   value=f"{d.time_s * 1e3:.3f} ms ({d.bound}-bound)", source="calc/perf/step.py"),
        Derivation(figure="arithmetic intensity (decode)", formula="FLOPs / bytes",
                   substituted=f"{d.flops:.4g} / {d.bytes:.4g}", value=f"{d.arithmetic_intensity:.1f} FLOP/B",
                   source="Williams et al. 2009 (roofline)"),
        Derivation(figure="ridge point", formula=f"peak {r.ridge_dtype} FLOP/s / bandwidth",
                   substituted=f"{gpu.flops(r.ridge_dtype):.4g} / {bw:.4g}", value=f"{r.ridge_point:.1f} FLOP/B",
                   source=f"hardware/{gpu.key}.yaml"),
        Derivation(figure="prefill FLOPs", formula="2 x active params x tokens + attention pairs x FLOPs/pair",
                   substituted=f"{r.prefill.tokens:,} tokens", value=f"{r.prefill.flops:.4g} FLOP",
                   source="calc/perf/model.py, attention.py"),
        Derivation(figure="TTFT, TPOT", formula="simulated engine steps (scheduler.py); TPOT = (e2e - TTFT)/(out-1)",
                   substituted=f"{r.mode} {r.batch or r.concurrency}, running {r.running_requests:.1f} of cap "
                               f"{r.running_cap}",
                   value=f"TTFT {r.ttft_s * 1e3:.1f} ms, TPOT {r.tpot_s * 1e3:.2f} ms",
                   source="vLLM benchmarks/serve.py calculate_metrics"),
    )


def perf_report(
    model: ModelSpec,
    gpu: GpuSpec,
    parallel: Parallel,
    settings: EngineSettings,
    *,
    input_tokens: int,
    output_tokens: int,
    batch: int | None = None,
    concurrency: int | None = None,
    weight_format: WeightFormat | None = None,
    calibration: Any | None = None,
    explain: bool = False,
) -> PerfReport:
    """Latency and throughput of `batch` static requests or `concurrency` closed-loop clients."""
    if (batch is None) == (concurrency is None):
        raise InputError("give exactly one of --batch B (a static batch) or --concurrency C (serving clients)")
    n = batch if batch is not None else concurrency
    assert n is not None
    if n < 1:
        raise InputError(f"--batch/--concurrency must be >= 1, got {n}")
    plan = plan_for(model, gpu, parallel, settings, weight_format, input_tokens, output_tokens)
    pm = perf_model(plan)
    coeffs = coefficients_for(plan, calibration, online=concurrency is not None, enforce_eager=settings.enforce_eager)
    cap, cap_binding = running_cap(plan, input_tokens, output_tokens)
    if cap < 1:
        raise InputError(f"one request of {input_tokens + output_tokens:,} tokens does not fit the KV cache of "
                         f"this deployment ({plan.kv_cache_tokens:,} tokens); see kvcalc fit")
    stats: RunStats = (run_static(pm, coeffs, n, input_tokens, output_tokens) if batch is not None
                       else run_serving(pm, coeffs, n, input_tokens, output_tokens))
    mid = input_tokens + output_tokens // 2
    running = max(1, min(n, cap))
    dec = decode_step(pm, coeffs, running, mid)
    pre = prefill_step(pm, coeffs, max(input_tokens, 1))
    dtype = main_gemm_dtype(pm)
    warnings = list(plan.warnings)
    lc = long_context(pm, plan, input_tokens, output_tokens, pre)
    if lc.rope.warning:
        warnings.append(lc.rope.warning)
    if n > cap:
        warnings.append(f"{n} requests of {input_tokens + output_tokens:,} tokens: only {cap} run at once "
                        f"({cap_binding}); the rest wait, and their TTFT includes the wait")
    report = PerfReport(
        model=model.id, gpu=gpu.name, gpus=parallel.gpus, engine=plan.engine, engine_version=plan.engine_version,
        parallel=parallel, weight_format=plan.weight_format.name, kv_dtype=plan.kv_dtype,
        mode="batch" if batch is not None else "concurrency", batch=batch, concurrency=concurrency,
        input_tokens=input_tokens, output_tokens=output_tokens, ttft_s=stats.ttft_s, tpot_s=stats.tpot_s,
        itl_p50_s=stats.itl_p50_s, itl_p99_s=stats.itl_p99_s, e2e_s=stats.e2e_s,
        tokens_per_s_per_user=1.0 / stats.tpot_s if stats.tpot_s else 0.0,
        tokens_per_s_total=stats.output_tokens_per_s, requests_per_s=stats.requests_per_s,
        running_requests=stats.mean_running, running_cap=cap, running_cap_binding=cap_binding,
        prefill=phase(pre, max(input_tokens, 1), 1), decode=phase(dec, running, running),
        ridge_point=gpu.ridge_point(dtype), ridge_dtype=dtype,
        compute_bound_batch=compute_bound_batch(pm, coeffs, mid), efficiencies=efficiencies(coeffs),
        coefficients_source=coeffs.source, table=batch_table(pm, coeffs, mid, cap), moe=moe_summary(pm, plan),
        long_context=lc, warnings=tuple(warnings),
    )
    if explain:
        report = replace(report, explain=_derivations(report, coeffs, gpu))
    return report


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms"


def _bound_line(name: str, x: Phase, r: PerfReport) -> str:
    return (f"{name}: {x.bound}-bound, {x.arithmetic_intensity:,.1f} FLOP/B vs ridge point {r.ridge_point:,.0f} "
            f"({r.ridge_dtype}); step {_ms(x.time_s)}")


def render_perf(out: Any, r: PerfReport) -> None:
    """Rich output for `kvcalc perf`."""
    from rich.table import Table

    p = r.parallel
    what = f"batch {r.batch} (static)" if r.mode == "batch" else f"concurrency {r.concurrency} (closed loop)"
    out.print(f"[bold]{r.model}[/bold] on {r.gpus} x {r.gpu} (tp={p.tp} pp={p.pp} ep={p.ep} cp={p.cp}), "
              f"{r.engine} {r.engine_version}, weights {r.weight_format}, KV {r.kv_dtype}")
    lines = [
        f"{what}: {r.input_tokens:,} in / {r.output_tokens:,} out; {r.running_requests:.1f} running on average "
        f"(cap {r.running_cap}: {r.running_cap_binding})",
        f"TTFT {_ms(r.ttft_s)}  TPOT {_ms(r.tpot_s)}  ITL p50 {_ms(r.itl_p50_s)} / p99 {_ms(r.itl_p99_s)}  "
        f"{r.tokens_per_s_per_user:,.1f} tokens/s per user  {r.tokens_per_s_total:,.0f} tokens/s total",
        _bound_line(f"prefill ({r.prefill.tokens:,} tokens)", r.prefill, r),
        _bound_line(f"decode (batch {r.decode.batch})", r.decode, r),
        f"decode turns compute-bound at batch {r.compute_bound_batch}" if r.compute_bound_batch
        else "decode stays memory-bound at every batch (its KV reads grow with the batch)",
    ]
    for line in lines:
        out.print(line, markup=False)
    ph = Table(title="Step terms", title_justify="left")
    ph.add_column("term")
    ph.add_column(f"prefill ({r.prefill.tokens:,} tokens)", justify="right")
    ph.add_column(f"decode (batch {r.decode.batch})", justify="right")
    for label, get in (("FLOPs", lambda x: f"{x.flops:.4g}"), ("bytes", lambda x: f"{x.bytes:.4g}"),
                       ("memory time", lambda x: _ms(x.t_memory_s)), ("compute time", lambda x: _ms(x.t_compute_s)),
                       ("communication", lambda x: _ms(x.t_comm_s)), ("fixed costs", lambda x: _ms(x.overhead_s)),
                       ("step", lambda x: _ms(x.time_s))):
        ph.add_row(label, get(r.prefill), get(r.decode))
    out.print(ph)
    bt = Table(title="Decode step by batch (mean context, no prefill)", title_justify="left")
    for col in ("batch", "step", "tokens/s/user", "tokens/s total", "FLOP/B", "bound", "KV fits"):
        bt.add_column(col, justify="right")
    for row in r.table:
        bt.add_row(str(row.batch), _ms(row.step_s), f"{row.tokens_per_s_per_user:,.1f}",
                   f"{row.tokens_per_s_total:,.0f}", f"{row.arithmetic_intensity:.1f}", row.bound,
                   "yes" if row.fits else "no")
    out.print(bt)
    _render_context(out, r)
    out.print(f"Efficiencies ({r.coefficients_source}):", markup=False)
    for name, e in r.efficiencies.items():
        value = (", ".join(f"{k} {v:.3g}" for k, v in e.value.items()) if isinstance(e.value, dict)
                 else f"{e.value:.3g}")
        out.print(f"  {name} = {value}: {e.source}", markup=False)


def _render_context(out: Any, r: PerfReport) -> None:
    lc = r.long_context
    out.print(f"KV per request at {lc.context:,} tokens: {lc.kv_bytes_per_request / 1e9:.3f} GB "
              f"({lc.kv_bytes_per_request_per_gpu / 1e9:.3f} GB per GPU); attention is "
              f"{lc.attention_share_of_prefill:.0%} of the prefill kernels; {lc.rope.note}", markup=False)
    if r.moe is not None:
        m = r.moe
        touch = ", ".join(f"{t.tokens}: {t.experts_touched:.1f}" for t in m.touch)
        out.print(f"MoE: {m.num_experts} experts, top-{m.top_k}; held {m.weights_held_bytes / 1e9:.2f} GB per "
                  f"stage GPU, active {m.active_bytes_per_token / 1e9:.2f} GB per token; experts touched per "
                  f"layer by tokens in a step: {touch}; EP traffic {m.ep_bytes_per_token:,} B per token",
                  markup=False)
