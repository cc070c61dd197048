"""How many blocks one request holds in one vLLM KV-cache group, as its tokens are computed.

vLLM (`vllm/v1/core/single_type_kv_cache_manager.py`) keeps a block table per request and group. Before it
allocates slots for new tokens it frees the blocks no token can attend to any more
(`remove_skipped_blocks(request_id, num_computed_tokens)`): blocks wholly before `get_num_skipped_tokens(n)`:
- full attention: 0 skipped (every block is held until the request finishes);
- sliding window w (SlidingWindowManager): n - w + 1 skipped (the token being computed sees w - 1 before it);
- chunked local attention c (ChunkedLocalAttentionManager): floor(n / c) x c skipped (the current chunk only);
- a recurrent state (MambaManager; linear attention): one block whatever the length.
So after computing from n0 to n1 tokens a group holds ceil(n1 / B) - floor(skipped(n0) / B) blocks.

Worked example (sliding window 128, block 16): a request decoding at n0 = 1000 computed tokens skips
1000 - 127 = 873 tokens = 54 whole blocks; with n1 = 1001 it needs ceil(1001/16) = 63 blocks, so it holds
63 - 54 = 9 blocks (the window of 127 + 1 tokens spans 9 blocks at this offset).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kvcalc.calc.paged import KvGroup, KvPlan
from kvcalc.units import ceil_div

if TYPE_CHECKING:
    from kvcalc.calc.plan import KvPool

IsCached = Callable[[int], bool]


class FullGroup:
    """Full attention (MLA too): every block is held until the request finishes."""

    reusable = True

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size

    def skipped_tokens(self, computed: int) -> int:
        return 0

    def blocks_needed(self, tokens: int) -> int:
        """Block-table length to hold `tokens` tokens: ceil(tokens / B)."""
        return ceil_div(tokens, self.block_size)

    def held(self, computed_before: int, total_after: int) -> int:
        """Blocks held after computing up to `total_after`, starting from `computed_before`."""
        return max(0, self.blocks_needed(total_after) - self.skipped_tokens(computed_before) // self.block_size)

    def first_freeing(self, skipped_blocks: int) -> int | None:
        """Smallest computed count n at which floor(skipped(n) / B) exceeds `skipped_blocks` (None: never)."""
        return None

    def hit_blocks(self, is_cached: IsCached, max_blocks: int) -> int:
        """Blocks of a prefix-cache hit of at most `max_blocks` (FullAttentionManager.find_longest_cache_hit):
        leading cached blocks; the chain of hashes makes every block after the first miss a miss too."""
        n = 0
        while n < max_blocks and is_cached(n):
            n += 1
        return n


class SlidingGroup(FullGroup):
    """Sliding window w: tokens before n - w + 1 are skipped (SlidingWindowManager.get_num_skipped_tokens)."""

    def __init__(self, block_size: int, window: int) -> None:
        super().__init__(block_size)
        self.window = window

    def skipped_tokens(self, computed: int) -> int:
        return max(0, computed - self.window + 1)

    def first_freeing(self, skipped_blocks: int) -> int | None:
        """n - w + 1 >= (k + 1) B  ->  n = (k + 1) B + w - 1."""
        return (skipped_blocks + 1) * self.block_size + self.window - 1

    def hit_blocks(self, is_cached: IsCached, max_blocks: int) -> int:
        """SlidingWindowManager.find_longest_cache_hit: search right to left for ceil((w - 1) / B) contiguous
        cached blocks (the window of the next token); the hit ends with them. Without such a run, the
        cached blocks from block 0 on."""
        need = ceil_div(self.window - 1, self.block_size)
        run = 0
        for i in range(max_blocks - 1, -1, -1):
            if is_cached(i):
                run += 1
                if run >= need:
                    return i + run
            else:
                run = 0
        return run


class ChunkedGroup(FullGroup):
    """Chunked local attention c: tokens before the current chunk are skipped
    (ChunkedLocalAttentionManager.get_num_skipped_tokens: floor(n / c) x c)."""

    def __init__(self, block_size: int, chunk: int) -> None:
        super().__init__(block_size)
        self.chunk = chunk

    def skipped_tokens(self, computed: int) -> int:
        return computed // self.chunk * self.chunk

    def first_freeing(self, skipped_blocks: int) -> int | None:
        """floor(n / c) x c >= (k + 1) B  ->  n = ceil((k + 1) B / c) x c."""
        return ceil_div((skipped_blocks + 1) * self.block_size, self.chunk) * self.chunk

    def hit_blocks(self, is_cached: IsCached, max_blocks: int) -> int:
        """ChunkedLocalAttentionManager.find_longest_cache_hit: blocks before the chunk that holds the hit
        limit count as computed (nothing attends to them); from the chunk's first block on, leading cached
        blocks."""
        start = max_blocks * self.block_size // self.chunk * self.chunk // self.block_size
        n = start
        while n < max_blocks and is_cached(n):
            n += 1
        return n


class StateGroup(FullGroup):
    """A recurrent state (Mamba, linear attention): one block per request whatever its length. vLLM keeps no
    per-block states by default, so kvcalc reuses nothing across requests in these groups."""

    reusable = False

    def blocks_needed(self, tokens: int) -> int:
        return 1 if tokens > 0 else 0

    def hit_blocks(self, is_cached: IsCached, max_blocks: int) -> int:
        return 0


def group_rule(group: KvGroup) -> FullGroup:
    """The rule for one KV-cache group of a plan's layout."""
    if group.kind in ("linear", "mamba"):
        return StateGroup(group.block_size)
    if group.kind == "sliding" and group.window:
        return SlidingGroup(group.block_size, group.window)
    if group.kind == "chunked" and group.window:
        return ChunkedGroup(group.block_size, group.window)
    return FullGroup(group.block_size)


def group_rules(layout: KvPlan) -> list[FullGroup]:
    """One rule per KV-cache group, in the layout's order."""
    return [group_rule(g) for g in layout.groups]


def pool_rules(pool: KvPool) -> list[FullGroup]:
    """The pool's group rules; a block pool whose layout lists no groups (TensorRT-LLM's flat pool: every layer
    keeps every token, blocks of `pool.block_size`) is one full-attention group."""
    return group_rules(pool.layout) or [FullGroup(pool.block_size)]
