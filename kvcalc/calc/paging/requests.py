"""A static table of requests resident at once: blocks, tail waste, and what contiguous allocation wastes.

PagedAttention (Kwon et al. 2023, section 4.1): a request of T tokens takes ceil(T / B) blocks; its waste is
the unfilled tail of its last block, (-T) mod B token slots (< B). A contiguous allocator reserves
max_model_len slots per request up front (the pre-vLLM engines the paper compares against), wasting
max_model_len - T. In vLLM's hybrid layout each KV-cache group holds its own blocks (sliding-window groups
only the window's, groups.py), and a block index costs `block_bytes` whichever group holds it, so a token
slot of a group with block size B_g costs block_bytes / B_g.

Worked example (B = 16): requests of 1, 16, 17 and 100 tokens take 1, 1, 2 and 7 blocks and waste 15, 0,
15 and 12 token slots (100 = 6 x 16 + 4: 7 blocks hold 112 slots).
"""

from __future__ import annotations

from kvcalc.calc.paging.groups import StateGroup, pool_rules
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.spec.base import record


@record
class RequestBlocks:
    """One request: `tokens` = prompt + output; `blocks` held once all are computed (vLLM: summed over
    KV-cache groups; cells: one per token); `peak_blocks` the most it holds at any step (prefill chunks of
    max_num_batched_tokens included)."""

    tokens: int
    prompt_tokens: int
    output_tokens: int
    blocks: int
    peak_blocks: int
    tail_waste_tokens: int
    tail_waste_bytes: int
    contiguous_waste_tokens: int
    contiguous_waste_bytes: int


def tail_waste_tokens(tokens: int, block_size: int) -> int:
    """(-T) mod B: the empty slots of the last block (PagedAttention's internal fragmentation)."""
    return -tokens % block_size


def contiguous_waste_tokens(tokens: int, max_model_len: int) -> int:
    """max_model_len - T: slots a contiguous max-length reservation leaves empty."""
    return max(0, max_model_len - tokens)


def _blocks_held(plan: DeploymentPlan, prompt: int, total: int) -> tuple[int, int]:
    """(blocks at the end, peak blocks) of one request, summed over groups: prefill in chunks of
    max_num_batched_tokens, then one token per decode step (groups.held)."""
    if plan.kv_pool.unit == "cells":
        return total, total
    rules = pool_rules(plan.kv_pool)
    chunk = max(1, plan.max_num_batched_tokens)
    steps = [(c, min(c + chunk, prompt)) for c in range(0, prompt, chunk)]
    # decode positions: held is monotone until the window fills, then periodic with period B, so the last
    # two block lengths of steps show the decode peak
    period = 2 * max(r.block_size for r in rules) + 1
    steps += [(n, n + 1) for n in range(max(prompt, total - period), total)]
    peak = max(sum(r.held(a, b) for r in rules) for a, b in steps) if steps else 0
    end = sum(r.held(total - 1, total) for r in rules)
    return end, peak


def request_blocks(plan: DeploymentPlan, prompt: int, output: int) -> RequestBlocks:
    """Blocks and waste of one request of `prompt` + `output` tokens under the plan's pool."""
    total = prompt + output
    pool = plan.kv_pool
    end, peak = _blocks_held(plan, prompt, total)
    if pool.unit == "cells":
        tail, tail_bytes = 0, 0
    else:
        rules = [r for r in pool_rules(pool) if not isinstance(r, StateGroup)]
        tail = tail_waste_tokens(total, pool.block_size)
        tail_bytes = sum(tail_waste_tokens(total, r.block_size) * pool.block_bytes // r.block_size for r in rules)
    contiguous = contiguous_waste_tokens(total, plan.max_model_len)
    return RequestBlocks(
        tokens=total, prompt_tokens=prompt, output_tokens=output, blocks=end, peak_blocks=peak,
        tail_waste_tokens=tail, tail_waste_bytes=tail_bytes, contiguous_waste_tokens=contiguous,
        contiguous_waste_bytes=contiguous * pool.kv_bytes_per_token,
    )


@record
class PagedTotals:
    """All requests resident at once. `usable_blocks` = num_blocks - 1 for vLLM (block 0 is its null block,
    block_pool.py), all cells otherwise; `blocks_free` = usable - used (0 when short: see `shortfall_blocks`);
    waste percentages are of the bytes the used blocks hold."""

    num_blocks: int
    usable_blocks: int
    blocks_used: int
    blocks_free: int
    shortfall_blocks: int
    tail_waste_tokens: int
    tail_waste_bytes: int
    tail_waste_pct_of_used: float
    contiguous_waste_tokens: int
    contiguous_waste_bytes: int
    contiguous_requests_that_fit: int


def usable_blocks(plan: DeploymentPlan) -> int:
    """Blocks requests can hold (calc/plan.py KvPool.usable_blocks: the engine's reserved blocks left out)."""
    return plan.kv_pool.usable_blocks


def paged_totals(plan: DeploymentPlan, rows: list[RequestBlocks]) -> PagedTotals:
    """Sums over `rows`, and how many max_model_len reservations the same KV memory holds contiguously:
    floor(num_blocks x block_bytes / (max_model_len x kv_bytes_per_token + fixed_bytes_per_sequence))."""
    pool = plan.kv_pool
    used = sum(r.blocks for r in rows)
    tail_bytes = sum(r.tail_waste_bytes for r in rows)
    used_bytes = used * pool.block_bytes
    per_reservation = plan.max_model_len * pool.kv_bytes_per_token + pool.fixed_bytes_per_sequence
    usable = usable_blocks(plan)
    return PagedTotals(
        num_blocks=pool.num_blocks, usable_blocks=usable, blocks_used=used, blocks_free=max(0, usable - used),
        shortfall_blocks=max(0, used - usable), tail_waste_tokens=sum(r.tail_waste_tokens for r in rows),
        tail_waste_bytes=tail_bytes, tail_waste_pct_of_used=100.0 * tail_bytes / used_bytes if used_bytes else 0.0,
        contiguous_waste_tokens=sum(r.contiguous_waste_tokens for r in rows),
        contiguous_waste_bytes=sum(r.contiguous_waste_bytes for r in rows),
        contiguous_requests_that_fit=pool.num_blocks * pool.block_bytes // per_reservation if per_reservation else 0,
    )
