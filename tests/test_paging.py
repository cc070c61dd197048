"""Paged KV blocks: worked examples by hand (tokens, group rules, pool, reuse rules, the static table, a trace)."""

from __future__ import annotations

import json

import pytest

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.paged import KvGroup, KvPlan
from kvcalc.calc.paging.groups import ChunkedGroup, FullGroup, SlidingGroup, StateGroup
from kvcalc.calc.paging.managers import CellManager, VllmManager
from kvcalc.calc.paging.pool import BlockPool
from kvcalc.calc.paging.requests import paged_totals, request_blocks
from kvcalc.calc.paging.reuse import SglangReuse, VllmReuse, sglang_reusable_tokens, vllm_reusable_tokens
from kvcalc.calc.paging.simulate import SimConfig, Simulation, TraceEvent, TraceSummary, request_tokens
from kvcalc.calc.paging.tokens import TokenSeq
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.sources.hardware import find_gpu
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.workload import TraceRequest
from tests.conftest import CODELLAMA_7B, GPT_OSS_20B, build

UNIFORM = KvPlan(layout="uniform", page_bytes=100, block_bytes=3200,
                 groups=[KvGroup(kind="full", block_size=16, window=None, layers=32)])


def plan_of(config: dict, *, engine: str = "vllm", context: int = 4096, num_blocks: int | None = None,
            block_size: int | None = None) -> DeploymentPlan:
    plan = plan_deployment(build(config), find_gpu("h100"), Parallel(),
                           EngineSettings(name=engine, block_size=block_size), context=context)  # type: ignore[arg-type]
    if num_blocks is not None:
        plan = replace(plan, kv_pool=replace(plan.kv_pool, num_blocks=num_blocks))
    return plan


# --- the issue's worked example ------------------------------------------------------------------------------

def test_issue_example_blocks_and_tail_waste() -> None:
    plan = plan_of(CODELLAMA_7B)
    # CodeLlama-7B (MHA): 2 x 32 KV heads x 128 x 2 B x 32 layers = 524,288 B per token; block = 16 tokens
    assert plan.kv_pool.kv_bytes_per_token == 524_288 and plan.kv_pool.block_bytes == 16 * 524_288
    rows = [request_blocks(plan, t, 0) for t in (1, 16, 17, 100)]
    # ceil(T/16): 1, 1, 2, 7 blocks; (-T) mod 16: 15, 0, 15, 12 empty slots (100 = 6 x 16 + 4)
    assert [r.blocks for r in rows] == [1, 1, 2, 7]
    assert [r.tail_waste_tokens for r in rows] == [15, 0, 15, 12]
    assert rows[0].tail_waste_bytes == 15 * 524_288
    # contiguous to max_model_len 4096: 4095, 4080, 4079, 3996 empty slots
    assert [r.contiguous_waste_tokens for r in rows] == [4095, 4080, 4079, 3996]
    assert rows[3].contiguous_waste_bytes == 3996 * 524_288
    totals = paged_totals(plan, rows)
    assert totals.blocks_used == 11 and totals.tail_waste_tokens == 42
    # vLLM keeps block 0 as its null block: num_blocks - 1 usable
    assert totals.usable_blocks == plan.kv_pool.num_blocks - 1 and totals.blocks_free == totals.usable_blocks - 11
    assert totals.contiguous_waste_tokens == 4095 + 4080 + 4079 + 3996
    # used 11 blocks hold 11 x 16 = 176 slots; 42 of them empty: 23.86 %
    assert totals.tail_waste_pct_of_used == pytest.approx(100 * 42 / 176)


def test_prompt_output_pairs_and_cells() -> None:
    plan = plan_of(CODELLAMA_7B)
    row = request_blocks(plan, 1000, 200)  # 1200 tokens: ceil(1200/16) = 75 blocks, 1200 = 75 x 16: no tail
    assert (row.tokens, row.blocks, row.tail_waste_tokens) == (1200, 75, 0)
    cells = request_blocks(plan_of(CODELLAMA_7B, engine="sglang"), 1000, 200)
    assert (cells.blocks, cells.tail_waste_tokens) == (1200, 0)  # SGLang: one cell per token, no tail


def test_tensorrt_llm_flat_pool_is_one_full_group() -> None:
    """TensorRT-LLM's pool lists no KV-cache groups: every layer keeps every token in blocks of 32 (the long
    fuzz found the static table crashing on it, and a shared prefix counted as 0 blocks)."""
    from kvcalc.calc.paging.economics import shared_blocks

    plan = plan_of(CODELLAMA_7B, engine="trtllm")
    assert plan.kv_pool.layout.groups == [] and plan.kv_pool.block_size == 32
    rows = [request_blocks(plan, t, 0) for t in (1, 32, 33, 100)]
    # ceil(T / 32): 1, 1, 2, 4 blocks; (-T) mod 32: 31, 0, 31, 28 empty slots (100 = 3 x 32 + 4)
    assert [(r.blocks, r.peak_blocks) for r in rows] == [(1, 1), (1, 1), (2, 2), (4, 4)]
    assert [r.tail_waste_tokens for r in rows] == [31, 0, 31, 28]
    assert rows[0].tail_waste_bytes == 31 * 524_288  # CodeLlama-7B: 524,288 B per token
    # a 2,976-token cached prefix (93 whole blocks of 32) is 93 blocks held once for all its sharers
    assert shared_blocks(plan, 2976) == 93


def test_sliding_window_groups_hold_the_window() -> None:
    plan = plan_of(GPT_OSS_20B, context=8192)
    # gpt-oss-20b: one full and one sliding(128) group of 12 layers each, block 16
    assert [(g.kind, g.window) for g in plan.kv_pool.layout.groups] == [("sliding", 128), ("full", None)]
    row = request_blocks(plan, 1000, 1)
    # full: ceil(1001/16) = 63; sliding after computing token 1001 from 1000: skipped 1000 - 127 = 873 tokens
    # = 54 whole blocks, so 63 - 54 = 9 blocks; together 72
    assert row.blocks == 63 + 9
    # peak during prefill (one chunk of 1000 tokens from 0, nothing skipped yet): 63 + 63 = 126
    assert row.peak_blocks == 126


# --- token runs ----------------------------------------------------------------------------------------------

def test_token_runs_compare_exactly() -> None:
    a = TokenSeq.stream("sys", 3000) + TokenSeq.stream("req:a", 400)
    b = TokenSeq.stream("sys", 3000) + TokenSeq.stream("req:b", 400)
    assert a.common_prefix(b) == 3000 and len(a) == 3400
    assert a.span(2990, 3010) == (("sys", 2990, 10), ("req:a", 0, 10))
    ids = TokenSeq.from_ids([5, 5, 7])
    assert ids.common_prefix(TokenSeq.from_ids([5, 5, 8])) == 2
    assert TokenSeq.stream("x", 10).slice(3, 7) == TokenSeq([("x", 3, 4)])


# --- group rules ---------------------------------------------------------------------------------------------

def test_group_rules_by_hand() -> None:
    sliding = SlidingGroup(16, 128)
    assert sliding.held(1000, 1001) == 9  # worked example in groups.py
    assert sliding.skipped_tokens(100) == 0  # inside the first window nothing is skipped
    chunked = ChunkedGroup(16, 64)
    assert chunked.skipped_tokens(200) == 192 and chunked.held(200, 201) == 13 - 12
    assert StateGroup(16).held(0, 100_000) == 1
    cached = {0, 1, 2, 4, 5}.__contains__
    assert FullGroup(16).hit_blocks(cached, 7) == 3  # blocks 0-2, then a miss ends the chain
    # sliding w = 33: needs ceil(32/16) = 2 contiguous cached blocks, searched right to left: 4 and 5 -> 6
    assert SlidingGroup(16, 33).hit_blocks(cached, 7) == 6
    # chunked 64 with 7 blocks: the hit chunk starts at block (112 // 64) x 64 / 16 = 4; 4, 5 cached -> 6
    assert ChunkedGroup(16, 64).hit_blocks(cached, 7) == 6


# --- block pool ----------------------------------------------------------------------------------------------

def test_pool_reference_counts_and_lru_eviction() -> None:
    pool = BlockPool(4)
    a, b = pool.get_new_blocks(2)
    pool.cache(a, "k0")
    pool.cache(b, "k1")
    pool.touch(a)  # a second request shares block a
    assert pool.ref[a] == 2 and pool.used_blocks == 2
    pool.free([b, a])  # the first request finishes, last block first
    assert pool.used_blocks == 1 and pool.free_blocks == 3 and pool.cached_free_blocks == 1
    pool.free([a])
    # queue: 2, 3 (never used), then b, then a (freed last: evicted last)
    assert list(pool.free_queue) == [2, 3, b, a]
    pool.get_new_blocks(3)  # takes 2, 3 and b: b's cache entry is evicted
    assert pool.evictions == 1 and pool.lookup("k1") is None and pool.lookup("k0") == a


def test_unhashed_free_blocks_are_reused_first() -> None:
    pool = BlockPool(3)
    (x,) = pool.get_new_blocks(1)
    pool.free([x])  # a partial block: no hash, so back at the head
    assert next(iter(pool.free_queue)) == x


# --- reuse rules ---------------------------------------------------------------------------------------------

def test_shared_prefix_of_3000_tokens_shares_187_blocks() -> None:
    cached = TokenSeq.stream("sys", 3000) + TokenSeq.stream("a", 400)
    prompt = TokenSeq.stream("sys", 3000) + TokenSeq.stream("b", 400)
    # floor(3000 / 16) = 187 full blocks = 2,992 tokens; SGLang reuses all 3,000
    assert VllmReuse(16).reusable_tokens(cached, prompt) == 187 * 16 == 2992
    assert SglangReuse().reusable_tokens(cached, prompt) == 3000


def test_one_token_change_at_40_ends_reuse_after_block_2() -> None:
    ids = list(range(64))
    changed = ids.copy()
    changed[40] = -1
    a, b = TokenSeq.from_ids(ids), TokenSeq.from_ids(changed)
    # block 2 holds tokens 32-47, so only blocks 0 and 1 (32 tokens) match; SGLang keeps the 40 before it
    assert VllmReuse(16).reusable_tokens(a, b) == 32
    assert SglangReuse().reusable_tokens(a, b) == 40


def test_salt_and_last_token_rules() -> None:
    seq = TokenSeq.stream("sys", 64)
    assert VllmReuse(16).reusable_tokens(seq, seq, "tenant-a", "tenant-b") == 0
    assert SglangReuse().reusable_tokens(seq, seq, "tenant-a", "tenant-b") == 0
    # an identical 64-token prompt: at most 63 tokens may hit -> floor(63/16) = 3 blocks = 48 (vLLM); 63 (SGLang)
    assert VllmReuse(16).reusable_tokens(seq, seq, "t", "t") == 48
    assert SglangReuse().reusable_tokens(seq, seq) == 63
    assert vllm_reusable_tokens(3000, 3400, 16) == 2992 and sglang_reusable_tokens(3000, 3400) == 3000


# --- managers ------------------------------------------------------------------------------------------------

def test_hybrid_manager_hit_is_the_shortest_group_hit() -> None:
    plan = plan_of(GPT_OSS_20B, context=8192)
    m = VllmManager(plan.kv_pool.layout, 2000)
    first = TraceRequest(id="1", arrival_s=0, prompt_tokens=3400, output_tokens=0, prefix_id="sys",
                         prefix_tokens=3000)
    second = replace(first, id="2")
    seq1, seq2 = request_tokens(first), request_tokens(second)
    assert m.allocate("1", seq1, None, 0, 3400)
    m.commit("1", 3400, prompt_done=True)
    m.release("1", 3400, finished=True)
    hit = m.lookup("2", seq2, 3400, None)
    # full group: 187 cached blocks; sliding(128) group: its last ceil(127/16) = 8 blocks before the hit are
    # cached too -> 2,992 tokens
    assert hit == 2992
    assert m.allocate("2", seq2, None, hit, 3400)
    # full: ceil(3400/16) = 213 blocks (187 reused); sliding: skipped (2992 - 127) // 16 = 179 null blocks,
    # 8 reused, 213 - 187 = 26 new -> 34; held 213 + 34 = 247
    assert m.held("2") == 247


def test_cell_manager_reuses_at_token_granularity() -> None:
    m = CellManager(10_000)
    first = TraceRequest(id="1", arrival_s=0, prompt_tokens=3400, output_tokens=10, prefix_id="sys",
                         prefix_tokens=3000)
    seq = request_tokens(first)
    assert m.allocate("1", seq, None, 0, 3400)
    m.commit("1", 3400, prompt_done=True)
    m.release("1", 3410, finished=True)
    other = request_tokens(replace(first, id="2"))
    assert m.lookup("2", other, 3400, None) == 3000
    assert m.tree.total_cells == 3410 and m.used == 0  # all cached, nothing locked


# --- a trace, by hand ----------------------------------------------------------------------------------------

def _run(num_blocks: int) -> tuple[list[TraceEvent], TraceSummary, VllmManager]:
    reqs = [TraceRequest(id="r1", arrival_s=0, prompt_tokens=20, output_tokens=20),
            TraceRequest(id="r2", arrival_s=0, prompt_tokens=40, output_tokens=10)]
    m = VllmManager(UNIFORM, num_blocks)
    cfg = SimConfig(max_num_batched_tokens=8192, max_num_seqs=None, max_model_len=4096, step_s=0.01,
                    block_bytes=3200)
    out = list(Simulation(reqs, m, cfg).events())
    summary = out.pop()
    assert isinstance(summary, TraceSummary)
    return out, summary, m  # type: ignore[return-value]


def test_trace_admit_grow_finish_by_hand() -> None:
    events, summary, m = _run(10)
    got = [(e.event, e.step, e.id, e.blocks) for e in events]
    # step 0: both prefill (20 -> 2 blocks, 40 -> 3); then one token per step each.
    # r2 needs block 4 for token 49 in the step that starts at 48 computed (step 9) and ends at 50 (step 10);
    # r1 needs block 3 for token 33 at step 13 (20 + 12 = 32 computed) and ends at 40 (step 20)
    assert got == [("admit", 0, "r1", 2), ("admit", 0, "r2", 3), ("grow", 9, "r2", 1), ("finish", 10, "r2", -4),
                   ("grow", 13, "r1", 1), ("finish", 20, "r1", -3)]
    assert events[-1].t_s == pytest.approx(0.20)
    assert summary.steps == 21 and summary.peak_used == 6 and summary.finished == 2
    assert sum(m.pool.ref) == 0


def test_trace_preemption_recomputes_from_the_cache() -> None:
    events, summary, _ = _run(6)
    first = next(e for e in events if e.event == "preempt")
    # 6 blocks, 5 usable (block 0 is vLLM's null block): r1 2 + r2 3; at step 9 r2 needs a 4th: r2 (the
    # newest) is preempted with 48 computed tokens, 3 blocks = 3 x 3,200 B to swap
    assert (first.step, first.id, first.recompute_tokens, first.swap_bytes) == (9, "r2", 48, 9600)
    resumed = next(e for e in events if e.event == "admit" and e.step == 10)
    # its 3 full blocks stay cached; at most 48 - 1 tokens may hit -> 2 blocks = 32 tokens
    assert resumed.cached_tokens == 32
    assert summary.finished == 2 and summary.preemptions >= 1


def test_rejects_what_can_never_fit() -> None:
    m = VllmManager(UNIFORM, 2)
    cfg = SimConfig(max_num_batched_tokens=8192, max_num_seqs=None, max_model_len=4096, step_s=0.01,
                    block_bytes=3200)
    reqs = [TraceRequest(id="big", arrival_s=0, prompt_tokens=100, output_tokens=0),
            TraceRequest(id="long", arrival_s=0, prompt_tokens=5000, output_tokens=0)]
    events = list(Simulation(reqs, m, cfg).events())
    assert [e.event for e in events if isinstance(e, TraceEvent)] == ["reject", "reject"]
    assert events[-1].rejected == 2  # type: ignore[union-attr]


# --- the trace reader ----------------------------------------------------------------------------------------

def test_trace_reader_skips_bad_lines(tmp_path) -> None:
    from kvcalc.errors import InputError
    from kvcalc.sources.trace import read_trace

    path = tmp_path / "trace.jsonl"
    lines = [
        {"id": "a", "arrival_s": 0, "prompt_tokens": 100, "output_tokens": 5, "prefix_id": 7, "prefix_tokens": 500},
        {"id": "a", "arrival_s": 1, "prompt_tokens": 10, "output_tokens": 5},  # duplicate id
        {"id": "b", "arrival_s": -1, "prompt_tokens": 10, "output_tokens": 5},  # negative arrival
        {"id": "c", "arrival_s": 1, "prompt_tokens": 0, "output_tokens": 5},  # empty prompt
        {"id": "d", "arrival_s": 2.5, "prompt_tokens": 10, "output_tokens": True},  # a bool is not a count
        {"id": "e", "arrival_s": 3, "prompt_tokens": 10, "output_tokens": 0, "cache_salt": "tenant-1"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n{not json\n")
    requests, skipped = read_trace(str(path))
    assert [r.id for r in requests] == ["a", "e"]
    # prefix_tokens is clipped to the prompt; ids and prefix ids become strings; the salt is kept
    assert (requests[0].prefix_id, requests[0].prefix_tokens, requests[1].salt) == ("7", 100, "tenant-1")
    assert skipped.malformed == 5 and skipped.first.startswith("line 2: duplicate id")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("{}\n")
    with pytest.raises(InputError, match="no usable trace lines"):
        read_trace(str(empty))


def test_hits_of_every_group_are_taken_before_new_blocks() -> None:
    # two full groups, 7 blocks (block 0 is the null block). Request a (32 tokens) takes blocks 1, 2 (group 0)
    # and 3, 4 (group 1); x (16 tokens, unrelated) takes 5 and 6. Both finish: the free queue is 2, 1, 4, 3, 5,
    # 6, all cached.
    layout = KvPlan(layout="hybrid", page_bytes=1, block_bytes=16,
                    groups=[KvGroup(kind="full", block_size=16, window=None, layers=1),
                            KvGroup(kind="full", block_size=16, window=None, layers=1)])
    m = VllmManager(layout, 7)
    for rid, tokens, prefix in (("a", 32, "p"), ("x", 16, "q")):
        seq = request_tokens(TraceRequest(id=rid, arrival_s=0, prompt_tokens=tokens, output_tokens=0,
                                          prefix_id=prefix))
        assert m.allocate(rid, seq, None, 0, tokens)
        m.commit(rid, tokens, prompt_done=True)
    for rid, tokens in (("a", 32), ("x", 16)):
        m.release(rid, tokens, finished=True)
    assert list(m.pool.free_queue) == [2, 1, 4, 3, 5, 6]
    b = request_tokens(TraceRequest(id="b", arrival_s=0, prompt_tokens=40, output_tokens=0, prefix_id="p",
                                    prefix_tokens=32))
    assert m.lookup("b", b, 40, None) == 32  # blocks 1-2 of group 0 and 3-4 of group 1
    # 4 hits + 1 new block per group = 6. Taking group 0's new block before group 1's hits are referenced
    # would pop block 4 (group 1's hit) from the head of the queue
    assert m.allocate("b", b, None, 32, 40)
    assert m._tables["b"].blocks == [[1, 2, 5], [3, 4, 6]] and m.pool.ref == [0] + [1] * 6
