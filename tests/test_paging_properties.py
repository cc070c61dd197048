"""Invariants of paged allocation and reuse, over random traces and requests (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.calc.paged import KvGroup, KvPlan
from kvcalc.calc.paging.managers import CellManager, VllmManager
from kvcalc.calc.paging.requests import contiguous_waste_tokens, tail_waste_tokens
from kvcalc.calc.paging.reuse import SglangReuse, VllmReuse
from kvcalc.calc.paging.simulate import SimConfig, Simulation, TraceEvent, TraceSummary
from kvcalc.calc.paging.tokens import TokenSeq
from kvcalc.spec.workload import TraceRequest

UNIFORM = KvPlan(layout="uniform", page_bytes=1, block_bytes=16,
                 groups=[KvGroup(kind="full", block_size=16, window=None, layers=1)])
HYBRID = KvPlan(layout="hybrid", page_bytes=1, block_bytes=16,
                groups=[KvGroup(kind="sliding", block_size=16, window=40, layers=1),
                        KvGroup(kind="full", block_size=16, window=None, layers=1)])

TWO_FULL = KvPlan(layout="hybrid", page_bytes=1, block_bytes=16,
                  groups=[KvGroup(kind="full", block_size=16, window=None, layers=1),
                          KvGroup(kind="full", block_size=16, window=None, layers=1)])


class CheckedVllm(VllmManager):
    """Checks after every allocation that no block is held twice by one request, and that reference counts
    equal the references the block tables hold."""

    def allocate(self, *args, **kwargs) -> bool:  # type: ignore[no-untyped-def]
        ok = super().allocate(*args, **kwargs)
        refs = [0] * len(self.pool.ref)
        for table in self._tables.values():
            held = [b for blocks in table.blocks for b in blocks if b is not None]
            assert len(held) == len(set(held))
            for b in held:
                refs[b] += 1
        assert refs == self.pool.ref
        return ok


requests_st = st.lists(
    st.tuples(st.floats(0, 2), st.integers(1, 300), st.integers(0, 120), st.sampled_from([None, "a", "b"]),
              st.sampled_from([None, "t1", "t2"])),
    min_size=1, max_size=14,
)


def _trace(raw: list[tuple[float, int, int, str | None, str | None]]) -> list[TraceRequest]:
    return [TraceRequest(id=str(i), arrival_s=a, prompt_tokens=p, output_tokens=o, prefix_id=pid,
                         prefix_tokens=None if pid is None else 100, salt=salt)
            for i, (a, p, o, pid, salt) in enumerate(raw)]


def _simulate(manager: VllmManager | CellManager, raw: list, batched: int) -> list:
    cfg = SimConfig(max_num_batched_tokens=batched, max_num_seqs=8, max_model_len=512, step_s=0.05,
                    block_bytes=16, victim="newest" if isinstance(manager, VllmManager) else "fewest_outputs")
    return list(Simulation(_trace(raw), manager, cfg).events())


@settings(max_examples=60, deadline=None)
@given(requests_st, st.sampled_from([UNIFORM, HYBRID, TWO_FULL]), st.integers(20, 80), st.sampled_from([64, 8192]))
def test_vllm_blocks_never_negative_and_references_return_to_zero(raw, layout, blocks, batched) -> None:
    manager = CheckedVllm(layout, blocks)
    events = _simulate(manager, raw, batched)
    for e in events[:-1]:
        assert isinstance(e, TraceEvent)
        assert e.used >= 0 and e.free >= 0 and e.held >= 0 and e.used <= blocks - 1
    summary = events[-1]
    assert isinstance(summary, TraceSummary)
    assert summary.finished + summary.rejected == len(raw)
    assert 0.0 <= summary.hit_rate_tokens <= 1.0
    assert sum(manager.pool.ref) == 0 and manager.used == 0
    assert manager.pool.free_blocks == blocks - 1  # block 0 is the null block


@settings(max_examples=40, deadline=None)
@given(requests_st, st.integers(300, 1500))
def test_cells_return_to_zero(raw, cells) -> None:
    manager = CellManager(cells)
    events = _simulate(manager, raw, 8192)
    for e in events[:-1]:
        assert e.used >= 0 and e.free >= 0
    assert manager.used == 0 and manager.tree.locked_cells == 0
    assert manager.tree.total_cells <= cells
    assert 0.0 <= events[-1].hit_rate_tokens <= 1.0


@given(st.integers(1, 1 << 20), st.sampled_from([1, 8, 16, 32, 128]), st.integers(1, 64))
def test_paged_never_wastes_more_than_contiguous(tokens, block, blocks_in_max_len) -> None:
    """With max_model_len a whole number of blocks (4096, 8192, 131072 ...), the tail of the last block never
    exceeds what a max-length reservation leaves empty; in general it is under one block."""
    max_len = max(tokens, block * blocks_in_max_len)
    max_len += -max_len % block
    assert tail_waste_tokens(tokens, block) <= contiguous_waste_tokens(tokens, max_len)
    assert 0 <= tail_waste_tokens(tokens, block) < block


@given(st.integers(0, 200), st.integers(1, 260), st.integers(0, 60), st.sampled_from([1, 4, 16]))
def test_block_reuse_never_beats_token_reuse(common, prompt_len, extra, block) -> None:
    shared = min(common, prompt_len)
    cached = TokenSeq.stream("p", shared) + TokenSeq.stream("old", extra)
    prompt = TokenSeq.stream("p", shared) + TokenSeq.stream("new", prompt_len - shared)
    v = VllmReuse(block).reusable_tokens(cached, prompt)
    s = SglangReuse().reusable_tokens(cached, prompt)
    assert v % block == 0 and 0 <= v <= s <= max(0, prompt_len - 1)
