"""Which tensor-core rate a weight format's GEMMs run at on a card.

- 16-bit weights: the bf16 rate (fp16 on cards without bf16: T4, V100).
- FP8 weights (W8A8-FP8, block or per-tensor scales): the fp8 rate where the card has FP8 tensor cores
  (Hopper, Ada, Blackwell, MI300); elsewhere (A100) engines run them weight-only (FP8 Marlin, vLLM
  `marlin_utils_fp8.py`): dequantized to 16 bits, the 16-bit rate.
- INT8 W8A8 (SmoothQuant, compressed-tensors int8): the int8 rate (OP/s).
- NVFP4 / MXFP4: the fp4 rate on cards with FP4 tensor cores (Blackwell: B200, B300, RTX 50, MI355X);
  elsewhere weight-only (Marlin FP4, vLLM `marlin_utils_fp4.py`) at the 16-bit rate.
- Weight-only integer formats (GPTQ, AWQ, bitsandbytes, GGUF k-quants): dequantized in the kernel and
  multiplied at the 16-bit rate (Marlin, Frantar et al. 2024, arXiv:2408.11743; llama.cpp MMQ uses int8
  dot products, so its rate sits between: kvcalc uses the 16-bit rate and says so).
Tensors a format keeps high-precision (lm_head, embeddings, routers) run at the 16-bit rate.
"""

from __future__ import annotations

from kvcalc.calc.weights import WeightFormat
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.layers import TensorSpec

_FAMILY_RATE: dict[str, str] = {"fp8": "fp8", "int8": "int8", "nvfp4": "fp4", "mxfp4": "fp4"}


def sixteen_bit(gpu: GpuSpec) -> str:
    """bf16 where the card lists a bf16 peak, else fp16 (T4, V100, Apple)."""
    return "bf16" if "bf16" in gpu.peak_flops else "fp16"


def compute_dtype(fmt: WeightFormat, tensor: TensorSpec, gpu: GpuSpec) -> str:
    """The peak_flops key this tensor's GEMM runs at (see the module docstring)."""
    quantizes = getattr(fmt, "quantizes", None)
    family = getattr(fmt, "family", None)
    if quantizes is None or family is None or not quantizes(tensor):
        return sixteen_bit(gpu)
    rate = _FAMILY_RATE.get(family)
    if rate is not None and rate in gpu.peak_flops:
        return rate
    return sixteen_bit(gpu)
