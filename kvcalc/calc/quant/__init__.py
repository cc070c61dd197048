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

from kvcalc.calc.quant.base import (
    ALWAYS_HIGH_PRECISION_ROLES,
    HIGH_PRECISION_BYTES,
    KEEP_ALIASES,
    KNOWN_ROLES,
    QuantFormat,
    bind_format,
    bits_per_weight,
    is_linear_weight,
    matrix_dims,
    model_weights_bytes,
    parse_keep,
    tensor_storage,
)
from kvcalc.calc.quant.checkpoint import format_from_quantization_config, roles_for_modules
from kvcalc.calc.quant.formats import (
    Bnb4Format,
    BnbInt8Format,
    FloatFormat,
    Fp8Format,
    Int8Format,
    NvFp4Format,
    PackedIntFormat,
)
from kvcalc.calc.quant.gguf import GGUF_ALIASES, GGUF_FTYPES, GgufRecipe, ggml_block, ggml_bytes
from kvcalc.calc.quant.mxfp4 import MXFP4_KERNELS, MxFp4Format, Mxfp4Kernel
from kvcalc.calc.quant.parse import parse_quant

__all__ = [
    "ALWAYS_HIGH_PRECISION_ROLES", "GGUF_ALIASES", "GGUF_FTYPES", "HIGH_PRECISION_BYTES", "KEEP_ALIASES", "KNOWN_ROLES",
    "MXFP4_KERNELS", "Bnb4Format", "BnbInt8Format", "FloatFormat", "Fp8Format", "GgufRecipe", "Int8Format",
    "MxFp4Format", "Mxfp4Kernel", "NvFp4Format", "PackedIntFormat", "QuantFormat", "bind_format", "bits_per_weight",
    "format_from_quantization_config", "ggml_block", "ggml_bytes", "is_linear_weight", "matrix_dims",
    "model_weights_bytes", "parse_keep", "parse_quant", "roles_for_modules", "tensor_storage",
]
