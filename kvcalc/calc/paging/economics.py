"""Prefix caching's economics for a workload: every request = a shared prefix of P tokens + U unique tokens
(+ O output tokens), at R requests/s, from N tenants.

- cacheable tokens per request: the engine's reuse rule on a prefix identical up to P (reuse.py): vLLM
  floor(P / B) x B (whole blocks), SGLang P (token granularity), both capped at P + U - 1;
- the partial last block of the prefix (P - cached tokens) is never shared: vLLM caches full blocks only, so
  each request writes those tokens into a block of its own (PagedAttention's copy-on-write of a shared
  partial block, done here by recomputing it);
- KV memory: the shared prefix's full-attention blocks are held once per copy (one copy, or one per tenant
  with per-tenant cache salts) instead of once per running request; sliding-window groups share nothing
  once a request has moved past the window;
- prefill FLOPs saved = prefill FLOPs of positions [0, cached) (prefill.py): the unique tokens still attend
  to the cached keys, so their attention is not saved;
- TTFT saved: prefill(0, P + U) - prefill(cached, P + U - cached) with the perf model's prefill time when
  the caller passes one (timing.PerfTiming.prefill_seconds), else the saved FLOPs at the dense peak (a floor);
- money: cached tokens x (input price - cached price) per million tokens, at the user's prices;
- invalidation: a change at token t leaves only the reuse rule's share of the first t tokens.
"""

from __future__ import annotations

from collections.abc import Callable

from kvcalc.calc.paging.groups import FullGroup, pool_rules
from kvcalc.calc.paging.prefill import prefill_flops
from kvcalc.calc.paging.requests import request_blocks, usable_blocks
from kvcalc.calc.paging.reuse import sglang_reusable_tokens, vllm_reusable_tokens
from kvcalc.calc.paging.timing import prefill_seconds_floor
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.spec.base import record

SECONDS_PER_DAY = 86_400


@record
class Prices:
    """The user's prices in USD per million tokens: uncached input, cache reads, and optionally cache writes
    (Anthropic bills writes at 1.25x input for the 5-minute cache) and output."""

    input_per_mtok: float
    cached_per_mtok: float
    write_per_mtok: float | None = None
    output_per_mtok: float | None = None


def cacheable_tokens(engine: str, identical_tokens: int, prompt_tokens: int, block_size: int) -> int:
    """Tokens of a prompt the engine serves from cache when its first `identical_tokens` match a cached one."""
    if engine == "sglang":
        return sglang_reusable_tokens(identical_tokens, prompt_tokens, 1)
    return vllm_reusable_tokens(identical_tokens, prompt_tokens, block_size)


def shared_blocks(plan: DeploymentPlan, cached: int) -> int:
    """Blocks (cells) of a cached prefix one copy holds for all its sharers: cached / B_g in each
    full-attention group (vLLM), `cached` cells (SGLang)."""
    if plan.kv_pool.unit == "cells":
        return cached
    return sum(cached // r.block_size for r in pool_rules(plan.kv_pool) if type(r) is FullGroup)


@record
class Invalidation:
    """A change at token `change_at` of the prefix (a timestamp, a reordered tool list ...)."""

    change_at: int
    what: str
    cached_tokens: int
    lost_tokens: int
    lost_usd_per_day: float | None


@record
class PrefixEconomics:
    engine: str
    reuse_granularity_tokens: int
    prefix_tokens: int
    unique_tokens: int
    output_tokens: int
    prompt_tokens: int
    requests_per_s: float
    tenants: int
    isolated: bool
    cached_tokens_per_request: int
    private_prefix_tokens: int
    hit_rate_tokens: float
    copies: int
    shared_blocks_per_copy: int
    shared_bytes_per_copy: int
    blocks_per_request: int
    private_blocks_per_request: int
    max_concurrency_unshared: float
    max_concurrency_shared: float
    kv_bytes_saved_at_unshared_capacity: int
    prefill_flops_per_request: int
    prefill_flops_saved_per_request: int
    prefill_flops_saved_per_s: float
    ttft_saved_s: float
    ttft_source: str
    usd_saved_per_request: float | None
    usd_saved_per_day: float | None
    isolation_extra_bytes: int
    isolation_cold_prefill_flops: int
    invalidations: list[Invalidation]


def _concurrency(free_blocks: int, per_request: int) -> float:
    return free_blocks / per_request if per_request > 0 and free_blocks > 0 else 0.0


def _usd(tokens: int, prices: Prices | None) -> float | None:
    return None if prices is None else tokens * (prices.input_per_mtok - prices.cached_per_mtok) / 1e6


def invalidations(plan: DeploymentPlan, prefix: int, prompt: int, rate: float, prices: Prices | None,
                  change_points: list[int]) -> list[Invalidation]:
    """What a change at each token position of the prefix costs (reuse only up to the change)."""
    block = plan.kv_pool.block_size
    full = cacheable_tokens(plan.engine, prefix, prompt, block)
    points = [(0, "change at the first token (timestamp or reordered tools at the top)"),
              (prefix // 2, "change half-way through the prefix"),
              (max(0, prefix - 1), "change at the prefix's last token")]
    points += [(p, "change at a token you chose") for p in change_points]
    out = []
    for at, what in points:
        kept = cacheable_tokens(plan.engine, min(at, prefix), prompt, block)
        lost = full - kept
        usd = _usd(lost, prices)
        out.append(Invalidation(change_at=at, what=what, cached_tokens=kept, lost_tokens=lost,
                                lost_usd_per_day=None if usd is None else usd * rate * SECONDS_PER_DAY))
    return out


def prefix_economics(
    plan: DeploymentPlan, *, prefix_tokens: int, unique_tokens: int, output_tokens: int, requests_per_s: float,
    tenants: int = 1, isolate: bool = False, prices: Prices | None = None, change_points: list[int] | None = None,
    prefill_seconds: Callable[[int, int], float] | None = None, prefill_source: str = "",
) -> PrefixEconomics:
    """The economics of one shared prefix under the plan's engine (see the module docstring)."""
    prompt = prefix_tokens + unique_tokens
    cached = cacheable_tokens(plan.engine, prefix_tokens, prompt, plan.kv_pool.block_size)
    copies = tenants if isolate else 1
    shared = shared_blocks(plan, cached)
    block_bytes = plan.kv_pool.block_bytes
    per_request = request_blocks(plan, prompt, output_tokens).blocks
    private = per_request - shared
    usable = usable_blocks(plan)
    unshared_c = _concurrency(usable, per_request)
    shared_c = _concurrency(usable - copies * shared, private)
    saved_flops = prefill_flops(plan.model, 0, cached)
    usd = _usd(cached, prices)
    if prefill_seconds is not None:
        ttft = prefill_seconds(0, prompt) - prefill_seconds(cached, prompt - cached)
        ttft_source = prefill_source or "perf model"
    else:
        ttft = prefill_seconds_floor(plan, saved_flops)
        ttft_source = "floor: saved FLOPs at the dense bf16 peak"
    return PrefixEconomics(
        engine=plan.engine, reuse_granularity_tokens=1 if plan.engine == "sglang" else plan.kv_pool.block_size,
        prefix_tokens=prefix_tokens, unique_tokens=unique_tokens, output_tokens=output_tokens,
        prompt_tokens=prompt, requests_per_s=requests_per_s, tenants=tenants, isolated=isolate,
        cached_tokens_per_request=cached, private_prefix_tokens=max(0, prefix_tokens - cached),
        hit_rate_tokens=cached / prompt, copies=copies,
        shared_blocks_per_copy=shared, shared_bytes_per_copy=shared * block_bytes, blocks_per_request=per_request,
        private_blocks_per_request=private, max_concurrency_unshared=unshared_c, max_concurrency_shared=shared_c,
        kv_bytes_saved_at_unshared_capacity=max(0, int(unshared_c) - copies) * shared * block_bytes,
        prefill_flops_per_request=prefill_flops(plan.model, 0, prompt),
        prefill_flops_saved_per_request=saved_flops, prefill_flops_saved_per_s=saved_flops * requests_per_s,
        ttft_saved_s=ttft, ttft_source=ttft_source,
        usd_saved_per_request=usd, usd_saved_per_day=None if usd is None else usd * requests_per_s * SECONDS_PER_DAY,
        isolation_extra_bytes=(copies - 1) * shared * block_bytes,
        isolation_cold_prefill_flops=(copies - 1) * saved_flops,
        invalidations=invalidations(plan, prefix_tokens, prompt, requests_per_s, prices, change_points or []),
    )
