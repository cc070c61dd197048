"""What runs where: for each engine, the accelerators and formats it accepts, the dtype it serves a checkpoint
in, the kernel that lays out the weights, and the fallbacks it takes.

A combination the engine refuses raises InputError naming the engine's rule; a fallback the engine takes
(FP8 weights through a W8A16 Marlin kernel on Ampere, bf16 served as fp16 on Turing) is returned as a warning,
which the plan carries to the output and the JSON `warnings`. Sources are cited per rule; vLLM's are read
at v0.30.0/v0.31 (vllm/config/vllm.py quantization gate, fp8.py get_min_capability, marlin_utils_fp8.py,
fused_moe/oracle/mxfp4.py, platforms/cuda.py supported dtypes; notes in docs/accuracy.md).
"""

from __future__ import annotations

from kvcalc.calc.weights import PlainFormat, WeightFormat
from kvcalc.errors import InputError
from kvcalc.spec.base import record
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec


@record
class PlatformChoice:
    """The dtype the engine serves in, the weight format as its kernel lays it out, and the fallbacks taken."""

    serving_dtype: str
    weight_format: WeightFormat
    warnings: tuple[str, ...] = ()
    kernel: str | None = None


#: vLLM serves these model types in float32 when the GPU has no bf16 (vllm/config/model.py
#: _FLOAT16_NOT_SUPPORTED_MODELS: fp16 overflows in them).
_FP16_UNSAFE = frozenset({"gemma2", "gemma3", "gemma3_text", "glm4"})


def _family(fmt: WeightFormat) -> str:
    return getattr(fmt, "family", "float" if isinstance(fmt, PlainFormat) else "?")


def _cc_text(cc: tuple[int, int] | None) -> str:
    return "?" if cc is None else f"{cc[0]}.{cc[1]}"


def cuda_dtype(model: ModelSpec, gpu: GpuSpec, engine: str) -> tuple[str, list[str]]:
    """The dtype `--dtype auto` serves a 16/32-bit checkpoint in: bf16 checkpoints stay bf16 where the GPU has
    bf16 (CUDA compute capability >= 8.0; vllm/platforms/cuda.py supported_dtypes); below it they fall back to
    fp16 ("Your device ... doesn't support torch.bfloat16. Falling back to torch.float16"), except model types
    that overflow in fp16, which run in fp32. fp32 checkpoints are served as bf16 (fp16 below 8.0)."""
    cc = gpu.cuda_capability
    has_bf16 = cc is None or cc >= (8, 0)
    dtype = model.dtype if model.dtype in ("bf16", "fp16", "fp32") else "bf16"
    if dtype == "fp32":
        dtype = "bf16" if has_bf16 else "fp16"
    if dtype == "bf16" and not has_bf16:
        if model.model_type in _FP16_UNSAFE:
            return "fp32", [f"{gpu.name} (compute capability {_cc_text(cc)}) has no bf16 and {engine} keeps "
                            f"{model.model_type} out of fp16: served in float32, twice the weight bytes "
                            "(vllm/config/model.py _FLOAT16_NOT_SUPPORTED_MODELS)"]
        return "fp16", [f"{gpu.name} (compute capability {_cc_text(cc)}) has no bf16: {engine} falls back to "
                        "float16 (same bytes; vllm/platforms/cuda.py supported dtypes)"]
    return dtype, []


def vllm_platform(model: ModelSpec, fmt: WeightFormat, gpu: GpuSpec, *, partition: int,
                  sm90_mxfp4: str = "triton-hopper") -> PlatformChoice:
    """vLLM's gates (InputError) and fallbacks (warnings) for this GPU and weight format; MXFP4 experts get the
    kernel vLLM picks (fused_moe/oracle/mxfp4.py select_mxfp4_moe_backend)."""
    platform = gpu.platform
    warnings: list[str] = []
    if platform == "metal":
        raise InputError(f"vLLM has no Metal backend for {gpu.name}'s GPU (on macOS vLLM runs on the CPU; the "
                         "vllm-metal plugin is a separate project kvcalc does not model): use --engine llamacpp")
    if platform == "gaudi":
        warnings.append(f"vLLM runs on {gpu.name} through the vllm-gaudi plugin (HPU graphs, its own profiling); "
                        "kvcalc applies vLLM's CUDA accounting")
    cc = gpu.cuda_capability
    if cc is not None and cc < (7, 0):
        raise InputError(f"vLLM needs CUDA compute capability 7.0 or newer; {gpu.name} is {_cc_text(cc)}")
    if cc is not None and cc < (7, 5):
        warnings.append(f"vLLM's published CUDA wheels are built for compute capability 7.5 and newer "
                        f"(.buildkite/release-pipeline.yaml CUDA_ARCH 7.5-12.0): {gpu.name} ({_cc_text(cc)}) "
                        "needs a source build")
    dtype, notes = cuda_dtype(model, gpu, "vLLM")
    warnings += notes
    family = _family(fmt)
    name = getattr(fmt, "name", family)
    kernel = None
    if family == "fp8":
        if platform == "cuda" and cc is not None and cc < (7, 5):
            raise InputError(f"The quantization method fp8 is not supported for the current GPU. Minimum "
                             f"capability: 75. Current capability: {cc[0]}{cc[1]} ({gpu.name}; vLLM fp8.py "
                             "Fp8Config.get_min_capability)")
        if platform == "cuda" and cc is not None and cc < (8, 9):
            kernel = "fp8-marlin-w8a16"
            warnings.append(f"{gpu.name} has no FP8 compute: vLLM runs {name} weights weight-only through the FP8 "
                            "Marlin kernel (W8A16; same 1 B/weight, slower compute-bound steps; "
                            "marlin_utils_fp8.py)")
        if platform == "rocm" and gpu.architecture not in ("gfx942", "gfx950"):
            raise InputError(f"vLLM has no FP8 linear or MoE kernel on {gpu.architecture} ({gpu.name}); FP8 "
                             "runs on MI300-series (gfx942) and MI350-series (gfx950)")
    elif family in ("int8", "awq") and platform == "cuda" and cc is not None and cc < (7, 5):
        raise InputError(f"The quantization method {name} is not supported for the current GPU. Minimum "
                         f"capability: 75. Current capability: {cc[0]}{cc[1]} ({gpu.name})")
    elif family == "nvfp4" and not (platform == "cuda" and cc is not None and cc >= (10, 0)):
        if platform != "cuda":
            raise InputError(f"vLLM's NVFP4 kernels are CUDA-only; {gpu.name} cannot load {name}")
        kernel = "fp4-marlin-w4a16"
        warnings.append(f"{gpu.name} has no native FP4 compute: vLLM runs NVFP4 weight-only through the FP4 "
                        "Marlin kernel (marlin_utils_fp4.py)")
    elif family == "mxfp4":
        fmt, kernel, note = _vllm_mxfp4(fmt, gpu, partition, sm90_mxfp4)
        warnings += note
    elif family == "gguf":
        warnings.append("vLLM's GGUF loader is experimental (single-file GGUF, not every architecture)")
    return PlatformChoice(serving_dtype=dtype, weight_format=fmt, warnings=tuple(warnings), kernel=kernel)


def _vllm_mxfp4(fmt: WeightFormat, gpu: GpuSpec, partition: int, sm90: str) -> tuple[WeightFormat, str, list[str]]:
    """vLLM's MXFP4 MoE backend: SM100 family -> FlashInfer TRT-LLM; SM90 -> `sm90` (triton_kernels with the
    Hopper swizzle; Marlin in v0.10.0-v0.10.1); SM120 -> triton_kernels; 7.0-8.9 -> Marlin weight-only; ROCm ->
    padded to get_padding_alignment()."""
    cc = gpu.cuda_capability
    if gpu.platform == "rocm":
        kernel = "rocm-gfx950" if gpu.architecture == "gfx950" else "rocm"
    elif cc is not None and cc[0] == 10:
        kernel = "flashinfer-trtllm"
    elif cc is not None and cc >= (9, 0):
        kernel = sm90 if cc == (9, 0) else "triton"
    elif cc is not None and cc >= (7, 0):
        kernel = "marlin"
    else:
        raise InputError(f"No MXFP4 MoE backend supports the deployment configuration ({gpu.name}; vLLM "
                         "fused_moe/oracle/mxfp4.py)")
    bound = fmt.for_kernel(kernel, partition)  # type: ignore[attr-defined]
    notes = []
    if kernel == "marlin" and cc is not None and cc < (9, 0):
        notes.append(f"{gpu.name} has no native FP4 compute: vLLM runs MXFP4 experts weight-only through the Marlin "
                     "kernel (hidden padded to 256, intermediate to 128; marlin_utils_fp4.py)")
    return bound, kernel, notes


def sglang_platform(model: ModelSpec, fmt: WeightFormat, gpu: GpuSpec) -> PlatformChoice:
    """SGLang runs on CUDA and ROCm GPUs (no Metal, no Gaudi backend: docs/platforms); dtype as vLLM's
    `--dtype auto`; FP8 on pre-Ada cards runs weight-only."""
    platform = gpu.platform
    if platform in ("metal", "gaudi", "cpu"):
        raise InputError(f"SGLang has no backend for {gpu.name} ({platform}); it serves on NVIDIA (CUDA) and AMD "
                         "(ROCm) GPUs: use --engine " + ("vllm (vllm-gaudi)" if platform == "gaudi" else "llamacpp"))
    dtype, warnings = cuda_dtype(model, gpu, "SGLang")
    cc = gpu.cuda_capability
    if _family(fmt) == "fp8" and cc is not None and cc < (8, 9):
        warnings.append(f"{gpu.name} has no FP8 compute: SGLang runs FP8 weights weight-only (Marlin W8A16)")
    if _family(fmt) == "gguf":
        raise InputError("SGLang does not serve GGUF files; use --engine llamacpp or a safetensors format")
    return PlatformChoice(serving_dtype=dtype, weight_format=fmt, warnings=tuple(warnings))


def trtllm_platform(model: ModelSpec, fmt: WeightFormat, gpu: GpuSpec, kv_name: str) -> PlatformChoice:
    """TensorRT-LLM runs on NVIDIA Ampere and newer (supported-hardware.html: Blackwell, Hopper, Ada, Ampere);
    FP8 weights or KV need Ada/Hopper (compute capability >= 8.9); FP4 needs Blackwell."""
    cc = gpu.cuda_capability
    if gpu.platform != "cuda" or cc is None:
        raise InputError(f"TensorRT-LLM runs on NVIDIA GPUs only; {gpu.name} is not one")
    if cc < (8, 0):
        raise InputError(f"TensorRT-LLM supports Ampere (compute capability 8.0) and newer; {gpu.name} is "
                         f"{_cc_text(cc)} (nvidia.github.io/TensorRT-LLM supported-hardware)")
    family = _family(fmt)
    name = getattr(fmt, "name", family)
    if (family == "fp8" or kv_name.startswith("fp8")) and cc < (8, 9):
        raise InputError(f"TensorRT-LLM FP8 ({'weights ' + name if family == 'fp8' else 'KV cache'}) needs Ada or "
                         f"Hopper (compute capability 8.9+); {gpu.name} is {_cc_text(cc)}")
    if family == "nvfp4" and cc < (10, 0):
        raise InputError(f"TensorRT-LLM NVFP4 needs Blackwell (compute capability 10.0+); {gpu.name} is {_cc_text(cc)}")
    if family == "mxfp4" and cc < (9, 0):
        raise InputError(f"TensorRT-LLM's MXFP4 MoE (gpt-oss) runs on Hopper and Blackwell; {gpu.name} is "
                         f"{_cc_text(cc)}")
    if family in ("gguf", "bitsandbytes"):
        raise InputError(f"TensorRT-LLM does not load {name} weights; use bf16, fp8, int4 AWQ/GPTQ or nvfp4")
    dtype = model.dtype if model.dtype in ("bf16", "fp16") else "bf16"
    return PlatformChoice(serving_dtype=dtype, weight_format=fmt)


def llamacpp_platform(model: ModelSpec, fmt: WeightFormat, gpu: GpuSpec, explicit: bool) -> PlatformChoice:
    """llama.cpp runs GGUF files on CUDA, ROCm (HIP), Metal, Vulkan and CPU; no Gaudi backend. A 16-bit
    checkpoint is sized as its GGUF conversion (convert_hf_to_gguf.py, same dtype; norms F32), gpt-oss's MXFP4
    experts as GGUF MXFP4_MOE; other safetensors formats (FP8, AWQ, GPTQ, NVFP4, bitsandbytes) are not GGUF."""
    from kvcalc.calc.quant import parse_quant

    if gpu.platform == "gaudi":
        raise InputError(f"llama.cpp has no Gaudi backend; {gpu.name} needs --engine vllm (vllm-gaudi)")
    family = _family(fmt)
    name = getattr(fmt, "name", family)
    notes: list[str] = []
    if family == "gguf":
        return PlatformChoice(serving_dtype=model.dtype, weight_format=fmt)
    if family == "float" or (family == "mxfp4" and not explicit):
        ftype = {"fp16": "F16", "fp32": "F32"}.get(name, "BF16") if family == "float" else "MXFP4_MOE"
        notes.append(f"llama.cpp runs GGUF: sized as the GGUF {ftype} conversion of the checkpoint "
                     "(convert_hf_to_gguf.py; norms and routers F32)")
        return PlatformChoice(serving_dtype=model.dtype, weight_format=parse_quant(f"gguf:{ftype}", model=model),
                              warnings=tuple(notes))
    if not explicit:
        notes.append(f"llama.cpp runs GGUF: the {name} checkpoint is sized as its BF16 GGUF conversion "
                     "(convert_hf_to_gguf.py dequantizes it); pass --quant Q8_0 / Q4_K_M for a quantized file")
        return PlatformChoice(serving_dtype="bf16", weight_format=parse_quant("gguf:BF16", model=model),
                              warnings=tuple(notes))
    raise InputError(f"llama.cpp runs GGUF files only; --quant {name} is a safetensors format. Use a GGUF type "
                     "(Q8_0, Q6_K, Q4_K_M, IQ4_XS ...) or another engine")
