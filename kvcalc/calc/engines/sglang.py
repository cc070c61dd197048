"""SGLang (0.5.x): one token pool sized from a fixed fraction of GPU memory.

    KV = F x f - W          f = --mem-fraction-static (default `default_mem_fraction_static`); F the free memory
                            after distributed init (T less the CUDA context: `pre_model_load_free`); activations,
                            CUDA graphs and the rest live in F x (1 - f) (kv_cache_configurator.
                            _profile_available_bytes: rest = post_load_free - pre_load_free x (1 - f))
    tokens = floor(KV / cell), cell = KV bytes of one token on one rank of the stage (every layer at full
    length; MLA: the latent)
The pool is in token slots ("cells"; --page-size 1 by default), never blocks.
"""

from __future__ import annotations

from kvcalc.calc import kv as kvmod
from kvcalc.calc.engines import platforms
from kvcalc.calc.engines.common import (
    check_kv_dtype,
    context_refusal,
    replica_warnings,
    resolve_format,
    stage_cell_bytes,
)
from kvcalc.calc.engines.settings import SglangSettings
from kvcalc.calc.engines.vllm_profile import NON_TORCH_MULTI
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
from kvcalc.units import MIB

NAME = "sglang"
Settings = SglangSettings
#: The SGLang release whose defaults are modelled.
VERSION = "0.5.21"
#: Memory already used when SGLang measures free memory before loading: the CUDA context (assumption: 512 MiB, as
#: llama.cpp's) on one GPU; with tp x pp > 1 also the NCCL communicators and all-reduce buffers created at init:
#: 2.1 GiB, vLLM's measured multi-GPU figure (calc/engines/vllm_profile.NON_TORCH_MULTI). Check: Qwen3-235B-A22B-FP8
#: on 4 x H100 at f 0.93 logged 367,404 tokens (vLLM issue #21348); 2.1 GiB gives 369,488 (+0.6 %), 512 MiB 402,686.
CONTEXT_BYTES = 512 * MIB
KV_DTYPES = frozenset({"bf16", "fp16", "fp32", "fp8", "fp8_e4m3", "fp8_e5m2"})


def with_context(settings: SglangSettings, context: int | None) -> SglangSettings:
    return settings if context is None else replace(settings, context_length=context)


def prefill_graph_sizes(max_bs: int) -> list[int]:
    """Batch sizes SGLang captures prefill ("piecewise") CUDA graphs for, up to `max_bs`: 4..32 step 4, 48..256
    step 16, 288..512 step 32, 576..1024 step 64, 1280..4096 step 256, then step 512 (58 sizes for 8192)."""
    sizes: list[int] = []
    for start, stop, step in ((4, 32, 4), (48, 256, 16), (288, 512, 32), (576, 1024, 64), (1280, 4096, 256)):
        sizes += range(start, min(stop, max_bs) + 1, step)
    if max_bs > 4096:
        sizes += range(4608, max_bs + 1, 512)
    return sizes


def default_mem_fraction_static(gpu_total_bytes: int, tp: int, pp: int, mla: bool = False,
                                chunked_prefill_size: int | None = None, decode_graphs: bool = True,
                                prefill_graphs: bool = True) -> tuple[float, int, int]:
    """SGLang's default --mem-fraction-static and the two defaults it derives from the GPU's memory
    (sglang/srt/arg_groups/memory_hook.py `handle_gpu_memory_settings`; 0.5.2x): chunked_prefill_size (unless
    set) and the decode cuda_graph_max_bs by memory class (20-35 GiB: 4096 and 48/160, for RTX 5090-class
    cards), then reserved MiB = 512 + 1.5 x max(chunk, 2048) + tp x pp / 8 x 1024 + `reserve_for_graph_mb`
    (2 x cuda_graph_max_bs with decode graphs; with prefill graphs 8 MiB per captured size up to the chunk,
    MLA backends 1,536 MiB), at least 10,240 MiB above 60 GiB; f = round((M - reserved) / M, 3), M in MiB.
    The floor and the 2048 minimum bind only for a --chunked-prefill-size below the class default.
    Prefill graphs are off under --disable-cuda-graph, with pp > 1 (cuda_graph_hook.
    apply_cuda_graph_compatibility: breakable prefill graphs are opt-in under PP) and off CUDA (ROCm's
    tc_piecewise default is disabled for non-CUDA hardware): the caller says (`prefill_graphs`).
    H100 (81,079 MiB), tp 1: 512 + 12,288 + 128 + 512 + 58 x 8 = 13,904 -> 0.829.
    Returns (f, chunked_prefill_size, cuda_graph_max_bs)."""
    mib = gpu_total_bytes / MIB
    if mib < 20 * 1024:
        chunk, graphs = 2048, 8
    elif mib < 35 * 1024:
        chunk, graphs = 4096, 48 if tp < 4 else 160
    elif mib < 60 * 1024:
        chunk, graphs = 4096, 32 if tp < 4 else 160
    elif mib < 160 * 1024:
        chunk, graphs = 8192, 256 if tp < 4 else 512
    else:
        chunk, graphs = 16384, 512
    chunk = chunked_prefill_size or chunk
    reserved = 512 + max(chunk, 2048) * 1.5 + tp * pp / 8 * 1024
    if decode_graphs:
        reserved += graphs * 2
    if prefill_graphs:
        reserved += 1536 if mla else 8 * len(prefill_graph_sizes(chunk))
    if mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return round((mib - reserved) / mib, 3), chunk, graphs


def default_max_running_requests(tokens: int, context: int) -> int:
    """SGLang's request-pool size when --max-running-requests is unset (model_runner.init_memory_pool):
    min(max(int(tokens / context x 512), 2048), 4096)."""
    return min(max(int(tokens / max(1, context) * 512), 2048), 4096)


def plan(
    model: ModelSpec,
    weight_format: WeightFormat | None,
    hardware: GpuSpec,
    layout: Parallel,
    settings: SglangSettings,
) -> DeploymentPlan:
    """SGLang's token pool for this deployment (module docstring), per data-parallel replica."""
    check_parallel(model, layout)
    if layout.cp > 1:
        raise ParallelismError("--cp is vLLM's decode context parallelism; SGLang has no equivalent in kvcalc")
    requested_fmt, fmt_source = resolve_format(model, weight_format, "bf16")
    choice = platforms.sglang_platform(model, requested_fmt, hardware)
    fmt = choice.weight_format
    if weight_format is None and fmt_source.startswith("checkpoint dtype"):
        fmt, fmt_source = resolve_format(model, None, choice.serving_dtype)
    kv_name = choice.serving_dtype if settings.kv_cache_dtype == "auto" else settings.kv_cache_dtype
    check_kv_dtype(NAME, kv_name, KV_DTYPES)
    kv = storage_type(kv_name)
    max_len = settings.context_length or model.max_position_embeddings or 4096
    total = hardware.usable_memory_bytes
    mla = any(layer.kind == "mla" for layer in model.layers)
    graphs_on = not settings.disable_cuda_graph
    default, chunk, graph_bs = default_mem_fraction_static(
        total, layout.tp, layout.pp, mla, settings.chunked_prefill_size, decode_graphs=graphs_on,
        prefill_graphs=graphs_on and layout.pp == 1 and hardware.platform == "cuda")
    fraction = settings.mem_fraction_static or default
    context_bytes = CONTEXT_BYTES if layout.tp * layout.pp == 1 else NON_TORCH_MULTI
    free_before_load = total - context_bytes
    requested = int(free_before_load * fraction)
    stages = stage_layers(model.num_layers, layout.pp)
    weights = [w.weights_bytes for w in weights_per_stage(model, layout, fmt)]
    cells = [stage_cell_bytes(model, kv, layout.tp, layers) for layers in stages]
    devices = []
    for s, layers in enumerate(stages):
        available = requested - weights[s]
        devices.append(device_ledger(stage=s, layers=layers, total=total, requested=requested, weights=weights[s],
                                     activation=0, non_torch=context_bytes, cuda_graph=0, kv_cache=available,
                                     kv_blocks=max(0, available) // cells[s]))
    binding_stage = min(range(len(devices)), key=lambda i: devices[i].kv_blocks)
    tokens = devices[binding_stage].kv_blocks
    seqs = settings.max_running_requests or default_max_running_requests(tokens, max_len)
    concurrency = tokens / max_len
    error = _startup_error(model, devices, tokens, max_len)
    warnings = list(choice.warnings)
    warnings += replica_warnings(layout.dp)
    binding: Binding = "max_num_seqs" if concurrency > seqs else "memory"
    pool = _pool(model, kv, layout.tp, stages[binding_stage], tokens, cells[binding_stage])
    assumptions = _assumptions(settings, fraction, chunk, graph_bs, seqs, context_bytes, cells[binding_stage],
                               total, fmt_source)
    return DeploymentPlan(
        model=model, gpu=hardware, parallel=layout, engine=NAME, engine_version=settings.version or VERSION,
        weight_format=fmt, kv_dtype=kv_name, devices=tuple(devices), binding_stage=binding_stage, kv_pool=pool,
        kv_cache_tokens=tokens, max_model_len=max_len, max_num_seqs=seqs,
        max_num_batched_tokens=chunk, max_concurrency=concurrency,
        blocks_per_max_request=max_len, binding=binding, startup_error=error, assumptions=assumptions,
        warnings=tuple(warnings), settings=settings, weight_format_source=fmt_source,
        serving_dtype=choice.serving_dtype,
    )


def _pool(model: ModelSpec, kv: StorageType, tp: int, layers: range, tokens: int, cell_bytes: int) -> KvPool:
    """The token pool of the binding stage: `tokens` cells of one token each, `cell_bytes` per cell."""
    return KvPool(unit="cells", block_size=1, num_blocks=tokens, block_bytes=cell_bytes,
                  layout=KvPlan(layout="flat", page_bytes=cell_bytes, block_bytes=cell_bytes, groups=[]),
                  kv_bytes_per_token=kvmod.kv_bytes_per_token(model, kv, tp, layers=layers),
                  fixed_bytes_per_sequence=kvmod.fixed_bytes_per_sequence(model, kv, tp, layers=layers))


def _startup_error(model: ModelSpec, devices: list[DeviceLedger], tokens: int, max_len: int) -> str | None:
    """What SGLang refuses at start-up: a context beyond the model's, weights over the static fraction, or a
    pool smaller than one context."""
    error = context_refusal(model, max_len, "SGLang", "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN")
    if error is None and any(d.kv_cache_bytes <= 0 for d in devices):
        error = "Not enough memory. Please try to increase --mem-fraction-static (weights exceed the static fraction)"
    elif error is None and tokens < max_len:
        error = f"a {max_len:,}-token context needs {max_len:,} KV slots, {tokens:,} fit"
    return error


def _assumptions(settings: SglangSettings, fraction: float, chunk: int, graph_bs: int, seqs: int,
                 context_bytes: int, cell_bytes: int, total: int, fmt_source: str) -> dict[str, Assumption]:
    return {
        "mem_fraction_static": Assumption(value=fraction, source="--mem-fraction-static" if settings.mem_fraction_static
                                          else f"SGLang default for this GPU: chunked_prefill_size {chunk}, "
                                          f"cuda_graph_max_bs {graph_bs} (memory_hook.handle_gpu_memory_settings)"),
        "max_running_requests": Assumption(value=seqs, source="--max-running-requests" if settings.max_running_requests
                                           else "SGLang model_runner: min(max(tokens / context x 512, 2048), 4096)"),
        "context_bytes": Assumption(value=context_bytes, unit="B", source="used before SGLang measures free memory: "
                                    "CUDA context 512 MiB (assumption); multi-GPU 2.1 GiB (NCCL, vLLM's measurement)"),
        "kv_cell_bytes": Assumption(value=cell_bytes, unit="B",
                                    source="KV bytes per token on one rank of the fullest stage (every layer)"),
        "total_memory_bytes": Assumption(value=total, unit="B", source="hardware file"),
        "weight_format": Assumption(value=fmt_source, source="--quant, else the checkpoint's config.json"),
    }
