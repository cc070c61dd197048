"""llama.cpp's memory model: its constants, the bytes of each layer (weights, KV cells, recurrent states),
its compute buffers, and what it keeps free. One model for `kvcalc fit --engine llamacpp` and `kvcalc local`."""

from __future__ import annotations

from typing import Literal

from kvcalc.calc.quant import (
    GgufRecipe,
    bind_format,
)
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import InputError
from kvcalc.spec.base import record
from kvcalc.spec.dtypes import StorageType, storage_type
from kvcalc.spec.layers import LayerSpec, MoEMLP, TensorSpec
from kvcalc.spec.model import ModelSpec
from kvcalc.units import GIB, MIB, round_up

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
