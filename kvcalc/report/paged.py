"""`kvcalc paged`: the KV pool of a plan in the engine's units, the blocks and waste of given requests, or a
step-by-step allocation trace (report records, builders and the renderers for people)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from kvcalc.calc.engines import Assumption
from kvcalc.calc.paging.managers import CellManager, VllmManager
from kvcalc.calc.paging.requests import PagedTotals, RequestBlocks, paged_totals, request_blocks
from kvcalc.calc.paging.simulate import Manager, SimConfig, Simulation, TraceEvent, TraceSummary
from kvcalc.calc.paging.timing import PerfTiming, preemption_cost
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.report.explain import Derivation
from kvcalc.spec.base import record
from kvcalc.spec.workload import TraceRequest
from kvcalc.units import fmt_bytes


@record
class GroupReport:
    kind: str
    block_size: int
    window: int | None
    layers: int


@record
class PoolReport:
    """The KV pool on the binding GPU, in the engine's units (blocks of `block_size` tokens, or cells)."""

    model: str
    gpu: str
    engine: str
    engine_version: str
    tp: int
    pp: int
    unit: str
    block_size: int
    num_blocks: int
    block_bytes: int
    kv_cache_bytes: int
    kv_bytes_per_token: int
    max_model_len: int
    max_num_batched_tokens: int
    max_num_seqs: int | None
    groups: list[GroupReport]


@record
class PagedSummary(PagedTotals):
    fits: bool


@record
class PagedReport:
    pool: PoolReport
    summary: PagedSummary
    requests: list[RequestBlocks]
    assumptions: dict[str, Assumption]
    warnings: list[str]
    explain: list[Derivation]


@record
class TraceStart:
    """The first NDJSON line of a trace: the pool and the simulation's settings."""

    event: Literal["start"]
    pool: PoolReport
    requests: int
    step_s: float
    step_source: str
    prefix_caching: bool
    preemption_victim: str
    explain: list[Derivation]


#: What `kvcalc schema paged` describes: the report, or any one NDJSON line of a trace.
PagedOutput = PagedReport | TraceStart | TraceEvent | TraceSummary


def pool_report(plan: DeploymentPlan) -> PoolReport:
    pool = plan.kv_pool
    return PoolReport(
        model=plan.model.id, gpu=plan.gpu.name, engine=plan.engine, engine_version=plan.engine_version,
        tp=plan.parallel.tp, pp=plan.parallel.pp, unit=pool.unit, block_size=pool.block_size,
        num_blocks=pool.num_blocks, block_bytes=pool.block_bytes, kv_cache_bytes=plan.binding_device.kv_cache_bytes,
        kv_bytes_per_token=pool.kv_bytes_per_token, max_model_len=plan.max_model_len,
        max_num_batched_tokens=plan.max_num_batched_tokens, max_num_seqs=plan.max_num_seqs,
        groups=[GroupReport(kind=g.kind, block_size=g.block_size, window=g.window, layers=g.layers)
                for g in pool.layout.groups] if pool.unit == "blocks" else [],
    )


def paged_report(plan: DeploymentPlan, requests: list[tuple[int, int]], *, explain: bool) -> PagedReport:
    """Blocks and waste of `requests` ((prompt, output) pairs) resident at once in the plan's pool."""
    rows = [request_blocks(plan, prompt, output) for prompt, output in requests]
    totals = paged_totals(plan, rows)
    summary = PagedSummary(**{k: getattr(totals, k) for k in PagedTotals.__dataclass_fields__},
                           fits=totals.shortfall_blocks == 0)
    warnings = list(plan.warnings)
    if plan.startup_error:
        warnings.append(f"the engine would not start: {plan.startup_error}")
    longest = max((r.tokens for r in rows), default=0)
    if longest > plan.max_model_len:
        warnings.append(f"a request of {longest:,} tokens exceeds max_model_len {plan.max_model_len:,} "
                        "(set --context); the engine would refuse it")
    return PagedReport(pool=pool_report(plan), summary=summary, requests=rows, assumptions=plan.assumptions,
                       warnings=warnings, explain=paged_derivations(plan, rows, totals) if explain else [])


def paged_derivations(plan: DeploymentPlan, rows: list[RequestBlocks], totals: PagedTotals) -> list[Derivation]:
    pool = plan.kv_pool
    b = pool.block_size
    out = [Derivation(
        figure="KV blocks in the pool" if pool.unit == "blocks" else "KV cells in the pool",
        formula="floor(KV memory per GPU / bytes of one block index (all groups' layers on this GPU))",
        substituted=f"floor({plan.binding_device.kv_cache_bytes:,} / {pool.block_bytes:,})",
        value=f"{pool.num_blocks:,} {pool.unit}", source="calc/deploy.plan_deployment (kvcalc fit --explain)",
    )]
    for r in rows[:3]:
        if pool.unit == "blocks":
            out.append(Derivation(
                figure=f"Blocks of a {r.tokens:,}-token request",
                formula="sum over KV groups of ceil(T / B_g) - floor(skipped tokens / B_g) (windows free blocks)",
                substituted=f"T = {r.prompt_tokens:,} + {r.output_tokens:,}, B = {b}, "
                f"{len(pool.layout.groups)} group(s)",
                value=f"{r.blocks:,} blocks (peak {r.peak_blocks:,}); tail waste (-T) mod B = {r.tail_waste_tokens}",
                source="vLLM single_type_kv_cache_manager (allocate_new_blocks, remove_skipped_blocks)",
            ))
        out.append(Derivation(
            figure=f"Contiguous waste of a {r.tokens:,}-token request",
            formula="(max_model_len - T) x KV bytes per token", substituted=f"({plan.max_model_len:,} - {r.tokens:,})"
            f" x {pool.kv_bytes_per_token:,}", value=fmt_bytes(r.contiguous_waste_bytes),
            source="Kwon et al. 2023 (PagedAttention) section 3: reservation to the maximum length",
        ))
    per = plan.max_model_len * pool.kv_bytes_per_token + pool.fixed_bytes_per_sequence
    out.append(Derivation(
        figure="Max-length requests a contiguous allocator fits",
        formula="floor(blocks x block bytes / (max_model_len x KV bytes per token + fixed bytes per sequence))",
        substituted=f"floor({pool.num_blocks:,} x {pool.block_bytes:,} / {per:,})",
        value=f"{totals.contiguous_requests_that_fit:,}", source="kvcalc (contiguous pre-allocation)",
    ))
    return out


def _manager(plan: DeploymentPlan, caching: bool) -> tuple[Manager, str, list[str]]:
    pool = plan.kv_pool
    if plan.engine == "vllm":
        return VllmManager(pool.layout, pool.num_blocks, caching=caching), "newest", []
    if plan.engine == "sglang":
        return CellManager(pool.num_blocks, caching=caching), "fewest_outputs", []
    note = f"{plan.engine}: no cross-request prefix reuse is modelled; cells are counted only"
    return CellManager(pool.num_blocks, caching=False), "newest", [note]


def trace_simulation(
    plan: DeploymentPlan, requests: list[TraceRequest], *, step_s: float | None, caching: bool, explain: bool,
    coeffs: Any = None,
) -> tuple[TraceStart, Iterator[TraceEvent | TraceSummary], list[str]]:
    """The start record, the event stream (summary last) and warnings of a trace under the plan."""
    manager, victim, warnings = _manager(plan, caching)
    timing = PerfTiming(plan, coeffs)
    step = step_s if step_s is not None else timing.step_seconds([plan.max_model_len // 2], [])
    source = "--step-ms" if step_s is not None else f"perf model step cost per step ({timing.source})"
    config = SimConfig(max_num_batched_tokens=plan.max_num_batched_tokens, max_num_seqs=plan.max_num_seqs,
                       max_model_len=plan.max_model_len, step_s=step, block_bytes=plan.kv_pool.block_bytes,
                       victim=victim)  # type: ignore[arg-type]
    has_state = any(g.kind in ("linear", "mamba") for g in plan.kv_pool.layout.groups)
    if caching and plan.engine == "vllm" and has_state:
        warnings.append("recurrent-state groups keep no per-block states: no prefix reuse is modelled")
    derivations = []
    if explain:
        derivations.append(Derivation(
            figure="Step time",
            formula="--step-ms" if step_s is not None else "perf model step_cost(decode contexts, prefill chunks) "
            "each step (kvcalc perf --explain shows its terms)",
            substituted=f"{step * 1000:g} ms" if step_s is not None else
            f"e.g. one decode at {plan.max_model_len // 2:,} tokens of context",
            value=f"{step * 1000:.3f} ms", source=source,
        ))
        derivations.append(Derivation(
            figure="Preemption cost", formula="recompute: the perf model's prefill of the computed tokens; swap: "
            "2 x KV bytes per GPU / PCIe per direction", substituted="per preempt event (recompute_s, swap_s)",
            value="see the events", source="vLLM V1 recomputes (scheduler._preempt_request); swap as in vLLM V0",
        ))
    start = TraceStart(event="start", pool=pool_report(plan), requests=len(requests), step_s=step,
                       step_source=source, prefix_caching=caching and getattr(manager, "caching", False),
                       preemption_victim=victim, explain=derivations)
    sim = Simulation(requests, manager, config, preemption_cost(plan, timing),
                     step_time=None if step_s is not None else timing.step_seconds)
    return start, sim.events(), warnings


# --- renderers (people) -------------------------------------------------------------------------------------


def _table(title: str, *columns: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=bool(columns))
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i else "left")
    return table


def _pool_line(p: PoolReport) -> str:
    groups = ", ".join(f"{g.kind}{f'({g.window})' if g.window else ''} x{g.layers}" for g in p.groups)
    unit = f"{p.num_blocks:,} blocks of {p.block_size} tokens" if p.unit == "blocks" else f"{p.num_blocks:,} cells"
    return (f"{p.model} on {p.gpu} (tp={p.tp} pp={p.pp}; {p.engine} {p.engine_version}): {unit}, "
            f"{fmt_bytes(p.block_bytes)} each per GPU" + (f"; groups {groups}" if groups else ""))


def render_paged(out: Any, report: PagedReport) -> None:
    out.print(_pool_line(report.pool), markup=False)
    rows = _table("Requests resident at once", "tokens (prompt+output)", "blocks", "peak", "tail waste",
                  "contiguous waste")
    for r in report.requests:
        rows.add_row(f"{r.tokens:,} ({r.prompt_tokens:,}+{r.output_tokens:,})", f"{r.blocks:,}",
                     f"{r.peak_blocks:,}", f"{r.tail_waste_tokens} slots = {fmt_bytes(r.tail_waste_bytes)}",
                     f"{r.contiguous_waste_tokens:,} slots = {fmt_bytes(r.contiguous_waste_bytes)}")
    out.print(rows)
    s = report.summary
    t = _table("Totals", "", "")
    t.show_header = False
    t.add_row("blocks used / free", f"{s.blocks_used:,} / {s.blocks_free:,} of {s.usable_blocks:,} usable"
              + (f"  (short by {s.shortfall_blocks:,})" if s.shortfall_blocks else ""))
    t.add_row("paged: tail waste", f"{s.tail_waste_tokens:,} slots = {fmt_bytes(s.tail_waste_bytes)} "
              f"({s.tail_waste_pct_of_used:.2f}% of used)")
    t.add_row("contiguous to max_model_len: waste", f"{s.contiguous_waste_tokens:,} slots = "
              f"{fmt_bytes(s.contiguous_waste_bytes)}")
    t.add_row(f"contiguous: requests of {report.pool.max_model_len:,} that fit", f"{s.contiguous_requests_that_fit:,}")
    out.print(t)


def render_trace(out: Any, start: TraceStart, summary: TraceSummary, counts: dict[str, int]) -> None:
    out.print(_pool_line(start.pool), markup=False)
    step = "per step from the perf model" if start.step_source.startswith("perf") else \
        f"{start.step_s * 1000:.3f} ms per step"
    out.print(f"time: {step}; prefix caching {'on' if start.prefix_caching else 'off'}", markup=False)
    t = _table("Trace summary", "", "")
    t.show_header = False
    unit = summary.unit
    for label, value in (
        ("requests finished / rejected", f"{summary.finished:,} / {summary.rejected:,} of {summary.requests:,}"),
        ("engine steps / simulated time", f"{summary.steps:,} / {summary.duration_s:.3f} s"),
        ("TTFT p50 / p99 (queueing included)", f"{summary.ttft_s_p50:.3f} / {summary.ttft_s_p99:.3f} s"),
        ("prompt tokens / served from cache", f"{summary.prompt_tokens:,} / {summary.cached_tokens:,} "
         f"({100 * summary.hit_rate_tokens:.1f}%)"),
        (f"peak {unit} in use", f"{summary.peak_used:,} of {summary.capacity:,}"),
        ("largest batch (requests in one step)", f"{summary.peak_running:,}"),
        ("preemptions", f"{summary.preemptions:,}: recompute {summary.recompute_tokens:,} tokens or swap "
         f"{fmt_bytes(summary.swap_bytes)} per GPU"),
        (f"cached {unit} evicted (LRU)", f"{summary.evictions:,}"),
        ("events", ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))),
    ):
        t.add_row(label, value)
    out.print(t)
