"""vLLM's block pool: reference counts, the free queue in eviction order, and the prefix cache's hash map.

Modelled on `vllm/v1/core/block_pool.py` (BlockPool) and `kv_cache_utils.py` (KVCacheBlock,
FreeKVCacheBlockQueue):
- a block is in use while its reference count is above zero; requests sharing a cached prefix each hold a
  reference (`touch`), so a shared block is freed only when the last of them finishes;
- free blocks queue in eviction order: a freed block that holds a full, hashed block of tokens goes to the
  tail (evicted last: least recently used first), one without a hash to the head (reused first);
- a new block is taken from the head (`get_new_blocks`); if it still holds a cached block, that cache entry
  is evicted then (`_maybe_evict_cached_block`);
- a cached free block hit by a new request leaves the queue and gains a reference (`touch`);
- block 0 is the null block, never allocated: it fills the block-table slots that a sliding window skipped
  (`self.null_block = self.free_block_queue.popleft()`), so num_blocks - 1 blocks are usable.
Free = blocks with no reference, cached or not: cached ones are there for the taking.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class BlockPool:
    """`num_blocks` blocks (block 0 reserved as the null block when `null_block`); keys are the chained block
    hashes (any hashable) of full blocks."""

    def __init__(self, num_blocks: int, *, null_block: bool = False) -> None:
        if num_blocks < 0:
            raise ValueError("num_blocks must not be negative")
        first = 1 if null_block and num_blocks else 0
        self.num_blocks = num_blocks - first
        self.ref = [0] * num_blocks
        self.key: list[Hashable | None] = [None] * num_blocks
        self.free_queue: OrderedDict[int, None] = OrderedDict((b, None) for b in range(first, num_blocks))
        self.cached: dict[Hashable, int] = {}
        self.evictions = 0

    @property
    def free_blocks(self) -> int:
        """Blocks without a reference (cached ones included: they are evictable)."""
        return len(self.free_queue)

    @property
    def used_blocks(self) -> int:
        """Usable blocks with a reference (the null block is not counted)."""
        return self.num_blocks - len(self.free_queue)

    @property
    def cached_free_blocks(self) -> int:
        """Free blocks that still hold a cached prefix."""
        return sum(1 for b in self.free_queue if self.key[b] is not None)

    def get_new_blocks(self, n: int) -> list[int]:
        """Take n blocks from the head of the free queue, evicting the cache entries they held."""
        if n > len(self.free_queue):
            raise ValueError(f"asked for {n} blocks, {len(self.free_queue)} free")
        out = []
        for _ in range(n):
            block, _ = self.free_queue.popitem(last=False)
            self._evict(block)
            self.ref[block] = 1
            out.append(block)
        return out

    def touch(self, block: int) -> None:
        """A request takes a reference on a cached block (it leaves the free queue if it was there)."""
        if self.ref[block] == 0:
            del self.free_queue[block]
        self.ref[block] += 1

    def free(self, blocks: list[int]) -> None:
        """Drop one reference on each block, in the given order; a block reaching zero joins the queue:
        hashed at the tail (kept as long as possible), unhashed at the head."""
        for block in blocks:
            if self.ref[block] <= 0:
                raise ValueError(f"block {block} freed with no reference")
            self.ref[block] -= 1
            if self.ref[block] == 0:
                self.free_queue[block] = None
                if self.key[block] is None:
                    self.free_queue.move_to_end(block, last=False)

    def cache(self, block: int, key: Hashable) -> None:
        """Register a full block under its chained hash (the first block holding a key keeps it)."""
        if self.key[block] is not None or key in self.cached:
            return
        self.key[block] = key
        self.cached[key] = block

    def lookup(self, key: Hashable) -> int | None:
        return self.cached.get(key)

    def _evict(self, block: int) -> None:
        key = self.key[block]
        if key is not None:
            del self.cached[key]
            self.key[block] = None
            self.evictions += 1
