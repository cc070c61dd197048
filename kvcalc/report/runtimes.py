"""Which runtime to use locally (llama.cpp, Ollama, MLX, vLLM, SGLang), with container images and sizes as
dated sources state them: a rule table for `kvcalc local` (report text, not a calculation)."""

from __future__ import annotations

from dataclasses import dataclass
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

    situation = _Situation(device=device, fmt_name=getattr(fmt, "name", "?"), gguf=gguf, partial=partial,
                           many=many, fits_on_gpu=fits_on_gpu, n_gpu_layers=n_gpu_layers, users=users,
                           gpu_vendor=gpu_vendor)
    for rule in (_llamacpp, _ollama, _mlx, _servers):
        for runtime, verdict, reason in rule(situation):
            add(runtime, verdict, reason)
    order = {"recommended": 0, "possible": 1, "not suitable": 2}
    return sorted(rows, key=lambda r: order[r.verdict])


Verdict = Literal["recommended", "possible", "not suitable"]
Choice = tuple[str, Verdict, str]


@dataclass(frozen=True)
class _Situation:
    """What the rules of `recommend_runtimes` read."""

    device: Device
    fmt_name: str
    gguf: bool
    partial: bool
    many: bool
    fits_on_gpu: bool
    n_gpu_layers: int
    users: int
    gpu_vendor: str


def _llamacpp(x: _Situation) -> list[Choice]:
    convert = "" if x.gguf else f"; needs a GGUF conversion of {x.fmt_name}"
    if x.partial and x.device != "cpu":
        return [("llama.cpp", "recommended", f"splits layers between GPU and RAM: --n-gpu-layers {x.n_gpu_layers}"
                 + convert)]
    if x.device == "cpu":
        return [("llama.cpp", "recommended", "fastest widely used CPU path (AVX2/AVX-512/NEON kernels for GGUF "
                 "types)" + convert)]
    if x.gguf:
        return [("llama.cpp", "recommended" if not x.many else "possible",
                 f"runs {x.fmt_name} natively on {'Metal' if x.device == 'apple' else 'CUDA'}"
                 + ("; -np N slots share one context, fine for a few users" if x.many else ""))]
    return [("llama.cpp", "possible", f"needs a GGUF conversion of {x.fmt_name} (llama.cpp runs GGUF only)")]


def _ollama(x: _Situation) -> list[Choice]:
    if x.gguf or x.partial or x.device == "apple":
        return [("Ollama", "recommended" if not x.many and (x.gguf or x.partial) else "possible",
                 "llama.cpp's engine with model management; offloads layers automatically from its VRAM estimate"
                 + ("" if x.gguf else "; library models are GGUF (Q4_K_M by default)"))]
    return [("Ollama", "possible", "single-user convenience; runs GGUF, not " + x.fmt_name)]


def _mlx(x: _Situation) -> list[Choice]:
    if x.device == "apple":
        return [("MLX", "recommended" if x.fits_on_gpu else "possible",
                 "Apple's array framework for Apple silicon (mlx-lm): unified memory, MLX 4/8-bit conversions "
                 "(mlx-community), not GGUF k-quants" + ("" if x.fits_on_gpu else "; must fit under the wired "
                                                          "limit"))]
    return [("MLX", "not suitable", "built for Apple silicon")]


def _servers(x: _Situation) -> list[Choice]:
    """vLLM and SGLang."""
    if x.device == "apple":
        return [("vLLM", "not suitable", "no Metal backend (on macOS it runs on the CPU only)"),
                ("SGLang", "not suitable", "no Metal backend")]
    if x.device == "cpu":
        return [("vLLM", "possible", "has a CPU backend (x86 AVX-512 / ARM), tuned for servers, not desktops"),
                ("SGLang", "not suitable", "GPU runtime")]
    if x.partial:
        return [("vLLM", "not suitable", "needs all weights in GPU memory (--cpu-offload-gb copies the rest over "
                 "PCIe every step)"), ("SGLang", "not suitable", "needs all weights in GPU memory")]
    if x.gguf:
        return [("vLLM", "possible", "GGUF loading is experimental in vLLM; prefer AWQ/GPTQ/FP8 checkpoints for "
                 "serving"), ("SGLang", "possible", "prefer AWQ/GPTQ/FP8 checkpoints for serving")]
    verdict: Verdict = "recommended" if x.many else "possible"
    return [("vLLM", verdict, f"{x.fmt_name} on {x.gpu_vendor} GPU with continuous batching and paged KV cache"
             + (f": built for {x.users} concurrent users" if x.many else "; overkill for one user")),
            ("SGLang", verdict, "continuous batching plus RadixAttention prefix caching"
             + (" (shared prompts across users)" if x.many else "; overkill for one user"))]
