"""`kvcalc prefix`: prefix caching's economics for a workload, or the hit rate of real API responses' usage
fields (report records, builders and the renderers for people)."""

from __future__ import annotations

from typing import Any, Literal

from kvcalc.calc.paging.economics import PrefixEconomics, Prices, prefix_economics
from kvcalc.calc.paging.prefill import matmul_params_per_token
from kvcalc.calc.paging.requests import usable_blocks
from kvcalc.calc.paging.timing import PerfTiming
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.report.explain import Derivation
from kvcalc.report.paged import PoolReport, pool_report
from kvcalc.sources.jsonl import Skipped
from kvcalc.sources.usage import Usage
from kvcalc.spec.base import record
from kvcalc.units import fmt_bytes

#: Smallest prompt the hosted APIs cache: OpenAI caches prompts of 1,024 tokens or more (platform docs,
#: "Prompt caching"); Anthropic's minimum cacheable prompt is 1,024 tokens for Sonnet/Opus (2,048 Haiku).
MIN_CACHEABLE_TOKENS = 1024
MAX_MISSED_LISTED = 50


@record
class PrefixReport:
    mode: Literal["model"]
    pool: PoolReport
    economics: PrefixEconomics
    prices: Prices | None
    warnings: list[str]
    explain: list[Derivation]


@record
class ProviderTotals:
    requests: int
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int


@record
class UsageReport:
    """Hit rates of real responses: by tokens = cached / input tokens; by request = requests with any cached
    token / requests. `missed` lists requests of at least `min_cacheable_tokens` input tokens, after the
    first such one, that read nothing from the cache: if your prompts share a prefix, these should have
    hit (a changed prefix, an expired or evicted cache, or another replica)."""

    mode: Literal["usage"]
    requests: int
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int
    hit_rate_tokens: float
    hit_rate_requests: float
    by_provider: dict[str, ProviderTotals]
    prices: Prices | None
    usd_input_without_cache: float | None
    usd_input_with_cache: float | None
    usd_saved: float | None
    min_cacheable_tokens: int
    missed_count: int
    missed: list[Usage]
    skipped_malformed: int
    skipped_no_usage: int
    explain: list[Derivation]


#: What `kvcalc schema prefix` describes.
PrefixOutput = PrefixReport | UsageReport


def prefix_report(plan: DeploymentPlan, *, prefix_tokens: int, unique_tokens: int, output_tokens: int,
                  requests_per_s: float, tenants: int, isolate: bool, prices: Prices | None,
                  change_points: list[int], explain: bool, calibration: Any = None) -> PrefixReport:
    """The economics of the prefix with TTFT from the perf model (its defaults, or a calibration's)."""
    from kvcalc.report.perf import coefficients_for

    timing = PerfTiming(plan, coefficients_for(plan, calibration, online=True,
                                               enforce_eager=getattr(plan.settings, "enforce_eager", False)))
    econ = prefix_economics(plan, prefix_tokens=prefix_tokens, unique_tokens=unique_tokens,
                            output_tokens=output_tokens, requests_per_s=requests_per_s, tenants=tenants,
                            isolate=isolate, prices=prices, change_points=change_points,
                            prefill_seconds=timing.prefill_seconds, prefill_source=f"perf model ({timing.source})")
    warnings = list(plan.warnings)
    if plan.engine in ("trtllm", "llamacpp"):
        warnings.append(f"{plan.engine}: kvcalc models vLLM's block rule for it (reuse of whole blocks)")
    if any(g.kind in ("linear", "mamba") for g in plan.kv_pool.layout.groups):
        warnings.append("recurrent-state layers: vLLM keeps no per-block states by default, so a real hit may be 0")
    if plan.startup_error:
        warnings.append(f"the engine would not start: {plan.startup_error}")
    return PrefixReport(mode="model", pool=pool_report(plan), economics=econ, prices=prices, warnings=warnings,
                        explain=prefix_derivations(plan, econ, prices) if explain else [])


def prefix_derivations(plan: DeploymentPlan, e: PrefixEconomics, prices: Prices | None) -> list[Derivation]:
    b = plan.kv_pool.block_size
    rule = ("SGLang radix tree: min(P, P + U - 1) tokens", "sglang/srt/mem_cache/radix_cache.py match_prefix") \
        if e.engine == "sglang" else ("min(floor(P / B), floor((P + U - 1) / B)) x B",
                                      "vLLM kv_cache_utils.hash_block_tokens, kv_cache_manager.get_computed_blocks")
    out = [
        Derivation(figure="Cached tokens per request", formula=rule[0],
                   substituted=f"P = {e.prefix_tokens:,}, U = {e.unique_tokens:,}, B = {b}",
                   value=f"{e.cached_tokens_per_request:,} of {e.prompt_tokens:,} ({100 * e.hit_rate_tokens:.1f}%)",
                   source=rule[1]),
        Derivation(figure="KV of one shared copy (per GPU)", formula="blocks of the cached prefix in full-attention "
                   "groups x block bytes", substituted=f"{e.shared_blocks_per_copy:,} x {plan.kv_pool.block_bytes:,}",
                   value=fmt_bytes(e.shared_bytes_per_copy), source="calc/paging/economics.shared_blocks"),
        Derivation(figure="Requests the pool holds", formula="unshared: usable blocks / blocks per request; shared: "
                   "(usable blocks - copies x shared blocks) / private blocks per request",
                   substituted=f"{usable_blocks(plan):,} / {e.blocks_per_request:,}; ({usable_blocks(plan):,} "
                   f"- {e.copies} x {e.shared_blocks_per_copy:,}) / {e.private_blocks_per_request:,}",
                   value=f"{e.max_concurrency_unshared:.1f} -> {e.max_concurrency_shared:.1f}",
                   source="PagedAttention section 4.4 (shared prefix); vLLM block reference counts"),
        Derivation(figure="Prefill FLOPs saved per request",
                   formula="2 x matmul params per token x cached + attention over positions [0, cached)",
                   substituted=f"2 x {matmul_params_per_token(plan.model):,} x {e.cached_tokens_per_request:,} + "
                   "sum over layers of 2 h (d_qk + d_v) x sum of keys",
                   value=f"{e.prefill_flops_saved_per_request:.3e}",
                   source="Kaplan et al. 2020 C_forward; calc/paging/prefill.py"),
        Derivation(figure="TTFT saved", formula="prefill(0, P + U) - prefill(cached, P + U - cached), chunks of "
                   "max_num_batched_tokens, each an engine step of the perf model",
                   substituted=f"P + U = {e.prompt_tokens:,}, cached = {e.cached_tokens_per_request:,}, chunk "
                   f"{plan.max_num_batched_tokens:,}", value=f"{e.ttft_saved_s * 1000:.1f} ms",
                   source=e.ttft_source + "; kvcalc perf --explain shows the step terms"),
    ]
    if prices is not None and e.usd_saved_per_day is not None:
        out.append(Derivation(
            figure="Saved per day", formula="cached tokens x (input - cached price) / 1e6 x requests/s x 86,400",
            substituted=f"{e.cached_tokens_per_request:,} x ({prices.input_per_mtok:g} - {prices.cached_per_mtok:g})"
            f" / 1e6 x {e.requests_per_s:g} x 86,400", value=f"${e.usd_saved_per_day:,.2f}",
            source="your --price"))
    return out


def usage_report(records: list[Usage], skipped: Skipped, *, prices: Prices | None, min_cacheable: int,
                 explain: bool) -> UsageReport:
    """Totals, hit rates, money and likely misses of the usage records."""
    n = len(records)
    total_in = sum(r.input_tokens for r in records)
    cached = sum(r.cached_tokens for r in records)
    written = sum(r.cache_write_tokens for r in records)
    hits = sum(1 for r in records if r.cached_tokens > 0)
    by: dict[str, ProviderTotals] = {}
    for provider in sorted({r.provider for r in records}):
        rows = [r for r in records if r.provider == provider]
        by[provider] = ProviderTotals(requests=len(rows), input_tokens=sum(r.input_tokens for r in rows),
                                      cached_tokens=sum(r.cached_tokens for r in rows),
                                      cache_write_tokens=sum(r.cache_write_tokens for r in rows))
    eligible = [r for r in records if r.input_tokens >= min_cacheable]
    missed = [r for r in eligible[1:] if r.cached_tokens == 0]
    without = with_cache = saved = None
    if prices is not None:
        write_price = prices.write_per_mtok if prices.write_per_mtok is not None else prices.input_per_mtok
        without = total_in * prices.input_per_mtok / 1e6
        with_cache = ((total_in - cached - written) * prices.input_per_mtok + cached * prices.cached_per_mtok
                      + written * write_price) / 1e6
        saved = without - with_cache
    derivations = []
    if explain:
        derivations = [
            Derivation(figure="Hit rate by tokens", formula="cached tokens / input tokens",
                       substituted=f"{cached:,} / {total_in:,}", value=f"{cached / total_in if total_in else 0:.4f}",
                       source="usage.prompt_tokens_details.cached_tokens; Anthropic cache_read_input_tokens"),
            Derivation(figure="Hit rate by requests", formula="requests with cached tokens > 0 / requests",
                       substituted=f"{hits:,} / {n:,}", value=f"{hits / n if n else 0:.4f}", source="kvcalc"),
        ]
        if prices is not None and saved is not None:
            derivations.append(Derivation(
                figure="Input cost saved", formula="input x price - (uncached x price + cached x cached price + "
                "written x write price)", substituted=f"{total_in:,} x {prices.input_per_mtok:g} / 1e6 - ...",
                value=f"${saved:,.4f}", source="your --price (USD per million tokens)"))
    return UsageReport(
        mode="usage", requests=n, input_tokens=total_in, cached_tokens=cached, cache_write_tokens=written,
        output_tokens=sum(r.output_tokens for r in records), hit_rate_tokens=cached / total_in if total_in else 0.0,
        hit_rate_requests=hits / n if n else 0.0, by_provider=by, prices=prices, usd_input_without_cache=without,
        usd_input_with_cache=with_cache, usd_saved=saved, min_cacheable_tokens=min_cacheable,
        missed_count=len(missed), missed=missed[:MAX_MISSED_LISTED], skipped_malformed=skipped.bad,
        skipped_no_usage=skipped.ignored, explain=derivations,
    )


# --- renderers (people) -------------------------------------------------------------------------------------


def _table(title: str, *columns: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=bool(columns))
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i else "left")
    return table


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def render_prefix(out: Any, report: PrefixReport) -> None:
    from kvcalc.report.paged import _pool_line

    e = report.economics
    out.print(_pool_line(report.pool), markup=False)
    out.print(f"workload: {e.prefix_tokens:,}-token shared prefix + {e.unique_tokens:,} unique + "
              f"{e.output_tokens:,} output tokens, {e.requests_per_s:g} requests/s, {e.tenants} tenant(s)"
              + (" isolated by cache salt" if e.isolated else ""), markup=False)
    t = _table("Prefix caching", "", "")
    t.show_header = False
    for label, value in (
        (f"cached tokens per request ({e.engine}, granularity {e.reuse_granularity_tokens})",
         f"{e.cached_tokens_per_request:,} of {e.prompt_tokens:,} ({100 * e.hit_rate_tokens:.1f}%)"),
        ("prefix tokens in its partial last block (each request's own copy)", f"{e.private_prefix_tokens:,}"),
        ("KV of the shared prefix, per copy (per GPU)",
         f"{e.shared_blocks_per_copy:,} blocks = {fmt_bytes(e.shared_bytes_per_copy)} x {e.copies} copies"),
        ("requests the pool holds: unshared -> shared", f"{e.max_concurrency_unshared:.1f} -> "
         f"{e.max_concurrency_shared:.1f}"),
        (f"KV freed at {int(e.max_concurrency_unshared)} requests (the unshared limit), per GPU",
         fmt_bytes(e.kv_bytes_saved_at_unshared_capacity)),
        ("prefill FLOPs saved per request / per second", f"{e.prefill_flops_saved_per_request:.3e} / "
         f"{e.prefill_flops_saved_per_s:.3e}"),
        ("TTFT saved per request (perf model)", f"{e.ttft_saved_s * 1000:.1f} ms"),
        ("input cost saved per request / per day", f"{_money(e.usd_saved_per_request)} / "
         f"{_money(e.usd_saved_per_day)}"),
    ):
        t.add_row(label, value)
    if e.tenants > 1:
        t.add_row("isolation: extra KV for per-tenant copies", fmt_bytes(e.isolation_extra_bytes) if e.isolated
                  else "none (not isolated)")
        t.add_row("isolation: extra cold prefills (FLOPs)", f"{e.isolation_cold_prefill_flops:.3e}")
    out.print(t)
    inv = _table("What breaks reuse (everything after the first changed token)", "change", "at token",
                 "cached", "lost", "lost per day")
    for i in e.invalidations:
        inv.add_row(i.what, f"{i.change_at:,}", f"{i.cached_tokens:,}", f"{i.lost_tokens:,}",
                    _money(i.lost_usd_per_day))
    out.print(inv)


def render_usage(out: Any, report: UsageReport) -> None:
    r = report
    t = _table("Cache hits in API responses", "", "")
    t.show_header = False
    t.add_row("requests", f"{r.requests:,}")
    t.add_row("input tokens / cached / written to cache", f"{r.input_tokens:,} / {r.cached_tokens:,} / "
              f"{r.cache_write_tokens:,}")
    t.add_row("hit rate by tokens", f"{100 * r.hit_rate_tokens:.1f}%")
    t.add_row("hit rate by requests", f"{100 * r.hit_rate_requests:.1f}%")
    if r.prices is not None:
        t.add_row("input cost without cache / with / saved", f"{_money(r.usd_input_without_cache)} / "
                  f"{_money(r.usd_input_with_cache)} / {_money(r.usd_saved)}")
    t.add_row(f"likely misses (>= {r.min_cacheable_tokens:,} input tokens, nothing cached)", f"{r.missed_count:,}"
              + (f": lines {', '.join(str(m.line) for m in r.missed[:10])}" if r.missed else ""))
    out.print(t)
    if len(r.by_provider) > 1:
        p = _table("By response shape", "shape", "requests", "input", "cached", "written")
        for name, v in r.by_provider.items():
            p.add_row(name, f"{v.requests:,}", f"{v.input_tokens:,}", f"{v.cached_tokens:,}",
                      f"{v.cache_write_tokens:,}")
        out.print(p)
