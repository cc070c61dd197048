"""Sane bounds on everything kvcalc reads from outside, in one place.

config.json files, GGUF metadata, safetensors headers, GPU files and CLI options are untrusted: a size in them
must be a finite positive integer within the bound below, checked before any work, so that every input gets
an answer or a one-line InputError within a second and bounded memory. The bounds are generous (several times
the largest real value) and each says what it is a bound on.
"""

from __future__ import annotations

import math
from typing import Any

from kvcalc.errors import InputError

#: Decoder layers. The deepest published LLMs have 126 (Llama 3.1 405B) and 118 (Nemotron-H 56B); per-layer
#: work (tensor lists, KV groups, one plan per format in `quant`) grows with it, so the bound keeps a
#: whole `quant` run within a second.
MAX_LAYERS = 256
#: Any other dimension of a model: hidden size, heads, head dim, FFN width, vocabulary (the largest real
#: vocabulary is 262,208 entries, the widest hidden size 25,600), experts, ranks, windows.
MAX_DIM = 1 << 24
#: Token counts: contexts, windows, max_position_embeddings (2^30 = 1,073,741,824 tokens).
MAX_TOKENS = 1 << 30
#: Any byte size: GPU memory, host RAM, overrides, file sizes declared in headers (2^60 = 1 EiB).
MAX_BYTES = 1 << 60
#: Rates in a GPU file: bytes/s and FLOP/s (1e18 = 1 PB/s or 1 EFLOP/s for one device).
MAX_RATE = 1e18
#: Any integer a CLI option takes (parallel degrees, concurrency, users, batch limits ...).
MAX_CLI_INT = (1 << 31) - 1
#: Options whose work grows with their value, bounded by name in every command that has them (`cli.options`).
#: Concurrent requests and batch sizes: 4,096 is 4x the largest default max_num_seqs (vLLM 1,024 on H100-class
#: GPUs) and 16x TensorRT-LLM's default max_batch_size (256); `kvcalc perf` simulates each request.
#: Requests an open-loop run sends: 10,000 is 10x `vllm bench serve`'s default --num-prompts (1,000) and takes
#: about 2 s to simulate; 2^31 once took 24 GB of memory before the kernel killed it.
CLI_OPTION_MAX: dict[str, int] = {"--concurrency": 4096, "--batch": 4096, "--users": 4096, "--num-prompts": 10_000}
#: Options whose work grows as their value shrinks. A prefill of P tokens runs in P / max_num_batched_tokens
#: chunks, each simulated (`perf`, `batch`, `plan`: 4 tokens took 87 s); vLLM itself rejects a budget below
#: max_num_seqs (`SchedulerConfig`: 256 by default), so 256 is the smallest any default engine accepts.
CLI_OPTION_MIN: dict[str, int] = {"--max-num-batched-tokens": 256}
#: Any float a CLI option takes (fractions, bandwidths in GB/s ...), in absolute value.
MAX_CLI_FLOAT = 1e15
#: Characters in a CLI value (paths included: Linux PATH_MAX is 4096).
MAX_TEXT_CHARS = 4096
#: Bytes of a config.json (real ones are under 100 kB) and of a GPU or profile YAML file.
MAX_CONFIG_FILE_BYTES = 16 << 20
MAX_YAML_FILE_BYTES = 1 << 20
#: Nesting depth of a parsed JSON / YAML document (real configs nest 3-4 levels).
MAX_DEPTH = 64
#: Values (scalars, lists, mappings) in one parsed document, counting each YAML alias use again: bounds
#: "billion laughs" alias bombs and keeps a walk over the data within milliseconds.
MAX_NODES = 200_000

#: config.json keys whose bound is not MAX_DIM.
_CONFIG_KEY_MAX: dict[str, int] = {
    **dict.fromkeys(("num_hidden_layers", "n_layer", "num_layers", "n_layers", "block_count"), MAX_LAYERS),
    **dict.fromkeys(
        (
            "max_position_embeddings",
            "n_positions",
            "n_ctx",
            "original_max_position_embeddings",
            "sliding_window",
            "attention_chunk_size",
        ),
        MAX_TOKENS,
    ),
}


def config_int_max(key: str) -> int:
    """The largest value config field `key` may hold."""
    return _CONFIG_KEY_MAX.get(key, MAX_DIM)


def check_int(value: Any, what: str, *, minimum: int = 1, maximum: int = MAX_DIM) -> int:
    """`value` as an int when it is a finite whole number in [minimum, maximum], else an InputError naming
    `what`. Accepts whole floats (`4096.0`, `1e3`), as JSON writers produce them; never bools."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{what} must be an integer, got {short_repr(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{what} must be a finite number, got {value}")
    if isinstance(value, float) and not value.is_integer():
        raise InputError(f"{what} must be an integer, got {value}")
    number = int(value)
    if number < minimum:
        raise InputError(f"{what} must be >= {minimum}, got {number}")
    if number > maximum:
        raise InputError(f"{what} = {short_repr(number)} is beyond the sane bound {maximum:,}")
    return number


def check_float(value: Any, what: str, *, maximum: float = MAX_CLI_FLOAT) -> float:
    """`value` as a float when finite and within +-maximum, else an InputError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{what} must be a number, got {short_repr(value)}")
    number = float(value) if abs(value) < 1e308 else math.inf
    if not math.isfinite(number):
        raise InputError(f"{what} must be a finite number, got {short_repr(value)}")
    if abs(number) > maximum:
        raise InputError(f"{what} = {number:g} is beyond the sane bound {maximum:g}")
    return number


def check_tree(data: Any, where: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
    """Reject a parsed document nested deeper than `max_depth` or holding more than `max_nodes` values (YAML
    alias bombs). Iterative, so depth cannot exhaust the interpreter's stack.

    NaN and infinities may appear (real configs hold `"time_step_limit": [0.0, Infinity]`); each reader
    rejects them where a size or factor is read (`check_int`, `check_float`)."""
    stack: list[tuple[Any, int, str]] = [(data, 1, "")]
    nodes = 0
    while stack:
        value, depth, path = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise InputError(f"{where}: more than {max_nodes:,} values (an alias bomb or not a config file)")
        if depth > max_depth:
            raise InputError(f"{where}: nested deeper than {max_depth} levels at '{path}'")
        if isinstance(value, dict):
            stack.extend((v, depth + 1, f"{path}.{k}" if path else str(k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, f"{path}[{i}]") for i, v in enumerate(value))


def check_text(value: str, what: str, *, maximum: int = MAX_TEXT_CHARS) -> str:
    """A non-empty string of at most `maximum` characters without NUL bytes."""
    if not value.strip():
        raise InputError(f"{what} is empty; give a value or leave the option out")
    if len(value) > maximum:
        raise InputError(f"{what} is {len(value):,} characters long; the limit is {maximum:,}")
    if "\x00" in value:
        raise InputError(f"{what} contains a NUL character")
    return value


def short_repr(value: Any) -> str:
    """repr(value), cut to 40 characters (a hostile value must not flood the one error line)."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else f"a {len(str(value))}-digit number"
    return text if len(text) <= 40 else text[:37] + "..."
