"""plan_deployment: one entry point from (model, GPU, layout, engine settings, weight format) to a
DeploymentPlan. Every command that needs memory or capacity calls this and reads the plan.

Engine policy that is not one engine's accounting lives here too: the dtype a checkpoint is served in, the
checkpoint's own weight format, the KV dtypes each engine accepts, and warnings for options an engine ignores.
"""

from __future__ import annotations

from kvcalc.calc import kv as kvmod
from kvcalc.calc.engines import EngineResult, flat_budget, vllm_budget
from kvcalc.calc.parallel import check_parallel, stage_layers, weights_per_stage
from kvcalc.calc.plan import Binding, DeploymentPlan, DeviceLedger, KvPool
from kvcalc.calc.weights import PlainFormat, WeightFormat
from kvcalc.errors import InputError
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec


def serving_dtype_for(model: ModelSpec, engine: EngineSettings) -> str:
    """The dtype the engine serves a 16/32-bit checkpoint in: fp32 checkpoints are cast to bf16 by vLLM,
    SGLang and TRT-LLM (`dtype=auto`, vLLM `_get_and_verify_dtype`); llama.cpp keeps what the file holds."""
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


def plan_deployment(
    model: ModelSpec,
    gpu: GpuSpec,
    parallel: Parallel,
    engine: EngineSettings,
    *,
    weight_format: WeightFormat | None = None,
    context: int | None = None,
) -> DeploymentPlan:
    """The engine's allocation for this deployment. Weights default to the checkpoint's own format (its
    quantization_config), else its dtype; the KV cache defaults to the served dtype; max_model_len defaults to
    the model's max_position_embeddings."""
    check_parallel(model, parallel)
    serving_dtype = serving_dtype_for(model, engine)
    fmt = weight_format or default_weight_format(model, serving_dtype)
    kv_name = engine.kv_cache_dtype or serving_dtype
    check_kv_dtype(engine.name, kv_name)
    kv = storage_type(kv_name)
    max_len = context or model.max_position_embeddings or 4096
    warnings = engine_option_warnings(engine)
    if model.max_position_embeddings and max_len > model.max_position_embeddings:
        warnings.append(
            f"context {max_len:,} exceeds the model's max_position_embeddings "
            f"{model.max_position_embeddings:,}; vLLM refuses it without rope scaling overrides"
        )
    stage_weights = [w.weights_bytes for w in weights_per_stage(model, parallel, fmt)]
    common = dict(gpu_total_bytes=gpu.usable_memory_bytes, stage_weights=stage_weights, max_model_len=max_len,
                  kv=kv)
    if engine.name == "vllm":
        result = vllm_budget(model, parallel, engine, gpu_name=gpu.name, **common)  # type: ignore[arg-type]
    else:
        result = flat_budget(model, parallel, engine, **common)  # type: ignore[arg-type]
    return _plan_from(result, model, gpu, parallel, fmt, kv_name, tuple(warnings))


def _plan_from(
    result: EngineResult,
    model: ModelSpec,
    gpu: GpuSpec,
    parallel: Parallel,
    fmt: WeightFormat,
    kv_name: str,
    warnings: tuple[str, ...],
) -> DeploymentPlan:
    """The engine budget as a DeploymentPlan: one ledger per stage, the pool in the engine's units."""
    stages = stage_layers(model.num_layers, parallel.pp)
    devices = []
    for budget, layers in zip(result.stages, stages, strict=True):
        kv_bytes = max(0, budget.kv_cache_bytes)
        used = (budget.weights_bytes + budget.activation_bytes + budget.non_torch_bytes
                + budget.cuda_graph_bytes + kv_bytes)
        devices.append(DeviceLedger(
            stage=budget.stage, first_layer=layers.start, num_layers=len(layers), total_bytes=budget.total_bytes,
            requested_bytes=budget.requested_bytes, weights_bytes=budget.weights_bytes,
            activation_bytes=budget.activation_bytes, non_torch_bytes=budget.non_torch_bytes,
            cuda_graph_bytes=budget.cuda_graph_bytes, kv_cache_bytes=kv_bytes,
            free_bytes=budget.total_bytes - used, kv_blocks=budget.num_blocks,
            activation_detail=budget.activation_detail,
        ))
    kv = storage_type(kv_name)
    binding_layers = stages[result.binding_stage]
    paged = result.engine == "vllm"
    pool = KvPool(
        unit="blocks" if paged else "cells",
        block_size=result.plan.min_block_size if paged and result.plan.groups else 1,
        num_blocks=result.num_blocks,
        block_bytes=result.plan.worker_block_bytes(binding_layers),
        layout=result.plan,
        kv_bytes_per_token=kvmod.kv_bytes_per_token(model, kv, parallel.tp, layers=binding_layers),
        fixed_bytes_per_sequence=kvmod.fixed_bytes_per_sequence(model, kv, parallel.tp, layers=binding_layers),
    )
    seqs = int(result.assumptions["max_num_seqs"].value) if "max_num_seqs" in result.assumptions else None
    mnbt_default = result.assumptions.get("max_num_batched_tokens")
    mnbt = int(mnbt_default.value) if mnbt_default is not None else 8192
    binding: Binding = "memory"
    if seqs and result.max_concurrency > seqs:
        binding = "max_num_seqs"
    return DeploymentPlan(
        model=model, gpu=gpu, parallel=parallel, engine=result.engine, engine_version=result.version,
        weight_format=fmt, kv_dtype=kv_name, devices=tuple(devices), binding_stage=result.binding_stage,
        kv_pool=pool, kv_cache_tokens=result.kv_cache_tokens, max_model_len=result.max_model_len,
        max_num_seqs=seqs, max_num_batched_tokens=mnbt, max_concurrency=result.max_concurrency,
        binding=binding, startup_error=result.startup_error, assumptions=result.assumptions,
        warnings=warnings, blocks_per_max_request=result.blocks_per_request,
    )
