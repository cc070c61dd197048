"""Each engine's own settings: only the knobs that engine has, named as the engine names them, with its
defaults. `None` means "the engine's default for this GPU, model and version" (resolved in the plan's
assumptions). The CLI and API build these from their options through `calc/engines/options.py`.

Overrides of measured constants (non_torch_bytes, activation_bytes, cuda_graph_bytes) are kvcalc's, not the
engine's: they let a user replace a modelled term by a figure read from their own log.
"""

from __future__ import annotations

from typing import Literal

from kvcalc.errors import InputError
from kvcalc.spec.base import record


def _fraction(name: str, value: float | None) -> None:
    if value is not None and not 0 < value <= 1:
        raise InputError(f"--{name.replace('_', '-')} must be in (0, 1], got {value}")


def _positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise InputError(f"--{name.replace('_', '-')} must be a positive whole number, got {value!r}")


def _not_negative(name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise InputError(f"{name} must not be negative, got {value}")


@record
class VllmSettings:
    """`vllm serve` / `LLM(...)` options that change memory (vllm/engine/arg_utils.py EngineArgs)."""

    name: Literal["vllm"] = "vllm"
    version: str | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    block_size: int | None = None
    enforce_eager: bool = False
    kv_cache_dtype: str = "auto"
    usage: Literal["serve", "llm"] = "serve"
    async_scheduling: bool = True
    enable_prefix_caching: bool | None = None
    model_runner: Literal["auto", "v1", "v2"] = "auto"
    enable_batch_sharded_sampling: bool = False
    language_model_only: bool = False  # --language-model-only: a multimodal model's tower built on "meta"
    mm_encoder_tp_mode: Literal["weights", "data"] = "weights"  # --mm-encoder-tp-mode
    cuda_graph_bytes: int | None = None
    non_torch_bytes: int | None = None
    activation_bytes: int | None = None

    def __post_init__(self) -> None:
        _fraction("gpu_memory_utilization", self.gpu_memory_utilization)
        for name in ("max_model_len", "max_num_batched_tokens", "max_num_seqs", "block_size"):
            _positive(name, getattr(self, name))
        for name in ("cuda_graph_bytes", "non_torch_bytes", "activation_bytes"):
            _not_negative(name, getattr(self, name))


@record
class SglangSettings:
    """`python -m sglang.launch_server` options that change memory (sglang/srt/server_args.py ServerArgs)."""

    name: Literal["sglang"] = "sglang"
    version: str | None = None
    mem_fraction_static: float | None = None
    context_length: int | None = None
    max_running_requests: int | None = None
    chunked_prefill_size: int | None = None
    page_size: int | None = None
    kv_cache_dtype: str = "auto"
    disable_cuda_graph: bool = False

    def __post_init__(self) -> None:
        _fraction("mem_fraction_static", self.mem_fraction_static)
        for name in ("context_length", "max_running_requests", "chunked_prefill_size", "page_size"):
            _positive(name, getattr(self, name))


@record
class TrtllmSettings:
    """TensorRT-LLM (PyTorch backend, `trtllm-serve` / `LLM(...)`) options that change memory
    (tensorrt_llm/llmapi/llm_args.py: KvCacheConfig, max_batch_size, max_num_tokens, max_seq_len)."""

    name: Literal["trtllm"] = "trtllm"
    version: str | None = None
    free_gpu_memory_fraction: float | None = None
    max_seq_len: int | None = None
    max_batch_size: int | None = None
    max_num_tokens: int | None = None
    tokens_per_block: int | None = None
    kv_cache_dtype: str = "auto"
    non_torch_bytes: int | None = None
    activation_bytes: int | None = None

    def __post_init__(self) -> None:
        _fraction("free_gpu_memory_fraction", self.free_gpu_memory_fraction)
        for name in ("max_seq_len", "max_batch_size", "max_num_tokens", "tokens_per_block"):
            _positive(name, getattr(self, name))
        for name in ("non_torch_bytes", "activation_bytes"):
            _not_negative(name, getattr(self, name))


@record
class LlamacppSettings:
    """`llama-server` options that change memory (common/arg.cpp). `n_ctx` 0 = the model's training context;
    `n_gpu_layers` None = as `--fit` (on by default) places them; `cache_type_k` / `cache_type_v` ggml types."""

    name: Literal["llamacpp"] = "llamacpp"
    version: str | None = None
    n_ctx: int = 0
    n_parallel: int | None = None
    n_gpu_layers: int | None = None
    fit: bool = True
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attn: Literal["auto", "on", "off"] = "auto"
    n_batch: int = 2048
    n_ubatch: int = 512
    swa_full: bool = False
    non_torch_bytes: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_ctx, bool) or not isinstance(self.n_ctx, int) or self.n_ctx < 0:
            raise InputError(f"-c / --ctx-size must be 0 (the model's) or a positive whole number, got {self.n_ctx!r}")
        for name in ("n_parallel", "n_batch", "n_ubatch"):
            _positive(name, getattr(self, name))
        if self.n_gpu_layers is not None and self.n_gpu_layers < 0:
            raise InputError(f"--n-gpu-layers must not be negative, got {self.n_gpu_layers}")
        _not_negative("non_torch_bytes", self.non_torch_bytes)


AnySettings = VllmSettings | SglangSettings | TrtllmSettings | LlamacppSettings
