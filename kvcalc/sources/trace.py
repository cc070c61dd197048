"""A request trace as JSON lines: `{"id", "arrival_s", "prompt_tokens", "output_tokens", "prefix_id"?,
"prefix_tokens"?, "cache_salt"?}`.

Requests with the same `prefix_id` share the first `prefix_tokens` tokens of their prompts (all of the shorter
prompt when absent: a conversation whose next turn extends the last prompt); `cache_salt` (vLLM's per-request
salt, PR #17045) keeps a tenant's blocks to itself. Malformed lines are skipped and counted.
"""

from __future__ import annotations

import math
from typing import Any

from kvcalc.errors import InputError
from kvcalc.sources.jsonl import BadLine, Skipped, read_json_lines
from kvcalc.spec.workload import TraceRequest

MAX_LINE_BYTES = 1 << 16
MAX_LINES = 100_000
MAX_TOKENS = 1 << 30


def _tokens(obj: dict[str, Any], key: str, minimum: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_TOKENS:
        raise BadLine(f"{key} must be a whole number from {minimum} to {MAX_TOKENS}, got {value!r}")
    return value


def _label(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadLine(f"{key} must be a string or an integer, got {value!r}")
    return str(value)


def parse_trace_line(obj: Any, line: int, seen: set[str] | None = None) -> TraceRequest:
    """One line -> TraceRequest (BadLine when a field is missing or out of range)."""
    if not isinstance(obj, dict):
        raise BadLine("not a JSON object")
    rid = _label(obj, "id")
    if rid is None:
        raise BadLine("no id")
    if seen is not None:
        if rid in seen:
            raise BadLine(f"duplicate id {rid!r}")
        seen.add(rid)
    arrival = obj.get("arrival_s")
    if isinstance(arrival, bool) or not isinstance(arrival, (int, float)) or not math.isfinite(arrival) \
            or arrival < 0:
        raise BadLine(f"arrival_s must be a non-negative number of seconds, got {arrival!r}")
    prompt = _tokens(obj, "prompt_tokens", 1)
    prefix_tokens = None
    if obj.get("prefix_tokens") is not None:
        prefix_tokens = min(_tokens(obj, "prefix_tokens", 0), prompt)
    return TraceRequest(id=rid, arrival_s=float(arrival), prompt_tokens=prompt,
                        output_tokens=_tokens(obj, "output_tokens", 0), prefix_id=_label(obj, "prefix_id"),
                        prefix_tokens=prefix_tokens, salt=_label(obj, "cache_salt"))


def read_trace(source: str, *, max_line_bytes: int = MAX_LINE_BYTES,
               max_lines: int = MAX_LINES) -> tuple[list[TraceRequest], Skipped]:
    """The trace's requests (a repeated id is skipped as malformed) and what was skipped."""
    seen: set[str] = set()
    unique, skipped = read_json_lines(source, lambda obj, line: parse_trace_line(obj, line, seen),
                                      max_line_bytes=max_line_bytes, max_lines=max_lines)
    if not unique:
        raise InputError(f"{source}: no usable trace lines" + (f" ({skipped.first})" if skipped.first else ""))
    return unique, skipped
