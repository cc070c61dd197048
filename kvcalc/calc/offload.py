"""Local deployment: llama.cpp-style partial offload, decode speed from two bandwidths, 2:4 sparsity, runtimes.

Pure functions over a `ModelSpec` and a weight format; no I/O. `report/local.py` turns the result into the
`kvcalc local` report.

Where llama.cpp puts things (`src/llama-model.cpp::load_tensors`, summarised in the project's
quant_formats.md section 2.8, validated on DeepSeek-R1-Distill-Qwen-32B Q4_K_M: CUDA0 18,508.35 MiB + CPU_Mapped
417.66 MiB = token_embd, llama.cpp issue #11861):

- the input layer (`token_embd`, `pos_embd`) always stays in host memory ("very little benefit to offloading
  the input layer");
- `--n-gpu-layers k` puts the *last* k repeating layers on the GPU (`i_gpu_start = n_layer - k`);
- the output layer (`output_norm` + `output.weight`) goes to the GPU only when k > n_layer, i.e. k = n_layer + 1
  offloads everything (a tied head is then a GPU copy of token_embd, the host keeps the input copy);
- each layer's KV cache lives on that layer's device (`offload_kqv`, default on).

So with k GPU layers (k <= n_layer), per device:

    GPU  = sum over the last k layers of (weights + KV at the context) + compute buffer + overhead
    host = token_embd + the first n_layer - k layers (weights + KV) + output layer + host buffers

Decode speed: a decode step of one token reads every weight it uses once (MoE: the routed top_k of E experts)
plus the whole KV cache of each layer, from the memory that holds it, so

    time per token = bytes read on the GPU / (B_gpu x e_gpu) + bytes read from RAM / (B_ram x e_ram)
    tokens/s       = 1 / time per token

with B the vendor peak bandwidths (GPU: the hardware file; RAM: `--ram-bandwidth`, default dual-channel
DDR5-5600) and e the fraction of peak a decode kernel reaches (`GPU_DECODE_EFFICIENCY`,
`RAM_DECODE_EFFICIENCY`: assumptions, see their comments). The input embedding reads one row per token and is
left out. Compute, kernel launches and the GPU<->CPU hand-over of one hidden vector per token are not
modelled: this is an upper bound set by memory traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from kvcalc.calc.engines import Assumption
from kvcalc.calc.quant import (
    Bnb4Format,
    BnbInt8Format,
    FloatFormat,
    Fp8Format,
    GgufRecipe,
    Int8Format,
    MxFp4Format,
    NvFp4Format,
    PackedIntFormat,
    bind_format,
    is_linear_weight,
)
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import InputError
from kvcalc.spec.base import record
from kvcalc.spec.dtypes import StorageType, storage_type
from kvcalc.spec.layers import LayerSpec, MoEMLP, TensorSpec
from kvcalc.spec.model import ModelSpec
from kvcalc.units import GIB, MIB, ceil_div, fmt_bytes, round_up

# --------------------------------------------------------------------------------------------------------
# Constants (each named, with its source or marked as an assumption)
# --------------------------------------------------------------------------------------------------------

#: llama.cpp's default micro-batch (`n_ubatch = 512`, common/common.h; printed as `n_ubatch = 512` in every
#: context log, e.g. ollama issue #6398). Compute buffers are reserved for a worst-case ubatch.
LLAMACPP_N_UBATCH = 512
#: Cells of a sliding-window (iSWA) cache are padded to a multiple of 256:
#: cells = pad(min(n_ctx, n_swa x n_seq + n_ubatch), 256) (llama-kv-cache-iswa.cpp, swa_full off, the default;
#: reference llamacpp_logs.tsv L10/L11: 39/39 live configurations matched, unsloth PR #7530).
LLAMACPP_SWA_PAD = 256
#: What llama.cpp's own `--fit` leaves free on every device: `--fit-target` default 1024 MiB
#: (common/arg.cpp, llama_params_fit; quoted as "--fit-target's default 1024 MiB" by users and by LLamaSharp's
#: port of llama_params_fit). kvcalc keeps the same margin so its plan matches `-ngl auto`.
LLAMACPP_FIT_MARGIN_BYTES = 1024 * MIB
#: CUDA context + cuBLAS handles/workspace, outside every buffer llama.cpp prints. Assumption: 512 MiB
#: ("hundreds of MiB", vllm_memory.md section 1.2; with CUDA lazy module loading, the default since CUDA 11.7).
CUDA_CONTEXT_BYTES = 512 * MIB
#: Metal: the wired limit (recommendedMaxWorkingSetSize) already is the budget of Metal buffers; no context
#: carve-out is modelled (assumption).
METAL_CONTEXT_BYTES = 0
#: Fraction of peak DRAM bandwidth a llama.cpp decode step reaches on a GPU. Assumption: 0.75, between two
#: measured points: RTX 3090, Llama-3-8B Q4_0 (4.35e9 B read per token without token_embd) at one token per
#: ubatch, 156.56 t/s -> 681 GB/s = 0.73 of 936 GB/s (llama.cpp PR #15802, 2025-09); Mac mini M4,
#: Llama-3.1-8B Q4_K_M (4.62e9 B) tg128 20.87 t/s -> 96 GB/s = 0.80 of 120 GB/s (brand-o/normiebench #3, 2026-03).
GPU_DECODE_EFFICIENCY = 0.75
#: Fraction of theoretical DRAM bandwidth CPU decode reaches. Assumption: 0.65. kvcalc found no llama.cpp CPU
#: decode figure stating both the file and the RAM kit; the nearest, i9-13900K with DDR5-6400 (102.4 GB/s),
#: "7B" at 8 threads 18.27 t/s (llama.cpp issue #34, 2023-08), is 0.67 if that file was LLaMA-7B Q4_0
#: (3.75e9 B read per token). Pass your own measured figure through --ram-bandwidth.
RAM_DECODE_EFFICIENCY = 0.65
#: Default RAM bandwidth: dual-channel DDR5-5600 = 2 channels x 8 B x 5,600e6 transfers/s = 89.6 GB/s
#: (JEDEC JESD79-5 DDR5: a DIMM channel is 64 data bits, as two 32-bit sub-channels; DDR5-5600 is the
#: highest speed AMD Ryzen 9000 desktop CPUs support with two channels, amd.com product specifications).
DEFAULT_RAM_BANDWIDTH = 2 * 8 * 5_600_000_000
#: Memory macOS and apps keep when the GPU wired limit is raised (assumption: 8 GiB).
MACOS_RESERVE_BYTES = 8 * GIB
#: llama.cpp's default KV cache type (`--cache-type-k/-v f16`).
LLAMACPP_DEFAULT_KV = "f16"
#: Recurrent (Mamba / gated-DeltaNet) states are f32 in llama.cpp (`llama_memory_recurrent` type_r/type_s).
LLAMACPP_STATE_DTYPE = "fp32"

Device = Literal["gpu", "apple", "cpu"]

_KV_ALIASES = {"f16": "fp16", "f32": "fp32", "half": "fp16", "auto": "fp16"}
#: `--cache-type-k/-v` values llama.cpp accepts (common/arg.cpp kv_cache_types), in kvcalc's spelling too.
GGML_KV_CACHE_TYPES = frozenset({"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1",
                                 "fp16", "fp32", "float16", "bfloat16"})


def kv_storage(name: str | None) -> StorageType:
    """llama.cpp `--cache-type-k/-v` name (f16 default, bf16, q8_0, q4_0 ...) -> block storage.

    Names llama.cpp does not accept (fp8, int8: vLLM's KV types) raise InputError."""
    key = (name or LLAMACPP_DEFAULT_KV).strip().lower()
    if key not in GGML_KV_CACHE_TYPES and key not in _KV_ALIASES:
        raise InputError(f"--kv-dtype {name}: llama.cpp KV cache types are f16, bf16, f32, q8_0, q5_0, q5_1, "
                         "q4_0, q4_1, iq4_nl")
    return storage_type(_KV_ALIASES.get(key, key))


# --------------------------------------------------------------------------------------------------------
# Bytes per layer
# --------------------------------------------------------------------------------------------------------


def _is_output(t: TensorSpec) -> bool:
    """Tensors of llama.cpp's output layer: `output_norm.*` and `output.*`."""
    return t.layer is None and (t.role == "output" or t.name.startswith("output"))


def embed_on_host(fmt: WeightFormat) -> bool:
    """llama.cpp keeps the input embedding in host RAM; engines for other formats keep it on the GPU."""
    return isinstance(fmt, GgufRecipe)


def layer_weight_bytes(model: ModelSpec, fmt: WeightFormat) -> list[int]:
    """Bytes of each repeating layer in `fmt`: sum of its tensors' bytes (GGUF: llama.cpp's per-tensor type)."""
    bound = bind_format(fmt, model)
    return [sum(bound.tensor_bytes(t, t.numel) for t in layer.tensors) for layer in model.layers]


def _active_fraction(layer: LayerSpec, t: TensorSpec) -> float:
    """Share of a tensor one decoded token reads: top_k / E for routed experts (`*_exps`), else 1."""
    if isinstance(layer.mlp, MoEMLP) and t.role.endswith("_exps") and layer.mlp.num_experts:
        return layer.mlp.top_k / layer.mlp.num_experts
    return 1.0


def layer_read_bytes(model: ModelSpec, fmt: WeightFormat) -> list[int]:
    """Weight bytes each layer reads per decoded token (MoE: the routed top_k of E experts plus the rest)."""
    bound = bind_format(fmt, model)
    return [
        int(sum(bound.tensor_bytes(t, t.numel) * _active_fraction(layer, t) for t in layer.tensors))
        for layer in model.layers
    ]


@record
class GlobalBytes:
    """Bytes of the input layer (token_embd, pos_embd), of the output layer as the output device holds it
    (output_norm + output.weight, or for a tied head a copy of token_embd), and of that copy (0 if untied)."""

    input_bytes: int
    output_bytes: int
    tied_copy_bytes: int


def global_bytes(model: ModelSpec, fmt: WeightFormat) -> GlobalBytes:
    """Split the global tensors into llama.cpp's input and output layers.

    A tied head has no `output` tensor; llama.cpp then creates the output as a duplicate of token_embd on the
    output device (quant_formats.md 2.8), so the output layer's bytes include a copy of token_embd."""
    bound = bind_format(fmt, model)
    inp = out = copy = 0
    tied = not any(t.role == "output" for t in model.global_tensors)
    for t in model.global_tensors:
        size = bound.tensor_bytes(t, t.numel)
        if _is_output(t):
            out += size
        else:
            inp += size
            if tied and t.role == "token_embd":
                copy = size
    return GlobalBytes(input_bytes=inp, output_bytes=out + copy, tied_copy_bytes=copy)


def layer_kv_cells(layer: LayerSpec, context: int, sequences: int = 1) -> int:
    """KV cells a llama.cpp layer allocates for `sequences` slots of `context` tokens each.

    Full / MLA layers: n_ctx = context x sequences (llama-server's `-c` is shared by its `-np` slots,
    llamacpp_logs.tsv L08: n_ctx 81920 = 10 x 8192). Window layers (iSWA):
    pad(min(n_ctx, window x sequences + n_ubatch), 256). Recurrent layers: no cells."""
    if layer.mixer is None or layer.kind in ("linear", "mamba"):
        return 0
    n_ctx = context * sequences
    window = layer.mixer.window
    if window is None:
        return n_ctx
    return min(round_up(min(n_ctx, window * sequences + LLAMACPP_N_UBATCH), LLAMACPP_SWA_PAD),
               round_up(n_ctx, LLAMACPP_SWA_PAD))


def layer_kv_bytes(model: ModelSpec, context: int, kv: StorageType, sequences: int = 1) -> list[int]:
    """KV bytes of each layer: kv_bytes_per_token x cells (K and V rows are whole ggml blocks), plus an f32
    recurrent state per sequence for Mamba / linear-attention layers (MLA: the 576-value latent, as
    llama.cpp stores `c^KV`; llamacpp_logs.tsv L09 = 61 x 612 B x 32768 = 1166.62 MiB exactly)."""
    state = storage_type(LLAMACPP_STATE_DTYPE)
    out: list[int] = []
    for layer in model.layers:
        if layer.mixer is None:
            out.append(0)
            continue
        cells = layer_kv_cells(layer, context, sequences)
        recurrent = layer.mixer.state_bytes(state, 1, state) * sequences if layer.kind in ("linear", "mamba") else 0
        out.append(layer.mixer.kv_bytes_per_token(kv, 1) * cells + recurrent)
    return out


def compute_buffer_bytes(model: ModelSpec, n_ubatch: int = LLAMACPP_N_UBATCH) -> int:
    """Compute buffer of the device that runs the output layer, flash attention on (llama.cpp's default
    `-fa auto` enables it on CUDA and Metal; containers/ramalama PR #2359 "--flash-attn now defaults to auto"):

        n_ubatch x (n_vocab + 2 x n_embd) x 4 B   (f32 logits of a full ubatch + two hidden-state buffers)

    Checked: Qwen3.5-9B (vocab 248,320, n_embd 4,096): 512 x 256,512 x 4 = 501.0 MiB, logged ~501 MiB
    (llamacpp_logs.tsv L12); Llama-3-8B CPU-only: 512 x (128,256 + 4,096) x 4 = 258.5 MiB logged (ollama
    issue #6398; the formula gives 266.5). Without flash attention llama.cpp also materialises the scores,
    n_ctx x n_ubatch x n_head x 4 B (5,120 of the 5,312 MiB of llamacpp_logs.tsv L08): not modelled."""
    return n_ubatch * (model.vocab_size + 2 * model.hidden_size) * 4


def host_input_buffer_bytes(model: ModelSpec, cells: int, n_ubatch: int = LLAMACPP_N_UBATCH) -> int:
    """Host (CUDA_Host / pinned) compute buffer when layers run on a GPU: the f32 KQ mask [n_kv, n_ubatch]
    plus the f32 input embeddings [n_embd, n_ubatch]:

        n_ubatch x (n_kv + n_embd) x 4 B

    Checked exactly: Llama-3.1-8B n_ctx 81,920: 160 + 8 = 168 MiB (logged 168.01, llamacpp_logs.tsv L08);
    DeepSeek-R1 n_ctx 32,768: 64 + 14 = 78 MiB (logged 78.01, L09)."""
    return n_ubatch * (cells + model.hidden_size) * 4


def gpu_overhead_bytes(device: Device) -> int:
    """Memory the plan keeps free on the GPU: CUDA context (none on Metal) + llama.cpp's --fit margin."""
    if device == "cpu":
        return 0
    return (METAL_CONTEXT_BYTES if device == "apple" else CUDA_CONTEXT_BYTES) + LLAMACPP_FIT_MARGIN_BYTES


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


def decode_tokens_per_s(gpu_read: int, host_read: int, gpu_bw: float, ram_bw: float, gpu_eff: float,
                        ram_eff: float) -> float:
    """tokens/s = 1 / (gpu_read / (gpu_bw x gpu_eff) + host_read / (ram_bw x ram_eff)); 0 when nothing is read."""
    seconds = 0.0
    if gpu_read:
        seconds += gpu_read / (gpu_bw * gpu_eff)
    if host_read:
        seconds += host_read / (ram_bw * ram_eff)
    return 1.0 / seconds if seconds > 0 else 0.0


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


def offload_plan(
    model: ModelSpec,
    fmt: WeightFormat,
    gpu_bytes: int,
    ram_bytes: int | None,
    context: int,
    kv: str | None = None,
    *,
    device: Device = "gpu",
    sequences: int = 1,
    gpu_bandwidth: float = 0.0,
    ram_bandwidth: float = DEFAULT_RAM_BANDWIDTH,
    gpu_overhead: int | None = None,
    gpu_efficiency: float = GPU_DECODE_EFFICIENCY,
    ram_efficiency: float = RAM_DECODE_EFFICIENCY,
    n_ubatch: int = LLAMACPP_N_UBATCH,
) -> OffloadPlan:
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
    Decode (module docstring): read_gpu / (B_gpu x e_gpu) + read_host / (B_ram x e_ram) per token, where
    read = weights read per token (`layer_read_bytes`, output layer) + KV of the layer at the context.
    With `sequences` > 1 (llama-server `-np`), one step decodes a token for every sequence: weights are read
    once and every sequence's KV is read, so `decode_tokens_per_s` is per sequence (x sequences in total).
    """
    require_positive((("context", context), ("sequences", sequences), ("RAM bandwidth", ram_bandwidth)))
    kv_type = kv_storage(kv)
    n = model.num_layers
    c = _costs(model, fmt, context, kv_type, sequences, n_ubatch)
    overhead = 0 if device == "cpu" else (gpu_overhead_bytes(device) if gpu_overhead is None else gpu_overhead)
    budget = 0 if device == "cpu" else max(0, gpu_bytes - overhead)

    k = 0
    if device != "cpu":
        while k < n + 1 and _gpu_need(c, k + 1) <= budget:
            k += 1
    if k > 0 and gpu_bandwidth <= 0:
        raise InputError("offload_plan: a GPU plan needs gpu_bandwidth > 0")
    on_gpu = min(k, n)
    first = n - on_gpu  # layers [first, n) run on the GPU
    output_on_gpu = k > n
    out = c.glob.output_bytes
    # a tied head on the CPU reuses the host's token_embd (GGUF, or everything on the host)
    shared = c.glob.tied_copy_bytes if (c.host_input or not k) else 0
    out_gpu, out_host = (out, 0) if output_on_gpu else (0, out - shared)

    gpu_w = sum(c.weights[first:]) + c.gpu_input + out_gpu if k else 0
    gpu_kv = sum(c.kvs[first:]) if k else 0
    gpu_c = c.compute if k else 0
    host_w = sum(c.weights[:first]) + c.host_input + out_host + (0 if k else c.gpu_input)
    host_kv = sum(c.kvs[:first])
    host_c = (host_input_buffer_bytes(model, c.cells, n_ubatch) if k else 0) + (0 if output_on_gpu else c.compute)
    host_total = host_w + host_kv + host_c

    def reads(kvs: list[int]) -> tuple[int, int]:
        gpu = sum(c.reads[first:]) + sum(kvs[first:]) + out_gpu if k else 0
        host = sum(c.reads[:first]) + sum(kvs[:first]) + (0 if output_on_gpu else out)
        return gpu, host

    gpu_read, host_read = reads(c.kvs)
    gpu_read0, host_read0 = reads(c.kvs_empty)
    gpu_bw = gpu_bandwidth if k else 1.0

    need_ram = host_total + (gpu_w + gpu_kv + gpu_c if device == "apple" else 0)
    ram_ok = ram_bytes is None or need_ram <= ram_bytes
    reason: str | None = None
    if not ram_ok and ram_bytes is not None:
        what = ("of unified memory (GPU share + the rest)" if device == "apple" else
                "of host RAM" + (" for what stays off the GPU" if device == "gpu" else ""))
        reason = f"needs {fmt_bytes(need_ram)} {what}, {fmt_bytes(ram_bytes)} available"
    tok_s = decode_tokens_per_s(gpu_read, host_read, gpu_bw, ram_bandwidth, gpu_efficiency, ram_efficiency)
    tok_s0 = decode_tokens_per_s(gpu_read0, host_read0, gpu_bw, ram_bandwidth, gpu_efficiency, ram_efficiency)
    return OffloadPlan(
        device=device, num_layers=n, n_gpu_layers=k, layers_on_gpu=on_gpu, output_on_gpu=output_on_gpu,
        fits_on_gpu=device != "cpu" and k == n + 1, fits=ram_ok, ram_checked=ram_bytes is not None, reason=reason,
        context=context, sequences=sequences, kv_dtype=kv_type.name,
        weights_bytes=sum(c.weights) + c.glob.input_bytes + out - c.glob.tied_copy_bytes, kv_bytes=sum(c.kvs),
        gpu_usable_bytes=0 if device == "cpu" else gpu_bytes, gpu_overhead_bytes=overhead, gpu_budget_bytes=budget,
        gpu_weights_bytes=gpu_w, gpu_kv_bytes=gpu_kv, gpu_compute_bytes=gpu_c, gpu_bytes=gpu_w + gpu_kv + gpu_c,
        ram_bytes=ram_bytes, host_weights_bytes=host_w, host_kv_bytes=host_kv, host_compute_bytes=host_c,
        host_bytes=host_total, gpu_read_bytes_per_token=gpu_read, host_read_bytes_per_token=host_read,
        gpu_bandwidth_bytes_per_s=int(gpu_bandwidth) if device != "cpu" else 0,
        ram_bandwidth_bytes_per_s=int(ram_bandwidth), gpu_efficiency=gpu_efficiency, ram_efficiency=ram_efficiency,
        decode_tokens_per_s=tok_s, decode_tokens_per_s_empty=tok_s0,
    )


def wired_limit_mb_needed(model: ModelSpec, fmt: WeightFormat, context: int, kv: str | None = None,
                          sequences: int = 1) -> int:
    """`iogpu.wired_limit_mb` that lets every layer onto an Apple GPU: the full GPU share plus llama.cpp's
    --fit margin, in MiB, rounded up to a whole GiB (1024 MiB)."""
    need = full_offload_gpu_bytes(model, fmt, context, kv, sequences) + gpu_overhead_bytes("apple")
    return round_up(ceil_div(need, MIB), 1024)


# --------------------------------------------------------------------------------------------------------
# 2:4 structured sparsity
# --------------------------------------------------------------------------------------------------------


@record
class SparsityEngine:
    """Whether an engine runs 2:4 sparse weights from memory (and so saves the bytes), and how."""

    engine: str
    uses_it: bool
    detail: str
    source: str


@record
class SparsityFootprint:
    """The model's weights with 2:4 structured sparsity on every prunable Linear, in the same format.

    Per prunable matrix of n weights: sparse = dense - values/2 + n/8 (half of the values are dropped; each
    kept value gets a 2-bit index of its position among 4, i.e. 4 bits per group of 4 = 1 bit per dense
    weight). Scales and zero points stay as the format stores them (per-tensor, per-row and per-group scales
    are defined on the dense shape); GGUF blocks would hold kept values only, so there the whole tensor
    halves: ceil(dense/2) + n/8. Embedding, output head, norms and routers are not pruned (llm-compressor's
    2:4 recipes target Linear layers and ignore lm_head)."""

    format: str
    dense_bytes: int
    sparse_bytes: int
    saving_fraction: float
    prunable_params: int
    bits_per_value: float | None
    layout: str
    engines: list[SparsityEngine]
    sources: list[str]


_CUTLASS_24 = ("vLLM model_executor/layers/quantization/compressed_tensors/schemes/compressed_tensors_24.py "
               "(CompressedTensors24: get_min_capability 90, 'Only cutlass 3.x kernels'; cutlass_sparse_compress "
               "'2 bits for every nonzero element that represent the coordinate within the block of 4')")
_MARLIN_24 = ("vLLM compressed_tensors_w4a16_24.py (CompressedTensorsW4A16Sparse24 / gptq_marlin_24: 4-bit, "
              "capability >= 80, fp16; qweight K/32 x 2N int32 = 2 bits/weight, meta K/32 x 2N int16 = 1 bit)")
_CT_BITMASK = ("compressed-tensors sparse_24_bitmask.py (checkpoint: compressed [N, K/2] + bitmask uint8 "
               "[N, K/8], 1 bit per dense weight)")
_NVIDIA_24 = "NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020), 'Fine-grained structured sparsity'"


def _value_bits(fmt: WeightFormat) -> float | None:
    """Bits of one stored value (without scales) for the formats that have a fixed width; None for GGUF."""
    if isinstance(fmt, FloatFormat):
        return 8.0 * fmt.bytes_per_value
    if isinstance(fmt, (Fp8Format, Int8Format, BnbInt8Format)):
        return 8.0
    if isinstance(fmt, PackedIntFormat):
        return float(fmt.bits)
    if isinstance(fmt, (Bnb4Format, NvFp4Format, MxFp4Format)):
        return 4.0
    if isinstance(fmt, GgufRecipe):
        return None
    name = getattr(fmt, "name", "")
    return 16.0 if name in ("bf16", "fp16") else (32.0 if name == "fp32" else None)


def _prunable(t: TensorSpec) -> bool:
    return is_linear_weight(t) and t.role not in ("token_embd", "output") and not t.role.startswith("ffn_gate_inp")


def _sparsity_engines(fmt: WeightFormat) -> list[SparsityEngine]:
    name = getattr(fmt, "name", "")
    w8a8 = isinstance(fmt, (Fp8Format, Int8Format)) and name in ("fp8", "fp8:channel", "int8")
    marlin = isinstance(fmt, PackedIntFormat) and fmt.bits == 4 and fmt.layout in ("gptq", "w4a16")
    out = [
        SparsityEngine(
            engine="vLLM (CUTLASS 2:4, W8A8)",
            uses_it=w8a8,
            detail="FP8/INT8 W8A8 with per-tensor/per-channel weight scales on compute capability 9.0 (Hopper) "
            "only; the 2:4 compressed weight + metadata stay in GPU memory" if w8a8 else
            "only for FP8/INT8 W8A8 compressed-tensors 2:4 checkpoints on Hopper; a 16-bit 2:4 model is loaded "
            "dense ('CompressedTensors24 scheme is disabled for the w16a16 case')",
            source=_CUTLASS_24,
        ),
        SparsityEngine(
            engine="vLLM (Sparse-Marlin, W4A16)",
            uses_it=marlin,
            detail="4-bit GPTQ-style 2:4 (compressed-tensors marlin_24 format) on compute capability >= 8.0 "
            "(RTX 3090/4090/5090 included), fp16 activations" if marlin else
            "only for 4-bit symmetric GPTQ-style weights in the marlin_24 format",
            source=_MARLIN_24,
        ),
        SparsityEngine(
            engine="llama.cpp / Ollama",
            uses_it=False,
            detail="no sparse tensor type in ggml's type table (gguf GGML_QUANT_SIZES): a pruned model is "
            "stored and read dense, zeros included",
            source="ggml type table (gguf.constants.GGML_QUANT_SIZES); llama.cpp src/llama-quant.cpp",
        ),
    ]
    return out


def sparsity_footprint(model: ModelSpec, fmt: WeightFormat) -> SparsityFootprint:
    """Weight bytes of `model` in `fmt` with 2:4 structured sparsity (see `SparsityFootprint`).

    Hardware: NVIDIA sparse tensor cores (Ampere and later) take 2:4 matrices: 2 non-zeros in every group of 4
    along the reduction dimension, stored as the non-zeros plus 2-bit position indices (NVIDIA A100
    whitepaper; cuSPARSELt `CUSPARSELT_SPARSITY_50_PERCENT`). The on-disk compressed-tensors bitmask form
    also costs 1 bit per dense weight (`sparse_24_bitmask`: uint8 bitmask [N, K/8])."""
    bound = bind_format(fmt, model)
    bits = _value_bits(bound)
    dense = sparse = prunable = 0
    for t in model.all_tensors():
        size = bound.tensor_bytes(t, t.numel)
        dense += size
        if not _prunable(t):
            sparse += size
            continue
        prunable += t.numel
        meta = ceil_div(t.numel, 8)
        if bits is None:
            sparse += ceil_div(size, 2) + meta
        else:
            values = ceil_div(int(t.numel * bits), 8)
            sparse += max(0, size - values // 2) + meta
    layout = ("kept values in the format's own blocks (half the blocks) + 2-bit index per kept value"
              if bits is None else
              f"kept {bits:g}-bit values (half) + 2-bit index per kept value (1 bit/weight) + the format's scales")
    return SparsityFootprint(
        format=getattr(fmt, "name", "?"), dense_bytes=dense, sparse_bytes=sparse,
        saving_fraction=round(1 - sparse / dense, 4) if dense else 0.0, prunable_params=prunable,
        bits_per_value=bits, layout=layout, engines=_sparsity_engines(bound), sources=[_NVIDIA_24, _CT_BITMASK],
    )


# --------------------------------------------------------------------------------------------------------
# Runtime recommendation
# --------------------------------------------------------------------------------------------------------


@record
class ContainerImage:
    """A published container image and its size, as a dated source states it."""

    image: str
    size: str
    source: str


@record
class RuntimeChoice:
    """One runtime for this deployment: `recommended`, `possible` or `not suitable`, with the reason."""

    runtime: str
    verdict: Literal["recommended", "possible", "not suitable"]
    reason: str
    image: ContainerImage | None


#: Container images (sizes as their sources state them; uncompressed unless marked compressed).
IMAGES: dict[str, ContainerImage] = {
    "llama.cpp": ContainerImage(
        image="ghcr.io/ggml-org/llama.cpp:server-cuda", size="2.6 GB compressed (full-cuda 3.6 GB)",
        source="huggingface/hub-docs PR #2593 (2026-06)"),
    "Ollama": ContainerImage(
        image="ollama/ollama", size="3.3 GB (3.2 GB of it CUDA v11 + v12 libraries)",
        source="ollama/ollama issue #9982 (2025-03, du of the image)"),
    "vLLM": ContainerImage(
        image="vllm/vllm-openai", size="12.6 GB (2025-10) to 28.6 GB (v0.12, 2025-12)",
        source="vllm-project/vllm issue #27154; PR #22377"),
    "SGLang": ContainerImage(
        image="lmsysorg/sglang", size="~11 GB", source="sgl-project/sglang issue #3673 (2025-02)"),
}
_NATIVE_MAC = ContainerImage(
    image="none: install natively (mlx-lm / llama.cpp / Ollama for macOS)",
    size="n/a: containers on macOS get no Metal GPU",
    source="Docker Desktop GPU support is Windows/WSL2 only (docs.docker.com, GPU support)")


def recommend_runtimes(device: Device, fmt: WeightFormat, fits_on_gpu: bool, n_gpu_layers: int,
                       users: int = 1, gpu_vendor: str = "NVIDIA") -> list[RuntimeChoice]:
    """Rule table (first matching rule per runtime), best first:

    - CPU only, or a plan that splits layers between GPU and RAM -> llama.cpp / Ollama (the runtimes that
      offload by layer, `--n-gpu-layers`); vLLM / SGLang would need everything on the GPU (vLLM's
      `--cpu-offload-gb` streams the offloaded weights over PCIe every step).
    - Apple -> MLX (Apple's framework, unified memory, its own 4/8-bit formats) or llama.cpp / Ollama (Metal);
      vLLM and SGLang have no Metal backend.
    - A GGUF format -> llama.cpp / Ollama (native); vLLM's GGUF loader is documented as experimental.
    - Everything on an NVIDIA/AMD GPU with AWQ/GPTQ/FP8/BF16... and several users -> vLLM / SGLang
      (continuous batching, paged KV cache); llama.cpp stays possible for one user.
    """
    gguf = isinstance(fmt, GgufRecipe)
    partial = device == "cpu" or not fits_on_gpu
    many = users > 1
    rows: list[RuntimeChoice] = []

    def add(runtime: str, verdict: Literal["recommended", "possible", "not suitable"], reason: str) -> None:
        if runtime == "MLX" or (device == "apple" and runtime in ("llama.cpp", "Ollama")):
            image: ContainerImage | None = _NATIVE_MAC
        elif device == "cpu" and runtime == "llama.cpp":
            image = None  # the CPU server image has no dated size in a source kvcalc cites
        else:
            image = IMAGES.get(runtime)
        rows.append(RuntimeChoice(runtime=runtime, verdict=verdict, reason=reason, image=image))

    fmt_name = getattr(fmt, "name", "?")
    # llama.cpp
    if partial and device != "cpu":
        add("llama.cpp", "recommended", f"splits layers between GPU and RAM: --n-gpu-layers {n_gpu_layers}"
            + ("" if gguf else f"; needs a GGUF conversion of {fmt_name}"))
    elif device == "cpu":
        add("llama.cpp", "recommended", "fastest widely used CPU path (AVX2/AVX-512/NEON kernels for GGUF types)"
            + ("" if gguf else f"; needs a GGUF conversion of {fmt_name}"))
    elif gguf:
        add("llama.cpp", "recommended" if not many else "possible",
            f"runs {fmt_name} natively on {'Metal' if device == 'apple' else 'CUDA'}"
            + ("; -np N slots share one context, fine for a few users" if many else ""))
    else:
        add("llama.cpp", "possible", f"needs a GGUF conversion of {fmt_name} (llama.cpp runs GGUF only)")
    # Ollama
    if gguf or partial or device == "apple":
        add("Ollama", "recommended" if not many and (gguf or partial) else "possible",
            "llama.cpp's engine with model management; offloads layers automatically from its VRAM estimate"
            + ("" if gguf else "; library models are GGUF (Q4_K_M by default)"))
    else:
        add("Ollama", "possible", "single-user convenience; runs GGUF, not " + fmt_name)
    # MLX
    if device == "apple":
        add("MLX", "recommended" if fits_on_gpu else "possible",
            "Apple's array framework for Apple silicon (mlx-lm): unified memory, MLX 4/8-bit conversions "
            "(mlx-community), not GGUF k-quants" + ("" if fits_on_gpu else "; must fit under the wired limit"))
    else:
        add("MLX", "not suitable", "built for Apple silicon")
    # vLLM / SGLang
    if device == "apple":
        reason = "no Metal backend (on macOS it runs on the CPU only)"
        add("vLLM", "not suitable", reason)
        add("SGLang", "not suitable", "no Metal backend")
    elif device == "cpu":
        add("vLLM", "possible", "has a CPU backend (x86 AVX-512 / ARM), tuned for servers, not desktops")
        add("SGLang", "not suitable", "GPU runtime")
    elif partial:
        add("vLLM", "not suitable", "needs all weights in GPU memory (--cpu-offload-gb copies the rest over PCIe "
            "every step)")
        add("SGLang", "not suitable", "needs all weights in GPU memory")
    elif gguf:
        add("vLLM", "possible", "GGUF loading is experimental in vLLM; prefer AWQ/GPTQ/FP8 checkpoints for serving")
        add("SGLang", "possible", "prefer AWQ/GPTQ/FP8 checkpoints for serving")
    else:
        verdict: Literal["recommended", "possible", "not suitable"] = "recommended" if many else "possible"
        add("vLLM", verdict, f"{fmt_name} on {gpu_vendor} GPU with continuous batching and paged KV cache"
            + (f": built for {users} concurrent users" if many else "; overkill for one user"))
        add("SGLang", verdict, "continuous batching plus RadixAttention prefix caching"
            + (" (shared prompts across users)" if many else "; overkill for one user"))
    order = {"recommended": 0, "possible": 1, "not suitable": 2}
    return sorted(rows, key=lambda r: order[r.verdict])


def require_positive(values: Sequence[tuple[str, float | int | None]]) -> None:
    """InputError for the first non-positive value among (`--name`, value) pairs (None is skipped)."""
    for name, value in values:
        if value is not None and value <= 0:
            raise InputError(f"{name} must be positive, got {value}")


def assumptions(device: Device, ram_bandwidth: float, ram_given: bool) -> dict[str, Assumption]:
    """The constants a plan used, with units and sources (`report.assumptions`)."""
    out = {
        "n_ubatch": Assumption(value=LLAMACPP_N_UBATCH, source="llama.cpp default (common/common.h)"),
        "gpu_decode_efficiency": Assumption(
            value=GPU_DECODE_EFFICIENCY, source="assumption: RTX 3090 0.73 (llama.cpp PR #15802), Mac mini M4 "
            "0.80 (normiebench #3)"),
        "ram_decode_efficiency": Assumption(
            value=RAM_DECODE_EFFICIENCY, source="assumption: dual-channel DDR5 reads reach 60-75 % of peak"),
        "ram_bandwidth": Assumption(
            value=int(ram_bandwidth), unit="B/s",
            source="--ram-bandwidth" if ram_given else "dual-channel DDR5-5600: 2 x 8 B x 5600e6 (JEDEC JESD79-5)"
            if device != "apple" else "the SoC's unified-memory bandwidth (hardware file); CPU cores reach less"),
        "fit_margin": Assumption(value=LLAMACPP_FIT_MARGIN_BYTES, unit="B",
                                 source="llama.cpp --fit-target default 1024 MiB"),
    }
    if device == "gpu":
        out["cuda_context"] = Assumption(value=CUDA_CONTEXT_BYTES, unit="B",
                                         source="assumption: 'hundreds of MiB' (vllm_memory.md 1.2)")
    if device == "apple":
        out["macos_reserve"] = Assumption(value=MACOS_RESERVE_BYTES, unit="B",
                                          source="assumption: left to macOS when raising the wired limit")
    return out
