"""Workloads: the requests a deployment serves (paged and prefix read them; sources/trace.py parses them)."""

from __future__ import annotations

from kvcalc.spec.base import record


@record
class TraceRequest:
    """One request of a trace. Requests with the same `prefix_id` share the first `prefix_tokens` tokens of
    their prompts (the whole shorter prompt when None: a conversation's next turn extends its last prompt);
    `salt` is the request's cache salt (vLLM `cache_salt`, PR #17045): only requests with the same salt
    share blocks."""

    id: str
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    prefix_id: str | None = None
    prefix_tokens: int | None = None
    salt: str | None = None
