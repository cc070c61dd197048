"""Which runtime to use locally (llama.cpp, Ollama, MLX, vLLM, SGLang), with container images and sizes as
dated sources state them: a rule table for `kvcalc local` (report text, not a calculation)."""

from __future__ import annotations

from typing import Literal

from kvcalc.calc.offload.memory import Device
from kvcalc.calc.quant import (
    GgufRecipe,
)
from kvcalc.calc.weights import WeightFormat
from kvcalc.spec.base import record

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
