"""SGLang's radix cache at token granularity (`python/sglang/srt/mem_cache/radix_cache.py`, RadixCache).

Each node holds a run of tokens and their KV cells. `match_prefix` walks from the root and splits a node
where a match ends inside it (`_split_node`); `insert` adds the unmatched rest as a new leaf and reports how
much was already there (the caller frees those duplicate cells); running requests lock the path to their
last node (`inc_lock_ref` / `dec_lock_ref`), and `evict` removes unlocked leaves, least recently used first,
until enough cells are free. A cache salt (`RadixKey.extra_key`) keeps a separate tree.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable

from kvcalc.calc.paging.tokens import TokenSeq


class Node:
    """A radix-tree node: `key` tokens whose KV cells it holds."""

    __slots__ = ("children", "key", "last_access", "lock_ref", "parent")

    def __init__(self, key: TokenSeq, parent: Node | None) -> None:
        self.key = key
        self.children: dict[Hashable, Node] = {}
        self.parent = parent
        self.lock_ref = 0
        self.last_access = 0


class RadixCache:
    """Token-granular prefix cache; sizes are in cells (one token's KV in every layer)."""

    def __init__(self) -> None:
        self.roots: dict[str | None, Node] = {}
        self.total_cells = 0
        self.locked_cells = 0
        self._clock = itertools.count(1)

    @property
    def evictable_cells(self) -> int:
        return self.total_cells - self.locked_cells

    def _root(self, salt: str | None) -> Node:
        root = self.roots.get(salt)
        if root is None:
            root = self.roots[salt] = Node(TokenSeq(), None)
            root.lock_ref = 1
        return root

    def match(self, seq: TokenSeq, limit: int, salt: str | None = None) -> tuple[int, Node]:
        """Longest cached prefix of seq[:limit] and the node it ends at (splitting a node if needed)."""
        node, pos, now = self._root(salt), 0, next(self._clock)
        while pos < limit:
            child = node.children.get(seq.token(pos))
            if child is None:
                break
            same = child.key.common_prefix(seq.slice(pos, limit))
            child.last_access = now
            if same < len(child.key):
                child = self._split(child, same)
            node, pos = child, pos + same
            if same < len(node.key):
                break
        return pos, node

    def insert(self, seq: TokenSeq, salt: str | None = None) -> tuple[int, Node]:
        """Insert seq; return (tokens that were already cached, the node holding its last token)."""
        present, node = self.match(seq, len(seq), salt)
        if present < len(seq):
            leaf = Node(seq.slice(present, len(seq)), node)
            leaf.last_access = next(self._clock)
            node.children[leaf.key.token(0)] = leaf
            self.total_cells += len(leaf.key)
            node = leaf
        return present, node

    def lock(self, node: Node) -> None:
        """inc_lock_ref: protect node and its ancestors from eviction."""
        while node.parent is not None:
            if node.lock_ref == 0:
                self.locked_cells += len(node.key)
            node.lock_ref += 1
            node = node.parent

    def unlock(self, node: Node) -> None:
        """dec_lock_ref."""
        while node.parent is not None:
            node.lock_ref -= 1
            if node.lock_ref == 0:
                self.locked_cells -= len(node.key)
            node = node.parent

    def evict(self, cells: int) -> int:
        """Remove unlocked leaves, least recently used first, until `cells` are freed; return cells freed."""
        heap = [(n.last_access, id(n), n) for n in self._nodes() if not n.children and n.lock_ref == 0]
        heapq.heapify(heap)
        freed = 0
        while heap and freed < cells:
            _, _, node = heapq.heappop(heap)
            parent = node.parent
            assert parent is not None
            del parent.children[node.key.token(0)]
            freed += len(node.key)
            self.total_cells -= len(node.key)
            if parent.parent is not None and not parent.children and parent.lock_ref == 0:
                heapq.heappush(heap, (parent.last_access, id(parent), parent))
        return freed

    def _split(self, child: Node, at: int) -> Node:
        """Cut child's key at `at`: a new parent holds the first part (radix_cache._split_node)."""
        parent = child.parent
        assert parent is not None
        head = Node(child.key.slice(0, at), parent)
        head.lock_ref = child.lock_ref
        head.last_access = child.last_access
        parent.children[head.key.token(0)] = head
        child.key = child.key.slice(at, len(child.key))
        child.parent = head
        head.children[child.key.token(0)] = child
        return head  # both halves keep the lock count, so locked_cells is unchanged

    def _nodes(self) -> list[Node]:
        out, stack = [], [c for r in self.roots.values() for c in r.children.values()]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(node.children.values())
        return out
