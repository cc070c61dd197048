"""Safetensors-style formats, one class per layout (FP8, INT8, GPTQ/AWQ/W4A16, bitsandbytes, NVFP4): see the
package docstring for each layout's bytes and sources."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from kvcalc.calc.quant.base import QuantFormat
from kvcalc.spec.layers import TensorSpec
from kvcalc.units import ceil_div


class FloatFormat(QuantFormat):
    """Every tensor in one float dtype: bf16/fp16 2 B, fp32 4 B per value (IEEE 754 / bfloat16)."""

    family = "float"
    source = "IEEE 754-2008 binary16/32; bfloat16 (Google Brain)"
    _BYTES: ClassVar[dict[str, int]] = {"bf16": 2, "fp16": 2, "fp32": 4}

    def __init__(self, dtype: str) -> None:
        super().__init__(dtype, ())
        self.bytes_per_value = self._BYTES[dtype]

    def quantizes(self, t: TensorSpec) -> bool:
        return False

    def storage(self, t: TensorSpec) -> str:
        return self.name

    def full_bytes(self, t: TensorSpec) -> int:
        return t.numel * self.bytes_per_value

    def describe(self) -> str:
        return f"every tensor {self.name} ({self.bytes_per_value} B per value)"


class Fp8Format(QuantFormat):
    """FP8 e4m3 weights (1 B) + scales: per-tensor fp32, per-channel 16-bit per row, or fp32 per 128x128 block.

    Sources: vLLM `quantization/fp8.py` (Fp8Config: per-tensor, online), compressed-tensors FP8 /
    FP8_DYNAMIC presets (`quant_scheme.py`), DeepSeek-V3 `inference/model.py` (block 128x128,
    `weight_scale_inv` fp32 [ceil(N/128), ceil(K/128)]).
    """

    family = "fp8"
    source = "vLLM fp8.py; compressed-tensors quant_scheme.py; DeepSeek-V3 inference/model.py"

    def __init__(self, granularity: str = "tensor", block: tuple[int, int] = (128, 128), static_input: bool = False,
                 keep_high_precision: Iterable[str] | None = None) -> None:
        name = "fp8" if granularity == "tensor" else f"fp8:{granularity}"
        super().__init__(name, keep_high_precision)
        self.granularity = granularity
        self.block = block
        self.static_input = static_input

    def matrix_bytes(self, e: int, n: int, k: int) -> int:
        if self.granularity == "channel":
            scales = 2 * n
        elif self.granularity == "block":
            scales = 4 * ceil_div(n, self.block[0]) * ceil_div(k, self.block[1])
        else:
            scales = 4 + (4 if self.static_input else 0)
        return e * (n * k + scales)

    def describe(self) -> str:
        scale = {"tensor": "one fp32 scale per matrix", "channel": "a 16-bit scale per output row",
                 "block": f"an fp32 scale per {self.block[0]}x{self.block[1]} block"}[self.granularity]
        return f"FP8 e4m3 weights (1 B) + {scale}; embeddings, lm_head, norms, routers bf16"


class Int8Format(QuantFormat):
    """INT8 weights (1 B) + a 16-bit scale per output row (W8A8 / W8A16 channel-wise; compressed-tensors
    int-quantized, `quant_scheme.py` INT8 preset; SmoothQuant, Xiao et al. 2023, arXiv:2211.10438)."""

    family = "int8"
    source = "compressed-tensors int-quantized (W8A8); SmoothQuant arXiv:2211.10438"

    def matrix_bytes(self, e: int, n: int, k: int) -> int:
        return e * (n * k + 2 * n)

    def describe(self) -> str:
        return "INT8 weights (1 B) + a 16-bit scale per output row; embeddings, lm_head, norms, routers bf16"


class BnbInt8Format(QuantFormat):
    """bitsandbytes LLM.int8(): int8 [N, K] + `SCB` fp32 row absmax [N] (Dettmers et al. 2022,
    arXiv:2208.07339; bitsandbytes `Int8Params`, `int8_vectorwise_quant`)."""

    family = "bitsandbytes"
    source = "bitsandbytes Int8Params; LLM.int8() arXiv:2208.07339"

    def matrix_bytes(self, e: int, n: int, k: int) -> int:
        return e * (n * k + 4 * n)

    def describe(self) -> str:
        return "LLM.int8(): int8 weights + fp32 absmax per row; outliers handled at run time; lm_head, embeddings bf16"


class PackedIntFormat(QuantFormat):
    """Integer weights packed into int32 with per-group 16-bit scales (GPTQ, AWQ, compressed-tensors W4A16).

    `layout` gptq: qweight int32 [ceil(K b / 32), N], qzeros int32 [G, ceil(N b / 32)], scales fp16 [G, N],
    g_idx int32 [K] if `g_idx`; awq: qweight int32 [K, ceil(N b / 32)], qzeros int32 [G, ceil(N b / 32)],
    scales fp16 [G, N]; w4a16 (compressed-tensors pack-quantized): weight_packed int32 [N, ceil(K b / 32)],
    weight_scale [N, G], weight_zero_point int32 [ceil(N b / 32), G] only if asymmetric, weight_g_idx int32 [K]
    with actorder "group", weight_shape int64 [2]. G = ceil(K / g), or 1 for g = -1 (channel-wise).
    Worked example, 4096 x 4096, 4-bit, g128, GPTQ: 4096*4096/8 = 8,388,608 B qweight + 32 x 4096 x 2 =
    262,144 B scales + 32 x 4096/8 x 4 = 65,536 B qzeros = 8,716,288 B = 4.156 bpw.
    """

    def __init__(self, layout: str, bits: int, group: int, *, zeros: bool = True, g_idx: bool = False,
                 desc_act: bool = False, keep_high_precision: Iterable[str] | None = None) -> None:
        tag = {"gptq": "gptq", "awq": "awq", "w4a16": "w4a16"}[layout]
        suffix = ":act" if desc_act else (":file" if g_idx and layout == "gptq" else "")
        name = f"{tag}:{bits}:{group}{suffix}" if layout != "w4a16" else f"w{bits}a16:{group}" + ("" if not zeros
                                                                                               else ":asym")
        super().__init__(name, keep_high_precision)
        self.layout, self.bits, self.group = layout, bits, group
        self.zeros, self.g_idx, self.desc_act = zeros, g_idx or desc_act, desc_act
        self.family = "awq" if layout == "awq" else "gptq"
        self.source = {
            "gptq": "GPTQ, Frantar et al. 2023 (arXiv:2210.17323); GPTQModel qlinear buffers",
            "awq": "AWQ, Lin et al. 2024 (arXiv:2306.00978); AutoAWQ gemm.py",
            "w4a16": "compressed-tensors pack_quantized.py",
        }[layout]

    def groups(self, k: int) -> int:
        return 1 if self.group <= 0 else ceil_div(k, self.group)

    def matrix_bytes(self, e: int, n: int, k: int) -> int:
        b, g = self.bits, self.groups(k)
        # awq packs 32/b values of a row along N; gptq and w4a16 pack along K
        weights = 4 * k * ceil_div(n * b, 32) if self.layout == "awq" else 4 * ceil_div(k * b, 32) * n
        scales = 2 * g * n
        zeros = 4 * g * ceil_div(n * b, 32) if self.zeros else 0
        g_idx = 4 * k if self.g_idx else 0
        shape = 16 if self.layout == "w4a16" else 0
        return e * (weights + scales + zeros + g_idx + shape)

    def describe(self) -> str:
        group = "channel-wise" if self.group <= 0 else f"group {self.group}"
        extra = (" + packed zeros" if self.zeros else "") + (" + int32 g_idx per input row" if self.g_idx else "")
        return (f"{self.bits}-bit weights packed in int32, fp16 scale per {group}{extra}; "
                "embeddings, lm_head, norms, routers bf16")


class Bnb4Format(QuantFormat):
    """bitsandbytes 4-bit (NF4 / FP4): codes 2 per byte + absmax per block of 64 (fp32, or 8-bit with double
    quantization + fp32 per 256 absmax); bitsandbytes `functional.quantize_4bit`, QLoRA (Dettmers et al.
    2023, arXiv:2305.14314). Per matrix of n = K*N values:
    ceil(n/2) + 4 ceil(n/64) + 64 (quant_map), or with dq ceil(n/2) + ceil(n/64) + 4 ceil(n/64/256) + 1024
    (nested quant map) + 4 (offset) + 64.
    """

    family = "bitsandbytes"
    source = "bitsandbytes functional.quantize_4bit; QLoRA arXiv:2305.14314"

    def __init__(self, quant_type: str = "nf4", double_quant: bool = False, blocksize: int = 64,
                 keep_high_precision: Iterable[str] | None = None) -> None:
        super().__init__(quant_type + (":dq" if double_quant else ""), keep_high_precision)
        self.quant_type, self.double_quant, self.blocksize = quant_type, double_quant, blocksize

    def matrix_bytes(self, e: int, n: int, k: int) -> int:
        values = n * k
        blocks = ceil_div(values, self.blocksize)
        # double quant: uint8 absmax + fp32 nested absmax per 256 + fp32[256] nested map + fp32 offset
        absmax = blocks + 4 * ceil_div(blocks, 256) + 256 * 4 + 4 if self.double_quant else 4 * blocks
        return e * (ceil_div(values, 2) + absmax + 16 * 4)

    def describe(self) -> str:
        scale = "8-bit absmax + fp32 per 256 (double quant)" if self.double_quant else "fp32 absmax"
        return (f"bitsandbytes {self.quant_type.upper()}: 4-bit codes + {scale} per {self.blocksize} values; "
                "lm_head, embeddings bf16")


class NvFp4Format(QuantFormat):
    """NVFP4: E2M1 codes (2 per byte) + an FP8 E4M3 scale per 16 values + fp32 global (and input) scale per
    matrix = 4.5 bpw (NVIDIA ModelOpt NVFP4 export; vLLM `ModelOptNvFp4LinearMethod`; compressed-tensors
    nvfp4-pack-quantized)."""

    family = "nvfp4"
    source = "NVIDIA ModelOpt NVFP4; vLLM modelopt.py; NVIDIA blog 2025-06-24"

    def __init__(self, input_scale: bool = True, keep_high_precision: Iterable[str] | None = None) -> None:
        super().__init__("nvfp4", keep_high_precision)
        self.input_scale = input_scale

    def matrix_bytes(self, e: int, n: int, k: int) -> int:
        return e * (n * ceil_div(k, 2) + n * ceil_div(k, 16) + 4 + (4 if self.input_scale else 0))

    def describe(self) -> str:
        return "NVFP4: E2M1 4-bit + FP8 E4M3 scale per 16 + fp32 per tensor; embeddings, lm_head, norms, routers bf16"
