"""`kvcalc paged`."""

from typing import Annotated, Any

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg
from kvcalc.cli.plan_options import deployment_options

SCHEMA = ("kvcalc.report.paged", "PagedOutput")


@deployment_options(calibration=True)
def command(
    model: ModelArg,
    deployment: dict[str, Any],
    requests: Annotated[
        str | None,
        typer.Option("--requests", help="Requests resident at once: total tokens (1200,350,8000) or "
                     "prompt:output pairs (1000:200,300:50)."),
    ] = None,
    trace: Annotated[
        str | None,
        typer.Option("--trace", help='JSON lines {"id","arrival_s","prompt_tokens","output_tokens","prefix_id"?,'
                     '"prefix_tokens"?,"cache_salt"?}; a file or - for stdin. --json prints NDJSON events.'),
    ] = None,
    step_ms: Annotated[
        float | None,
        typer.Option("--step-ms", min=0.001, help="Trace: engine step time in ms (default: the perf model's step "
                     "cost, its coefficients as kvcalc perf's or --calibration's)."),
    ] = None,
    no_prefix_caching: Annotated[
        bool, typer.Option("--no-prefix-caching", help="Trace: the engine's prefix cache off.")
    ] = False,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Paged KV blocks for your requests: blocks per request, tail waste, contiguous waste, or a step-by-step
    allocation trace (admit, grow, finish, preempt, evict) with prefix sharing.

    Exit code 0; 1 when the --requests do not all fit in the pool at once; 2 for bad input."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import EXIT_DOES_NOT_FIT, InputError

    if (requests is None) == (trace is None):
        raise InputError("give one of --requests 1200,350,8000 or --trace FILE")
    if trace is not None:
        stream = api.paged_trace(model, trace=trace, step_ms=step_ms, prefix_caching=not no_prefix_caching,
                                 explain=explain, warn=warn, **deployment)
        _print_trace(*stream, json_out=json_out, explain=explain)
        return
    report = api.paged(model, requests=requests, explain=explain, warn=warn, **deployment)
    for message in report.warnings:  # type: ignore[union-attr]
        warn(message)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.paged:render_paged")
    if not report.summary.fits:  # type: ignore[union-attr]
        raise typer.Exit(EXIT_DOES_NOT_FIT)


def _print_trace(start: Any, events: Any, warnings: list[str], *, json_out: bool, explain: bool) -> None:
    """Stream the trace: NDJSON (one event per line) with --json, else a summary table."""
    from kvcalc.cli.output import console, emit_line, warn
    from kvcalc.report.paged import render_trace

    for note in warnings:
        warn(note)
    counts: dict[str, int] = {}
    summary = None
    if json_out:
        emit_line(start, explain=explain)
    for event in events:
        if json_out:
            emit_line(event, explain=explain)
        counts[event.event] = counts.get(event.event, 0) + 1
        summary = event
    if not json_out and summary is not None:
        out = console()
        render_trace(out, start, summary, {k: v for k, v in counts.items() if k != "summary"})
        if explain:
            out.print("\n[bold]How each figure was computed[/bold]")
            for d in start.explain:
                out.print(d.line(), markup=False)
