"""TensorRT-LLM 1.x (PyTorch backend): a paged pool sized from the memory left after a dummy forward.

    A = (T - W - P - N) x f     f = free_gpu_memory_fraction (KvCacheConfig default 0.9); P the activation peak
                                of dummy context requests totalling max_num_tokens; N non-torch memory
                                (tensorrt_llm/_torch/pyexecutor/_util.py KvCacheCreator: available_kv = (total -
                                peak + temp_kv) x fraction)
    blocks = floor(A / (tokens_per_block x cell)), tokens = blocks x tokens_per_block (32 by default)
Unlike vLLM's fraction of the total, the fraction applies to what is left after weights and activations.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvcalc.calc import kv as kvmod
from kvcalc.calc.engines import platforms
from kvcalc.calc.engines.common import (
    check_kv_dtype,
    context_warnings,
    replica_warnings,
    resolve_format,
    stage_cell_bytes,
)
from kvcalc.calc.engines.settings import TrtllmSettings
from kvcalc.calc.engines.vllm_profile import (
    NON_TORCH_MULTI,
    NON_TORCH_SINGLE,
    PROFILE_SLACK,
    forward_peak_bytes,
)
from kvcalc.calc.paged import KvPlan
from kvcalc.calc.parallel import check_parallel, stage_layers, weights_per_stage
from kvcalc.calc.plan import Assumption, Binding, DeploymentPlan, DeviceLedger, KvPool, device_ledger
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import ParallelismError
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.dtypes import StorageType, storage_type
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec
from kvcalc.units import ceil_div

NAME = "trtllm"
Settings = TrtllmSettings
#: The TensorRT-LLM release whose defaults are modelled (1.3.0rc29 cited Oct 2026; KvCacheConfig and LLM API
#: defaults unchanged in the 1.4.0rc docs).
VERSION = "1.3.0rc29"
KV_DTYPES = frozenset({"bf16", "fp16", "fp32", "fp8", "fp8_e4m3", "int8"})
#: KvCacheConfig.free_gpu_memory_fraction default (tensorrt_llm/llmapi/llm_args.py).
FREE_FRACTION = 0.9
#: KvCacheConfig tokens_per_block default.
TOKENS_PER_BLOCK = 32
#: max_batch_size / max_num_tokens defaults of the LLM API (llm_args.py BaseLlmArgs).
MAX_BATCH_SIZE = 2048
MAX_NUM_TOKENS = 8192


def with_context(settings: TrtllmSettings, context: int | None) -> TrtllmSettings:
    return settings if context is None else replace(settings, max_seq_len=context)


def plan(
    model: ModelSpec,
    weight_format: WeightFormat | None,
    hardware: GpuSpec,
    layout: Parallel,
    settings: TrtllmSettings,
) -> DeploymentPlan:
    """TensorRT-LLM's KV pool for this deployment (module docstring), per data-parallel replica."""
    check_parallel(model, layout)
    if layout.cp > 1:
        raise ParallelismError("--cp is vLLM's decode context parallelism; kvcalc models none for TensorRT-LLM")
    requested_fmt, fmt_source = resolve_format(model, weight_format, "bf16")
    kv_name_in = settings.kv_cache_dtype
    choice = platforms.trtllm_platform(model, requested_fmt, hardware, "" if kv_name_in == "auto" else kv_name_in)
    fmt = choice.weight_format
    if weight_format is None and fmt_source.startswith("checkpoint dtype"):
        fmt, fmt_source = resolve_format(model, None, choice.serving_dtype)
    kv_name = choice.serving_dtype if kv_name_in == "auto" else kv_name_in
    check_kv_dtype(NAME, kv_name, KV_DTYPES)
    kv = storage_type(kv_name)
    max_len = settings.max_seq_len or model.max_position_embeddings or 4096
    fraction = settings.free_gpu_memory_fraction or FREE_FRACTION
    per_block = settings.tokens_per_block or TOKENS_PER_BLOCK
    num_tokens = settings.max_num_tokens or MAX_NUM_TOKENS
    seqs = settings.max_batch_size or MAX_BATCH_SIZE
    total = hardware.usable_memory_bytes
    non_torch = settings.non_torch_bytes if settings.non_torch_bytes is not None else (
        NON_TORCH_MULTI if layout.tp * layout.pp > 1 else NON_TORCH_SINGLE)
    stages = stage_layers(model.num_layers, layout.pp)
    sizes = _Sizes(total=total, non_torch=non_torch, fraction=fraction, per_block=per_block, num_tokens=num_tokens,
                   act=storage_type(choice.serving_dtype))
    devices, cells = _ledgers(model, layout, fmt, kv, settings, sizes, stages)
    binding_stage = min(range(len(devices)), key=lambda i: devices[i].kv_blocks)
    blocks = devices[binding_stage].kv_blocks
    needed = ceil_div(max_len, per_block)
    concurrency = blocks / needed
    error = None
    if any(d.kv_cache_bytes <= 0 for d in devices):
        error = "weights and activations leave no memory for the KV cache"
    elif blocks < needed:
        error = f"one request of max_seq_len={max_len:,} needs {needed:,} blocks of {per_block}, {blocks:,} fit"
    warnings = list(choice.warnings) + context_warnings(model, max_len, "TensorRT-LLM")
    warnings += replica_warnings(layout.dp)
    binding: Binding = "max_num_seqs" if concurrency > seqs else "memory"
    layers = stages[binding_stage]
    block_bytes = per_block * cells[binding_stage]
    pool = KvPool(unit="blocks", block_size=per_block, num_blocks=blocks, block_bytes=block_bytes,
                  layout=KvPlan(layout="flat", page_bytes=block_bytes, block_bytes=block_bytes, groups=[]),
                  kv_bytes_per_token=kvmod.kv_bytes_per_token(model, kv, layout.tp, layers=layers),
                  fixed_bytes_per_sequence=kvmod.fixed_bytes_per_sequence(model, kv, layout.tp, layers=layers),
                  reserved_blocks=1)  # the CUDA-graph padding request's block (KvPool.usable_blocks)
    assumptions = _assumptions(settings, sizes, seqs, fmt_source)
    return DeploymentPlan(
        model=model, gpu=hardware, parallel=layout, engine=NAME, engine_version=settings.version or VERSION,
        weight_format=fmt, kv_dtype=kv_name, devices=tuple(devices), binding_stage=binding_stage, kv_pool=pool,
        kv_cache_tokens=blocks * per_block, max_model_len=max_len, max_num_seqs=seqs, max_num_batched_tokens=num_tokens,
        max_concurrency=concurrency, blocks_per_max_request=needed, binding=binding, startup_error=error,
        assumptions=assumptions, warnings=tuple(warnings), settings=settings, weight_format_source=fmt_source,
        serving_dtype=choice.serving_dtype,
    )


@dataclass(frozen=True)
class _Sizes:
    """Per-GPU memory terms and batch sizes every stage shares."""

    total: int
    non_torch: int
    fraction: float
    per_block: int
    num_tokens: int
    act: StorageType


def _ledgers(model: ModelSpec, layout: Parallel, fmt: WeightFormat, kv: StorageType, settings: TrtllmSettings,
             z: _Sizes, stages: list[range]) -> tuple[list[DeviceLedger], list[int]]:
    """One ledger per stage, (total - weights - forward peak - non-torch) x free_gpu_memory_fraction for KV, and
    each stage's bytes per token cell."""
    weights = [w.weights_bytes for w in weights_per_stage(model, layout, fmt)]
    devices, cells = [], []
    for s, layers in enumerate(stages):
        cell = stage_cell_bytes(model, kv, layout.tp, layers)
        cells.append(cell)
        if settings.activation_bytes is not None:
            peak, detail = settings.activation_bytes, {"override_bytes": settings.activation_bytes}
        else:
            forward = forward_peak_bytes(model, layout, layers, z.num_tokens, z.act)
            peak, detail = forward + PROFILE_SLACK, {"forward_bytes": forward, "slack_bytes": PROFILE_SLACK}
        available = int((z.total - weights[s] - peak - z.non_torch) * z.fraction)
        devices.append(device_ledger(stage=s, layers=layers, total=z.total, requested=z.total, weights=weights[s],
                                     activation=peak, non_torch=z.non_torch, cuda_graph=0, kv_cache=available,
                                     kv_blocks=max(0, available) // (z.per_block * cell), detail=detail))
    return devices, cells


def _assumptions(settings: TrtllmSettings, z: _Sizes, seqs: int, fmt_source: str) -> dict[str, Assumption]:
    return {
        "free_gpu_memory_fraction": Assumption(value=z.fraction, source="--free-gpu-memory-fraction" if
                                               settings.free_gpu_memory_fraction else "KvCacheConfig default 0.9"),
        "tokens_per_block": Assumption(value=z.per_block, unit="tokens", source="KvCacheConfig default 32"),
        "max_num_tokens": Assumption(value=z.num_tokens, unit="tokens", source="LLM API default 8192"),
        "max_batch_size": Assumption(value=seqs, source="LLM API default 2048"),
        "non_torch_bytes": Assumption(value=z.non_torch, unit="B", source="CUDA context and NCCL (vLLM's measured "
                                      "0.25 GiB single GPU, 2.1 GiB multi-GPU; assumption for TensorRT-LLM)"),
        "total_memory_bytes": Assumption(value=z.total, unit="B", source="hardware file"),
        "weight_format": Assumption(value=fmt_source, source="--quant, else the checkpoint's config.json"),
    }
