"""Cache-hit usage fields of real API responses, one JSON object per line (a file or stdin).

Shapes read (a whole response, a bare usage object, or a streaming event that carries one):
- OpenAI Chat Completions, and vLLM / SGLang's OpenAI-compatible servers: `usage.prompt_tokens` (all input
  tokens) and `usage.prompt_tokens_details.cached_tokens` (the part served from cache; vLLM fills it with
  `--enable-prompt-tokens-details`, else the details are null: 0 cached);
- OpenAI Responses API: `usage.input_tokens` and `usage.input_tokens_details.cached_tokens`;
- Anthropic Messages: `usage.input_tokens` (uncached input only), `usage.cache_read_input_tokens` and
  `usage.cache_creation_input_tokens`, so all input = the three summed; the streaming `message_start` event
  carries them under `message.usage`.
Lines without a usage object (stream chunks, `message_delta`) are ignored and counted; malformed ones are
skipped and counted, never fatal.
"""

from __future__ import annotations

from typing import Any, Literal

from kvcalc.sources.jsonl import BadLine, Skipped, read_json_lines
from kvcalc.spec.base import record

MAX_LINE_BYTES = 1 << 20
MAX_LINES = 1_000_000

Provider = Literal["openai-chat", "openai-responses", "anthropic"]


@record
class Usage:
    """One response's usage: `input_tokens` counts every input token (cached ones included)."""

    line: int
    provider: Provider
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int
    model: str | None = None


def _count(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadLine(f"{key} is not a non-negative integer: {value!r}")
    return value


def _details(usage: dict[str, Any], key: str) -> int:
    details = usage.get(key)
    if details is None:
        return 0
    if not isinstance(details, dict):
        raise BadLine(f"{key} is not an object")
    return _count(details, "cached_tokens")


def _usage_object(obj: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(usage, the object holding it) or (None, obj) when the line carries none."""
    if not isinstance(obj, dict):
        raise BadLine("not a JSON object")
    for holder in (obj, obj.get("message"), obj.get("response")):
        if isinstance(holder, dict) and isinstance(holder.get("usage"), dict):
            return holder["usage"], holder
    if "prompt_tokens" in obj or "input_tokens" in obj:
        return obj, obj
    return None, obj


def parse_usage(obj: Any, line: int) -> Usage | None:
    """One line -> Usage (None: no usage object on this line; BadLine: malformed)."""
    usage, holder = _usage_object(obj)
    if usage is None:
        return None
    model = holder.get("model") if isinstance(holder.get("model"), str) else None
    provider: Provider
    if "prompt_tokens" in usage:
        provider = "openai-chat"
        total, cached, write = _count(usage, "prompt_tokens"), _details(usage, "prompt_tokens_details"), 0
        output = _count(usage, "completion_tokens")
    elif "cache_read_input_tokens" in usage or "cache_creation_input_tokens" in usage or (
        "input_tokens" in usage and "input_tokens_details" not in usage and holder.get("type") == "message"
    ):
        provider = "anthropic"
        cached, write = _count(usage, "cache_read_input_tokens"), _count(usage, "cache_creation_input_tokens")
        total = _count(usage, "input_tokens") + cached + write
        output = _count(usage, "output_tokens")
    elif "input_tokens" in usage:
        provider = "openai-responses"
        total, cached, write = _count(usage, "input_tokens"), _details(usage, "input_tokens_details"), 0
        output = _count(usage, "output_tokens")
    else:
        return None  # e.g. Anthropic message_delta: output tokens only
    if cached > total:
        raise BadLine(f"cached_tokens {cached} exceeds the input tokens {total}")
    return Usage(line=line, provider=provider, input_tokens=total, cached_tokens=cached,
                 cache_write_tokens=write, output_tokens=output, model=model)


def read_usage(source: str, *, max_line_bytes: int = MAX_LINE_BYTES,
               max_lines: int = MAX_LINES) -> tuple[list[Usage], Skipped]:
    """Usage records of `source` (a path, or - for stdin) and what was skipped."""
    return read_json_lines(source, parse_usage, max_line_bytes=max_line_bytes, max_lines=max_lines)
