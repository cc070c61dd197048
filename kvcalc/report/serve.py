"""`kvcalc serve`: what one replica sustains within the SLOs, replicas for a load, cost, cold start and
autoscaling over a day (report records + builder). The numbers come from calc/serving and the perf model over
the same DeploymentPlan as `fit`; nothing here computes a budget."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.perf.slo import SloResult
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.serving.autoscale import AutoscaleTrace, ScalingPolicy, simulate
from kvcalc.calc.serving.capacity import ReplicaCapacity
from kvcalc.calc.serving.coldstart import LOAD_SOURCE, STARTUP_SOURCE, ColdStart, cold_start
from kvcalc.calc.serving.cost import TokenCost, input_share, token_cost
from kvcalc.calc.serving.fleet import Fleet, size_fleet
from kvcalc.calc.serving.launch import Launch, launch_command
from kvcalc.calc.serving.mix import MixSummary
from kvcalc.calc.serving.pricing import PriceUsed, no_price_message, price_for
from kvcalc.calc.serving.replica import perf_capacity
from kvcalc.calc.weights import WeightFormat
from kvcalc.report.explain import Derivation
from kvcalc.spec.base import record
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec

SPLIT_RULE = ("cost split between input and output tokens by each phase's share of the replica's GPU time: "
              "prefill_s / (prefill_s + (output - 1) x tpot / concurrency)")


@record
class Workload:
    """The load to serve and its targets."""

    requests_per_s: float
    mix: MixSummary
    ttft_slo_s: float
    tpot_slo_s: float
    headroom: float = 0.2
    prices: dict[str, float] = field(default_factory=dict)
    load_bytes_per_s: float = 1.30e9
    engine_startup_s: float = 60.0

    @property
    def input_tokens(self) -> int:
        return max(1, round(self.mix.input.mean))

    @property
    def output_tokens(self) -> int:
        return max(1, round(self.mix.output.mean))


@record
class Traffic:
    """A day of request rates and how the autoscaler follows it (None fields take defaults from the replica)."""

    source: str
    interval_s: float
    requests_per_s: list[float]
    policy: str = "utilization"
    min_replicas: int = 1
    max_replicas: int | None = None
    scale_up_delay_s: float | None = None
    target_utilization: float | None = None
    target_queue_per_replica: float | None = None


@record
class PerReplica:
    """One replica at its SLO-constrained concurrency (seconds; requests/s). TTFT, TPOT and the p99 gap between
    tokens come from the perf model's closed-loop simulation at `max_concurrency` clients; `requests_per_s` is
    Little's law over them, `simulated_requests_per_s` the simulation's own count (they agree)."""

    gpus: int
    max_concurrency: int
    engine_max_concurrency: int
    limit: str
    requests_per_s: float
    simulated_requests_per_s: float
    output_tokens_per_s: float
    ttft_s: float
    tpot_s: float
    itl_p99_s: float
    latency_s: float
    prefill_s: float


@record
class CostReport:
    """USD at the fleet as provisioned (idle headroom included)."""

    per_hour: float
    per_day: float
    per_request: float
    per_million_input_tokens: float
    per_million_output_tokens: float
    per_million_tokens: float
    input_share: float
    split: str = SPLIT_RULE


@record
class IntervalRow:
    start_s: float
    requests_per_s: float
    desired: int
    replicas: int
    shortfall_s: float
    late_requests: float


@record
class AutoscaleReport:
    source: str
    interval_s: float
    policy: ScalingPolicy
    intervals: list[IntervalRow]
    gpu_hours: float
    static_replicas: int
    static_gpu_hours: float
    peak_replicas: int
    cost: float | None
    static_cost: float | None
    savings_fraction: float
    violation_intervals: int
    shortfall_s: float
    late_requests: float
    late_fraction: float
    plot: str | None = None


@record
class ServeReport:
    meets_slo: bool
    reason: str | None
    model: str
    hf_repo: str | None
    gpu: str
    gpu_name: str
    parallel: Parallel
    engine: str
    engine_version: str
    quant: str
    kv_dtype: str
    context: int
    workload: Workload
    per_replica: PerReplica | None
    replicas: int
    gpus_total: int
    utilization: float
    gpu_hours_per_day: float
    cost: CostReport | None
    price: PriceUsed | None
    price_source: str | None
    cold_start: ColdStart
    autoscale: AutoscaleReport | None
    launch: Launch | None
    assumptions: list[str]
    warnings: list[str]
    explain: list[Derivation] = field(default_factory=list)
    coefficients_source: str = ""
    """Where the perf model's coefficients come from (defaults, the card's shipped calibration, --calibration)."""


def replica_weight_bytes(plan: DeploymentPlan) -> int:
    """Bytes of weights one replica loads: each stage's per-GPU weights x its TP ranks."""
    return sum(d.weights_bytes for d in plan.devices) * plan.parallel.tp


def perf_inputs(plan: DeploymentPlan, settings: EngineSettings, calibration: Any | None = None
                ) -> tuple[Any, Any]:
    """(PerfModel, coefficients) of the perf model for this plan, as `kvcalc perf` builds them (online serving,
    CUDA graphs unless --enforce-eager, a calibration file when given)."""
    from kvcalc.calc.perf.model import perf_model
    from kvcalc.report.perf import coefficients_for

    return perf_model(plan), coefficients_for(plan, calibration, online=True, enforce_eager=settings.enforce_eager)


def _per_replica(plan: DeploymentPlan, cap: ReplicaCapacity, slo: SloResult, work: Workload) -> PerReplica:
    return PerReplica(
        gpus=plan.parallel.gpus, max_concurrency=cap.max_concurrency, engine_max_concurrency=slo.kv_limit,
        limit=cap.limit, requests_per_s=cap.requests_per_s, simulated_requests_per_s=slo.requests_per_s,
        output_tokens_per_s=cap.requests_per_s * work.output_tokens, ttft_s=cap.ttft_s, tpot_s=cap.tpot_s,
        itl_p99_s=slo.itl_p99_s, latency_s=cap.latency_s, prefill_s=cap.prefill_s,
    )


def _cost(fleet: Fleet, price: PriceUsed | None, cap: ReplicaCapacity, work: Workload) -> CostReport | None:
    if price is None or fleet.gpus_total == 0:
        return None
    share = input_share(cap.prefill_s, cap.decode_s)
    c: TokenCost = token_cost(fleet.gpus_total, price.usd_per_gpu_hour, work.requests_per_s, work.mix.input.mean,
                              work.mix.output.mean, share)
    return CostReport(per_hour=c.per_hour, per_day=c.per_day, per_request=c.per_request,
                      per_million_input_tokens=c.per_million_input_tokens,
                      per_million_output_tokens=c.per_million_output_tokens,
                      per_million_tokens=c.per_million_tokens, input_share=c.input_share)


def scaling_policy(traffic: Traffic, cap: ReplicaCapacity, headroom: float, delay_s: float) -> ScalingPolicy:
    """The policy the traffic options describe; unset targets keep the static fleet's headroom:
    utilization 1 / (1 + headroom), queue max_concurrency / (1 + headroom)."""
    return ScalingPolicy(
        kind="queue" if traffic.policy == "queue" else "utilization",
        min_replicas=traffic.min_replicas,
        max_replicas=traffic.max_replicas if traffic.max_replicas is not None else 1_000_000,
        scale_up_delay_s=traffic.scale_up_delay_s if traffic.scale_up_delay_s is not None else delay_s,
        target_utilization=traffic.target_utilization or 1.0 / (1.0 + headroom),
        target_queue_per_replica=traffic.target_queue_per_replica or cap.max_concurrency / (1.0 + headroom),
    )


def _autoscale(traffic: Traffic, cap: ReplicaCapacity, work: Workload, gpus: int, price: PriceUsed | None,
               start: ColdStart) -> AutoscaleReport:
    policy = scaling_policy(traffic, cap, work.headroom, start.total_s)
    trace: AutoscaleTrace = simulate(traffic.requests_per_s, traffic.interval_s, cap.requests_per_s,
                                     cap.latency_s, policy, work.headroom)
    usd = price.usd_per_gpu_hour if price else None
    gpu_hours, static_hours = trace.replica_hours * gpus, trace.static_replica_hours * gpus
    rows = [IntervalRow(start_s=r.start_s, requests_per_s=r.demand_rps, desired=r.desired, replicas=r.ready_at_end,
                        shortfall_s=r.shortfall_s, late_requests=r.late_requests) for r in trace.intervals]
    return AutoscaleReport(
        source=traffic.source, interval_s=traffic.interval_s, policy=policy, intervals=rows, gpu_hours=gpu_hours,
        static_replicas=trace.static_replicas, static_gpu_hours=static_hours, peak_replicas=trace.peak_replicas,
        cost=gpu_hours * usd if usd is not None else None,
        static_cost=static_hours * usd if usd is not None else None,
        savings_fraction=1.0 - gpu_hours / static_hours if static_hours else 0.0,
        violation_intervals=trace.violation_intervals, shortfall_s=trace.shortfall_s,
        late_requests=trace.late_requests,
        late_fraction=trace.late_requests / trace.total_requests if trace.total_requests else 0.0,
    )


def _assumptions(work: Workload, plan: DeploymentPlan) -> list[str]:
    mix = work.mix
    out = [
        f"requests of {work.input_tokens:,} input and {work.output_tokens:,} output tokens (the mix's mean; "
        f"capacity follows the mean by Little's law); max_model_len {plan.max_model_len:,}",
        "steady state under chunked prefill; queueing for a free slot is left to the headroom "
        f"({work.headroom:.0%})",
        SPLIT_RULE,
        f"load bandwidth {work.load_bytes_per_s / 1e9:g} GB/s ({LOAD_SOURCE}); engine start-up "
        f"{work.engine_startup_s:g} s ({STARTUP_SOURCE})",
    ]
    if mix.requests > 1:
        out.append(f"mix {mix.source}: {mix.requests:,} requests, input p50/p90/p99 {mix.input.p50:,}/"
                   f"{mix.input.p90:,}/{mix.input.p99:,}, output p50/p90/p99 {mix.output.p50:,}/"
                   f"{mix.output.p90:,}/{mix.output.p99:,}; SLOs are judged at the mean request")
    return out


def serve_deployment(
    model: ModelSpec,
    gpu: GpuSpec,
    parallel: Parallel,
    settings: EngineSettings,
    work: Workload,
    *,
    weight_format: WeightFormat | None = None,
    context: int | None = None,
    traffic: Traffic | None = None,
    calibration: Any | None = None,
    explain: bool = True,
) -> ServeReport:
    """Plan one replica (calc/deploy.plan_deployment), find its SLO concurrency, size and price the fleet."""
    plan = plan_deployment(model, gpu, parallel, settings, weight_format=weight_format,
                           context=context or work.mix.longest_request_tokens)
    start = cold_start(replica_weight_bytes(plan), work.load_bytes_per_s, work.engine_startup_s)
    price = price_for(gpu, work.prices)
    warnings = list(plan.warnings) + ([no_price_message(gpu)] if price is None else [])
    cap = slo = None
    reason = plan.startup_error
    coefficients = ""
    if reason is None:
        pm, coeffs = perf_inputs(plan, settings, calibration)
        coefficients = coeffs.source
        cap, slo = perf_capacity(pm, coeffs, work.input_tokens, work.output_tokens, work.ttft_slo_s,
                                 work.tpot_slo_s)
        if cap is None:
            reason = _miss_reason(plan, slo, work)
    base = dict(
        model=model.id, hf_repo=model.hf_repo, gpu=gpu.key, gpu_name=gpu.name, parallel=parallel,
        engine=plan.engine, engine_version=plan.engine_version, quant=plan.weight_format.name,
        kv_dtype=plan.kv_dtype, context=plan.max_model_len, workload=work, price=price,
        price_source=price.describe() if price else None, cold_start=start, assumptions=_assumptions(work, plan),
        warnings=warnings, coefficients_source=coefficients,
    )
    if cap is None or slo is None:
        return ServeReport(meets_slo=False, reason=reason, per_replica=None, replicas=0, gpus_total=0,
                           utilization=0.0, gpu_hours_per_day=0.0, cost=None, autoscale=None, launch=None,
                           explain=[], **base)  # type: ignore[arg-type]
    fleet = size_fleet(work.requests_per_s, cap.requests_per_s, parallel.gpus, work.headroom)
    cost = _cost(fleet, price, cap, work)
    scaled = _autoscale(traffic, cap, work, parallel.gpus, price, start) if traffic else None
    from kvcalc.report.serve_explain import serve_derivations

    report = ServeReport(
        meets_slo=True, reason=None, per_replica=_per_replica(plan, cap, slo, work), replicas=fleet.replicas,
        gpus_total=fleet.gpus_total, utilization=fleet.utilization, gpu_hours_per_day=fleet.gpu_hours_per_day,
        cost=cost, autoscale=scaled, launch=launch_command(plan, cap.max_concurrency), explain=[],
        **base,  # type: ignore[arg-type]
    )
    if not explain:
        return report
    from kvcalc.spec.base import replace

    return replace(report, explain=serve_derivations(report))


def _miss_reason(plan: DeploymentPlan, point: SloResult, work: Workload) -> str:
    if int(plan.concurrency_at(work.input_tokens + work.output_tokens)) < 1:
        return (f"one request of {work.input_tokens + work.output_tokens:,} tokens does not fit the KV cache "
                f"({plan.kv_cache_tokens:,} tokens)")
    return (f"even one request misses the targets: TTFT {point.ttft_s * 1e3:,.0f} ms (target "
            f"{work.ttft_slo_s * 1e3:,.0f} ms), TPOT {point.tpot_s * 1e3:,.1f} ms (target "
            f"{work.tpot_slo_s * 1e3:,.1f} ms); try more GPUs per replica, a faster GPU or a smaller format")
