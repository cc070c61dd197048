"""How a model is deployed: the parallel layout and the serving engine's settings."""

from __future__ import annotations

from typing import Literal, get_args

from kvcalc.errors import InputError
from kvcalc.spec.base import record

EngineName = Literal["vllm", "sglang", "trtllm", "llamacpp"]
ENGINES: tuple[str, ...] = get_args(EngineName)


@record
class Parallel:
    """Parallel degrees. GPUs used = tp * pp * dp. Expert parallel (ep) splits experts over the tp * dp ranks
    of one stage instead of slicing every expert (vLLM `--enable-expert-parallel`); context parallel (cp)
    splits each sequence's KV over cp ranks of the TP group (vLLM `--decode-context-parallel-size`, which
    must divide tp), so neither adds GPUs."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    cp: int = 1

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "ep", "cp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise InputError(f"--{name} must be a whole number from 1 to 4096, got {value!r}")

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp


@record
class EngineSettings:
    """Engine knobs that change the memory budget. `None` means "the engine's default for this GPU/version"."""

    name: EngineName = "vllm"
    version: str | None = None
    gpu_memory_utilization: float | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    block_size: int | None = None
    enforce_eager: bool = False
    kv_cache_dtype: str | None = None
    usage: Literal["serve", "llm"] = "serve"
    non_torch_bytes: int | None = None
    activation_bytes: int | None = None
    cuda_graph_bytes: int | None = None
    mem_fraction_static: float | None = None
    free_gpu_memory_fraction: float | None = None
    language_model_only: bool = False  # vLLM --language-model-only: a multimodal model's tower not loaded
    mm_encoder_tp_mode: str | None = None  # vLLM --mm-encoder-tp-mode: weights (split over TP) or data (whole)

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise InputError(f"unknown engine '{self.name}'; use {', '.join(ENGINES)}")
        for name in ("gpu_memory_utilization", "mem_fraction_static", "free_gpu_memory_fraction"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise InputError(f"--{name.replace('_', '-')} must be in (0, 1], got {value}")
        for name in ("max_num_batched_tokens", "max_num_seqs", "block_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InputError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.mm_encoder_tp_mode not in (None, "weights", "data"):
            raise InputError(f"--mm-encoder-tp-mode must be weights or data, got {self.mm_encoder_tp_mode!r}")
        for name in ("non_torch_bytes", "activation_bytes", "cuda_graph_bytes"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InputError(f"{name} must not be negative, got {value}")
