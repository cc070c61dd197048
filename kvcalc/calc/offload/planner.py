"""The offload planner: the most `--n-gpu-layers` that fit one GPU (or none), the host RAM the rest needs,
and the decode speed from both memories' bandwidths (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kvcalc.calc.offload.decode import DecodeCosts, decode_tokens_per_s
from kvcalc.calc.offload.memory import (
    CUDA_CONTEXT_BYTES,
    DEFAULT_RAM_BANDWIDTH,
    LLAMACPP_FIT_MARGIN_BYTES,
    LLAMACPP_N_UBATCH,
    MACOS_RESERVE_BYTES,
    Device,
    GlobalBytes,
    compute_buffer_bytes,
    embed_on_host,
    global_bytes,
    gpu_overhead_bytes,
    host_input_buffer_bytes,
    kv_storage,
    layer_kv_bytes,
    layer_kv_cells,
    layer_read_bytes,
    layer_weight_bytes,
)
from kvcalc.calc.plan import Assumption
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import InputError
from kvcalc.spec.base import record
from kvcalc.spec.dtypes import StorageType
from kvcalc.spec.model import ModelSpec
from kvcalc.units import MIB, ceil_div, fmt_bytes, round_up

# --------------------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------------------


@record
class OffloadPlan:
    """Where a model's layers, KV cache and buffers go for one GPU (or none) plus host RAM, and how fast a
    token decodes. Bytes are bytes; bandwidths bytes/s; `n_gpu_layers` is llama.cpp's `--n-gpu-layers`
    (0 .. num_layers + 1; num_layers + 1 also offloads the output layer)."""

    device: Device
    num_layers: int
    n_gpu_layers: int
    layers_on_gpu: int
    output_on_gpu: bool
    fits_on_gpu: bool
    fits: bool
    ram_checked: bool
    reason: str | None
    context: int
    sequences: int
    kv_dtype: str
    weights_bytes: int
    kv_bytes: int
    gpu_usable_bytes: int
    gpu_overhead_bytes: int
    gpu_budget_bytes: int
    gpu_weights_bytes: int
    gpu_kv_bytes: int
    gpu_compute_bytes: int
    gpu_bytes: int
    ram_bytes: int | None
    host_weights_bytes: int
    host_kv_bytes: int
    host_compute_bytes: int
    host_bytes: int
    gpu_read_bytes_per_token: int
    host_read_bytes_per_token: int
    gpu_bandwidth_bytes_per_s: int
    ram_bandwidth_bytes_per_s: int
    gpu_efficiency: float
    ram_efficiency: float
    decode_tokens_per_s: float
    decode_tokens_per_s_empty: float
    layer_weights_bytes: tuple[int, ...] = ()
    layer_kv_bytes: tuple[int, ...] = ()
    compute_buffer_bytes: int = 0
    output_layer_bytes: int = 0
    gpu_layer_s: float = 0.0
    step_s: float = 0.0


@record
class _Costs:
    """Per-layer and global byte counts one plan is built from."""

    weights: list[int]
    reads: list[int]
    kvs: list[int]
    kvs_empty: list[int]
    glob: GlobalBytes
    host_input: int
    gpu_input: int
    cells: int
    compute: int


def _costs(model: ModelSpec, fmt: WeightFormat, context: int, kv_type: StorageType, sequences: int,
           n_ubatch: int) -> _Costs:
    glob = global_bytes(model, fmt)
    host_input = glob.input_bytes if embed_on_host(fmt) else 0
    return _Costs(
        weights=layer_weight_bytes(model, fmt),
        reads=layer_read_bytes(model, fmt),
        kvs=layer_kv_bytes(model, context, kv_type, sequences),
        kvs_empty=layer_kv_bytes(model, 1, kv_type, sequences),
        glob=glob,
        host_input=host_input,
        gpu_input=glob.input_bytes - host_input,
        cells=max((layer_kv_cells(layer, context, sequences) for layer in model.layers), default=0),
        compute=compute_buffer_bytes(model, n_ubatch),
    )


def _gpu_need(c: _Costs, k: int) -> int:
    """GPU bytes with `--n-gpu-layers k`: the last min(k, n) layers' weights and KV, the compute buffer, the
    input layer when the format's engine keeps it on the GPU, and the output layer when k > n."""
    if k <= 0:
        return 0
    n = len(c.weights)
    first = n - min(k, n)
    return (sum(c.weights[first:]) + sum(c.kvs[first:]) + c.compute + c.gpu_input
            + (c.glob.output_bytes if k > n else 0))


def gpu_bytes_for_layers(model: ModelSpec, fmt: WeightFormat, context: int, k: int, kv: str | None = None,
                         sequences: int = 1, n_ubatch: int = LLAMACPP_N_UBATCH) -> int:
    """gpu(k): GPU bytes with `--n-gpu-layers k` (overhead excluded); see `offload_plan`."""
    return _gpu_need(_costs(model, fmt, context, kv_storage(kv), sequences, n_ubatch), k)


def full_offload_gpu_bytes(model: ModelSpec, fmt: WeightFormat, context: int, kv: str | None = None,
                           sequences: int = 1, n_ubatch: int = LLAMACPP_N_UBATCH) -> int:
    """GPU bytes with every layer and the output offloaded (`--n-gpu-layers` = n_layer + 1), overhead excluded."""
    c = _costs(model, fmt, context, kv_storage(kv), sequences, n_ubatch)
    return _gpu_need(c, model.num_layers + 1)


def offload_plan(model: ModelSpec, fmt: WeightFormat, gpu_bytes: int, ram_bytes: int | None, context: int,
                 kv: str | None = None, *, device: Device = "gpu", sequences: int = 1, gpu_bandwidth: float = 0.0,
                 ram_bandwidth: float = DEFAULT_RAM_BANDWIDTH, gpu_overhead: int | None = None,
                 costs: DecodeCosts | None = None, n_ubatch: int = LLAMACPP_N_UBATCH) -> OffloadPlan:
    """The largest `--n-gpu-layers` whose GPU share fits `gpu_bytes` (what the driver reports: CUDA
    total_memory, or the Apple wired limit) less `gpu_overhead` (default `gpu_overhead_bytes(device)`),
    the host RAM the rest needs, whether it fits at all, and the decode speed.

    GPU share with k layers (k <= n_layer), and with k = n_layer + 1 (output layer too):
        gpu(k) = sum_{i >= n_layer - k} (W_i + KV_i) + C              C = compute_buffer_bytes (k > 0)
        gpu(n_layer + 1) = gpu(n_layer) + output layer
    k = max{k : gpu(k) <= gpu_bytes - overhead} (gpu(k) grows with k).
    Host: input layer (GGUF) + the CPU layers' W_i + KV_i + output layer (k <= n_layer) + host buffers
    (`host_input_buffer_bytes` if k > 0; C when the output layer runs on the CPU).
    Fits: host <= `ram_bytes` (not checked when None); on Apple the GPU share comes out of the same unified
    memory, so gpu + host <= ram_bytes. `device="cpu"` puts everything in RAM (k = 0).
    Decode (calc/offload/decode.py, `costs`; default llama.cpp CUDA's): step + GPU layers x per-layer cost +
    read_gpu / (B_gpu x e_gpu) + read_host / (B_ram x e_ram) per token, where read = weights read per token
    (`layer_read_bytes`, output layer) + KV of the layer at the context.
    With `sequences` > 1 (llama-server `-np`), one step decodes a token for every sequence: weights are read
    once and every sequence's KV is read, so `decode_tokens_per_s` is per sequence (x sequences in total).
    """
    require_positive((("context", context), ("sequences", sequences), ("RAM bandwidth", ram_bandwidth)))
    kv_type = kv_storage(kv)
    n = model.num_layers
    c = _costs(model, fmt, context, kv_type, sequences, n_ubatch)
    overhead = 0 if device == "cpu" else (gpu_overhead_bytes(device) if gpu_overhead is None else gpu_overhead)
    budget = 0 if device == "cpu" else max(0, gpu_bytes - overhead)
    k = 0 if device == "cpu" else _most_gpu_layers(c, n, budget)
    if k > 0 and gpu_bandwidth <= 0:
        raise InputError("offload_plan: a GPU plan needs gpu_bandwidth > 0")
    x = _split(model, c, k, n_ubatch)
    costs = costs if costs is not None else DecodeCosts()
    gpu_read, host_read, tok_s, tok_s0 = _decode(c, x, gpu_bandwidth if k else 1.0, ram_bandwidth, costs)
    need_ram = x.host_total + (x.gpu_total if device == "apple" else 0)
    ram_ok = ram_bytes is None or need_ram <= ram_bytes
    return OffloadPlan(
        device=device, num_layers=n, n_gpu_layers=k, layers_on_gpu=x.on_gpu, output_on_gpu=x.output_on_gpu,
        fits_on_gpu=device != "cpu" and k == n + 1, fits=ram_ok, ram_checked=ram_bytes is not None,
        reason=None if ram_ok else _ram_reason(device, need_ram, ram_bytes),
        context=context, sequences=sequences, kv_dtype=kv_type.name,
        weights_bytes=sum(c.weights) + c.glob.input_bytes + c.glob.output_bytes - c.glob.tied_copy_bytes,
        kv_bytes=sum(c.kvs),
        gpu_usable_bytes=0 if device == "cpu" else gpu_bytes, gpu_overhead_bytes=overhead, gpu_budget_bytes=budget,
        gpu_weights_bytes=x.gpu_w, gpu_kv_bytes=x.gpu_kv, gpu_compute_bytes=x.gpu_c, gpu_bytes=x.gpu_total,
        ram_bytes=ram_bytes, host_weights_bytes=x.host_w, host_kv_bytes=x.host_kv, host_compute_bytes=x.host_c,
        host_bytes=x.host_total, gpu_read_bytes_per_token=gpu_read, host_read_bytes_per_token=host_read,
        gpu_bandwidth_bytes_per_s=int(gpu_bandwidth) if device != "cpu" else 0,
        ram_bandwidth_bytes_per_s=int(ram_bandwidth), gpu_efficiency=costs.gpu_efficiency,
        ram_efficiency=costs.ram_efficiency, gpu_layer_s=costs.gpu_layer_s, step_s=costs.step_s,
        decode_tokens_per_s=tok_s, decode_tokens_per_s_empty=tok_s0, layer_weights_bytes=tuple(c.weights),
        layer_kv_bytes=tuple(c.kvs), compute_buffer_bytes=c.compute, output_layer_bytes=c.glob.output_bytes,
    )


def _most_gpu_layers(c: _Costs, n: int, budget: int) -> int:
    """k = max{k <= n + 1 : gpu(k) <= budget}, counting up (gpu(k) grows with k)."""
    k = 0
    while k < n + 1 and _gpu_need(c, k + 1) <= budget:
        k += 1
    return k


def _decode(c: _Costs, x: _Split, gpu_bw: float, ram_bw: float,
            costs: DecodeCosts) -> tuple[int, int, float, float]:
    """(GPU and host bytes one decode token reads, tokens/s with the KV at the context, tokens/s with an empty
    cache): `decode_tokens_per_s` of `_reads`."""
    gpu_read, host_read = _reads(c, x, c.kvs)
    gpu_read0, host_read0 = _reads(c, x, c.kvs_empty)
    return (gpu_read, host_read, decode_tokens_per_s(gpu_read, host_read, x.on_gpu, gpu_bw, ram_bw, costs),
            decode_tokens_per_s(gpu_read0, host_read0, x.on_gpu, gpu_bw, ram_bw, costs))


@dataclass(frozen=True)
class _Split:
    """Where each byte lives with k of `--n-gpu-layers` (offload_plan's docstring): the GPU runs layers
    [first, n) and, when k = n + 1, the output layer."""

    k: int
    first: int
    on_gpu: int
    output_on_gpu: bool
    out_gpu: int
    gpu_w: int
    gpu_kv: int
    gpu_c: int
    host_w: int
    host_kv: int
    host_c: int

    @property
    def gpu_total(self) -> int:
        return self.gpu_w + self.gpu_kv + self.gpu_c

    @property
    def host_total(self) -> int:
        return self.host_w + self.host_kv + self.host_c


def _split(model: ModelSpec, c: _Costs, k: int, n_ubatch: int) -> _Split:
    n = model.num_layers
    on_gpu = min(k, n)
    first = n - on_gpu  # layers [first, n) run on the GPU
    output_on_gpu = k > n
    out = c.glob.output_bytes
    # a tied head on the CPU reuses the host's token_embd (GGUF, or everything on the host)
    shared = c.glob.tied_copy_bytes if (c.host_input or not k) else 0
    out_gpu, out_host = (out, 0) if output_on_gpu else (0, out - shared)
    return _Split(
        k=k, first=first, on_gpu=on_gpu, output_on_gpu=output_on_gpu, out_gpu=out_gpu,
        gpu_w=sum(c.weights[first:]) + c.gpu_input + out_gpu if k else 0,
        gpu_kv=sum(c.kvs[first:]) if k else 0, gpu_c=c.compute if k else 0,
        host_w=sum(c.weights[:first]) + c.host_input + out_host + (0 if k else c.gpu_input),
        host_kv=sum(c.kvs[:first]),
        host_c=(host_input_buffer_bytes(model, c.cells, n_ubatch) if k else 0) + (0 if output_on_gpu else c.compute),
    )


def _reads(c: _Costs, x: _Split, kvs: list[int]) -> tuple[int, int]:
    """Bytes one decode token reads on the GPU and on the host, with the KV `kvs` per layer."""
    gpu = sum(c.reads[x.first:]) + sum(kvs[x.first:]) + x.out_gpu if x.k else 0
    host = sum(c.reads[:x.first]) + sum(kvs[:x.first]) + (0 if x.output_on_gpu else c.glob.output_bytes)
    return gpu, host


def _ram_reason(device: Device, need_ram: int, ram_bytes: int | None) -> str:
    what = ("of unified memory (GPU share + the rest)" if device == "apple" else
            "of host RAM" + (" for what stays off the GPU" if device == "gpu" else ""))
    return f"needs {fmt_bytes(need_ram)} {what}, {fmt_bytes(ram_bytes or 0)} available"

def wired_limit_mb_needed(model: ModelSpec, fmt: WeightFormat, context: int, kv: str | None = None,
                          sequences: int = 1) -> int:
    """`iogpu.wired_limit_mb` that lets every layer onto an Apple GPU: the full GPU share plus llama.cpp's
    --fit margin, in MiB, rounded up to a whole GiB (1024 MiB)."""
    need = full_offload_gpu_bytes(model, fmt, context, kv, sequences) + gpu_overhead_bytes("apple")
    return round_up(ceil_div(need, MIB), 1024)



def require_positive(values: Sequence[tuple[str, float | int | None]]) -> None:
    """InputError for the first non-positive value among (`--name`, value) pairs (None is skipped)."""
    for name, value in values:
        if value is not None and value <= 0:
            raise InputError(f"{name} must be positive, got {value}")


def assumptions(device: Device, ram_bandwidth: float, ram_given: bool, costs: DecodeCosts) -> dict[str, Assumption]:
    """The constants a plan used, with units and sources (`report.assumptions`)."""
    perf = "kvcalc perf's term for llama.cpp on this card (calc/perf/defaults.py; calc/offload/decode.py)"
    out = {
        "n_ubatch": Assumption(value=LLAMACPP_N_UBATCH, source="llama.cpp default (common/common.h)"),
        "gpu_decode_efficiency": Assumption(value=costs.gpu_efficiency, source=perf),
        "gpu_layer_cost": Assumption(value=costs.gpu_layer_s, unit="s", source=perf),
        "step_cost": Assumption(value=costs.step_s, unit="s", source=perf),
        "ram_decode_efficiency": Assumption(
            value=costs.ram_efficiency, source="assumption: dual-channel DDR5 reads reach 60-75 % of peak"),
        "ram_bandwidth": Assumption(
            value=int(ram_bandwidth), unit="B/s",
            source="--ram-bandwidth" if ram_given else "dual-channel DDR5-5600: 2 x 8 B x 5600e6 (JEDEC JESD79-5)"
            if device != "apple" else "the SoC's unified-memory bandwidth (hardware file); CPU cores reach less"),
        "fit_margin": Assumption(value=LLAMACPP_FIT_MARGIN_BYTES, unit="B",
                                 source="llama.cpp --fit-target default 1024 MiB"),
    }
    if device == "gpu":
        out["cuda_context"] = Assumption(value=CUDA_CONTEXT_BYTES, unit="B",
                                         source="assumption: CUDA context and cuBLAS workspace, 'hundreds of MiB'")
    if device == "apple":
        out["macos_reserve"] = Assumption(value=MACOS_RESERVE_BYTES, unit="B",
                                          source="assumption: left to macOS when raising the wired limit")
    return out
