"""Engine-neutral options (what the CLI and API take: `spec.deployment.EngineSettings`) -> the chosen
engine's own settings record, with a warning for each option that engine does not have.

Options with an equivalent under another name are mapped: max_num_seqs is SGLang's --max-running-requests,
TensorRT-LLM's max_batch_size and llama.cpp's -np slots; max_num_batched_tokens is SGLang's
--chunked-prefill-size, TensorRT-LLM's max_num_tokens and llama.cpp's -b; block_size is SGLang's --page-size and
TensorRT-LLM's tokens_per_block; --enforce-eager is SGLang's --disable-cuda-graph. --language-model-only is
vLLM's alone.
"""

from __future__ import annotations

from typing import Any

from kvcalc.calc.engines.settings import (
    AnySettings,
    LlamacppSettings,
    SglangSettings,
    TrtllmSettings,
    VllmSettings,
)
from kvcalc.spec.deployment import EngineSettings

#: Option -> the field it sets in each engine's settings (None: the engine has no such knob).
_MAP: dict[str, dict[str, str | None]] = {
    "version": {"vllm": "version", "sglang": "version", "trtllm": "version", "llamacpp": "version"},
    "gpu_memory_utilization": {"vllm": "gpu_memory_utilization", "sglang": None, "trtllm": None, "llamacpp": None},
    "max_num_batched_tokens": {"vllm": "max_num_batched_tokens", "sglang": "chunked_prefill_size",
                               "trtllm": "max_num_tokens", "llamacpp": "n_batch"},
    "max_num_seqs": {"vllm": "max_num_seqs", "sglang": "max_running_requests", "trtllm": "max_batch_size",
                     "llamacpp": "n_parallel"},
    "block_size": {"vllm": "block_size", "sglang": "page_size", "trtllm": "tokens_per_block", "llamacpp": None},
    "mem_fraction_static": {"vllm": None, "sglang": "mem_fraction_static", "trtllm": None, "llamacpp": None},
    "free_gpu_memory_fraction": {"vllm": None, "sglang": None, "trtllm": "free_gpu_memory_fraction",
                                 "llamacpp": None},
    "non_torch_bytes": {"vllm": "non_torch_bytes", "sglang": None, "trtllm": "non_torch_bytes",
                        "llamacpp": "non_torch_bytes"},
    "activation_bytes": {"vllm": "activation_bytes", "sglang": None, "trtllm": "activation_bytes", "llamacpp": None},
    "cuda_graph_bytes": {"vllm": "cuda_graph_bytes", "sglang": None, "trtllm": None, "llamacpp": None},
}
_FLAGS = {"cuda_graph_bytes": "--cuda-graph-memory", "non_torch_bytes": "--non-torch-memory",
          "activation_bytes": "--activation-memory"}
_CLASSES: dict[str, type] = {"vllm": VllmSettings, "sglang": SglangSettings, "trtllm": TrtllmSettings,
                             "llamacpp": LlamacppSettings}


def _flag(option: str) -> str:
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


def settings_for(options: EngineSettings, *, concurrency: int | None = None) -> tuple[AnySettings, list[str]]:
    """The engine's settings from the neutral options, and a warning per option the engine lacks. For
    llama.cpp, `concurrency` (requests that must run at once) sets its -np slots unless --max-num-seqs does."""
    engine = options.name
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for option, targets in _MAP.items():
        value = getattr(options, option)
        if value is None:
            continue
        target = targets[engine]
        if target is None:
            owners = [name for name, field in targets.items() if field is not None]
            warnings.append(f"{_flag(option)} applies to {', '.join(owners)}, not {engine}; ignored")
            continue
        values[target] = value
    if options.enforce_eager:
        if engine == "vllm":
            values["enforce_eager"] = True
        elif engine == "sglang":
            values["disable_cuda_graph"] = True
        else:
            warnings.append(f"--enforce-eager applies to vllm and sglang, not {engine}; ignored")
    if options.mm_encoder_tp_mode is not None:
        if engine == "vllm":
            values["mm_encoder_tp_mode"] = options.mm_encoder_tp_mode
        else:
            warnings.append(f"--mm-encoder-tp-mode applies to vllm, not {engine}; ignored")
    if options.language_model_only:
        if engine == "vllm":
            values["language_model_only"] = True
        else:
            warnings.append(f"--language-model-only applies to vllm, not {engine}; ignored")
    if options.kv_cache_dtype is not None:
        if engine == "llamacpp":
            values["cache_type_k"] = values["cache_type_v"] = options.kv_cache_dtype
        else:
            values["kv_cache_dtype"] = options.kv_cache_dtype
    if engine == "vllm":
        values["usage"] = options.usage
    elif options.usage != "serve":
        warnings.append(f"usage {options.usage!r} applies to vllm, not {engine}; ignored")
    if engine == "llamacpp" and "n_parallel" not in values and concurrency:
        values["n_parallel"] = concurrency
    return _CLASSES[engine](**values), warnings
