"""Each engine's prefix-reuse rule: which tokens of a new prompt a cached one lets the engine skip.

vLLM (`vllm/v1/core/kv_cache_utils.py::hash_block_tokens`, `get_request_block_hasher`;
`kv_cache_manager.py::get_computed_blocks`): only full blocks are hashed, each hash covers the parent
block's hash, the block's token ids and extra keys, so block i matches only if blocks 0..i all match: a one-token
difference ends reuse at the block that holds it. The per-request `cache_salt` (vLLM PR #17045) is an extra
key of the first block only (`generate_block_hash_extra_keys`: `start_token_idx == 0`), which changes every
hash of the chain: requests with different salts share nothing. The hit is capped at prompt - 1 tokens
(`max_cache_hit_length = request.num_tokens - 1`: the last prompt token is recomputed for its logits).

SGLang (`python/sglang/srt/mem_cache/radix_cache.py`): a radix tree over token ids; `match_prefix` returns
the longest cached prefix at token granularity (page_size 1, the default), or truncated to whole pages when
page_size > 1 (`_key_match_paged`, `page_align_keys`). `RadixKey.extra_key` (LoRA id, cache salt) splits the
tree, and `Req.adjust_max_prefix_ids` caps the match at input_len - 1 tokens.

Worked example (block 16): prompts that differ only at position 40 share blocks 0 and 1 (tokens 0-31) under
vLLM, since block 2 (tokens 32-47) holds the change: 32 tokens reused; SGLang reuses all 40 tokens before it.
"""

from __future__ import annotations

from collections.abc import Hashable

from kvcalc.calc.paging.tokens import TokenSeq


def vllm_reusable_tokens(common_tokens: int, prompt_tokens: int, block_size: int) -> int:
    """vLLM: min(floor(common / B), floor((prompt - 1) / B)) x B: whole blocks of the identical prefix, at
    most prompt - 1 tokens (kv_cache_manager.get_computed_blocks)."""
    if prompt_tokens <= 0:
        return 0
    return min(common_tokens // block_size, (prompt_tokens - 1) // block_size) * block_size


def sglang_reusable_tokens(common_tokens: int, prompt_tokens: int, page_size: int = 1) -> int:
    """SGLang: floor(min(common, prompt - 1) / page) x page: the radix tree's longest match at token
    granularity (page 1), capped at input_len - 1 (Req.adjust_max_prefix_ids)."""
    if prompt_tokens <= 0:
        return 0
    return min(common_tokens, prompt_tokens - 1) // page_size * page_size


class Interner:
    """Chained block hashes without collisions: (parent id, block content, extra keys) -> a small int.

    vLLM hashes the same triple with sha256/xxhash (collisions are treated as impossible); interning gives
    equal ids exactly for equal chains, and keeps keys flat instead of nesting 10,000 levels deep."""

    def __init__(self) -> None:
        self._ids: dict[tuple[int, Hashable, Hashable], int] = {}

    def __call__(self, parent: int, content: Hashable, extra: Hashable) -> int:
        key = (parent, content, extra)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self._ids) + 1
        return found


def block_hashes(
    seq: TokenSeq, block_size: int, interner: Interner, salt: str | None = None, start: int = 0,
    parents: list[int] | None = None,
) -> list[int]:
    """The chain of hashes of `seq`'s full blocks (hash_block_tokens): block i's hash covers block i-1's,
    its tokens and, for block 0 only, the cache salt. Extends `parents` (hashes of blocks before `start`)."""
    out = list(parents or [])
    parent = out[-1] if out else 0
    for i in range(start, len(seq) // block_size):
        content = seq.span(i * block_size, (i + 1) * block_size)
        parent = interner(parent, content, salt if i == 0 else None)
        out.append(parent)
    return out


class VllmReuse:
    """vLLM's rule: leading full blocks whose chained hashes match, capped at prompt - 1 tokens."""

    engine = "vllm"

    def __init__(self, block_size: int = 16) -> None:
        self.block_size = block_size

    def reusable_tokens(
        self, cached: TokenSeq, prompt: TokenSeq, cached_salt: str | None = None, salt: str | None = None
    ) -> int:
        """Tokens of `prompt` served from the blocks `cached` left in the cache."""
        interner = Interner()
        have = block_hashes(cached, self.block_size, interner, cached_salt)
        want = block_hashes(prompt, self.block_size, interner, salt)
        limit = (len(prompt) - 1) // self.block_size if len(prompt) else 0
        n = 0
        while n < min(len(have), len(want), limit) and have[n] == want[n]:
            n += 1
        return n * self.block_size


class SglangReuse:
    """SGLang's rule: the radix tree's longest common prefix, at token (or page) granularity."""

    engine = "sglang"

    def __init__(self, page_size: int = 1) -> None:
        self.block_size = page_size

    def reusable_tokens(
        self, cached: TokenSeq, prompt: TokenSeq, cached_salt: str | None = None, salt: str | None = None
    ) -> int:
        if cached_salt != salt:
            return 0
        return sglang_reusable_tokens(cached.common_prefix(prompt), len(prompt), self.block_size)


def reuse_rule(engine: str, block_size: int) -> VllmReuse | SglangReuse:
    """The engine's reuse rule; TRT-LLM and llama.cpp are not modelled (InputError from the caller)."""
    if engine == "sglang":
        return SglangReuse(block_size)
    return VllmReuse(block_size)
