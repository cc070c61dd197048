"""`kvcalc fit`: does a model fit a deployment, with how much room, and what capacity (report + builder)."""

from __future__ import annotations

from kvcalc.calc import kv as kvmod
from kvcalc.calc.engines import Assumption, EngineResult, flat_budget, vllm_budget
from kvcalc.calc.paged import request_blocks, version_tuple
from kvcalc.calc.parallel import CommPerToken, check_parallel, comm_per_token, stage_layers, weights_per_stage
from kvcalc.calc.weights import PlainFormat, WeightFormat
from kvcalc.errors import InputError, KvcalcError
from kvcalc.report.explain import Derivation
from kvcalc.report.inspect import ModelReport, kv_derivations, model_report
from kvcalc.spec.base import record, replace, to_jsonable
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.dtypes import storage_type
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


def _max_context(result: EngineResult, concurrency: int, mnbt: int, cp: int, limit: int) -> int:
    """Longest context L (<= limit) whose blocks for `concurrency` requests fit the cache (binary search;
    blocks per request grow with L)."""
    if result.engine != "vllm":
        return min(limit, result.num_blocks // concurrency)
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        need = request_blocks(result.plan, mid, mnbt, cp)
        if need * concurrency <= result.num_blocks:
            lo = mid
        else:
            hi = mid - 1
    return lo


def serving_dtype_for(model: ModelSpec, engine: EngineSettings) -> str:
    """The dtype the engine serves a 16/32-bit checkpoint in: fp32 checkpoints are cast to bf16 by vLLM,
    SGLang and TRT-LLM (`dtype=auto`); llama.cpp keeps what the file holds."""
    if model.dtype == "fp32" and engine.name != "llamacpp":
        return "bf16"
    return model.dtype if model.dtype in ("bf16", "fp16", "fp32") else "bf16"


def default_weight_format(model: ModelSpec, dtype: str) -> WeightFormat:
    """The checkpoint's stored format when its config says it is quantized, else plain `dtype`."""
    if model.quantization_config is not None:
        from kvcalc.calc.quant import format_from_quantization_config

        stored = format_from_quantization_config(model)
        if stored is not None:
            return stored
    return PlainFormat(dtype)


#: KV-cache dtypes each engine accepts (vLLM `--kv-cache-dtype`: auto, bfloat16, fp8, fp8_e4m3, fp8_e5m2;
#: SGLang the same; TRT-LLM adds int8; llama.cpp `-ctk/-ctv` ggml types).
_KV_DTYPES: dict[str, frozenset[str]] = {
    "vllm": frozenset({"bf16", "fp16", "fp32", "fp8", "fp8_e4m3", "fp8_e5m2"}),
    "sglang": frozenset({"bf16", "fp16", "fp32", "fp8", "fp8_e4m3", "fp8_e5m2"}),
    "trtllm": frozenset({"bf16", "fp16", "fp32", "fp8", "fp8_e4m3", "int8"}),
    "llamacpp": frozenset({"f16", "fp16", "bf16", "f32", "fp32", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                           "iq4_nl"}),
}


def check_kv_dtype(engine: str, kv_name: str) -> None:
    """InputError when the engine has no KV cache of that dtype."""
    allowed = _KV_DTYPES[engine]
    if kv_name.lower() not in allowed:
        raise InputError(f"--kv-dtype {kv_name} is not a {engine} KV-cache type; use one of "
                         f"{', '.join(sorted(allowed))}")


_ENGINE_OPTIONS: dict[str, tuple[str, ...]] = {
    "vllm": ("gpu_memory_utilization", "max_num_seqs", "block_size", "cuda_graph_bytes"),
    "sglang": ("mem_fraction_static",),
    "trtllm": ("free_gpu_memory_fraction",),
    "llamacpp": (),
}


def engine_option_warnings(engine: EngineSettings) -> list[str]:
    """A warning for each engine-specific option given to an engine that does not use it."""
    out = []
    for name, options in _ENGINE_OPTIONS.items():
        if name == engine.name:
            continue
        for option in options:
            if getattr(engine, option) is not None:
                out.append(f"--{option.replace('_', '-').replace('-bytes', '-memory')} applies to {name}, "
                           f"not {engine.name}; ignored")
    return out


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
    """Size one deployment with the chosen engine's accounting and judge whether it fits.

    Weights default to the checkpoint's own format (its quantization_config), else its dtype, with fp32
    served as bf16 as vLLM's `dtype=auto` does (`_get_and_verify_dtype`); the KV cache defaults to that dtype."""
    check_parallel(model, parallel)
    serving_dtype = serving_dtype_for(model, engine)
    fmt = weight_format or default_weight_format(model, serving_dtype)
    kv_name = engine.kv_cache_dtype or serving_dtype
    check_kv_dtype(engine.name, kv_name)
    kv = storage_type(kv_name)
    max_len = context or model.max_position_embeddings or 4096
    warnings: list[str] = engine_option_warnings(engine)
    if model.max_position_embeddings and max_len > model.max_position_embeddings:
        warnings.append(
            f"context {max_len:,} exceeds the model's max_position_embeddings "
            f"{model.max_position_embeddings:,}; vLLM refuses it without rope scaling overrides"
        )
    stage_weights = [w.weights_bytes for w in weights_per_stage(model, parallel, fmt)]
    if engine.name == "vllm":
        result = vllm_budget(
            model,
            parallel,
            engine,
            gpu_total_bytes=gpu.usable_memory_bytes,
            gpu_name=gpu.name,
            stage_weights=stage_weights,
            max_model_len=max_len,
            kv=kv,
        )
    else:
        result = flat_budget(
            model,
            parallel,
            engine,
            gpu_total_bytes=gpu.usable_memory_bytes,
            stage_weights=stage_weights,
            max_model_len=max_len,
            kv=kv,
        )
    mnbt = int(result.assumptions.get("max_num_batched_tokens", Assumption(value=8192, source="")).value)
    summary = _model_summary(model, fmt)
    stage = result.stages[result.binding_stage]
    binding_layers = stage_layers(model.num_layers, parallel.pp)[result.binding_stage]
    kv_bytes = max(0, stage.kv_cache_bytes)
    used = (
        stage.weights_bytes
        + kv_bytes
        + stage.activation_bytes
        + stage.non_torch_bytes
        + stage.cuda_graph_bytes
    )
    fits = result.startup_error is None and result.max_concurrency >= concurrency
    reason = result.startup_error
    if reason is None and not fits:
        reason = (
            f"{concurrency} concurrent requests of {max_len:,} tokens need {concurrency}x; "
            f"the cache holds {result.max_concurrency:.2f}x"
        )
    block_size = result.plan.min_block_size if result.plan.groups else None
    report = FitReport(
        fits=fits,
        reason=reason,
        model=summary,
        gpu=GpuReport(
            name=gpu.name,
            key=gpu.key,
            count=parallel.gpus,
            memory_bytes=gpu.memory_bytes,
            usable_memory_bytes=gpu.usable_memory_bytes,
        ),
        parallel=parallel,
        engine=replace(engine, version=result.version),
        per_gpu=PerGpu(
            total_bytes=stage.total_bytes,
            weights_bytes=stage.weights_bytes,
            kv_cache_bytes=kv_bytes,
            activation_bytes=stage.activation_bytes,
            overhead_bytes=stage.non_torch_bytes,
            cuda_graph_bytes=stage.cuda_graph_bytes,
            free_bytes=stage.total_bytes - used,
        ),
        capacity=Capacity(
            kv_cache_tokens=result.kv_cache_tokens,
            num_blocks=result.num_blocks,
            block_size=block_size,
            max_concurrency=round(result.max_concurrency, 4),
            context=max_len,
            concurrency=concurrency,
            max_context_at_concurrency=_max_context(
                result, concurrency, mnbt, parallel.cp, model.max_position_embeddings or max_len
            ),
            kv_bytes_per_token=kvmod.kv_bytes_per_token(model, kv, parallel.tp, layers=binding_layers),
            fixed_bytes_per_sequence=kvmod.fixed_bytes_per_sequence(model, kv, parallel.tp, layers=binding_layers),
        ),
        stages=[{k: v for k, v in to_jsonable(s).items() if k != "activation_detail"} for s in result.stages],
        communication_per_token=comm_per_token(model, parallel),
        assumptions=result.assumptions,
        advice=[],
        warnings=warnings,
        explain=fit_derivations(model, parallel, result, kv_name, summary.weights_bytes) if explain else [],
    )
    if advise and not fits:
        report.advice.extend(advice_for(model, gpu, parallel, engine, max_len, concurrency, fmt))
    return report


def fit_derivations(
    model: ModelSpec, parallel: Parallel, result: EngineResult, kv_name: str, weights_total: int
) -> list[Derivation]:
    """--explain for fit: weights per GPU, the memory terms, A, blocks, reported size and concurrency, from the
    same numbers the report holds."""
    s = result.stages[result.binding_stage]
    vllm = result.engine == "vllm"
    util = result.assumptions.get("gpu_memory_utilization")
    detail = s.activation_detail
    out = kv_derivations(model, kv_name, parallel.tp)
    out.append(Derivation(
        figure=f"Weights on the fullest GPU (stage {s.stage}, {s.layers} layers)",
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
    if "forward_bytes" in detail and result.engine in ("vllm", "trtllm"):
        out.append(Derivation(
            figure="Activation peak of the profile run (P)",
            formula="max(MLP forward of max_num_batched_tokens, hidden + sampler c x rows x vocab) + slack"
            + (" + pipeline hand-off" if detail.get("pp_intermediate_bytes") else ""),
            substituted=f"max({detail['forward_bytes']:,}, {detail['hidden_bytes']:,} + {detail['sampler_bytes']:,}) + "
            f"{detail['slack_bytes']:,} + {detail.get('pp_intermediate_bytes', 0):,}",
            value=fmt_gib(s.activation_bytes),
            source="vLLM gpu_model_runner.profile_run; calibration in docs/accuracy.md",
        ))
    fraction = getattr(result.assumptions.get("free_gpu_memory_fraction"), "value", "")
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
    formula, substituted, source = formulas[result.engine]
    out.append(Derivation(figure="KV cache memory per GPU (A)", formula=formula, substituted=substituted,
                          value=fmt_gib(s.kv_cache_bytes), source=source))
    if vllm and result.plan.groups:
        plan = result.plan
        per_index = plan.block_bytes // max(1, plan.page_bytes)
        out.append(Derivation(
            figure="KV blocks",
            formula="floor(A / (page bytes x layers sharing a block index)); min over pipeline stages",
            substituted=f"floor({s.kv_cache_bytes:,} / ({plan.page_bytes:,} x {per_index}))",
            value=f"{result.num_blocks:,} blocks of {plan.min_block_size} tokens, {plan.num_groups} KV group(s), "
            f"{kv_name} KV",
            source="vLLM kv_cache_utils.get_num_blocks / _get_kv_cache_groups_uniform_page_size",
        ))
        new_rule = version_tuple(result.version) >= (0, 21)
        out.append(Derivation(
            figure='"GPU KV cache size"',
            formula="int(max concurrency x max_model_len)" if new_rule
            else "floor(blocks / KV groups) x smallest block size",
            substituted=f"int({result.max_concurrency:.4f} x {result.max_model_len:,})" if new_rule
            else f"floor({result.num_blocks:,} / {plan.num_groups}) x {plan.min_block_size}",
            value=f"{result.kv_cache_tokens:,} tokens",
            source="vLLM _report_kv_cache_config (" + ("#41069, v0.21+" if new_rule else "v0.11.1-v0.20") + ")",
        ))
        out.append(Derivation(
            figure="Maximum concurrency",
            formula="blocks / blocks one max-length request needs (sum over KV groups)",
            substituted=f"{result.num_blocks:,} / {result.blocks_per_request:,}",
            value=f"{result.max_concurrency:.2f}x at {result.max_model_len:,} tokens",
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
