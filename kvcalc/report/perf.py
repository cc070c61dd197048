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
from kvcalc.calc.perf.policy import policy_for
from kvcalc.calc.perf.runs import (
    compute_bound_batch,
    decode_step,
    prefill_step,
    run_rate,
    run_serving,
    run_static,
    running_cap,
)
from kvcalc.calc.perf.scheduler import SEED, RunStats
from kvcalc.calc.perf.step import StepCost, expert_replicas
from kvcalc.calc.perf.workload import LengthDistribution, fixed_lengths, sample_lengths, summarize
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
    prefill.{flops,bytes,bound}, decode.{flops,bytes,bound,arithmetic_intensity}, ridge_point, efficiencies.
    mode "batch" | "concurrency" | "rate" (open loop: `num_prompts` sent at `request_rate` requests/s, null =
    all at once); `input_tokens`/`output_tokens` are the mean lengths of `lengths`."""

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
    request_rate: float | None = None
    num_prompts: int | None = None
    lengths: str = "fixed"
    lengths_source: str = ""
    mean_input_tokens: float = 0.0
    mean_output_tokens: float = 0.0
    max_request_tokens: int = 0
    ttft_p50_s: float = 0.0
    ttft_p99_s: float = 0.0
    tpot_p50_s: float = 0.0
    tpot_p99_s: float = 0.0
    duration_s: float = 0.0
    total_tokens_per_s: float = 0.0
    mean_queue_s: float = 0.0
    peak_running: int = 0
    preemptions: int = 0
    scheduler: str = ""


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
             "request_overhead_s", "comm_latency_s", "comm_hop_latency_s", "comm_bw_eff", "frontend_latency_s",
             "gemm_rows_half", "gemm_rows_min", "gemm_depth_half", "moe_gemm_eff", "overlap_loss")
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
             weight_format: WeightFormat | None, input_tokens: int, output_tokens: int,
             context: int | None = None) -> DeploymentPlan:
    """The deployment plan perf and batch read: max_model_len `context` when given (at least input + output),
    else as the engine defaults it, raised to input + output when the requests need more, or lowered to it
    when the default would not start."""
    if input_tokens < 0 or output_tokens < 1:
        raise InputError(f"--input must be >= 0 and --output >= 1 tokens, got {input_tokens} and {output_tokens}")
    need = input_tokens + output_tokens
    if context is not None:
        if context < need:
            raise InputError(f"--context {context:,} is shorter than a request's input + output = {need:,} tokens")
        plan = plan_deployment(model, gpu, parallel, settings, weight_format=weight_format, context=context)
        if plan.startup_error:
            raise InputError(f"the engine would not start: {plan.startup_error} (kvcalc fit shows the memory and "
                             "what would make it fit)")
        return plan
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


def coefficients_for(plan: DeploymentPlan, calibration: Any | None, online: bool = True,
                     enforce_eager: bool = False) -> PerfCoefficients:
    """The perf coefficients every command that predicts time uses: the defaults for the plan's engine and card
    (with the card's shipped calibration, kvcalc.calc.perf.defaults), then every value a `--calibration` file
    holds. Their `source` is the line each command prints about them."""
    base = default_coefficients(plan.gpu, plan.engine, cuda_graphs=not enforce_eager, online=online)
    return calibration.apply(base) if calibration is not None else base


def prefill_flops_terms(pm: PerfModel, tokens: int) -> tuple[str, float]:
    """The prefill FLOPs of one prompt of `tokens` tokens with every number substituted, term by term as
    calc/perf/step.py counts them on one GPU of each pipeline stage: dense GEMMs 2 x params x tokens, the lm_head
    2 x params x 1 (the sampled token), routed experts 2 x k/E x their params x tokens, attention layers x
    (query, key) pairs x FLOPs per pair, recurrent layers x FLOPs per token x tokens; and their sum."""
    stages: list[str] = []
    total = 0.0
    for stage in pm.stages:
        terms, flops = _stage_prefill_terms(stage, tokens, stage is pm.stages[-1], expert_replicas(pm.parallel))
        stages.append(" + ".join(terms) if len(pm.stages) == 1 else f"stage {stage.stage}: ({' + '.join(terms)})")
        total += flops
    return " + ".join(stages), total


def _stage_prefill_terms(stage: Any, tokens: int, last: bool, replicas: int) -> tuple[list[str], float]:
    """One stage's terms of `prefill_flops_terms`; `replicas`: data-parallel replicas whose tokens its experts
    also serve (step.expert_replicas)."""
    terms: list[str] = []
    total = 0.0
    dense = sum(stage.gemm_flops_per_token.values())
    if dense:
        terms.append(f"2 x {dense / 2:,.0f} params x {tokens:,} tokens")
        total += dense * tokens
    if last and stage.head_flops_per_token:
        terms.append(f"2 x {stage.head_flops_per_token / 2:,.0f} lm_head params x 1 sampled token")
        total += stage.head_flops_per_token
    for g in stage.experts:
        per_token = sum(g.flops_per_token.values())
        held = per_token * g.num_experts / (2 * g.top_k)
        served = f" x {replicas} replicas" if replicas > 1 else ""
        terms.append(f"2 x {g.top_k}/{g.num_experts} x {held:,.0f} expert params x {tokens:,} tokens{served}")
        total += per_token * tokens * replicas
    for a in stage.attention:
        if a.recurrent:
            per_token = a.prefill_state_flops_per_token or a.state_flops_per_token
            terms.append(f"{a.layers} {a.kind} layers x {per_token:,.0f} FLOP/token x {tokens:,} tokens")
            total += a.layers * per_token * tokens
        else:
            pairs = a.keys(0, tokens)
            terms.append(f"{a.layers} {a.kind} layers x {pairs:,} pairs x {a.prefill_flops_per_pair:,.0f} FLOP/pair")
            total += a.layers * pairs * a.prefill_flops_per_pair
    return terms, total


def _overheads_text(pm: PerfModel, coeffs: PerfCoefficients, requests: int) -> str:
    """The fixed costs of a step with their numbers: per step + layer units x per layer + requests x per request."""
    units = sum(s.layer_units for s in pm.stages)
    return (f"{coeffs.step_overhead_s * 1e3:.3f} ms step + {units:g} layer units x "
            f"{coeffs.layer_overhead_s * 1e6:.1f} us + {requests} requests x {coeffs.request_overhead_s * 1e6:.1f} us")


def _derivations(r: PerfReport, coeffs: PerfCoefficients, gpu: GpuSpec, pm: PerfModel) -> tuple[Derivation, ...]:
    bw = gpu.memory_bandwidth_bytes_per_s
    d = r.decode
    return (
        Derivation(figure="decode bytes per step", formula="weights read (experts: touched share) + KV read",
                   substituted=f"{d.weight_bytes:,.0f} + {d.kv_bytes:,.0f}", value=f"{d.bytes:,.0f} B",
                   source="calc/perf/model.py, moe.py"),
        Derivation(figure="decode memory time",
                   formula="weights / (HBM B/s x weight_bw_eff) + KV / (HBM B/s x kv_bw_eff)",
                   substituted=f"{d.weight_bytes:,.0f} / ({bw:.3g} x {coeffs.weight_bw_eff:.3f}) + {d.kv_bytes:,.0f}"
                               f" / ({bw:.3g} x {coeffs.kv_bw_eff:.3f})",
                   value=f"{d.t_memory_s * 1e3:.3f} ms", source=coeffs.sources.get("weight_bw_eff", "")),
        Derivation(figure="decode step", formula="max(t_weights, t_gemm) per GEMM shape (dense; each expert group) + "
                   "max(t_kv, t_attn) + comm + overheads; GEMMs at gemm_eff x s(rows) x d(depth)",
                   substituted=f"memory {d.t_memory_s * 1e3:.3f} ms, compute {d.t_compute_s * 1e3:.3f} ms, comm "
                               f"{d.t_comm_s * 1e3:.3f} ms, overheads {d.overhead_s * 1e3:.3f} ms = "
                               f"{_overheads_text(pm, coeffs, d.batch)}",
                   value=f"{d.time_s * 1e3:.3f} ms ({d.bound}-bound)", source="calc/perf/step.py, shape.py"),
        Derivation(figure="arithmetic intensity (decode)", formula="FLOPs / bytes",
                   substituted=f"{d.flops:.4g} / {d.bytes:.4g}", value=f"{d.arithmetic_intensity:.1f} FLOP/B",
                   source="Williams et al. 2009 (roofline)"),
        Derivation(figure="ridge point", formula=f"peak {r.ridge_dtype} FLOP/s / bandwidth",
                   substituted=f"{gpu.flops(r.ridge_dtype):.4g} / {bw:.4g}", value=f"{r.ridge_point:.1f} FLOP/B",
                   source=f"hardware/{gpu.key}.yaml"),
        Derivation(figure="prefill FLOPs (one GPU of each stage)",
                   formula="2 x active params on the GPU x tokens (+ lm_head for the sampled token) + attention "
                           "layers x (query, key) pairs x FLOPs per pair (2 x (head_dim + v_head_dim) x heads on "
                           "the GPU; causal: pairs = N (N + 1) / 2)",
                   substituted=prefill_flops_terms(pm, r.prefill.tokens)[0], value=f"{r.prefill.flops:.4g} FLOP",
                   source="calc/perf/model.py, step.py, attention.py; Kaplan et al. 2020 s2.1"),
        Derivation(figure="TTFT, TPOT", formula="simulated engine steps (scheduler.py); TPOT = (e2e - TTFT)/(out-1)",
                   substituted=f"{_what(r)}, running {r.running_requests:.1f} of cap {r.running_cap}; "
                               f"scheduler: {r.scheduler}",
                   value=f"TTFT {r.ttft_s * 1e3:.1f} ms, TPOT {r.tpot_s * 1e3:.2f} ms",
                   source="vLLM benchmarks/serve.py calculate_metrics"),
    )


@record
class _Run:
    """What one run needs besides the plan: the mode, its size and the request lengths it sends."""

    mode: str
    n: int
    lengths: LengthDistribution
    rate: float | None
    seed: int
    burstiness: float
    prompts: int | None = None


def _run_kind(batch: int | None, concurrency: int | None, request_rate: float | None, num_prompts: int | None,
              lengths: LengthDistribution | None, input_tokens: int, output_tokens: int, seed: int,
              burstiness: float) -> _Run:
    given = [x is not None for x in (batch, concurrency, request_rate)]
    if sum(given) != 1:
        raise InputError("give exactly one of --batch B (a static batch), --concurrency C (serving clients) or "
                         "--request-rate R (open-loop arrivals, 'inf' = all at once)")
    dist = lengths or fixed_lengths(input_tokens, output_tokens)
    if request_rate is not None:
        if not request_rate > 0:
            raise InputError(f"--request-rate must be positive or inf, got {request_rate}")
        prompts = 1000 if num_prompts is None else num_prompts
        if prompts < 1:
            raise InputError(f"--num-prompts must be >= 1, got {prompts}")
        return _Run(mode="rate", n=prompts, lengths=dist, rate=request_rate, seed=seed, burstiness=burstiness)
    n = batch if batch is not None else concurrency
    assert n is not None
    if n < 1:
        raise InputError(f"--batch/--concurrency must be >= 1, got {n}")
    if num_prompts is not None and (batch is not None or num_prompts < 1):
        raise InputError("--num-prompts goes with --concurrency (a benchmark of N requests from its start) or "
                         "--request-rate, and must be >= 1")
    return _Run(mode="batch" if batch is not None else "concurrency", n=n, lengths=dist, rate=None, seed=seed,
                burstiness=burstiness, prompts=num_prompts)


def _simulate(run: _Run, pm: PerfModel, coeffs: PerfCoefficients, input_tokens: int, output_tokens: int) -> RunStats:
    if run.mode == "rate":
        assert run.rate is not None
        return run_rate(pm, coeffs, run.n, run.rate, run.lengths, seed=run.seed, burstiness=run.burstiness)
    if run.mode == "batch":
        if run.lengths.kind == "fixed":
            return run_static(pm, coeffs, run.n, input_tokens, output_tokens)
        return run_rate(pm, coeffs, run.n, float("inf"), run.lengths, seed=run.seed, online=False)
    return run_serving(pm, coeffs, run.n, input_tokens, output_tokens,
                       lengths=None if run.lengths.kind == "fixed" else run.lengths, num_prompts=run.prompts)


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
    request_rate: float | None = None,
    num_prompts: int | None = None,
    lengths: LengthDistribution | None = None,
    seed: int = 0,
    burstiness: float = 1.0,
    context: int | None = None,
) -> PerfReport:
    """Latency and throughput of `batch` static requests, `concurrency` closed-loop clients, or `num_prompts`
    requests sent at `request_rate` (inf: all at once); lengths fixed (input/output tokens) or drawn from
    `lengths`. `context`: max_model_len (default: the engine's, or what the requests need)."""
    run = _run_kind(batch, concurrency, request_rate, num_prompts, lengths, input_tokens, output_tokens, seed,
                    burstiness)
    sample_in, sample_out = sample_lengths(run.lengths, max(run.n, 1) if run.mode != "concurrency" else 1000,
                                           seed if run.mode == "rate" else SEED)
    shape = summarize(sample_in, sample_out)
    mean_in, mean_out = round(shape.mean_input_tokens), max(1, round(shape.mean_output_tokens))
    longest = max(shape.max_request_tokens, input_tokens + output_tokens if run.lengths.kind == "fixed" else 0)
    plan = plan_for(model, gpu, parallel, settings, weight_format, max(longest - 1, 0), 1, context) \
        if run.lengths.kind != "fixed" else plan_for(model, gpu, parallel, settings, weight_format, input_tokens,
                                                      output_tokens, context)
    pm = perf_model(plan)
    coeffs = coefficients_for(plan, calibration, online=run.mode != "batch", enforce_eager=settings.enforce_eager)
    cap, cap_binding = running_cap(plan, mean_in, mean_out)
    if plan.concurrency_at(longest) < 1:
        raise InputError(f"one request of {longest:,} tokens does not fit the KV cache of this deployment "
                         f"({plan.kv_cache_tokens:,} tokens); see kvcalc fit")
    stats = _simulate(run, pm, coeffs, mean_in if run.lengths.kind != "fixed" else input_tokens,
                      mean_out if run.lengths.kind != "fixed" else output_tokens)
    report = _assemble(model, gpu, parallel, plan, pm, coeffs, run, stats, mean_in, mean_out, cap, cap_binding,
                       shape.max_request_tokens if run.lengths.kind != "fixed" else input_tokens + output_tokens)
    if explain:
        report = replace(report, explain=_derivations(report, coeffs, gpu, pm))
    return report


def _assemble(model: ModelSpec, gpu: GpuSpec, parallel: Parallel, plan: DeploymentPlan, pm: PerfModel,
              coeffs: PerfCoefficients, run: _Run, stats: RunStats, mean_in: int, mean_out: int, cap: int,
              cap_binding: str, longest: int) -> PerfReport:
    mid = mean_in + mean_out // 2
    running = max(1, round(stats.mean_running)) if run.mode == "rate" else max(1, min(run.n, cap))
    dec = decode_step(pm, coeffs, running, mid)
    pre = prefill_step(pm, coeffs, max(mean_in, 1))
    dtype = main_gemm_dtype(pm)
    warnings = list(plan.warnings)
    lc = long_context(pm, plan, mean_in, mean_out, pre)
    if lc.rope.warning:
        warnings.append(lc.rope.warning)
    if run.mode != "rate" and run.n > cap * parallel.dp:
        warnings.append(f"{run.n} requests of {mean_in + mean_out:,} tokens: only {cap * parallel.dp} run at once "
                        f"({cap_binding}); the rest wait, and their TTFT includes the wait")
    if stats.preemptions:
        warnings.append(f"the KV cache ran out {stats.preemptions} times: requests were preempted and recomputed "
                        "(their TTFT and TPOT include it)")
    return PerfReport(
        model=model.id, gpu=gpu.name, gpus=parallel.gpus, engine=plan.engine, engine_version=plan.engine_version,
        parallel=parallel, weight_format=plan.weight_format.name, kv_dtype=plan.kv_dtype, mode=run.mode,
        batch=run.n if run.mode == "batch" else None, concurrency=run.n if run.mode == "concurrency" else None,
        input_tokens=mean_in, output_tokens=mean_out, ttft_s=stats.ttft_s, tpot_s=stats.tpot_s,
        itl_p50_s=stats.itl_p50_s, itl_p99_s=stats.itl_p99_s, e2e_s=stats.e2e_s,
        tokens_per_s_per_user=1.0 / stats.tpot_s if stats.tpot_s else 0.0,
        tokens_per_s_total=stats.output_tokens_per_s, requests_per_s=stats.requests_per_s,
        running_requests=stats.mean_running, running_cap=cap * parallel.dp, running_cap_binding=cap_binding,
        prefill=phase(pre, max(mean_in, 1), 1), decode=phase(dec, running, running),
        ridge_point=gpu.ridge_point(dtype), ridge_dtype=dtype,
        compute_bound_batch=compute_bound_batch(pm, coeffs, mid), efficiencies=efficiencies(coeffs),
        coefficients_source=coeffs.source, table=batch_table(pm, coeffs, mid, cap), moe=moe_summary(pm, plan),
        long_context=lc, warnings=tuple(warnings),
        request_rate=None if run.rate is None or run.rate == float("inf") else run.rate,
        num_prompts=run.n if run.mode == "rate" else run.prompts, lengths=run.lengths.name,
        lengths_source=run.lengths.source, mean_input_tokens=float(mean_in), mean_output_tokens=float(mean_out),
        max_request_tokens=longest, ttft_p50_s=stats.ttft_p50_s, ttft_p99_s=stats.ttft_p99_s,
        tpot_p50_s=stats.tpot_p50_s, tpot_p99_s=stats.tpot_p99_s, duration_s=stats.duration_s,
        total_tokens_per_s=stats.total_tokens_per_s, mean_queue_s=stats.mean_waiting_s,
        peak_running=stats.peak_running, preemptions=stats.preemptions,
        scheduler=policy_for(plan).source,
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms"


def _bound_line(name: str, x: Phase, r: PerfReport) -> str:
    return (f"{name}: {x.bound}-bound, {x.arithmetic_intensity:,.1f} FLOP/B vs ridge point {r.ridge_point:,.0f} "
            f"({r.ridge_dtype}); step {_ms(x.time_s)}")


def _what(r: PerfReport) -> str:
    if r.mode == "batch":
        return f"batch {r.batch} (static)"
    if r.mode == "concurrency":
        return f"concurrency {r.concurrency} (closed loop)"
    rate = "all at once" if r.request_rate is None else f"{r.request_rate:g} requests/s (Poisson)"
    return f"{r.num_prompts:,} requests, {rate}"


def render_perf(out: Any, r: PerfReport) -> None:
    """Rich output for `kvcalc perf`."""
    from rich.table import Table

    p = r.parallel
    what = _what(r)
    out.print(f"[bold]{r.model}[/bold] on {r.gpus} x {r.gpu} (tp={p.tp} pp={p.pp} dp={p.dp} ep={p.ep} cp={p.cp}), "
              f"{r.engine} {r.engine_version}, weights {r.weight_format}, KV {r.kv_dtype}")
    lines = [
        f"{what}: {r.input_tokens:,} in / {r.output_tokens:,} out; {r.running_requests:.1f} running on average "
        f"(cap {r.running_cap}: {r.running_cap_binding})",
        f"TTFT {_ms(r.ttft_s)}  TPOT {_ms(r.tpot_s)}  ITL p50 {_ms(r.itl_p50_s)} / p99 {_ms(r.itl_p99_s)}  "
        f"{r.tokens_per_s_per_user:,.1f} tokens/s per user  {r.tokens_per_s_total:,.0f} tokens/s total",
        f"lengths {r.lengths}: mean {r.mean_input_tokens:,.0f} in / {r.mean_output_tokens:,.0f} out, longest "
        f"{r.max_request_tokens:,}; TTFT p50 {_ms(r.ttft_p50_s)} / p99 {_ms(r.ttft_p99_s)}, TPOT p50 "
        f"{_ms(r.tpot_p50_s)} / p99 {_ms(r.tpot_p99_s)}; queued {_ms(r.mean_queue_s)} on average; "
        f"{r.preemptions} preemptions" + (f"; run lasts {r.duration_s:,.1f} s, {r.total_tokens_per_s:,.0f} "
                                           f"tokens/s in + out" if r.mode == "rate" else ""),
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
