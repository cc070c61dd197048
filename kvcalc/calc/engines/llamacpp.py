"""llama.cpp (`llama-server`): the cells of its context, where each layer lives, and what `--fit` changes.

llama.cpp allocates exactly the KV cells of its context, never "all leftover memory":
    cells = n_ctx                                   full-attention / MLA layers (`-c`; 0 = the training context;
                                                    the `-np` slots share it: kv_unified)
    cells = pad(min(n_ctx, n_swa x n_seq + n_ubatch), 256)   sliding-window layers (llama-kv-cache-iswa.cpp)
    KV bytes = sum over layers of cells x bytes per cell (K and V rows in the `-ctk/-ctv` ggml type)
plus an f32 state per sequence for recurrent layers (llama-memory-recurrent.cpp). Each layer's weights and
KV sit on the device that runs it (`-ngl`: the last k layers on the GPU; token_embd stays in host RAM).

`--fit` (on by default, common/fit.cpp `llama_params_fit`) leaves `--fit-target` (1024 MiB) free on every
device: if the projected use does not fit and the context was not set, it first shrinks the context (down to
`--fit-ctx`, 4096), then keeps fewer layers on the GPU ("llama_params_fit_impl: context size reduced from
40960 to 4096", tools/fit-params/README.md). The byte model is calc/offload (one model for `fit` and `local`).
"""

from __future__ import annotations

from kvcalc.calc import kv as kvmod
from kvcalc.calc.engines import platforms
from kvcalc.calc.engines.common import checkpoint_format
from kvcalc.calc.engines.settings import LlamacppSettings
from kvcalc.calc.offload import (
    LLAMACPP_FIT_MARGIN_BYTES,
    OffloadPlan,
    gpu_overhead_bytes,
    kv_storage,
    llamacpp_decode_costs,
    offload_plan,
)
from kvcalc.calc.paged import KvPlan
from kvcalc.calc.plan import Assumption, DeploymentPlan, HostLedger, KvPool, device_ledger
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import InputError
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.dtypes import StorageType
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec
from kvcalc.units import GIB, MIB

NAME = "llamacpp"
Settings = LlamacppSettings
#: The llama.cpp whose defaults are modelled: --fit on by default (PR #16653, default-on by ≈b7600), -c 0 = the
#: training context, -fa auto, -np auto = 4 slots sharing one unified cache (b8571 behaviour).
VERSION = "b8571"
#: -np auto: llama-server's slot count when -np is not given (kv_unified on: every slot may use the whole context).
AUTO_SLOTS = 4
#: `--fit-ctx`: the smallest context --fit shrinks to (common/arg.cpp fit_params_min_ctx default 4096).
FIT_MIN_CONTEXT = 4096


def with_context(settings: LlamacppSettings, context: int | None) -> LlamacppSettings:
    """`--context L` per request: `-c L x np` with explicit slots (each gets n_ctx / np); `-c L` with -np auto
    (its slots share one unified cache of L cells)."""
    if context is None:
        return settings
    return replace(settings, n_ctx=context * (settings.n_parallel or 1))


def plan(
    model: ModelSpec,
    weight_format: WeightFormat | None,
    hardware: GpuSpec,
    layout: Parallel,
    settings: LlamacppSettings,
) -> DeploymentPlan:
    """llama.cpp's allocation on one GPU (or Apple GPU): the context's cells, the layers --fit keeps on the GPU,
    and what stays in host RAM (module docstring)."""
    if layout.tp > 1 or layout.pp > 1 or layout.cp > 1 or layout.ep > 1:
        raise InputError("kvcalc models llama.cpp on one GPU (use `kvcalc local` for GPU + RAM splits); llama.cpp "
                         "has no tensor, context or expert parallelism, and its multi-GPU --split-mode layer is not "
                         "modelled")
    fmt_in = weight_format if weight_format is not None else checkpoint_format(model, model.dtype)[0]
    choice = platforms.llamacpp_platform(model, fmt_in, hardware, explicit=weight_format is not None)
    fmt = choice.weight_format
    if settings.cache_type_k != settings.cache_type_v:
        raise InputError("kvcalc sizes one KV type for K and V (-ctk and -ctv must match)")
    kv_type = _kv_type(settings.cache_type_k)
    if kv_type.name not in ("fp16", "bf16", "fp32") and settings.flash_attn == "off":
        raise InputError(f"llama.cpp needs flash attention for a quantized V cache (-ctv {settings.cache_type_v} "
                         "with -fa off is refused)")
    slots = settings.n_parallel or AUTO_SLOTS
    trained = model.max_position_embeddings or 4096
    device = "apple" if hardware.platform == "metal" else "gpu"
    warnings = list(choice.warnings)
    n_ctx = settings.n_ctx or trained
    offload = _place(model, fmt, hardware, settings, n_ctx, slots, device)
    if settings.fit and settings.n_ctx == 0 and settings.n_gpu_layers is None and not offload.fits_on_gpu:
        shrunk = _fit_context(model, fmt, hardware, settings, slots, device, trained)
        if shrunk != n_ctx:
            warnings.append(f"llama.cpp --fit reduces the context from {n_ctx:,} to {shrunk:,} cells to fit "
                            f"{hardware.name} (common/fit.cpp; pass -c to keep a context)")
            n_ctx = shrunk
            offload = _place(model, fmt, hardware, settings, n_ctx, slots, device)
    if not offload.fits_on_gpu:
        warnings.append(f"llama.cpp keeps {offload.layers_on_gpu} of {offload.num_layers} layers on "
                        f"{hardware.name} (-ngl {offload.n_gpu_layers}); the rest and their KV run from host RAM "
                        f"({offload.host_bytes / GIB:.2f} GiB, not checked: see `kvcalc local`)")
    return _plan_from(model, hardware, layout, settings, fmt, kv_type.name, offload, n_ctx, slots,
                      tuple(warnings), trained)


def _kv_type(name: str) -> StorageType:
    """The ggml KV type of -ctk/-ctv (InputError naming the accepted ones)."""
    try:
        return kv_storage(name)
    except InputError:
        raise InputError(f"--kv-dtype {name} is not a llamacpp KV-cache type; use one of f16, bf16, f32, q8_0, q5_0, "
                         "q5_1, q4_0, q4_1, iq4_nl") from None


def _place(model: ModelSpec, fmt: WeightFormat, gpu: GpuSpec, settings: LlamacppSettings, n_ctx: int, slots: int,
           device: str) -> OffloadPlan:
    """Where llama.cpp puts each layer at context `n_ctx` (calc/offload.offload_plan): `-ngl k` when given or
    with --fit off (default all layers + output), else the most layers --fit keeps while leaving its margin."""
    per_slot = max(1, n_ctx // slots)
    if not settings.fit or settings.n_gpu_layers is not None:
        k = settings.n_gpu_layers if settings.n_gpu_layers is not None else model.num_layers + 1
        return _fixed_layers(model, fmt, gpu, settings, per_slot, slots, device, k)
    return offload_plan(model, fmt, gpu.usable_memory_bytes, None, per_slot, settings.cache_type_k,
                        device=device, sequences=slots, gpu_bandwidth=float(gpu.memory_bandwidth_bytes_per_s),  # type: ignore[arg-type]
                        costs=llamacpp_decode_costs(gpu), n_ubatch=settings.n_ubatch)


def _fixed_layers(model: ModelSpec, fmt: WeightFormat, gpu: GpuSpec, settings: LlamacppSettings, per_slot: int,
                  slots: int, device: str, k: int) -> OffloadPlan:
    """The plan with exactly `-ngl k`: budget the GPU to the bytes of k layers."""
    from kvcalc.calc.offload import gpu_bytes_for_layers

    k = min(k, model.num_layers + 1)
    need = gpu_bytes_for_layers(model, fmt, per_slot, k, settings.cache_type_k, slots, settings.n_ubatch)
    return offload_plan(model, fmt, need, None, per_slot, settings.cache_type_k, device=device, sequences=slots,  # type: ignore[arg-type]
                        gpu_bandwidth=float(gpu.memory_bandwidth_bytes_per_s), gpu_overhead=0,
                        costs=llamacpp_decode_costs(gpu), n_ubatch=settings.n_ubatch)


def _fit_context(model: ModelSpec, fmt: WeightFormat, gpu: GpuSpec, settings: LlamacppSettings, slots: int,
                 device: str, trained: int) -> int:
    """The largest context in [--fit-ctx, training context] at which every layer fits the GPU; --fit-ctx when
    none does (llama_params_fit shrinks the context before moving layers off the GPU)."""
    step = 256  # llama.cpp pads the context to 256 cells (one measurement: 242,944 = 949 x 256 chosen)
    lo, hi = min(FIT_MIN_CONTEXT, trained) // step, trained // step
    if not _place(model, fmt, gpu, settings, lo * step, slots, device).fits_on_gpu:
        return lo * step
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _place(model, fmt, gpu, settings, mid * step, slots, device).fits_on_gpu:
            lo = mid
        else:
            hi = mid - 1
    return lo * step


def _plan_from(model: ModelSpec, gpu: GpuSpec, layout: Parallel, settings: LlamacppSettings, fmt: WeightFormat,
               kv_name: str, offload: OffloadPlan, n_ctx: int, slots: int, warnings: tuple[str, ...],
               trained: int) -> DeploymentPlan:
    kv = kv_storage(kv_name)
    context_cuda = 0 if offload.device == "apple" else gpu_overhead_bytes("gpu") - LLAMACPP_FIT_MARGIN_BYTES
    non_torch = settings.non_torch_bytes if settings.non_torch_bytes is not None else context_cuda
    device = device_ledger(
        stage=0, layers=range(model.num_layers), total=gpu.usable_memory_bytes, requested=gpu.usable_memory_bytes,
        weights=offload.gpu_weights_bytes, activation=offload.gpu_compute_bytes, non_torch=non_torch, cuda_graph=0,
        kv_cache=offload.gpu_kv_bytes, kv_blocks=n_ctx,
        detail={"compute_buffer_bytes": offload.gpu_compute_bytes, "fit_margin_bytes": LLAMACPP_FIT_MARGIN_BYTES
                if settings.fit else 0})
    host = None
    if not offload.fits_on_gpu:
        host = HostLedger(weights_bytes=offload.host_weights_bytes, kv_cache_bytes=offload.host_kv_bytes,
                          buffers_bytes=offload.host_compute_bytes, layers=offload.num_layers - offload.layers_on_gpu)
    per_token = kvmod.kv_bytes_per_token(model, kv)
    unified = settings.n_parallel is None
    per_slot = n_ctx if unified else max(1, n_ctx // slots)
    reduced = n_ctx < (settings.n_ctx or trained)
    fits_gpu = offload.fits_on_gpu or offload.n_gpu_layers > 0
    error = None if fits_gpu or offload.device == "cpu" else (
        f"llama.cpp cannot place a layer on {gpu.name}: weights + KV + compute buffer exceed it")
    if not settings.fit and device.free_bytes < 0:
        error = (f"cudaMalloc failed: out of memory ({-device.free_bytes / MIB:,.0f} MiB short; -fit off keeps "
                 "-ngl and -c as given)")
    pool = KvPool(unit="cells", block_size=1, num_blocks=n_ctx, block_bytes=max(1, per_token),
                  layout=KvPlan(layout="flat", page_bytes=max(1, per_token), block_bytes=max(1, per_token), groups=[]),
                  kv_bytes_per_token=per_token,
                  fixed_bytes_per_sequence=kvmod.fixed_bytes_per_sequence(model, kv, state=kv_storage("f32")))
    assumptions = {
        "n_ctx": Assumption(value=n_ctx, unit="cells", source="-c (x -np slots); 0 = the model's training context "
                            f"{trained:,}" + ("; reduced by --fit" if reduced else "")),
        "n_parallel": Assumption(value=slots, source="-np auto: 4 slots sharing one unified cache" if unified else
                                 "-np slots, each with n_ctx / np cells"),
        "n_gpu_layers": Assumption(value=offload.n_gpu_layers, source="--fit (common/fit.cpp)" if settings.fit
                                   else "-ngl"),
        "n_ubatch": Assumption(value=settings.n_ubatch, source="llama.cpp default 512 (common/common.h)"),
        "fit_margin_bytes": Assumption(value=LLAMACPP_FIT_MARGIN_BYTES if settings.fit else 0, unit="B",
                                       source="--fit-target default 1024 MiB"),
        "backend_context_bytes": Assumption(value=non_torch, unit="B",
                                            source="CUDA context and cuBLAS workspace (assumption: 512 MiB; Metal 0)"),
        "total_memory_bytes": Assumption(value=gpu.usable_memory_bytes, unit="B", source="hardware file"),
    }
    return DeploymentPlan(
        model=model, gpu=gpu, parallel=layout, engine=NAME, engine_version=settings.version or VERSION,
        weight_format=fmt, kv_dtype=kv_name, devices=(device,), binding_stage=0, kv_pool=pool, kv_cache_tokens=n_ctx,
        max_model_len=per_slot, max_num_seqs=slots, max_num_batched_tokens=settings.n_batch,
        max_concurrency=n_ctx / per_slot, blocks_per_max_request=per_slot,
        binding="memory" if reduced or not offload.fits_on_gpu else "max_model_len", startup_error=error,
        assumptions=assumptions, warnings=warnings, settings=settings,
        weight_format_source=f"GGUF {getattr(fmt, 'name', '?')}", serving_dtype=model.dtype, host=host,
        placement=offload,
        engine_notes=("llama.cpp allocates the cells of its context (-c), not all free memory "
                      "(src/llama-kv-cache.cpp, llama-kv-cache-iswa.cpp)",),
    )
