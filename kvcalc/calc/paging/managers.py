"""One engine's KV manager over a plan's pool, as the trace simulator drives it.

Both answer the same questions: how many tokens of a waiting request the cache already holds (`lookup`),
whether slots for its next tokens can be allocated (`allocate`, evicting cached free blocks as needed),
registering computed tokens for reuse (`commit`), and freeing a finished or preempted request (`release`).

- VllmManager: vLLM V1's KVCacheManager/KVCacheCoordinator over one BlockPool shared by every KV-cache
  group (`vllm/v1/core/kv_cache_manager.py`, `kv_cache_coordinator.py`): per group a block table; skipped
  blocks (sliding windows, chunks) are freed before new ones are allocated; the cache hit is the shortest
  of the groups' hits (HybridKVCacheCoordinator.find_longest_cache_hit); a hit on a free cached block counts
  against the free blocks (get_num_blocks_to_allocate); a request's blocks are freed last block first.
- CellManager: SGLang's token cells under its radix cache (`mem_cache/radix_cache.py`): the matched prefix
  is locked, the rest takes one cell per token; computed prompts are inserted after prefill
  (cache_unfinished_req) and whole sequences at the end (cache_finished_req), duplicates freed; unlocked
  leaves are evicted LRU when cells run out. With caching off (TRT-LLM, llama.cpp here) it is a plain
  cell counter.
"""

from __future__ import annotations

from kvcalc.calc.paged import KvPlan
from kvcalc.calc.paging.groups import FullGroup, StateGroup, group_rules
from kvcalc.calc.paging.pool import BlockPool
from kvcalc.calc.paging.radix import Node, RadixCache
from kvcalc.calc.paging.reuse import Interner, block_hashes
from kvcalc.calc.paging.tokens import TokenSeq


class _Table:
    """One request's state in a VllmManager: block tables, hashes, and how many blocks are registered."""

    def __init__(self, seq: TokenSeq, salt: str | None, groups: list[FullGroup], interner: Interner) -> None:
        self.blocks: list[list[int | None]] = [[] for _ in groups]
        self.committed = [0] * len(groups)
        sizes = {g.block_size for g in groups}
        self.hashes = {b: block_hashes(seq, b, interner, salt) for b in sizes}


class VllmManager:
    """vLLM's paged KV cache (see the module docstring). Units: blocks."""

    unit = "blocks"

    def __init__(self, layout: KvPlan, num_blocks: int, *, caching: bool = True) -> None:
        self.groups = group_rules(layout)
        self.pool = BlockPool(num_blocks, null_block=True)
        self.caching = caching and all(g.reusable for g in self.groups)
        self.capacity = self.pool.num_blocks  # num_blocks - 1: block 0 is the null block
        self._interner = Interner()
        self._tables: dict[str, _Table] = {}
        self._pending: dict[str, _Table] = {}

    @property
    def used(self) -> int:
        return self.pool.used_blocks

    @property
    def evictions(self) -> int:
        return self.pool.evictions

    @property
    def cached_free(self) -> int:
        return self.pool.cached_free_blocks

    def held(self, rid: str) -> int:
        table = self._tables.get(rid)
        return sum(b is not None for blocks in table.blocks for b in blocks) if table else 0

    def lookup(self, rid: str, seq: TokenSeq, prefill_tokens: int, salt: str | None) -> int:
        """Cached tokens of a waiting request: the shortest group hit, at most prefill_tokens - 1."""
        if not self.caching or prefill_tokens <= 1:
            return 0
        table = self._pending.get(rid) or _Table(seq, salt, self.groups, self._interner)
        self._pending[rid] = table
        hit = prefill_tokens - 1
        while True:
            new = min(self._group_hit(i, g, table, hit) for i, g in enumerate(self.groups))
            if new >= hit:
                return hit
            hit = new

    def _group_hit(self, index: int, group: FullGroup, table: _Table, limit: int) -> int:
        hashes = table.hashes[group.block_size]
        blocks = group.hit_blocks(lambda i: (index, hashes[i]) in self.pool.cached,
                                  min(limit // group.block_size, len(hashes)))
        return blocks * group.block_size

    def allocate(self, rid: str, seq: TokenSeq, salt: str | None, computed: int, total: int) -> bool:
        """Slots for tokens up to `total`; a new request starts from a cache hit of `computed` tokens."""
        table = self._tables.get(rid)
        new = table is None
        if table is None:
            table = self._pending.pop(rid, None) or _Table(seq, salt, self.groups, self._interner)
        hits = self._hit_blocks(table, computed) if new else [[] for _ in self.groups]
        if not new:
            self._free_skipped(table, computed)
        need = 0
        for i, g in enumerate(self.groups):
            have = len(table.blocks[i]) + (g.skipped_tokens(computed) // g.block_size + len(hits[i]) if new else 0)
            need += max(0, g.blocks_needed(total) - have)
            need += sum(1 for b in hits[i] if self.pool.ref[b] == 0)
        if need > self.pool.free_blocks:
            if new:
                self._pending[rid] = table
            return False
        if new:  # every group's hits leave the free queue before any new block is taken from it
            for i, g in enumerate(self.groups):
                table.blocks[i] = [None] * (g.skipped_tokens(computed) // g.block_size)
                for b in hits[i]:
                    self.pool.touch(b)
                table.blocks[i].extend(hits[i])
                table.committed[i] = computed // g.block_size
        for i, g in enumerate(self.groups):
            missing = g.blocks_needed(total) - len(table.blocks[i])
            if missing > 0:
                table.blocks[i].extend(self.pool.get_new_blocks(missing))
        self._tables[rid] = table
        return True

    def _hit_blocks(self, table: _Table, hit: int) -> list[list[int]]:
        """The cached blocks a hit of `hit` tokens reuses, per group (blocks a window skips stay null)."""
        out: list[list[int]] = []
        for i, g in enumerate(self.groups):
            hashes = table.hashes[g.block_size]
            first = g.skipped_tokens(hit) // g.block_size
            out.append([self.pool.cached[(i, hashes[j])] for j in range(first, hit // g.block_size)])
        return out

    def _free_skipped(self, table: _Table, computed: int) -> None:
        """remove_skipped_blocks: free blocks no future token attends to."""
        for i, g in enumerate(self.groups):
            blocks = table.blocks[i]
            gone = [j for j in range(min(g.skipped_tokens(computed) // g.block_size, len(blocks)))
                    if blocks[j] is not None]
            self.pool.free([blocks[j] for j in reversed(gone)])  # type: ignore[misc]
            for j in gone:
                blocks[j] = None

    def commit(self, rid: str, computed: int, prompt_done: bool = False) -> None:
        """cache_blocks: register the request's blocks that are full after `computed` tokens."""
        table = self._tables[rid]
        for i, g in enumerate(self.groups):
            hashes = table.hashes[g.block_size]
            full = min(computed // g.block_size, len(hashes))
            if self.caching:
                for j in range(table.committed[i], full):
                    block = table.blocks[i][j]
                    if block is not None:
                        self.pool.cache(block, (i, hashes[j]))
            table.committed[i] = max(table.committed[i], full)

    def quiet_steps(self, rid: str, computed: int) -> int:
        """Decode steps from `computed` on that allocate and free nothing: until a step's token overflows
        the table, or the window skips a further block."""
        table = self._tables[rid]
        quiet = 1 << 62
        for i, g in enumerate(self.groups):
            blocks = table.blocks[i]
            if isinstance(g, StateGroup):
                continue
            quiet = min(quiet, len(blocks) * g.block_size - computed)
            nulls = next((j for j, b in enumerate(blocks) if b is not None), len(blocks))
            next_free = g.first_freeing(nulls)
            if next_free is not None:
                quiet = min(quiet, max(0, next_free - computed))
        return max(0, quiet)

    def release(self, rid: str, computed: int, finished: bool) -> int:
        """Free a finished or preempted request's blocks, last block first; return blocks released."""
        table = self._tables.pop(rid)
        self._pending.pop(rid, None)
        count = 0
        for blocks in table.blocks:
            held = [b for b in reversed(blocks) if b is not None]
            self.pool.free(held)
            count += len(held)
        return count


class CellManager:
    """Token cells with SGLang's radix cache (or none). Units: cells (one token each)."""

    unit = "cells"

    def __init__(self, num_cells: int, *, caching: bool = True) -> None:
        self.capacity = num_cells
        self.caching = caching
        self.tree = RadixCache()
        self.evictions = 0
        self._own: dict[str, int] = {}
        self._cached: dict[str, int] = {}
        self._node: dict[str, Node] = {}
        self._seqs: dict[str, tuple[TokenSeq, str | None]] = {}
        self._prompt_in_tree: set[str] = set()

    @property
    def used(self) -> int:
        """Cells referenced by running requests (locked tree cells and private cells)."""
        return self.tree.locked_cells + sum(self._own.values())

    @property
    def cached_free(self) -> int:
        return self.tree.evictable_cells

    def quiet_steps(self, rid: str, computed: int) -> int:
        """Decode steps every running request can take from free cells without evicting anything."""
        return self._free_cells() // max(1, len(self._own))

    def _free_cells(self) -> int:
        return self.capacity - self.tree.total_cells - sum(self._own.values())

    def held(self, rid: str) -> int:
        return self._own.get(rid, 0) + self._cached.get(rid, 0)

    def lookup(self, rid: str, seq: TokenSeq, prefill_tokens: int, salt: str | None) -> int:
        if not self.caching or prefill_tokens <= 1:
            return 0
        return self.tree.match(seq, prefill_tokens - 1, salt)[0]

    def allocate(self, rid: str, seq: TokenSeq, salt: str | None, computed: int, total: int) -> bool:
        new = rid not in self._own
        if new:
            hit, node = self.tree.match(seq, computed, salt) if self.caching else (0, None)
            if node is not None:
                self.tree.lock(node)
                self._node[rid] = node
            self._cached[rid], self._own[rid] = hit, 0
            self._seqs[rid] = (seq, salt)
        need = total - self.held(rid)
        short = need - self._free_cells()
        if short > 0:
            self.evictions += self.tree.evict(short)
        if need > self._free_cells():
            if new:
                self._drop(rid)
            return False
        self._own[rid] += max(0, need)
        return True

    def commit(self, rid: str, computed: int, prompt_done: bool = False) -> None:
        """Once the prompt is computed: insert it into the tree, freeing cells it already held (decode
        tokens wait for the end: cache_finished_req)."""
        if self.caching and prompt_done and rid not in self._prompt_in_tree:
            self._prompt_in_tree.add(rid)
            if computed > self._cached[rid]:
                self._insert(rid, computed)

    def release(self, rid: str, computed: int, finished: bool) -> int:
        """Finish (insert the whole sequence, cache_finished_req) or preempt (drop private cells)."""
        held = self.held(rid)
        if finished and self.caching and computed > self._cached[rid]:
            self._insert(rid, computed)
        self._drop(rid)
        return held

    def _insert(self, rid: str, computed: int) -> None:
        seq, salt = self._seqs[rid]
        _, node = self.tree.insert(seq.slice(0, computed), salt)  # cells it already held are freed
        self._own[rid] -= computed - self._cached[rid]
        self._cached[rid] = computed
        old = self._node.get(rid)
        self.tree.lock(node)
        if old is not None:
            self.tree.unlock(old)
        self._node[rid] = node

    def _drop(self, rid: str) -> None:
        node = self._node.pop(rid, None)
        if node is not None:
            self.tree.unlock(node)
        self._own.pop(rid, None)
        self._cached.pop(rid, None)
        self._seqs.pop(rid, None)
        self._prompt_in_tree.discard(rid)
