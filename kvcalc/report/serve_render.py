"""Rich output of `kvcalc serve` and `kvcalc plan` for people: tables only, no arithmetic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kvcalc.report.plan import PlanReport
    from kvcalc.report.serve import ServeReport


def _table(title: str, *columns: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=bool(columns))
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i else "left")
    return table


def _kv(title: str, rows: list[tuple[str, str]]) -> Any:
    table = _table(title, "", "")
    table.show_header = False
    for key, value in rows:
        table.add_row(key, value)
    return table


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def _usd(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"${value:,.{digits}f}"


def render_serve(out: Any, r: ServeReport) -> None:
    w = r.workload
    layout = f"tp={r.parallel.tp} pp={r.parallel.pp}" + (f" ep={r.parallel.ep}" if r.parallel.ep > 1 else "")
    head = [("Model", f"{r.model} ({r.quant}, KV {r.kv_dtype})"), ("Replica", f"{r.gpu_name}, {layout}, "
            f"{r.engine} {r.engine_version}, max_model_len {r.context:,}"),
            ("Load", f"{w.requests_per_s:g} req/s of {w.mix.input.mean:,.0f} in / {w.mix.output.mean:,.0f} out "
             f"tokens; SLO TTFT {_ms(w.ttft_slo_s)}, TPOT {_ms(w.tpot_slo_s)}")]
    out.print(_kv("Serving", head))
    if not r.meets_slo or r.per_replica is None:
        out.print(f"[bold red]No replica meets the targets:[/bold red] {r.reason}")
        return
    p = r.per_replica
    out.print(_kv("One replica", [
        ("Concurrency", f"{p.max_concurrency:,} (engine cap {p.engine_max_concurrency:,}; limited by {p.limit})"),
        ("TTFT / TPOT", f"{_ms(p.ttft_s)} / {_ms(p.tpot_s)}"),
        ("Throughput", f"{p.requests_per_s:,.3f} req/s, {p.output_tokens_per_s:,.0f} output tok/s"),
        ("Cold start", f"{r.cold_start.total_s:,.1f} s ({r.cold_start.load_s:,.1f} s weights + "
         f"{r.cold_start.engine_startup_s:g} s engine)"),
    ]))
    fleet = [("Replicas", f"{r.replicas:,} x {p.gpus} GPU = {r.gpus_total:,} GPUs (headroom {w.headroom:.0%})"),
             ("Utilization", f"{r.utilization:.1%}"), ("GPU-hours per day", f"{r.gpu_hours_per_day:,.0f}")]
    if r.cost is not None:
        c = r.cost
        fleet += [("Cost", f"{_usd(c.per_hour)}/h, {_usd(c.per_day, 0)}/day"),
                  ("$ per million tokens", f"input {_usd(c.per_million_input_tokens, 4)}, output "
                   f"{_usd(c.per_million_output_tokens, 4)}, blended {_usd(c.per_million_tokens, 4)}"),
                  ("Price", r.price_source or "-")]
    out.print(_kv("Fleet", fleet))
    out.print(f"timing coefficients: {r.coefficients_source}", markup=False)
    if r.autoscale is not None:
        _render_autoscale(out, r)
    if r.launch is not None:
        out.print("\n[bold]Launch one replica[/bold]")
        out.print(r.launch.command, markup=False, soft_wrap=True)
        for note in r.launch.notes:
            out.print(f"note: {note}", markup=False)


def _render_autoscale(out: Any, r: ServeReport) -> None:
    a = r.autoscale
    assert a is not None
    table = _table(f"Autoscaling ({a.policy.kind} policy, scale-up delay {a.policy.scale_up_delay_s:,.0f} s, "
                   f"{a.source})", "start", "req/s", "desired", "serving", "short s", "late req")
    for row in a.intervals:
        h, m = divmod(int(row.start_s) // 60, 60)
        table.add_row(f"{h:02d}:{m:02d}", f"{row.requests_per_s:g}", str(row.desired), str(row.replicas),
                      f"{row.shortfall_s:,.0f}", f"{row.late_requests:,.0f}")
    out.print(table)
    out.print(_kv("Autoscaling vs static peak", [
        ("GPU-hours", f"{a.gpu_hours:,.1f} vs {a.static_gpu_hours:,.1f} ({a.static_replicas} replicas all day): "
         f"{a.savings_fraction:.0%} saved"),
        ("Cost", f"{_usd(a.cost)} vs {_usd(a.static_cost)}"),
        ("SLO violations", f"{a.violation_intervals} intervals, {a.shortfall_s:,.0f} s short, "
         f"{a.late_requests:,.0f} requests late ({a.late_fraction:.2%})"),
    ] + ([("Plot", a.plot)] if a.plot else [])))


def render_plan(out: Any, r: PlanReport) -> None:
    w = r.workload
    out.print(_kv("Plan search", [
        ("Model", r.model), ("Load", f"{w.requests_per_s:g} req/s of {w.mix.input.mean:,.0f} in / "
                             f"{w.mix.output.mean:,.0f} out tokens; SLO TTFT {_ms(w.ttft_slo_s)}, "
                             f"TPOT {_ms(w.tpot_slo_s)}"),
        ("Searched", f"{r.searched:,} layouts, {r.planned:,} planned, {r.feasible:,} meet the SLOs "
         f"({r.search_s * 1e3:,.0f} ms)"),
        ("Timing", r.coefficients_source),
    ]))
    if not r.plans:
        out.print(f"[bold red]No configuration meets the targets.[/bold red] {r.reason or ''}")
        return
    table = _table("Pareto front: $ per million tokens vs TPOT", "plan", "replicas", "$/M tok", "TPOT", "TTFT",
                   "$/h")
    for p in r.plans:
        checked = "" if p.capacity_model == "perf" else " *"
        table.add_row(f"{p.gpu} {p.parallel_text} {p.quant} {p.engine}{checked}", f"{p.replicas} x {p.count}",
                      _usd(p.cost_per_million_tokens, 4), _ms(p.tpot_s), _ms(p.ttft_s), _usd(p.cost_per_hour))
    out.print(table)
    if any(p.capacity_model == "screen" for p in r.plans):
        out.print("* screened with the closed-form steady state; kvcalc serve gives the simulated figures")
    best = r.best
    if best is not None:
        out.print(f"\n[bold]Cheapest:[/bold] {best.replicas} x {best.count} {best.gpu} ({best.parallel_text}, "
                  f"{best.quant}, {best.engine}): {_usd(best.cost_per_million_tokens, 4)} per million tokens, "
                  f"{_usd(best.cost_per_hour)}/h; price {best.price_source}")
        out.print(best.launch, markup=False, soft_wrap=True)
        for note in best.launch_notes:
            out.print(f"note: {note}", markup=False)
