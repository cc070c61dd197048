"""`kvcalc fit`: does a model fit a deployment, with how much room, and what capacity (report + builder)."""

from __future__ import annotations

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.engines import Assumption
from kvcalc.calc.paged import version_tuple
from kvcalc.calc.parallel import CommPerToken, comm_per_token
from kvcalc.calc.plan import DeploymentPlan, DeviceLedger
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import KvcalcError
from kvcalc.report.explain import Derivation
from kvcalc.report.inspect import ModelReport, kv_derivations, model_report
from kvcalc.spec.base import record, replace, to_jsonable
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec
from kvcalc.units import fmt_gib


@record
class GpuReport:
    name: str
    key: str
    count: int
    memory_bytes: int
    usable_memory_bytes: int


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
    """What the engine reports and what it means for requests."""

    kv_cache_tokens: int
    num_blocks: int
    block_size: int | None
    max_concurrency: float
    context: int
    concurrency: int
    max_context_at_concurrency: int
    kv_bytes_per_token: int
    fixed_bytes_per_sequence: int


@record
class Advice:
    """One change that makes the deployment fit, checked by the same calculation."""

    change: str
    fits: bool
    max_concurrency: float
    kv_cache_tokens: int


@record
class FitReport:
    fits: bool
    reason: str | None
    model: ModelReport
    gpu: GpuReport
    parallel: Parallel
    engine: EngineSettings
    per_gpu: PerGpu
    capacity: Capacity
    stages: list[dict[str, int]]
    communication_per_token: CommPerToken
    assumptions: dict[str, Assumption]
    advice: list[Advice]
    warnings: list[str]
    explain: list[Derivation]


_SUMMARIES: dict[tuple[int, int], tuple[ModelSpec, WeightFormat, ModelReport]] = {}


def _model_summary(model: ModelSpec, fmt: WeightFormat) -> ModelReport:
    """model_report(model, fmt), computed once per (model, format) pair: advice re-runs the fit many times."""
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
    engine: EngineSettings,
    *,
    context: int | None = None,
    concurrency: int = 1,
    weight_format: WeightFormat | None = None,
    advise: bool = True,
    explain: bool = True,
) -> FitReport:
    """Plan the deployment with the chosen engine (calc/deploy.plan_deployment) and judge whether
    `concurrency` requests of `context` tokens fit."""
    plan = plan_deployment(model, gpu, parallel, engine, weight_format=weight_format, context=context)
    report = fit_report(plan, engine, concurrency, explain=explain)
    if advise and not report.fits:
        report.advice.extend(advice_for(model, gpu, parallel, engine, plan.max_model_len, concurrency,
                                        plan.weight_format))
    return report


def fit_report(plan: DeploymentPlan, engine: EngineSettings, concurrency: int, *, explain: bool) -> FitReport:
    """The fit report of a plan: the binding GPU's ledger, capacity, and whether it fits."""
    fits = plan.startup_error is None and plan.max_concurrency >= concurrency
    reason = plan.startup_error
    if reason is None and not fits:
        reason = (
            f"{concurrency} concurrent requests of {plan.max_model_len:,} tokens need {concurrency}x; "
            f"the cache holds {plan.max_concurrency:.2f}x"
        )
    device = plan.binding_device
    summary = _model_summary(plan.model, plan.weight_format)
    gpu = plan.gpu
    return FitReport(
        fits=fits,
        reason=reason,
        model=summary,
        gpu=GpuReport(name=gpu.name, key=gpu.key, count=plan.parallel.gpus, memory_bytes=gpu.memory_bytes,
                      usable_memory_bytes=gpu.usable_memory_bytes),
        parallel=plan.parallel,
        engine=replace(engine, version=plan.engine_version),
        per_gpu=PerGpu(
            total_bytes=device.total_bytes,
            weights_bytes=device.weights_bytes,
            kv_cache_bytes=device.kv_cache_bytes,
            activation_bytes=device.activation_bytes,
            overhead_bytes=device.non_torch_bytes,
            cuda_graph_bytes=device.cuda_graph_bytes,
            free_bytes=device.free_bytes,
        ),
        capacity=Capacity(
            kv_cache_tokens=plan.kv_cache_tokens,
            num_blocks=plan.kv_pool.num_blocks,
            block_size=plan.kv_pool.block_size if plan.kv_pool.unit == "blocks" else None,
            max_concurrency=round(plan.max_concurrency, 4),
            context=plan.max_model_len,
            concurrency=concurrency,
            max_context_at_concurrency=plan.max_context_at(
                concurrency, plan.model.max_position_embeddings or plan.max_model_len
            ),
            kv_bytes_per_token=plan.kv_pool.kv_bytes_per_token,
            fixed_bytes_per_sequence=plan.kv_pool.fixed_bytes_per_sequence,
        ),
        stages=[_stage_row(d) for d in plan.devices],
        communication_per_token=comm_per_token(plan.model, plan.parallel),
        assumptions=plan.assumptions,
        advice=[],
        warnings=list(plan.warnings),
        explain=fit_derivations(plan, summary.weights_bytes) if explain else [],
    )


def _stage_row(device: DeviceLedger) -> dict[str, int]:
    """One pipeline stage's ledger for the JSON `stages` list (layers = its layer count)."""
    row = {k: v for k, v in to_jsonable(device).items() if k != "activation_detail"}
    return {"layers": device.num_layers, "num_blocks": device.kv_blocks, **row}


def fit_derivations(plan: DeploymentPlan, weights_total: int) -> list[Derivation]:
    """--explain for fit: weights per GPU, the memory terms, A, blocks, reported size and concurrency, from the
    same numbers the report holds."""
    s = plan.binding_device
    parallel = plan.parallel
    vllm = plan.engine == "vllm"
    util = plan.assumptions.get("gpu_memory_utilization")
    detail = s.activation_detail
    out = kv_derivations(plan.model, plan.kv_dtype, parallel.tp)
    out.append(Derivation(
        figure=f"Weights on the fullest GPU (stage {s.stage}, {s.num_layers} layers)",
        formula="sum over its tensors of shard bytes: column/row-parallel / tp, embedding and head padded to 64 rows "
        "/ tp, K/V kept whole per head when tp > KV heads, norms and routers replicated"
        + (" + rotary cos/sin cache" if vllm else ""),
        substituted=f"{fmt_gib(weights_total)} whole model over tp={parallel.tp}, pp={parallel.pp}, ep={parallel.ep}",
        value=fmt_gib(s.weights_bytes),
        source="vLLM linear.py / vocab_parallel_embedding.py / get_pp_indices",
    ))
    if vllm and util is not None:
        out.append(Derivation(
            figure="Requested memory per GPU (R)",
            formula="ceil(total as torch reports it x gpu_memory_utilization)",
            substituted=f"ceil({s.total_bytes:,} x {util.value})",
            value=f"{s.requested_bytes:,} B = {fmt_gib(s.requested_bytes)}",
            source="vLLM worker/utils.py request_memory",
        ))
    if "forward_bytes" in detail and plan.engine in ("vllm", "trtllm"):
        out.append(Derivation(
            figure="Activation peak of the profile run (P)",
            formula="max(MLP forward of max_num_batched_tokens, hidden + sampler c x rows x vocab) + slack"
            + (" + pipeline hand-off" if detail.get("pp_intermediate_bytes") else ""),
            substituted=f"max({detail['forward_bytes']:,}, {detail['hidden_bytes']:,} + {detail['sampler_bytes']:,}) + "
            f"{detail['slack_bytes']:,} + {detail.get('pp_intermediate_bytes', 0):,}",
            value=fmt_gib(s.activation_bytes),
            source="vLLM gpu_model_runner.profile_run; calibration in docs/accuracy.md",
        ))
    fraction = getattr(plan.assumptions.get("free_gpu_memory_fraction"), "value", "")
    formulas = {
        "vllm": ("R - weights - activation peak - non-torch - CUDA graphs",
                 f"{fmt_gib(s.requested_bytes)} - {fmt_gib(s.weights_bytes)} - {fmt_gib(s.activation_bytes)} - "
                 f"{fmt_gib(s.non_torch_bytes)} - {fmt_gib(s.cuda_graph_bytes)}",
                 "vLLM gpu_worker.determine_available_memory"),
        "sglang": ("floor(total x mem_fraction_static) - weights",
                   f"{fmt_gib(s.requested_bytes)} - {fmt_gib(s.weights_bytes)}",
                   "SGLang model_runner.profile_max_num_token"),
        "trtllm": ("(total - weights - activation peak - non-torch) x free_gpu_memory_fraction",
                   f"({fmt_gib(s.total_bytes)} - {fmt_gib(s.weights_bytes)} - {fmt_gib(s.activation_bytes)} - "
                   f"{fmt_gib(s.non_torch_bytes)}) x {fraction}",
                   "TensorRT-LLM _torch/pyexecutor/_util.py KvCacheCreator"),
        "llamacpp": ("total - weights - compute buffer - backend overhead",
                     f"{fmt_gib(s.total_bytes)} - {fmt_gib(s.weights_bytes)} - {fmt_gib(s.activation_bytes)} - "
                     f"{fmt_gib(s.non_torch_bytes)}",
                     "llama.cpp llama-context / ggml backend buffers"),
    }
    formula, substituted, source = formulas[plan.engine]
    out.append(Derivation(figure="KV cache memory per GPU (A)", formula=formula, substituted=substituted,
                          value=fmt_gib(s.kv_cache_bytes), source=source))
    layout = plan.kv_pool.layout
    if vllm and layout.groups:
        per_index = layout.block_bytes // max(1, layout.page_bytes)
        out.append(Derivation(
            figure="KV blocks",
            formula="floor(A / (page bytes x layers sharing a block index)); min over pipeline stages",
            substituted=f"floor({s.kv_cache_bytes:,} / ({layout.page_bytes:,} x {per_index}))",
            value=f"{plan.kv_pool.num_blocks:,} blocks of {layout.min_block_size} tokens, "
            f"{layout.num_groups} KV group(s), {plan.kv_dtype} KV",
            source="vLLM kv_cache_utils.get_num_blocks / _get_kv_cache_groups_uniform_page_size",
        ))
        new_rule = version_tuple(plan.engine_version) >= (0, 21)
        out.append(Derivation(
            figure='"GPU KV cache size"',
            formula="int(max concurrency x max_model_len)" if new_rule
            else "floor(blocks / KV groups) x smallest block size",
            substituted=f"int({plan.max_concurrency:.4f} x {plan.max_model_len:,})" if new_rule
            else f"floor({plan.kv_pool.num_blocks:,} / {layout.num_groups}) x {layout.min_block_size}",
            value=f"{plan.kv_cache_tokens:,} tokens",
            source="vLLM _report_kv_cache_config (" + ("#41069, v0.21+" if new_rule else "v0.11.1-v0.20") + ")",
        ))
        out.append(Derivation(
            figure="Maximum concurrency",
            formula="blocks / blocks one max-length request needs (sum over KV groups)",
            substituted=f"{plan.kv_pool.num_blocks:,} / {plan.blocks_per_max_request:,}",
            value=f"{plan.max_concurrency:.2f}x at {plan.max_model_len:,} tokens",
            source="vLLM get_max_concurrency_for_kv_cache_config",
        ))
    return out


def _advice(change: str, report: FitReport) -> Advice:
    return Advice(change=change, fits=report.fits, max_concurrency=report.capacity.max_concurrency,
                  kv_cache_tokens=report.capacity.kv_cache_tokens)


def advice_for(
    model: ModelSpec,
    gpu: GpuSpec,
    parallel: Parallel,
    engine: EngineSettings,
    context: int,
    concurrency: int,
    fmt: WeightFormat,
) -> list[Advice]:
    """Smallest changes that fit, each checked by `fit_deployment`: the least extra TP, a weight quantization
    (FP8, then 4-bit AWQ) for 16-bit weights, an FP8 KV cache, a shorter context, fewer concurrent requests,
    a bigger GPU; when no single change fits, the least TP with FP8 weights."""
    from kvcalc.calc.quant import parse_quant

    sixteen_bit = fmt.name in ("bf16", "fp16", "fp32")
    quants = [(q, parse_quant(q, model=model)) for q in ("fp8", "awq:4:128")] if sixteen_bit else []
    tries: list[tuple[str, str, Parallel, EngineSettings, WeightFormat, int]] = []
    for tp in (2, 4, 8, 16):
        if tp > parallel.tp:
            tries.append(("tp", f"--tp {tp}", replace(parallel, tp=tp), engine, fmt, context))
    for name, quant in quants:
        tries.append(("quant", f"--quant {name}", parallel, engine, quant, context))
    if (engine.kv_cache_dtype or model.dtype) not in ("fp8", "fp8_e4m3", "fp8_e5m2"):
        tries.append(("kv", "--kv-dtype fp8", parallel, replace(engine, kv_cache_dtype="fp8"), fmt, context))
    base = fit_deployment(model, gpu, parallel, engine, context=context, concurrency=concurrency,
                          weight_format=fmt, advise=False, explain=False)
    shorter = base.capacity.max_context_at_concurrency
    if 0 < shorter < context:
        tries.append(("context", f"--context {shorter}", parallel, engine, fmt, shorter))
    out: list[Advice] = []
    found: set[str] = set()
    for group, change, layout, settings, weights, length in tries:
        if group in found:
            continue  # the smallest change of each kind is enough
        try:
            r = fit_deployment(model, gpu, layout, settings, context=length, concurrency=concurrency,
                               weight_format=weights, advise=False, explain=False)
        except KvcalcError:
            continue
        if r.fits:
            out.append(_advice(change, r))
            found.add(group)
    if concurrency > 1 and int(base.capacity.max_concurrency) >= 1:
        fewer = int(base.capacity.max_concurrency)
        r = fit_deployment(model, gpu, parallel, engine, context=context, concurrency=fewer, weight_format=fmt,
                           advise=False, explain=False)
        if r.fits:
            out.append(_advice(f"--concurrency {fewer}", r))
    if not out and quants:
        for tp in (2, 4, 8, 16):
            if tp <= parallel.tp:
                continue
            try:
                r = fit_deployment(model, gpu, replace(parallel, tp=tp), engine, context=context,
                                   concurrency=concurrency, weight_format=quants[0][1], advise=False,
                                   explain=False)
            except KvcalcError:
                continue
            if r.fits:
                out.append(_advice(f"--tp {tp} --quant {quants[0][0]}", r))
                break
    from kvcalc.sources.hardware import list_gpus

    for other in sorted(list_gpus(), key=lambda g: g.usable_memory_bytes):
        if other.usable_memory_bytes <= gpu.usable_memory_bytes or other.kind in ("apple", "cpu"):
            continue
        try:
            r = fit_deployment(model, other, parallel, engine, context=context, concurrency=concurrency,
                               weight_format=fmt, advise=False, explain=False)
        except KvcalcError:
            continue
        if r.fits:
            out.append(_advice(f"--gpu {other.key}", r))
            break
    # llama.cpp partial offload (kvcalc local): a GGUF recipe or the llamacpp engine on one GPU
    from kvcalc.calc.quant import GgufRecipe

    if (isinstance(fmt, GgufRecipe) or engine.name == "llamacpp") and parallel.gpus == 1 and gpu.kind != "cpu":
        from kvcalc.calc.offload import GGML_KV_CACHE_TYPES, offload_plan

        kv_name = engine.kv_cache_dtype if engine.kv_cache_dtype in GGML_KV_CACHE_TYPES else None
        try:
            plan = offload_plan(model, fmt, gpu.usable_memory_bytes, None, context, kv_name,
                                device="apple" if gpu.kind == "apple" else "gpu",
                                gpu_bandwidth=float(gpu.memory_bandwidth_bytes_per_s))
        except KvcalcError:
            plan = None
        if plan is not None and plan.n_gpu_layers > 0:
            flag = "--apple" if gpu.kind == "apple" else "--gpu"
            out.append(
                Advice(
                    change=f"kvcalc local {model.id} {flag} {gpu.key} --quant {fmt.name} --context {context} "
                    f"(offload {plan.layers_on_gpu} of {plan.num_layers} layers)",
                    fits=plan.fits,
                    max_concurrency=1.0,
                    kv_cache_tokens=context,
                )
            )
    return out
