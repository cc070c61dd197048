"""Quantized weight formats: bytes of every tensor, of the whole model, and bits per weight.

Every format implements the `WeightFormat` protocol of `calc/weights.py` (`name`, `tensor_bytes(t, numel)`),
so `calc/parallel.py` sizes the weights each GPU holds with it. A format computes the exact bytes of the
whole tensor (all metadata included: scales, zero points, super-block scales, group indices); a
tensor-parallel shard of `numel` elements gets the same share of those bytes (`ceil(full * numel /
t.numel)`; the rounding of a group or block cut by a shard boundary is not modelled, < 0.1 %).

Shapes: kvcalc stores a linear weight as `(N, K)` = (out_features, in_features) and stacked experts as
`(E, N, K)`; K is the reduction dimension along which every format below groups its values (ggml's
`ne[0]`). bpw = bits per weight *including* all metadata.

Layouts (byte-exact: they reproduce 114 published checkpoint sizes, docs/accuracy-quant.md, and follow the
engine / library code each class cites):

- `bf16` / `fp16` / `fp32`: numel x 2 / 2 / 4 bytes, every tensor.
- `fp8` (per-tensor, default; vLLM `--quantization fp8`, ModelOpt/compressed-tensors FP8): e4m3 [N, K] +
  one fp32 weight scale (+ one fp32 input scale when static) per matrix: 8 bpw.
  `fp8:channel` (compressed-tensors FP8_DYNAMIC, fbgemm_fp8): + a 16-bit scale per output row: 8 + 16/K.
  `fp8:block` (DeepSeek-V3/R1 `weight_block_size [128, 128]`, Qwen3-FP8): + fp32 `weight_scale_inv`
  [ceil(N/128), ceil(K/128)]: 8 + 32/16384 ~ 8.002 (deepseek-ai/DeepSeek-V3 `inference/model.py` Linear).
- `int8` (W8A8 INT8, compressed-tensors int-quantized, SmoothQuant-style): int8 [N, K] + 16-bit scale per
  row: 8 + 16/K; activations are quantized per token at run time (nothing stored).
- `gptq:BITS:GROUP[:act]` (AutoGPTQ / GPTQModel `QuantLinear` buffers, GPTQModel @ f4c327a1
  `nn_modules/qlinear/__init__.py`): qweight int32 [ceil(K*b/32), N], qzeros int32 [G, ceil(N*b/32)],
  scales fp16 [G, N] with G = ceil(K/g) (g = -1: one group, channel-wise), + g_idx int32 [K] with
  `:act` (desc_act / act-order: vLLM gptq_marlin keeps g_idx and its sort indices only then; the
  checkpoint file always stores g_idx, `:file` adds it too). bpw = b + (16 + b)/g (+ 32/N with g_idx).
- `awq:BITS:GROUP` (AutoAWQ GEMM layout, casper-hansen/AutoAWQ @ 88e4c76b `awq/modules/linear/gemm.py`):
  qweight int32 [K, N*b/32], qzeros int32 [G, N*b/32], scales fp16 [G, N]: 4 + 20/g (4-bit g128 4.156).
  AutoAWQ's kernels are 4-bit only; other widths use the same packing formula.
- `w4a16[:GROUP][:asym]` (compressed-tensors pack-quantized, neuralmagic/compressed-tensors @ 52792be0
  `compressors/quantized_compressors/pack_quantized.py`): weight_packed int32 [N, ceil(K*b/32)], scale
  16-bit [N, G], zero point int32 [ceil(N*b/32), G] only when asymmetric, weight_shape int64 [2]:
  4 + 16/g (asym 4 + 20/g).
- `nf4` / `fp4` (bitsandbytes `Linear4bit`, bitsandbytes @ 95f9af30 `functional.py::quantize_4bit`,
  `QuantState.as_dict`): uint8 [ceil(n/2)] codes, blocksize 64 absmax fp32 [ceil(n/64)], quant_map fp32 [16]:
  4.5 bpw. `:dq` (double quantization, `bnb_4bit_use_double_quant`): absmax uint8 [ceil(n/64)] +
  nested_absmax fp32 [ceil(n/64/256)] + nested_quant_map fp32 [256] + offset fp32: 4 + 8/64 + 32/16384
  = 4.127 bpw. The ~100 B packed JSON quant-state per tensor is not counted.
- `bnb-int8` (LLM.int8(), Dettmers et al. 2022; `Int8Params`): int8 [N, K] + SCB fp32 [N]: 8 + 32/K;
  outlier columns are split off at run time, no extra stored weights.
- `nvfp4` (NVIDIA ModelOpt `hf_quant_config.json quant_algo NVFP4`, compressed-tensors nvfp4-pack-quantized;
  NVIDIA blog "Introducing NVFP4", 2025-06-24): E2M1 uint8 [N, K/2] + float8_e4m3 scale [N, K/16] + fp32
  global scale + fp32 input scale per matrix: 4.5 bpw.
- `mxfp4` (OCP Microscaling Formats spec v1.0 2023; gpt-oss `*_blocks` uint8 [.., K/32, 16] + `*_scales`
  uint8 [.., K/32], openai/gpt-oss @ 7b583341 `gpt_oss/torch/weights.py`): E2M1 + one E8M0 scale per 32:
  17 B per 32 values = 4.25 bpw.
- GGUF / llama.cpp (`Q4_K_M`, `Q8_0`, `IQ4_XS`, ..., `F16`, `gguf:BF16`): see `GgufRecipe`. Block sizes
  come from `gguf.constants.GGML_QUANT_SIZES` (the ggml type table), never from a hand-typed table.

What stays in high precision (16-bit, 2 B per value; a format's `keep_high_precision` set of roles):

- every format: norms, biases (and every tensor whose name does not end in `.weight`), 1-D tensors, MoE
  routers (`ffn_gate_inp`, the shared-expert gate), position embeddings, SSM conv1d/A/D tensors;
- GPTQ / AWQ / W4A16 / FP8 / INT8 / NVFP4 / MXFP4 / bitsandbytes: also the token embedding (an embedding is
  not a Linear: no engine kernel quantizes it) and by default the output head `output` (lm_head): AutoGPTQ,
  AutoAWQ, llm-compressor (`ignore: ["lm_head"]`), ModelOpt (`exclude_modules`), transformers bnb and vLLM
  online fp8 all keep it. `keep_high_precision` replaces the default `{"output"}` (empty set: lm_head
  quantized, as GPTQModel's `lm_head=True` does), and may name more roles (`attn_*` for NVFP4 MoE exports
  that keep attention in BF16) or single layers (`blk.0.ffn_down`).
- GGUF: llama.cpp's own rules (F32 for 1-D tensors, norms, biases, routers; token_embd and output
  quantized); `keep_high_precision` turns those roles into F16 (as `--token-embedding-type f16
  --output-tensor-type f16 --tensor-type ROLE=f16` would).

Engine quirks that make GPU bytes differ from file bytes (quant_formats.md sections 8 and 11, vllm_memory.md
section 6): `mxfp4:marlin` models vLLM's Marlin MXFP4 MoE padding (hidden -> multiple of 256, expert
intermediate -> multiple of 128; gpt-oss-120b 65.90 GiB predicted vs 65.97 GiB logged by vLLM 0.10.1);
the Hopper triton_kernels layout padding (64.38 GiB logged vs 60.77 GiB of tensors) has no formula in vLLM's
code and is not modelled; neither are the Blackwell swizzle padding of NVFP4 scales, symmetric GPTQ's
dropped qzeros under Marlin (-b/(8g) bpw), transformers' BF16 fallbacks (FP8 on compute capability < 8.9,
MXFP4 without triton kernels) nor llama.cpp keeping token_embd on the host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, ClassVar

from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import InputError
from kvcalc.spec.layers import FullAttention, MLAAttention, MoEMLP, TensorSpec
from kvcalc.spec.model import ModelSpec
from kvcalc.units import ceil_div, round_up

#: Bytes of a value kept in high precision (bf16 / fp16) by the safetensors formats.
HIGH_PRECISION_BYTES = 2

#: Roles no engine quantizes, whatever the format: norms, routers, position embeddings, SSM kernels.
ALWAYS_HIGH_PRECISION_ROLES = frozenset({
    "norm", "ssm_norm", "ffn_gate_inp", "ffn_gate_inp_shexp", "pos_embd", "attn_sinks", "ssm_conv1d", "ssm_a",
    "ssm_d",
})

#: Roles kvcalc's model families emit (what `--keep-fp16` accepts, besides the aliases and globs).
KNOWN_ROLES = (
    "token_embd", "output", "pos_embd", "norm", "attn_q", "attn_k", "attn_v", "attn_qkv", "attn_output",
    "attn_q_a", "attn_q_b", "attn_kv_a_mqa", "attn_kv_b", "attn_sinks", "ffn_gate", "ffn_up", "ffn_down",
    "ffn_gate_up", "ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps", "ffn_gate_up_exps",
    "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp", "ffn_gate_inp_shexp", "ssm_in", "ssm_out", "ssm_x",
    "ssm_dt", "ssm_a", "ssm_d", "ssm_conv1d", "ssm_norm", "ssm_ba", "ssm_alpha", "ssm_beta", "ssm_in_qkv",
    "ssm_in_z",
)

#: `--keep-fp16` aliases -> role names or globs.
KEEP_ALIASES: dict[str, tuple[str, ...]] = {
    "lm_head": ("output",),
    "head": ("output",),
    "embed": ("token_embd",),
    "embeddings": ("token_embd",),
    "embed_tokens": ("token_embd",),
    "attn": ("attn_*",),
    "attention": ("attn_*",),
    "experts": ("ffn_*_exps",),
    "shared_experts": ("ffn_*_shexp",),
    "mlp": ("ffn_*",),
    "router": ("ffn_gate_inp",),
    "ssm": ("ssm_*",),
}


def parse_keep(text: str | Iterable[str] | None) -> frozenset[str] | None:
    """Parse `--keep-fp16 lm_head,embed` into role names: `lm_head` -> `output`, `embed` -> `token_embd`,
    `attn` -> `attn_*` (a glob), `none` -> the empty set; role names (`attn_v`), globs (`ffn_*_exps`) and
    single layers (`blk.0.ffn_down`) pass through. None or '' -> None (the format's default)."""
    if text is None:
        return None
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    items = [s for s in items if s]
    if not items:
        return None
    roles: set[str] = set()
    for item in items:
        key = item.lower()
        if key == "none":
            continue
        if key in KEEP_ALIASES:
            roles.update(KEEP_ALIASES[key])
        elif key in KNOWN_ROLES or "*" in key or key.startswith("blk."):
            roles.add(key)
        else:
            raise InputError(
                f"--keep-fp16: unknown tensor role '{item}'; use {', '.join(sorted(KEEP_ALIASES))}, none, "
                f"a role ({', '.join(KNOWN_ROLES)}), a glob like ffn_*_exps, or blk.N.ROLE"
            )
    return frozenset(roles)


def _matches(t: TensorSpec, patterns: Iterable[str]) -> bool:
    for p in patterns:
        if p.startswith("blk."):
            if t.layer is not None and fnmatchcase(f"blk.{t.layer}.{t.role}", p):
                return True
        elif fnmatchcase(t.role, p):
            return True
    return False


def matrix_dims(t: TensorSpec) -> tuple[int, int, int]:
    """(E, N, K): stacked matrices, output rows, input columns (K = the quantized, contiguous dim)."""
    shape = t.shape
    if len(shape) == 1:
        return 1, 1, shape[0]
    e = 1
    for d in shape[:-2]:
        e *= d
    return e, shape[-2], shape[-1]


def is_linear_weight(t: TensorSpec) -> bool:
    """A matrix a weight-quantization kernel can take: a `.weight` of >= 2 dims, not a norm/router/..."""
    return (
        t.name.endswith(".weight")
        and sum(1 for d in t.shape if d > 1) >= 2
        and t.role not in ALWAYS_HIGH_PRECISION_ROLES
    )


def _share(full: int, t: TensorSpec, numel: int) -> int:
    """Bytes of a `numel`-element shard of a tensor whose whole takes `full` bytes."""
    if numel == t.numel or t.numel == 0:
        return full
    return ceil_div(full * numel, t.numel)


# --------------------------------------------------------------------------------------------------------
# Safetensors-style formats (one class per layout)
# --------------------------------------------------------------------------------------------------------


class QuantFormat:
    """Base: quantizes every Linear weight except the kept roles; the rest is 16-bit.

    Subclasses set `name`, `family`, `source` and implement `matrix_bytes(e, n, k)` (bytes of `e` stacked
    [n, k] matrices with all their metadata).
    """

    family = "quantized"
    source = ""
    #: Roles kept 16-bit unless overridden (the lm_head; the embedding is never a Linear).
    default_keep: frozenset[str] = frozenset({"output"})
    quantizes_embedding = False

    def __init__(self, name: str, keep_high_precision: Iterable[str] | None = None) -> None:
        self.name = name
        self.keep = frozenset(keep_high_precision) if keep_high_precision is not None else self.default_keep

    def bind(self, model: ModelSpec) -> QuantFormat:
        """The format specialised to `model` (only GGUF recipes depend on the model; others return self)."""
        return self

    def quantizes(self, t: TensorSpec) -> bool:
        if not is_linear_weight(t) or _matches(t, self.keep):
            return False
        return self.quantizes_embedding or t.role != "token_embd"

    def matrix_bytes(self, e: int, n: int, k: int) -> int:
        raise NotImplementedError

    def storage(self, t: TensorSpec) -> str:
        """What a tensor is stored as: the format's name, or `bf16` for kept tensors."""
        return self.name if self.quantizes(t) else "bf16"

    def full_bytes(self, t: TensorSpec) -> int:
        if self.quantizes(t):
            return self.matrix_bytes(*matrix_dims(t))
        return t.numel * HIGH_PRECISION_BYTES

    def tensor_bytes(self, t: TensorSpec, numel: int) -> int:
        return _share(self.full_bytes(t), t, numel)

    def describe(self) -> str:
        return self.name

    def bits_per_weight(self, model: ModelSpec) -> float:
        """Effective bits per weight of `model` in this format (module-level `bits_per_weight`)."""
        return bits_per_weight(model, self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, keep={sorted(self.keep)})"


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


@dataclass(frozen=True)
class Mxfp4Kernel:
    """How one engine kernel lays out MXFP4 MoE experts in GPU memory (vLLM
    `mxfp4_round_up_hidden_size_and_intermediate_size` and `_swizzle_mxfp4`):

    - `intermediate` / `hidden`: the expert intermediate size per TP partition and the hidden size are rounded up
      to these multiples (1 = unpadded);
    - `scale_copy`: the triton_kernels path keeps the loaded uint8 scales *and* a swizzled copy in its
      PrecisionConfig (Mxfp4MoEMethod.process_weights_after_loading deletes w13_weight/w2_weight but not the
      scales); the copy is padded to `scale_rows` rows on the non-MX axis and an even count on the MX axis
      (triton_kernels hopper_scale.py SWIZZLE_ALIGN_M = 2 x num_warps x 2 x 8 = 256 with num_warps 8;
      SWIZZLE_ALIGN_K = 2);
    - `fp32_bias`: expert biases cast bf16 -> fp32 (`layer.w13_bias.to(torch.float32)`).
    """

    name: str
    intermediate: int = 1
    hidden: int = 1
    scale_copy: bool = False
    scale_rows: int = 1
    fp32_bias: bool = False
    source: str = ""


#: MXFP4 MoE kernels by name (notes/engines.md section 2.2; vLLM fused_moe/oracle/mxfp4.py).
MXFP4_KERNELS: dict[str, Mxfp4Kernel] = {
    "checkpoint": Mxfp4Kernel(name="checkpoint", source="bytes as stored (OCP MX v1.0)"),
    "marlin": Mxfp4Kernel(name="marlin", intermediate=128, hidden=256,
                          source="vLLM Marlin MXFP4 MoE: n % 256 == 0 and k % 128 == 0 (mxfp4_utils.py)"),
    "triton-hopper": Mxfp4Kernel(name="triton-hopper", intermediate=64, scale_copy=True, scale_rows=256,
                                 fp32_bias=True,
                                 source="vLLM triton_kernels matmul_ogs on SM90: intermediate to 64, swizzled "
                                 "scale copy (hopper_scale.py), fp32 biases"),
    "triton": Mxfp4Kernel(name="triton", intermediate=64, scale_copy=True, fp32_bias=True,
                          source="vLLM triton_kernels matmul_ogs, strided layout (no swizzle padding)"),
    "flashinfer-trtllm": Mxfp4Kernel(name="flashinfer-trtllm", intermediate=256, hidden=256,
                                     source="vLLM FlashInfer TRT-LLM MXFP4 MoE (Blackwell): both to 256"),
    "flashinfer-cutlass": Mxfp4Kernel(name="flashinfer-cutlass", intermediate=128, hidden=128,
                                      source="vLLM FlashInfer CUTLASS MXFP4 MoE: both to 128"),
    "rocm": Mxfp4Kernel(name="rocm", intermediate=128, hidden=128,
                        source="vLLM ROCm get_padding_alignment() = 128 (gfx950: 256)"),
    "rocm-gfx950": Mxfp4Kernel(name="rocm-gfx950", intermediate=256, hidden=256,
                               source="vLLM ROCm get_padding_alignment() = 256 on gfx950"),
}


class MxFp4Format(QuantFormat):
    """MXFP4 (OCP MX v1.0): E2M1 codes + one E8M0 exponent per 32 values = 17 B per 32 = 4.25 bpw.

    `kernel` sizes what an engine kernel allocates for stacked experts (`Mxfp4Kernel`); `partition` is the
    number of slices each expert's intermediate is cut into (tp without expert parallelism, else 1): the
    padding applies per slice. Per rank with E_r experts, H hidden, I_p = round_up(I / partition, m_i):
        gate_up: E_r x 2 I_p x ceil(H' / 32) x 17 B,  down: E_r x H' x ceil(I_p / 32) x 17 B,  H' = round_up(H, m_h)
        + scale copy (triton): E_r x [round_up(2 I_p, 256) x round_up(H / 32, 2) + round_up(H, 256) x
          round_up(I_p / 32, 2)] B
        + biases (fp32 on triton: 4 B, else 2 B) x E_r x (2 I_p + H').
    gpt-oss-120b on one H100 (triton-hopper): 60.77 GiB of tensors + 3.38 GiB of scale copy + 0.07 GiB of fp32
    biases = 64.22 GiB (+ rotary cache), against vLLM's "Model loading took 64.38 GiB" (#33155).
    """

    family = "mxfp4"
    source = "OCP Microscaling Formats (MX) v1.0; openai/gpt-oss weights.py; vLLM mxfp4.py"

    def __init__(self, engine_padding: str | None = None, keep_high_precision: Iterable[str] | None = None,
                 *, partition: int = 1) -> None:
        kernel = MXFP4_KERNELS.get(engine_padding or "checkpoint")
        if kernel is None:
            raise InputError(f"mxfp4 kernel '{engine_padding}': use one of {', '.join(MXFP4_KERNELS)}")
        suffix = "" if kernel.name == "checkpoint" else f":{kernel.name}"
        super().__init__("mxfp4" + suffix, keep_high_precision)
        self.kernel = kernel
        self.engine_padding = None if kernel.name == "checkpoint" else kernel.name
        self.partition = partition

    def for_kernel(self, kernel: str, partition: int) -> MxFp4Format:
        """The same format laid out by `kernel`, experts sliced `partition` ways."""
        bound = MxFp4Format(kernel, self.keep, partition=partition)
        bound.name = self.name if kernel == "checkpoint" else f"{self.name.split(':')[0]}:{kernel}"
        return bound

    def _expert_rank(self, t: TensorSpec, numel: int) -> tuple[int, int, int]:
        """(experts on this rank, hidden H, intermediate per slice I) of an expert tensor's shard."""
        experts = t.shape[0]
        per_rank = experts * numel * self.partition // t.numel
        if t.role.startswith("ffn_down"):
            hidden, inter = t.shape[1], (t.shape[2] if len(t.shape) > 2 else 0)
        else:
            hidden = t.shape[2] if len(t.shape) > 2 else 0
            inter = t.shape[1] // 2
        return per_rank, hidden, inter // self.partition if inter else 0

    def tensor_bytes(self, t: TensorSpec, numel: int) -> int:
        if not t.role.endswith("_exps") or len(t.shape) < 2:
            return _share(self.full_bytes(t), t, numel)
        k = self.kernel
        experts, hidden, inter = self._expert_rank(t, numel)
        if t.name.endswith(".bias"):
            inter = inter or t.shape[1] // (2 * self.partition)
            rows = round_up(hidden or t.shape[1], k.hidden) if t.role.startswith("ffn_down") else \
                2 * round_up(inter, k.intermediate)
            return experts * rows * (4 if k.fp32_bias else HIGH_PRECISION_BYTES)
        if not self.quantizes(t):
            return _share(self.full_bytes(t), t, numel)
        i_p = round_up(inter, k.intermediate)
        h_p = round_up(hidden, k.hidden)
        if t.role.startswith("ffn_down"):
            values = experts * h_p * ceil_div(i_p, 32) * 17
            copy = experts * round_up(hidden, k.scale_rows) * round_up(ceil_div(i_p, 32), 2)
        else:
            values = experts * 2 * i_p * ceil_div(h_p, 32) * 17
            copy = experts * round_up(2 * i_p, k.scale_rows) * round_up(ceil_div(hidden, 32), 2)
        return values + (copy if k.scale_copy else 0)

    def full_bytes(self, t: TensorSpec) -> int:
        if self.quantizes(t):
            e, n, k = matrix_dims(t)
            return self.matrix_bytes(e, n, k)
        return t.numel * HIGH_PRECISION_BYTES

    def matrix_bytes(self, e: int, n: int, k: int) -> int:
        return e * n * ceil_div(k, 32) * 17

    def describe(self) -> str:
        pad = "" if self.kernel.name == "checkpoint" else f"; laid out by {self.kernel.source}"
        return f"MXFP4: E2M1 4-bit + E8M0 scale per 32 (4.25 bpw){pad}; embeddings, lm_head, norms, routers bf16"


# --------------------------------------------------------------------------------------------------------
# GGUF / llama.cpp
# --------------------------------------------------------------------------------------------------------

#: llama.cpp file types (gguf-py `LlamaFileType`, minus MOSTLY_/ALL_) -> default tensor type, as
#: src/llama-quant.cpp `llama_ftype_get_default_type` maps them. Names only; sizes come from gguf.
GGUF_FTYPES: dict[str, str] = {
    "F32": "F32", "F16": "F16", "BF16": "BF16", "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1",
    "Q8_0": "Q8_0", "Q2_K": "Q2_K", "Q2_K_S": "Q2_K", "Q3_K_S": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_S": "Q5_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K",
    "IQ2_XXS": "IQ2_XXS", "IQ2_XS": "IQ2_XS", "IQ2_S": "IQ2_XS", "IQ2_M": "IQ2_S", "IQ3_XXS": "IQ3_XXS",
    "IQ3_XS": "IQ3_S", "IQ3_S": "IQ3_S", "IQ3_M": "IQ3_S", "IQ1_S": "IQ1_S", "IQ1_M": "IQ1_M",
    "IQ4_NL": "IQ4_NL", "IQ4_XS": "IQ4_XS", "TQ1_0": "TQ1_0", "TQ2_0": "TQ2_0", "MXFP4_MOE": "MXFP4",
    "NVFP4": "NVFP4", "Q1_0": "Q1_0",
}
#: llama-quantize's aliases (tools/quantize/quantize.cpp QUANT_OPTIONS).
GGUF_ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}
_UNQUANTIZED = ("F32", "F16", "BF16")
_IQ2_FAMILY = frozenset({"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"})
#: `tensor_type_fallback` (src/llama-quant.cpp): target type when ne[0] is not a multiple of its block.
_FALLBACK = {
    "IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_S": "IQ4_NL",
    "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL", "Q2_K": "Q4_0", "Q3_K": "Q4_0",
    "TQ1_0": "Q4_0", "TQ2_0": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
}
#: llama.cpp model types LLM_TYPE_70B (src/llama-model.cpp): 80-layer Llama with GQA, Qwen2, Deci.
_ARCH_70B = frozenset({"llama", "mistral", "qwen2", "deci", "nemotron-nas"})


def ggml_block(type_name: str) -> tuple[int, int]:
    """(values per block, bytes per block) of a ggml type, from `gguf.constants.GGML_QUANT_SIZES`."""
    try:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from kvcalc.errors import EnvironmentProblem

        raise EnvironmentProblem("GGUF formats need the gguf package for block sizes: pip install gguf") \
            from exc
    try:
        return tuple(GGML_QUANT_SIZES[GGMLQuantizationType[type_name]])  # type: ignore[return-value]
    except KeyError as exc:
        raise InputError(f"ggml type {type_name} is not in this gguf package's GGML_QUANT_SIZES") from exc


def ggml_bytes(type_name: str, numel: int, ne0: int) -> int:
    """ggml_nbytes: (ne0 / block) * type_size * rows, rows = numel / ne0 (ne0 a multiple of the block)."""
    block, size = ggml_block(type_name)
    return numel // ne0 * ceil_div(ne0, block) * size


@dataclass(frozen=True)
class _GgufContext:
    """The hyper-parameters llama.cpp's rules read (`llama_hparams`, `llm_arch`)."""

    arch: str
    n_layer: int
    n_expert: int
    n_gqa: int
    n_attention_wv: int
    tied: bool
    is_70b: bool
    mxfp4_experts: bool


def _gguf_context(model: ModelSpec) -> _GgufContext:
    n_expert = max((layer.mlp.num_experts for layer in model.layers if isinstance(layer.mlp, MoEMLP)), default=0)
    n_gqa = 0
    for layer in model.layers:
        if isinstance(layer.mixer, FullAttention):
            n_gqa = layer.mixer.num_heads // layer.mixer.num_kv_heads
            break
        if isinstance(layer.mixer, MLAAttention):  # MLA converts as MQA (head_count_kv = 1) since 2025
            n_gqa = layer.mixer.num_heads
            break
    tensors = model.all_tensors()
    wv = sum(1 for t in tensors if t.role in ("attn_v", "attn_qkv", "attn_kv_b") and t.name.endswith(".weight"))
    quant = model.quantization_config or {}
    kv = model.num_kv_heads
    return _GgufContext(
        arch=model.model_type,
        n_layer=model.num_layers,
        n_expert=n_expert,
        n_gqa=n_gqa,
        n_attention_wv=wv,
        tied=not any(t.role == "output" for t in tensors),
        is_70b=model.model_type in _ARCH_70B and model.num_layers == 80
        and not (model.model_type == "llama" and kv == model.num_attention_heads),
        mxfp4_experts=str(quant.get("quant_method", "")).lower() == "mxfp4",
    )


def _category(t: TensorSpec) -> str:
    """llama-quant.cpp `tensor_get_category` by kvcalc role (fused Phi-3 gate_up is GGUF's ffn_up)."""
    role = t.role
    if role in ("output", "token_embd", "attn_qkv", "attn_kv_b", "attn_v", "attn_k", "attn_q", "attn_output"):
        return role
    if role.startswith(("ffn_up", "ffn_gate_up")):
        return "ffn_up"
    if role.startswith("ffn_gate") and not role.startswith("ffn_gate_inp"):
        return "ffn_gate"
    if role.startswith("ffn_down"):
        return "ffn_down"
    return "other"


def _gguf_dims(t: TensorSpec) -> int:
    """ggml_n_dims: dims counted up to the last one > 1, in ggml order (ne0 = innermost)."""
    ne = list(reversed(t.shape))
    while len(ne) > 1 and ne[-1] == 1:
        ne.pop()
    return len(ne)


def _converter_f32(t: TensorSpec) -> bool:
    """convert_hf_to_gguf.py `prepare_tensors`: F32 for 1-D tensors, norms, every non-`.weight` tensor
    (biases, SSM A/D), routers, position embeddings, SSM conv1d."""
    return (
        _gguf_dims(t) <= 1
        or t.name.endswith("_norm.weight")
        or not t.name.endswith(".weight")
        or t.role in ("ffn_gate_inp", "pos_embd", "ssm_conv1d", "norm", "ssm_norm")
    )


def _allows_quantization(t: TensorSpec) -> bool:
    """llama-quant.cpp `tensor_allows_quantization`: >= 2 dims, name ends in `weight`, not a norm, router,
    position embedding or SSM conv1d."""
    return (
        _gguf_dims(t) >= 2
        and t.name.endswith("weight")
        and "_norm.weight" not in t.name
        and "ffn_gate_inp.weight" not in t.name
        and t.role not in ("pos_embd", "ssm_conv1d")
    )


def _more_bits(i: int, n: int) -> bool:
    """use_more_bits: the first and last eighth of the layers and every third one between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


_LAYER = re.compile(r"^blk\.(\d+)\.")


class GgufRecipe(QuantFormat):
    """A llama.cpp file type (`llama-quantize <ftype>`) applied tensor by tensor, as `src/llama-quant.cpp`
    (ggml-org/llama.cpp, blob 007dbbf3) decides: `tensor_allows_quantization`, `llama_tensor_get_type_impl`,
    `tensor_type_fallback`, `llama_ftype_get_default_type`; summary in quant_formats.md section 2.

    Rules (first match wins; `n` = layers, `i` = the tensor's running index among its kind, or for MoE
    models (n_expert > 1) the layer parsed from `blk.<i>.`; `use_more_bits(i, n)` = i < n/8 or i >= 7n/8
    or (i - n/8) % 3 == 2, i.e. about half of the layers):
    - 1-D tensors, norms, biases, routers, position embeddings, SSM conv1d stay F32 (converter) and are
      never requantized; stacked MXFP4 experts of gpt-oss stay MXFP4 ("requantizing from mxfp4 is disabled").
    - F16/BF16/F32 file types: every other tensor in that type, no mixture rules.
    - output.weight (and token_embd when the head is tied): Q8_0 for MXFP4_MOE, Falcon, or when ne0 is not a
      multiple of the default type's block; Q5_K for IQ1/IQ2/IQ3_XXS; else Q6_K (Q8_0 stays Q8_0).
    - token_embd (untied): the default type (Q2_K for IQ1/IQ2_XXS/XS, IQ3_S for IQ2_S/M and IQ3_XXS).
    - attn_v (also fused attn_qkv and MLA attn_kv_b): Q2_K -> Q4_K if n_head/n_head_kv >= 4 else Q3_K;
      Q3_K_M -> Q5_K for the first 2 else Q4_K; Q3_K_L -> Q5_K; Q4_K_M/Q5_K_M -> Q6_K where use_more_bits;
      Q4_K_S -> Q5_K for the first 4; IQ4_XS/NL -> Q5_K with GQA >= 4; 70B models (80-layer Llama/Qwen2)
      lift Q3_K/Q4_K to Q5_K; 8-expert models (Mixtral) -> Q8_0.
    - ffn_down (dense, shared and routed experts): Q2_K -> Q3_K; Q3_K_M -> Q5_K for i < n/16 else Q4_K;
      Q3_K_L -> Q5_K; Q4_K_M and Q5_K_M -> Q6_K where use_more_bits; Q4_K_S -> Q5_K for i < n/8; IQ4_XS/NL
      (no imatrix) -> Q5_K for i < n/8; Falcon has its own variants.
    - attn_output: Q2_K -> Q3_K, Q3_K_M -> Q4_K, Q3_K_L -> Q5_K (8-expert models: Q5_K for most k-quants);
      attn_k -> Q8_0 in 8-expert models; IQ2/IQ1/IQ3 mixes have their own branch.
    - then the fallback when ne0 is not a multiple of the block: IQ* and IQ4_XS -> IQ4_NL, Q2_K/Q3_K ->
      Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; F16 if still not a multiple of 32.
    `pure` (`llama-quantize --pure`) skips the mixture rules; `imatrix` selects the imatrix variants of the
    IQ3_XXS / IQ4 / Q4_0 / Q5_0 rules. Tensor bytes: `ggml_nbytes` with block sizes from gguf's
    GGML_QUANT_SIZES. Alignment padding (<= 31 B per tensor) and the GGUF header/tokenizer are not counted.

    The rules need the whole model (layer counts, GQA, tied head): call `bind(model)` (or pass `model=` to
    `parse_quant`) before `tensor_bytes`.
    """

    family = "gguf"
    source = "llama.cpp src/llama-quant.cpp (llama_tensor_get_type_impl); ggml GGML_QUANT_SIZES"
    default_keep: frozenset[str] = frozenset()

    def __init__(self, ftype: str, *, pure: bool = False, imatrix: bool = False,
                 keep_high_precision: Iterable[str] | None = None) -> None:
        name = ftype + (":pure" if pure else "") + (":imatrix" if imatrix else "")
        super().__init__(name, keep_high_precision)
        self.ftype, self.pure, self.imatrix = ftype, pure, imatrix
        self.default_type = GGUF_FTYPES[ftype]
        self.types: dict[str, str] | None = None
        self.bound_to: str | None = None
        self._model: ModelSpec | None = None

    def bind(self, model: ModelSpec) -> GgufRecipe:
        if self.types is not None and self._model is model:
            return self
        bound = GgufRecipe(self.ftype, pure=self.pure, imatrix=self.imatrix, keep_high_precision=self.keep)
        bound.types = self._assign(model)
        bound.bound_to = model.id
        bound._model = model
        return bound

    # ---- per-tensor type assignment -------------------------------------------------------------------

    def _assign(self, model: ModelSpec) -> dict[str, str]:
        ctx = _gguf_context(model)
        counters = {"attn_v": 0, "ffn_down": 0, "ffn_gate": 0, "ffn_up": 0}
        types: dict[str, str] = {}
        # llama_model_loader's weights_map order: by layer (global tensors first), then by name.
        ordered = sorted(model.all_tensors(), key=lambda t: (-1 if t.layer is None else t.layer, t.name))
        for t in ordered:
            types[t.name] = self._type_for(t, ctx, counters)
        return types

    def _type_for(self, t: TensorSpec, ctx: _GgufContext, counters: dict[str, int]) -> str:
        if _converter_f32(t):
            return "F32"
        if ctx.mxfp4_experts and t.role.endswith("_exps"):
            return "MXFP4"
        if not _allows_quantization(t):
            return "F16"
        if _matches(t, self.keep):
            return "F16"
        if self.default_type in _UNQUANTIZED:
            return self.default_type
        new = self.default_type
        if not self.pure:
            new = self._rules(t, ctx, counters, new)
        return self._fallback(t, new)

    def _fallback(self, t: TensorSpec, new: str) -> str:
        ne0 = t.shape[-1]
        if new in _UNQUANTIZED or ne0 % ggml_block(new)[0] == 0:
            return new
        if new not in _FALLBACK:
            raise InputError(f"{self.name}: {t.name} has ne0={ne0}, not a multiple of {new}'s block "
                             f"{ggml_block(new)[0]}, and llama.cpp defines no fallback for {new}")
        new = _FALLBACK[new]
        return new if ne0 % ggml_block(new)[0] == 0 else "F16"

    def _rules(self, t: TensorSpec, c: _GgufContext, counters: dict[str, int], new: str) -> str:
        """llama_tensor_get_type_impl, branch for branch."""
        f, cat = self.ftype, _category(t)
        moe8 = c.n_expert == 8

        def layer_info(kind: str) -> tuple[int, int]:
            if c.n_expert > 1:
                match = _LAYER.match(t.name)
                return (int(match.group(1)) if match else 0), c.n_layer
            return counters[kind], c.n_layer

        attn_v_like = cat in ("attn_v", "attn_qkv", "attn_kv_b")
        if cat == "output" or (c.tied and cat == "token_embd"):
            if f == "MXFP4_MOE" or c.arch == "falcon" or t.shape[-1] % ggml_block(new)[0]:
                new = "Q8_0"
            elif f in ("IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"):
                new = "Q5_K"
            elif new != "Q8_0":
                new = "Q6_K"
        elif f == "MXFP4_MOE":
            new = "MXFP4" if len(t.shape) == 3 and t.shape[0] > 1 else "Q8_0"
        elif cat == "token_embd":
            if f in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
                new = "Q2_K"
            elif f in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
                new = "IQ3_S"
            elif f in ("TQ1_0", "TQ2_0"):
                new = "Q4_K"
        elif f in _IQ2_FAMILY:
            if attn_v_like:
                low = "IQ3_S" if f in ("IQ2_S", "IQ2_M") else "Q2_K"
                new = "Q4_K" if c.n_gqa >= 4 or c.n_expert >= 4 else low
                counters["attn_v"] += 1
            elif moe8 and cat == "attn_k":
                new = "Q4_K"
            elif cat == "ffn_down":
                if counters["ffn_down"] < c.n_layer // 8:
                    new = "IQ3_S" if f in ("IQ2_S", "IQ2_M") else "Q2_K"
                counters["ffn_down"] += 1
            elif cat == "attn_output":
                if moe8:
                    new = "Q5_K"
                elif f in ("IQ1_S", "IQ1_M"):
                    new = "IQ2_XXS"
                elif f in ("IQ2_S", "IQ2_M"):
                    new = "IQ3_S"
        elif attn_v_like:
            i, n = counters["attn_v"], c.n_attention_wv
            if f == "Q2_K":
                new = "Q4_K" if c.n_gqa >= 4 else "Q3_K"
            elif f == "Q2_K_S" and c.n_gqa >= 4:
                new = "Q4_K"
            elif f == "IQ3_XXS":
                new = "Q4_K" if c.n_gqa >= 4 else ("IQ3_XXS" if self.imatrix else "IQ3_S")
            elif (f in ("IQ3_XS", "IQ3_S") and c.n_gqa >= 4) or f == "IQ3_M":
                new = "Q4_K"
            elif f == "Q3_K_M":
                new = "Q5_K" if i < 2 else "Q4_K"
            elif f == "Q3_K_L" or (f in ("IQ4_NL", "IQ4_XS") and c.n_gqa >= 4):
                new = "Q5_K"
            elif f in ("Q4_K_M", "Q5_K_M") and _more_bits(i, n):
                new = "Q6_K"
            elif f == "Q4_K_S" and i < 4:
                new = "Q5_K"
            if c.is_70b and new in ("Q3_K", "Q4_K"):
                new = "Q5_K"
            if moe8:
                new = "Q8_0"
            counters["attn_v"] += 1
        elif cat == "attn_k":
            if moe8:
                new = "Q8_0"
            elif f == "IQ3_XS":
                new = "IQ3_XXS"
            elif f == "IQ3_XXS":
                new = "IQ2_S"
        elif cat == "attn_q":
            if f == "IQ3_XS":
                new = "IQ3_XXS"
            elif f == "IQ3_XXS":
                new = "IQ2_S"
        elif cat == "ffn_down":
            i, n = layer_info("ffn_down")
            falcon = c.arch == "falcon"
            if f == "Q2_K":
                new = "Q3_K"
            elif f == "Q2_K_S":
                if i < n // 8:
                    new = "Q4_K"
            elif f == "IQ3_XXS" and not self.imatrix:
                new = "Q4_K" if i < n // 8 else "Q3_K"
            elif f == "Q3_K_M":
                new = "Q5_K" if i < n // 16 else ("Q4_K" if not falcon or _more_bits(i, n) else "Q3_K")
            elif f == "IQ3_M" and (i < n // 8 or (moe8 and _more_bits(i, n))):
                new = "Q4_K"
            elif f == "Q3_K_L":
                new = "Q4_K" if falcon else "Q5_K"
            elif f == "Q4_K_M":
                if falcon:
                    new = "Q6_K" if i < n // 16 else ("Q5_K" if _more_bits(i, n) else "Q4_K")
                elif _more_bits(i, n):
                    new = "Q6_K"
            elif i < n // 8 and f in ("IQ4_NL", "IQ4_XS") and not self.imatrix:
                new = "Q5_K"
            elif f == "Q5_K_M" and _more_bits(i, n):
                new = "Q6_K"
            elif f == "Q4_K_S" and not falcon and i < n // 8:
                new = "Q5_K"
            elif f in ("Q4_0", "Q5_0") and self.imatrix and i < n // 8:
                new = "Q4_1" if f == "Q4_0" else "Q5_1"
            counters["ffn_down"] += 1
        elif cat == "attn_output":
            if c.arch != "falcon":
                if moe8:
                    if f in ("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ3_S",
                             "IQ3_M", "IQ4_XS"):
                        new = "Q5_K"
                else:
                    new = {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K",
                           "IQ3_M": "Q4_K"}.get(f, new)
            elif f == "Q3_K_L":
                new = "Q4_K"
        elif cat in ("ffn_gate", "ffn_up"):
            i, n = layer_info(cat)
            if f == "IQ3_XS" and n // 8 <= i < 7 * n // 8:
                new = "IQ3_XXS"
            counters[cat] += 1
        return new

    # ---- WeightFormat ----------------------------------------------------------------------------------

    def storage(self, t: TensorSpec) -> str:
        if self.types is None:
            raise ValueError(f"GGUF recipe {self.name} is not bound to a model: call .bind(model) first "
                             "(or parse_quant(text, model=spec))")
        try:
            return self.types[t.name]
        except KeyError:
            raise ValueError(f"GGUF recipe {self.name} was bound to {self.bound_to}, which has no tensor "
                             f"{t.name}; bind it to this model") from None

    def quantizes(self, t: TensorSpec) -> bool:
        return self.storage(t) not in ("F32", "F16", "BF16")

    def full_bytes(self, t: TensorSpec) -> int:
        return ggml_bytes(self.storage(t), t.numel, t.shape[-1])

    def describe(self) -> str:
        if self.default_type in _UNQUANTIZED:
            return (f"llama.cpp {self.ftype}: every quantizable tensor {self.default_type}; 1-D, norms, biases, "
                    "routers F32")
        return (f"llama.cpp {self.ftype} mix (default {self.default_type}, output Q6_K, attn_v/ffn_down bumps "
                "by layer per llama-quant.cpp); 1-D, norms, biases, routers F32")


# --------------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------------

_GPTQ_BITS = (2, 3, 4, 8)


def _known_formats() -> str:
    ggufs = ", ".join(sorted(GGUF_FTYPES))
    return (
        "bf16, fp16, fp32, fp8[:tensor|:channel|:block], int8, bnb-int8, gptq:BITS:GROUP[:act|:file], "
        "awq:BITS:GROUP, w4a16[:GROUP][:asym], nf4[:dq], fp4[:dq], nvfp4, mxfp4[:marlin], and GGUF file "
        f"types (optionally gguf:NAME, :pure, :imatrix): {ggufs} (aliases Q3_K, Q4_K, Q5_K)"
    )


def _int(text: str, what: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"quantization '{spec}': {what} '{text}' is not an integer") from None


def _packed(kind: str, parts: list[str], spec: str, keep: frozenset[str] | None) -> QuantFormat:
    bits = _int(parts[1], "bits", spec) if len(parts) > 1 and parts[1] else 4
    group = _int(parts[2], "group size", spec) if len(parts) > 2 and parts[2] else 128
    flags = set(parts[3:])
    if bits not in _GPTQ_BITS:
        raise InputError(f"quantization '{spec}': {bits}-bit is not supported; use bits 2, 3, 4 or 8")
    if group != -1 and (group < 16 or group & (group - 1)):
        raise InputError(f"quantization '{spec}': group size {group} must be -1 (channel-wise) or a power of two "
                         ">= 16 (32, 64, 128 ...)")
    unknown = flags - {"act", "file", "desc_act"}
    if unknown or (kind == "awq" and flags):
        raise InputError(f"quantization '{spec}': unknown option(s) {', '.join(sorted(flags))}; "
                         "gptq takes :act (desc_act, g_idx kept) or :file (checkpoint layout with g_idx)")
    act = bool(flags & {"act", "desc_act"})
    return PackedIntFormat(kind, bits, group, zeros=True, g_idx="file" in flags, desc_act=act,
                           keep_high_precision=keep)


def parse_quant(text: str, keep_high_precision: Iterable[str] | str | None = None, *,
                model: ModelSpec | None = None) -> QuantFormat:
    """A weight format from its name (case-insensitive; see `_known_formats`).

    `keep_high_precision`: roles to keep 16-bit instead of the format's default (a set, or `--keep-fp16`
    text such as `lm_head,embed`). `model`: bind the format to it (needed by GGUF recipes).
    Unknown names raise InputError listing the known ones.
    """
    keep = parse_keep(keep_high_precision) if isinstance(keep_high_precision, str) else (
        frozenset(keep_high_precision) if keep_high_precision is not None else None)
    fmt = _parse(text, keep)
    return fmt.bind(model) if model is not None else fmt


def _parse(text: str, keep: frozenset[str] | None) -> QuantFormat:
    spec = text.strip()
    low = spec.lower().replace("-", "_") if spec.lower().startswith("bnb") else spec.lower()
    parts = low.split(":")
    head = parts[0]
    if head in ("bf16", "bfloat16", "fp16", "float16", "half", "fp32", "float32") and len(parts) == 1:
        return FloatFormat({"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32"}.get(head, head))
    if head in ("fp8", "fp8_e4m3", "w8a8_fp8"):
        gran = parts[1] if len(parts) > 1 else "tensor"
        aliases = {"tensor": "tensor", "per_tensor": "tensor", "channel": "channel", "per_channel": "channel",
                   "dynamic": "channel", "block": "block", "block128": "block"}
        if gran not in aliases or len(parts) > 2:
            raise InputError(f"quantization '{spec}': use fp8, fp8:channel or fp8:block (128x128 scales)")
        return Fp8Format(aliases[gran], keep_high_precision=keep)
    if head in ("int8", "w8a8", "w8a8_int8", "w8a16") and len(parts) == 1:
        return Int8Format("int8", keep)
    if head in ("bnb_int8", "llm.int8", "bnb8", "bnb_8bit") and len(parts) == 1:
        return BnbInt8Format("bnb-int8", keep)
    if head in ("gptq", "awq"):
        return _packed(head, parts, spec, keep)
    if head in ("w4a16", "w8a16_packed"):
        group = _int(parts[1], "group size", spec) if len(parts) > 1 and parts[1] else 128
        extra = set(parts[2:]) - {"asym", "sym"}
        if extra:
            raise InputError(f"quantization '{spec}': use w4a16[:GROUP][:asym]")
        return PackedIntFormat("w4a16", 4, group, zeros="asym" in parts, keep_high_precision=keep)
    if head in ("nf4", "fp4", "bnb_nf4", "bnb_fp4"):
        kind = head.replace("bnb_", "")
        extra = set(parts[1:]) - {"dq", "double_quant"}
        if extra:
            raise InputError(f"quantization '{spec}': use {kind} or {kind}:dq (double quantization)")
        return Bnb4Format(kind, double_quant=bool(parts[1:]), keep_high_precision=keep)
    if head == "nvfp4" and len(parts) == 1:
        return NvFp4Format(keep_high_precision=keep)
    if head == "mxfp4":
        pad = parts[1] if len(parts) > 1 else None
        if (pad is not None and pad not in MXFP4_KERNELS) or len(parts) > 2:
            raise InputError(f"quantization '{spec}': use mxfp4 or mxfp4:KERNEL ({', '.join(MXFP4_KERNELS)})")
        return MxFp4Format(pad, keep_high_precision=keep)
    gguf_parts = parts[1:] if head == "gguf" else parts
    if gguf_parts:
        name = gguf_parts[0].upper()
        name = GGUF_ALIASES.get(name, name)
        flags = set(gguf_parts[1:])
        if name in GGUF_FTYPES and flags <= {"pure", "imatrix"}:
            return GgufRecipe(name, pure="pure" in flags, imatrix="imatrix" in flags, keep_high_precision=keep)
    raise InputError(f"unknown quantization '{spec}'; known: {_known_formats()}")


# --------------------------------------------------------------------------------------------------------
# Whole-model figures
# --------------------------------------------------------------------------------------------------------


def bind_format(fmt: WeightFormat, model: ModelSpec) -> WeightFormat:
    """`fmt.bind(model)` where the format has one (GGUF recipes), else `fmt` itself."""
    bind = getattr(fmt, "bind", None)
    return bind(model) if callable(bind) else fmt


def model_weights_bytes(model: ModelSpec, fmt: WeightFormat) -> int:
    """Bytes of every tensor of the text model (`all_tensors`) in `fmt`, unsharded."""
    bound = bind_format(fmt, model)
    return sum(bound.tensor_bytes(t, t.numel) for t in model.all_tensors())


def bits_per_weight(model: ModelSpec, fmt: WeightFormat) -> float:
    """Effective bits per weight over the whole model: 8 x weight bytes / parameters (metadata, 16-bit
    embeddings and head included)."""
    params = sum(t.numel for t in model.all_tensors())
    return 8 * model_weights_bytes(model, fmt) / params if params else 0.0


def tensor_storage(model: ModelSpec, fmt: QuantFormat) -> dict[str, str]:
    """Tensor name -> what it is stored as (`Q6_K`, `gptq:4:128`, `bf16`, `F32` ...) for `model`."""
    bound = fmt.bind(model)
    return {t.name: bound.storage(t) for t in model.all_tensors()}


# --------------------------------------------------------------------------------------------------------
# Pre-quantized checkpoints
# --------------------------------------------------------------------------------------------------------

#: HF module-name fragments -> kvcalc roles (first match wins), for ignore / modules_to_not_convert lists.
_MODULE_ROLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"lm_head", ("output",)),
    (r"embed_tokens|\bwte\b|word_embeddings", ("token_embd",)),
    (r"q_a_proj", ("attn_q_a",)),
    (r"q_b_proj", ("attn_q_b",)),
    (r"kv_a_proj", ("attn_kv_a_mqa",)),
    (r"kv_b_proj", ("attn_kv_b",)),
    (r"qkv_proj|query_key_value", ("attn_qkv",)),
    (r"\bq_proj", ("attn_q",)),
    (r"\bk_proj", ("attn_k",)),
    (r"\bv_proj", ("attn_v",)),
    (r"o_proj|\bdense\b", ("attn_output",)),
    (r"self_attn|attention|\battn\b", ("attn_*",)),
    (r"shared_expert_gate", ("ffn_gate_inp_shexp",)),
    (r"shared_expert", ("ffn_*_shexp",)),
    (r"experts", ("ffn_*_exps",)),
    (r"router|(mlp|moe)\.gate($|\$|\b(?!_))", ("ffn_gate_inp",)),
    (r"gate_up_proj", ("ffn_gate_up",)),
    (r"gate_proj|\bw1\b", ("ffn_gate",)),
    (r"up_proj|\bw3\b", ("ffn_up",)),
    (r"down_proj|\bw2\b", ("ffn_down",)),
    (r"\bmlp\b|feed_forward", ("ffn_*",)),
    (r"mixer|mamba|linear_attn", ("ssm_*",)),
)


def roles_for_modules(modules: Iterable[str] | None) -> set[str]:
    """kvcalc roles (or `blk.N.role` patterns) for HF module names / `re:` patterns of an ignore list.
    Modules outside the text model (vision tower, projector) map to nothing."""
    roles: set[str] = set()
    for raw in modules or ():
        text = str(raw)
        text = text[3:] if text.startswith("re:") else text
        if re.search(r"vision|visual|multi_modal|mm_projector|audio", text):
            continue
        layer = re.search(r"layers\.(\d+)\.", text)
        for pattern, mapped in _MODULE_ROLES:
            if re.search(pattern, text):
                roles.update(f"blk.{layer.group(1)}.{r}" if layer else r for r in mapped)
                break
    return roles


def _keep_from(config: dict[str, Any], *keys: str, lm_head_default: bool = True) -> frozenset[str]:
    modules: list[str] = []
    for key in keys:
        value = config.get(key)
        if isinstance(value, list):
            modules.extend(str(v) for v in value)
    keep = roles_for_modules(modules)
    if lm_head_default:
        keep.add("output")
    return frozenset(keep)


def _compressed_tensors(qc: dict[str, Any]) -> QuantFormat | None:
    groups = qc.get("config_groups") or {}
    chosen: dict[str, Any] | None = None
    for group in groups.values():
        if isinstance(group, dict) and isinstance(group.get("weights"), dict):
            targets = [str(x) for x in group.get("targets") or []]
            if chosen is None or "Linear" in targets:
                chosen = group
    if chosen is None:
        return None
    w = chosen["weights"]
    keep = _keep_from(qc, "ignore", lm_head_default=False)
    bits = int(w.get("num_bits", 8))
    kind = str(w.get("type", "int")).lower()
    strategy = str(w.get("strategy", "tensor")).lower()
    group_size = w.get("group_size")
    if kind == "float" and bits == 8:
        gran = {"tensor": "tensor", "channel": "channel", "block": "block"}.get(strategy, "tensor")
        block = tuple(w.get("block_structure") or (128, 128))
        static = isinstance(chosen.get("input_activations"), dict) and not chosen["input_activations"].get("dynamic")
        return Fp8Format(gran, block=(int(block[0]), int(block[1])), static_input=bool(static),
                         keep_high_precision=keep)
    if kind == "float" and bits == 4:
        return NvFp4Format(input_scale=chosen.get("input_activations") is not None, keep_high_precision=keep)
    if kind == "int" and bits == 8 and strategy != "group":
        return Int8Format("int8", keep)
    if kind == "int" and bits in _GPTQ_BITS:
        group = int(group_size) if strategy == "group" and group_size else -1
        return PackedIntFormat("w4a16", bits, group, zeros=not w.get("symmetric", True),
                               g_idx=str(w.get("actorder") or "").lower() == "group", keep_high_precision=keep)
    return None


def format_from_quantization_config(model: ModelSpec) -> QuantFormat | None:
    """The format a pre-quantized checkpoint is stored in, from `model.quantization_config` (config.json),
    bound to `model`; None when the model is not quantized or the method is not modelled.

    Read: `fp8` (DeepSeek-V3/R1, Qwen3-FP8: `weight_block_size` -> block scales, else per-tensor;
    `ignored_layers` / `modules_to_not_convert`), `fbgemm_fp8` (per-channel), `mxfp4` (gpt-oss,
    `modules_to_not_convert`), `compressed-tensors` (`config_groups` FP8 / INT8 / W4A16 / NVFP4, `ignore`),
    `modelopt` (`quant_algo` FP8 / NVFP4, `exclude_modules`), `gptq` / `auto-round` (`bits`, `group_size`,
    `desc_act`, `lm_head`), `awq` (`bits`/`w_bit`, `group_size`/`q_group_size`), `bitsandbytes`
    (`load_in_4bit`, `bnb_4bit_quant_type`, `bnb_4bit_use_double_quant`, `load_in_8bit`,
    `llm_int8_skip_modules`) and kvcalc's own `gguf` marker (`file_type` of a .gguf file).
    """
    qc = model.quantization_config
    if not qc:
        return None
    method = str(qc.get("quant_method", "")).lower().replace("_", "-")
    fmt: QuantFormat | None = None
    if method == "fp8":
        keep = _keep_from(qc, "ignored_layers", "modules_to_not_convert")
        block = qc.get("weight_block_size")
        if block:
            fmt = Fp8Format("block", block=(int(block[0]), int(block[1])), keep_high_precision=keep)
        else:
            fmt = Fp8Format("tensor", static_input=qc.get("activation_scheme") == "static", keep_high_precision=keep)
    elif method == "fbgemm-fp8":
        fmt = Fp8Format("channel", keep_high_precision=_keep_from(qc, "modules_to_not_convert"))
    elif method == "mxfp4":
        fmt = MxFp4Format(keep_high_precision=_keep_from(qc, "modules_to_not_convert"))
    elif method == "compressed-tensors":
        fmt = _compressed_tensors(qc)
    elif method == "modelopt":
        nested = qc.get("quantization")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else qc
        algo = str(inner.get("quant_algo", "")).upper()
        keep = _keep_from(inner, "exclude_modules", "ignore")
        if algo == "FP8":
            fmt = Fp8Format("tensor", static_input=True, keep_high_precision=keep)
        elif algo.startswith("NVFP4"):
            fmt = NvFp4Format(keep_high_precision=keep)
    elif method in ("gptq", "auto-round", "autoround", "gptq-marlin"):
        bits = int(qc.get("bits", 4))
        group = int(qc.get("group_size", 128))
        keep = _keep_from(qc, "modules_to_not_convert", "modules_to_not_quantize",
                          lm_head_default=not qc.get("lm_head", False))
        fmt = PackedIntFormat("gptq", bits, group, desc_act=bool(qc.get("desc_act", False)),
                              keep_high_precision=keep)
    elif method in ("awq", "awq-marlin"):
        bits = int(qc.get("bits", qc.get("w_bit", 4)))
        group = int(qc.get("group_size", qc.get("q_group_size", 128)))
        fmt = PackedIntFormat("awq", bits, group, keep_high_precision=_keep_from(qc, "modules_to_not_convert"))
    elif method == "bitsandbytes":
        keep = _keep_from(qc, "llm_int8_skip_modules")
        if qc.get("load_in_4bit"):
            fmt = Bnb4Format(str(qc.get("bnb_4bit_quant_type", "fp4")).lower(),
                             double_quant=bool(qc.get("bnb_4bit_use_double_quant", False)), keep_high_precision=keep)
        elif qc.get("load_in_8bit"):
            fmt = BnbInt8Format("bnb-int8", keep)
    elif method == "gguf":
        file_type = str(qc.get("file_type", "")).upper().removeprefix("MOSTLY_").removeprefix("ALL_")
        if file_type in GGUF_FTYPES:
            fmt = GgufRecipe(file_type)
    return fmt.bind(model) if fmt is not None else None
