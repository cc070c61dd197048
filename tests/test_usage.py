"""The usage-field reader on the providers' documented response shapes, malformed lines, and hit rates.

Shapes are written from the providers' documentation: OpenAI's prompt-caching guide (a chat completion whose
usage has prompt_tokens 2006, completion_tokens 300, prompt_tokens_details.cached_tokens 1920), the Responses
API (usage.input_tokens, input_tokens_details.cached_tokens), Anthropic's prompt-caching guide (input_tokens,
cache_creation_input_tokens, cache_read_input_tokens, output_tokens; streaming message_start carries them under
message.usage, message_delta only output_tokens), and vLLM's OpenAI-compatible server
(prompt_tokens_details null unless --enable-prompt-tokens-details).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvcalc.calc.paging.economics import Prices
from kvcalc.report.prefix import usage_report
from kvcalc.sources.usage import read_usage

OPENAI_CHAT = {
    "id": "chatcmpl-123", "object": "chat.completion", "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "..."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
              "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
}
OPENAI_RESPONSES = {
    "id": "resp_1", "object": "response", "model": "gpt-4.1",
    "usage": {"input_tokens": 1500, "input_tokens_details": {"cached_tokens": 1024}, "output_tokens": 87,
              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1587},
}
ANTHROPIC_WRITE = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "usage": {"input_tokens": 21, "cache_creation_input_tokens": 188086, "cache_read_input_tokens": 0,
              "output_tokens": 393},
}
ANTHROPIC_READ = {
    "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "usage": {"input_tokens": 21, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 188086,
              "output_tokens": 393},
}
ANTHROPIC_STREAM_START = {
    "type": "message_start",
    "message": {"id": "msg_3", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2000,
                          "output_tokens": 1}},
}
ANTHROPIC_STREAM_DELTA = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 15}}
VLLM_NO_DETAILS = {"id": "cmpl-1", "object": "chat.completion", "model": "llama",
                   "usage": {"prompt_tokens": 1200, "completion_tokens": 10, "total_tokens": 1210,
                             "prompt_tokens_details": None}}
VLLM_CACHED = {"id": "cmpl-2", "object": "chat.completion", "model": "llama",
               "usage": {"prompt_tokens": 3400, "completion_tokens": 10, "total_tokens": 3410,
                         "prompt_tokens_details": {"cached_tokens": 2992}}}


def write(tmp_path: Path, lines: list[object]) -> str:
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return str(path)


def test_each_documented_shape(tmp_path: Path) -> None:
    records, skipped = read_usage(write(tmp_path, [OPENAI_CHAT, OPENAI_RESPONSES, ANTHROPIC_WRITE, ANTHROPIC_READ,
                                                   ANTHROPIC_STREAM_START, ANTHROPIC_STREAM_DELTA, VLLM_NO_DETAILS,
                                                   VLLM_CACHED]))
    got = [(r.provider, r.input_tokens, r.cached_tokens, r.cache_write_tokens, r.output_tokens) for r in records]
    assert got == [
        ("openai-chat", 2006, 1920, 0, 300),
        ("openai-responses", 1500, 1024, 0, 87),
        ("anthropic", 21 + 188086, 0, 188086, 393),  # all input = uncached + written + read
        ("anthropic", 21 + 188086, 188086, 0, 393),
        ("anthropic", 25 + 2000, 2000, 0, 1),
        ("openai-chat", 1200, 0, 0, 10),
        ("openai-chat", 3400, 2992, 0, 10),
    ]
    assert [r.line for r in records] == [1, 2, 3, 4, 5, 7, 8]
    assert skipped.ignored == 1 and skipped.bad == 0  # message_delta carries no input usage


def test_malformed_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    lines = [
        "not json",
        "[1, 2]",
        {"usage": {"prompt_tokens": -5}},
        {"usage": {"prompt_tokens": "12"}},
        {"usage": {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}}},
        {"usage": {"prompt_tokens": 10, "prompt_tokens_details": "x"}},
        "",
        OPENAI_CHAT,
        "x" * 5000,
    ]
    records, skipped = read_usage(write(tmp_path, lines), max_line_bytes=4096)
    assert len(records) == 1 and records[0].line == 8
    assert skipped.malformed == 6 and skipped.too_long == 1 and skipped.bad == 7
    assert skipped.first.startswith("line 1:")
    assert "skipped 7 malformed usage line(s)" in (skipped.message("usage") or "")


def test_line_count_is_bounded(tmp_path: Path) -> None:
    records, skipped = read_usage(write(tmp_path, [OPENAI_CHAT] * 5), max_lines=3)
    assert len(records) == 3 and skipped.truncated


def test_hit_rates_and_money_by_hand(tmp_path: Path) -> None:
    records, skipped = read_usage(write(tmp_path, [OPENAI_CHAT, ANTHROPIC_WRITE, ANTHROPIC_READ, VLLM_NO_DETAILS]))
    prices = Prices(input_per_mtok=3.0, cached_per_mtok=0.3, write_per_mtok=3.75)
    r = usage_report(records, skipped, prices=prices, min_cacheable=1024, explain=True)
    # input: 2,006 + 188,107 + 188,107 + 1,200 = 379,420; cached: 1,920 + 188,086 = 190,006; written 188,086
    assert (r.requests, r.input_tokens, r.cached_tokens, r.cache_write_tokens) == (4, 379_420, 190_006, 188_086)
    assert r.hit_rate_tokens == pytest.approx(190_006 / 379_420)
    assert r.hit_rate_requests == pytest.approx(2 / 4)
    # without cache: 379,420 x 3 / 1e6 = $1.13826; with: uncached 1,328 x 3 + 190,006 x 0.3 + 188,086 x 3.75
    # = 3,984 + 57,001.8 + 705,322.5 = 766,308.3 / 1e6 = $0.7663083; saved $0.3719517
    assert r.usd_input_without_cache == pytest.approx(1.13826)
    assert r.usd_input_with_cache == pytest.approx(0.7663083)
    assert r.usd_saved == pytest.approx(1.13826 - 0.7663083)
    # eligible (>= 1,024 tokens): all four; after the first, the Anthropic write and the vLLM line read nothing
    assert r.missed_count == 2 and [m.line for m in r.missed] == [2, 4]
    assert set(r.by_provider) == {"anthropic", "openai-chat"}


def test_empty_input_gives_zero_rates() -> None:
    from kvcalc.sources.jsonl import Skipped

    r = usage_report([], Skipped(), prices=None, min_cacheable=1024, explain=False)
    assert r.hit_rate_tokens == 0.0 and r.hit_rate_requests == 0.0 and r.usd_saved is None
