"""2:4 structured sparsity: the weight bytes a pruned model would take in a format, and which engines use it."""

from __future__ import annotations

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
from kvcalc.spec.base import record
from kvcalc.spec.layers import TensorSpec
from kvcalc.spec.model import ModelSpec
from kvcalc.units import ceil_div

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
