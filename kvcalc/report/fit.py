"""`kvcalc fit`: does a model fit a deployment, with how much room, and what capacity (report records and
their builder). The numbers come from the engine's DeploymentPlan (calc/deploy.plan_deployment); advice
from calc/advice.py; nothing here computes a budget."""

from __future__ import annotations

from typing import Any

from kvcalc.calc.deploy import engine_settings, plan_deployment
from kvcalc.calc.engines.settings import AnySettings
from kvcalc.calc.parallel import CommPerToken, comm_per_token
from kvcalc.calc.plan import Assumption, DeploymentPlan, DeviceLedger, HostLedger
from kvcalc.calc.weights import WeightFormat
from kvcalc.report.explain import Derivation
from kvcalc.report.fit_explain import fit_derivations
from kvcalc.report.inspect import ModelReport, model_report
from kvcalc.spec.base import record, replace, to_jsonable
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec


@record
class GpuReport:
    name: str
    key: str
    count: int
    memory_bytes: int
    usable_memory_bytes: int


@record
class WeightFormatReport:
    """The weight format in use: its name, where kvcalc took it from (--quant, the checkpoint's
    quantization_config, its dtype), the layout, and the kernel that lays it out on this GPU."""

    name: str
    source: str
    layout: str
    kernel: str | None
    serving_dtype: str


@record
class PerGpu:
    """The fullest GPU (the worker that binds the block count). Bytes; they add up to `total_bytes`."""

    total_bytes: int
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    cuda_graph_bytes: int
    free_bytes: int


@record
class Capacity:
    """What the engine reports and what it means for requests, per replica; `replicas` data-parallel copies
    give the totals."""

    kv_cache_tokens: int
    num_blocks: int
    block_size: int | None
    pool_unit: str
    max_concurrency: float
    context: int
    concurrency: int
    max_context_at_concurrency: int
    kv_bytes_per_token: int
    fixed_bytes_per_sequence: int
    max_num_seqs: int | None
    requests_at_max_model_len: int
    binding: str
    replicas: int
    total_kv_cache_tokens: int
    total_max_concurrency: float


@record
class Advice:
    """One change that makes the deployment fit, checked by planning it again."""

    change: str
    fits: bool
    max_concurrency: float
    kv_cache_tokens: int
    note: str | None = None


@record
class FitReport:
    fits: bool
    reason: str | None
    model: ModelReport
    gpu: GpuReport
    parallel: Parallel
    engine: AnySettings
    weight_format: WeightFormatReport
    per_gpu: PerGpu
    capacity: Capacity
    stages: list[dict[str, int]]
    host: HostLedger | None
    communication_per_token: CommPerToken
    assumptions: dict[str, Assumption]
    advice: list[Advice]
    warnings: list[str]
    explain: list[Derivation]


_SUMMARIES: dict[tuple[int, int], tuple[ModelSpec, WeightFormat, ModelReport]] = {}


def _model_summary(model: ModelSpec, fmt: WeightFormat) -> ModelReport:
    """model_report(model, fmt), computed once per (model, format) pair."""
    key = (id(model), id(fmt))
    cached = _SUMMARIES.get(key)
    if cached is None or cached[0] is not model or cached[1] is not fmt:
        if len(_SUMMARIES) >= 64:
            _SUMMARIES.clear()
        cached = (model, fmt, model_report(model, fmt))
        _SUMMARIES[key] = cached
    return cached[2]


def fit_deployment(
    model: ModelSpec,
    gpu: GpuSpec,
    parallel: Parallel,
    engine: EngineSettings | AnySettings,
    *,
    context: int | None = None,
    concurrency: int = 1,
    weight_format: WeightFormat | None = None,
    advise: bool = True,
    explain: bool = True,
    catalogue: list[GpuSpec] | None = None,
) -> FitReport:
    """Plan the deployment with the chosen engine and judge whether `concurrency` requests of `context` tokens
    fit; when they do not, search for changes that do (calc/advice.py) over `catalogue` (the hardware files;
    loaded here when not given)."""
    settings, warnings = engine_settings(engine, concurrency=concurrency)
    plan = plan_deployment(model, gpu, parallel, settings, weight_format=weight_format, context=context)
    if warnings:
        plan = replace(plan, warnings=tuple(warnings) + plan.warnings)
    report = fit_report(plan, concurrency=concurrency, explain=explain)
    if advise and not report.fits:
        from kvcalc.calc.advice import advise_plan

        if catalogue is None:
            from kvcalc.sources.hardware import list_gpus

            catalogue = list_gpus()
        for a in advise_plan(plan, concurrency, catalogue, explicit_format=weight_format is not None):
            report.advice.append(Advice(change=a.change, fits=a.fits, max_concurrency=round(a.max_concurrency, 4),
                                        kv_cache_tokens=a.kv_cache_tokens, note=a.note))
    return report


def fit_verdict(plan: DeploymentPlan, concurrency: int) -> tuple[bool, str | None]:
    """Whether `concurrency` requests of max_model_len run at once over the deployment's replicas (each
    data-parallel replica takes ceil(concurrency / dp) of them), and why not."""
    if plan.startup_error is not None:
        return False, plan.startup_error
    total, concurrency = concurrency, plan.per_replica(concurrency)
    where = f" per replica ({total} over {plan.parallel.dp})" if plan.parallel.dp > 1 else ""
    if plan.max_num_seqs is not None and concurrency > plan.max_num_seqs:
        return False, (f"{concurrency} concurrent requests{where} exceed max_num_seqs = {plan.max_num_seqs} (the "
                       "scheduler runs at most that many at once)")
    if plan.concurrency_at(plan.max_model_len) < concurrency:
        return False, (f"{concurrency} concurrent requests of {plan.max_model_len:,} tokens{where} need "
                       f"{concurrency}x; the cache holds {plan.max_concurrency:.2f}x")
    return True, None


def fit_report(plan: DeploymentPlan, engine: Any = None, concurrency: int = 1, *, explain: bool = False) -> FitReport:
    """The fit report of a plan: the binding GPU's ledger, capacity, and whether it fits (`engine` is
    accepted for compatibility; the plan carries its settings)."""
    fits, reason = fit_verdict(plan, concurrency)
    device = plan.binding_device
    summary = _model_summary(plan.model, plan.weight_format)
    gpu = plan.gpu
    fmt = plan.weight_format
    kernel = plan.assumptions.get("weight_kernel")
    settings = plan.settings if plan.settings is not None else engine
    return FitReport(
        fits=fits,
        reason=reason,
        model=summary,
        gpu=GpuReport(name=gpu.name, key=gpu.key, count=plan.parallel.gpus, memory_bytes=gpu.memory_bytes,
                      usable_memory_bytes=gpu.usable_memory_bytes),
        parallel=plan.parallel,
        engine=replace(settings, version=plan.engine_version),
        weight_format=WeightFormatReport(
            name=getattr(fmt, "name", "?"), source=plan.weight_format_source,
            layout=fmt.describe() if hasattr(fmt, "describe") else getattr(fmt, "name", "?"),
            kernel=str(kernel.value) if kernel is not None else None, serving_dtype=plan.serving_dtype),
        per_gpu=PerGpu(
            total_bytes=device.total_bytes, weights_bytes=device.weights_bytes, kv_cache_bytes=device.kv_cache_bytes,
            activation_bytes=device.activation_bytes, overhead_bytes=device.non_torch_bytes,
            cuda_graph_bytes=device.cuda_graph_bytes, free_bytes=device.free_bytes,
        ),
        capacity=Capacity(
            kv_cache_tokens=plan.kv_cache_tokens,
            num_blocks=plan.kv_pool.num_blocks,
            block_size=plan.kv_pool.block_size if plan.kv_pool.unit == "blocks" else None,
            pool_unit=plan.kv_pool.unit,
            max_concurrency=round(plan.max_concurrency, 4),
            context=plan.max_model_len,
            concurrency=concurrency,
            max_context_at_concurrency=plan.max_context_at(
                plan.per_replica(concurrency), max(plan.model.max_position_embeddings or 0, plan.max_model_len)
                if plan.engine != "llamacpp" else plan.max_model_len),
            kv_bytes_per_token=plan.kv_pool.kv_bytes_per_token,
            fixed_bytes_per_sequence=plan.kv_pool.fixed_bytes_per_sequence,
            max_num_seqs=plan.max_num_seqs,
            requests_at_max_model_len=plan.requests_at(plan.max_model_len),
            binding=running_binding(plan),
            replicas=plan.replicas,
            total_kv_cache_tokens=plan.total_kv_cache_tokens,
            total_max_concurrency=round(plan.total_max_concurrency, 4),
        ),
        stages=[_stage_row(d) for d in plan.devices],
        host=plan.host,
        communication_per_token=comm_per_token(plan.model, plan.parallel),
        assumptions=plan.assumptions,
        advice=[],
        warnings=list(plan.warnings),
        explain=fit_derivations(plan, summary.weights_bytes) if explain else [],
    )


def running_binding(plan: DeploymentPlan) -> str:
    """The limit on requests of max_model_len running at once, min(whole requests the pool holds, max_num_seqs):
    "max_num_seqs" when the pool holds at least max_num_seqs of them, else the plan's own limit ("memory", or
    llama.cpp's "max_model_len")."""
    seqs = plan.max_num_seqs
    if seqs is not None and int(plan.concurrency_at(plan.max_model_len)) >= seqs:
        return "max_num_seqs"
    return "memory" if plan.binding == "max_num_seqs" else plan.binding


def _stage_row(device: DeviceLedger) -> dict[str, int]:
    """One pipeline stage's ledger for the JSON `stages` list (layers = its layer count)."""
    row = {k: v for k, v in to_jsonable(device).items() if k != "activation_detail"}
    return {"layers": device.num_layers, "num_blocks": device.kv_blocks, **row}
