"""SGLang (0.5.x): one token pool sized from a fixed fraction of GPU memory.

    KV = T x f - W          f = --mem-fraction-static (default `default_mem_fraction_static`); activations,
                            CUDA graphs and the rest live in T x (1 - f) (model_runner.profile_max_num_token)
    tokens = floor(KV / cell), cell = KV bytes of one token on one rank of the stage (every layer at full
    length; MLA: the latent)
The pool is in token slots ("cells"; --page-size 1 by default), never blocks.
"""

from __future__ import annotations

from kvcalc.calc import kv as kvmod
from kvcalc.calc.engines import platforms
from kvcalc.calc.engines.common import check_kv_dtype, context_refusal, resolve_format, stage_cell_bytes
from kvcalc.calc.engines.settings import SglangSettings
from kvcalc.calc.paged import KvPlan
from kvcalc.calc.parallel import check_parallel, stage_layers, weights_per_stage
from kvcalc.calc.plan import Assumption, Binding, DeploymentPlan, KvPool, device_ledger
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import ParallelismError
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec
from kvcalc.units import MIB

NAME = "sglang"
Settings = SglangSettings
#: The SGLang release whose defaults are modelled.
VERSION = "0.5.6"
KV_DTYPES = frozenset({"bf16", "fp16", "fp32", "fp8", "fp8_e4m3", "fp8_e5m2"})


def with_context(settings: SglangSettings, context: int | None) -> SglangSettings:
    return settings if context is None else replace(settings, context_length=context)


def default_mem_fraction_static(gpu_total_bytes: int, tp: int, pp: int) -> tuple[float, int, int]:
    """SGLang's default --mem-fraction-static and the two defaults it derives from the GPU's memory
    (sglang/srt/server_args.py `_handle_gpu_memory_settings`, CUDA): chunked_prefill_size and
    cuda_graph_max_bs by memory class, then reserved MiB = 512 + 1.5 x max(chunked_prefill_size, 2048)
    + 2 x cuda_graph_max_bs + tp x pp / 8 x 1024, at least 10,240 MiB above 60 GiB; f = round((M - reserved)
    / M, 3) with M the memory in MiB. H100 (81,079 MiB, tp 1): 512 + 12,288 + 512 + 128 = 13,440 -> 0.834.
    Returns (f, chunked_prefill_size, cuda_graph_max_bs)."""
    mib = gpu_total_bytes / MIB
    if mib < 20 * 1024:
        chunk, graphs = 2048, 8
    elif mib < 35 * 1024:
        chunk, graphs = 2048, 24 if tp < 4 else 80
    elif mib < 60 * 1024:
        chunk, graphs = 4096, 32 if tp < 4 else 160
    elif mib < 160 * 1024:
        chunk, graphs = 8192, 256 if tp < 4 else 512
    else:
        chunk, graphs = 16384, 512
    reserved = 512 + max(chunk, 2048) * 1.5 + graphs * 2 + tp * pp / 8 * 1024
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
    default, chunk, graph_bs = default_mem_fraction_static(total, layout.tp, layout.pp)
    fraction = settings.mem_fraction_static or default
    requested = int(total * fraction)
    stages = stage_layers(model.num_layers, layout.pp)
    weights = [w.weights_bytes for w in weights_per_stage(model, layout, fmt)]
    cells = [stage_cell_bytes(model, kv, layout.tp, layers) for layers in stages]
    devices = []
    for s, layers in enumerate(stages):
        available = requested - weights[s]
        devices.append(device_ledger(stage=s, layers=layers, total=total, requested=requested, weights=weights[s],
                                     activation=0, non_torch=0, cuda_graph=0, kv_cache=available,
                                     kv_blocks=max(0, available) // cells[s]))
    binding_stage = min(range(len(devices)), key=lambda i: devices[i].kv_blocks)
    tokens = devices[binding_stage].kv_blocks
    seqs = settings.max_running_requests or default_max_running_requests(tokens, max_len)
    concurrency = tokens / max_len
    error = context_refusal(model, max_len, "SGLang", "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN")
    if error is None and any(d.kv_cache_bytes <= 0 for d in devices):
        error = "Not enough memory. Please try to increase --mem-fraction-static (weights exceed the static fraction)"
    elif error is None and tokens < max_len:
        error = f"a {max_len:,}-token context needs {max_len:,} KV slots, {tokens:,} fit"
    warnings = list(choice.warnings)
    if layout.dp > 1:
        warnings.append(f"capacity and concurrency are per data-parallel replica: {layout.dp} replicas hold "
                        f"{layout.dp}x the tokens and requests")
    binding: Binding = "max_num_seqs" if concurrency > seqs else "memory"
    layers = stages[binding_stage]
    pool = KvPool(unit="cells", block_size=1, num_blocks=tokens, block_bytes=cells[binding_stage],
                  layout=KvPlan(layout="flat", page_bytes=cells[binding_stage], block_bytes=cells[binding_stage],
                                groups=[]),
                  kv_bytes_per_token=kvmod.kv_bytes_per_token(model, kv, layout.tp, layers=layers),
                  fixed_bytes_per_sequence=kvmod.fixed_bytes_per_sequence(model, kv, layout.tp, layers=layers))
    assumptions = {
        "mem_fraction_static": Assumption(value=fraction, source="--mem-fraction-static" if settings.mem_fraction_static
                                          else f"SGLang default for this GPU: chunked_prefill_size {chunk}, "
                                          f"cuda_graph_max_bs {graph_bs} (server_args._handle_gpu_memory_settings)"),
        "max_running_requests": Assumption(value=seqs, source="--max-running-requests" if settings.max_running_requests
                                           else "SGLang model_runner: min(max(tokens / context x 512, 2048), 4096)"),
        "kv_cell_bytes": Assumption(value=cells[binding_stage], unit="B",
                                    source="KV bytes per token on one rank of the fullest stage (every layer)"),
        "total_memory_bytes": Assumption(value=total, unit="B", source="hardware file"),
        "weight_format": Assumption(value=fmt_source, source="--quant, else the checkpoint's config.json"),
    }
    return DeploymentPlan(
        model=model, gpu=hardware, parallel=layout, engine=NAME, engine_version=settings.version or VERSION,
        weight_format=fmt, kv_dtype=kv_name, devices=tuple(devices), binding_stage=binding_stage, kv_pool=pool,
        kv_cache_tokens=tokens, max_model_len=max_len, max_num_seqs=seqs,
        max_num_batched_tokens=settings.chunked_prefill_size or chunk, max_concurrency=concurrency,
        blocks_per_max_request=max_len, binding=binding, startup_error=error, assumptions=assumptions,
        warnings=tuple(warnings), settings=settings, weight_format_source=fmt_source,
        serving_dtype=choice.serving_dtype,
    )
