"""`kvcalc paged`."""

from typing import Annotated

import typer

from kvcalc.cli.options import (
    ExplainOpt,
    GpuFileOpt,
    GpuOpt,
    JsonOpt,
    KeepFp16Opt,
    KvDtypeOpt,
    ModelArg,
    QuantOpt,
    RevisionOpt,
)
from kvcalc.cli.plan_options import (
    ActivationOpt,
    BlockSizeOpt,
    ContextOpt,
    CpOpt,
    CudaGraphOpt,
    EagerOpt,
    EngineOpt,
    EngineVersionOpt,
    EpOpt,
    GmuOpt,
    MaxSeqsOpt,
    MemFractionOpt,
    MnbtOpt,
    NonTorchOpt,
    PpOpt,
    TpOpt,
)

SCHEMA = ("kvcalc.report.paged", "PagedOutput")

MAX_REQUESTS = 10_000


def parse_requests(text: str) -> list[tuple[int, int]]:
    """'1200,350,8000' (total tokens) or '1000:200,300:50' (prompt:output) -> [(prompt, output)]."""
    from kvcalc.errors import InputError
    from kvcalc.units import parse_tokens

    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        prompt, _, output = item.partition(":")
        p = parse_tokens(prompt, "--requests")
        o = 0
        if output.strip():
            o = 0 if output.strip() == "0" else parse_tokens(output, "--requests output")
        out.append((p, o))
    if not out:
        raise InputError("--requests needs token counts, e.g. 1200,350,8000 or 1000:200,300:50")
    if len(out) > MAX_REQUESTS:
        raise InputError(f"--requests lists {len(out):,} requests; at most {MAX_REQUESTS:,} (use --trace)")
    return out


def command(
    model: ModelArg,
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
        typer.Option("--step-ms", min=0.001, help="Trace: engine step time in ms (default: the decode floor, "
                     "weights per GPU / HBM bandwidth)."),
    ] = None,
    no_prefix_caching: Annotated[
        bool, typer.Option("--no-prefix-caching", help="Trace: the engine's prefix cache off.")
    ] = False,
    gpu: GpuOpt = "h100",
    gpu_file: GpuFileOpt = None,
    tp: TpOpt = 1,
    pp: PpOpt = 1,
    ep: EpOpt = 1,
    cp: CpOpt = 1,
    context: ContextOpt = None,
    engine: EngineOpt = "vllm",
    engine_version: EngineVersionOpt = None,
    gpu_memory_utilization: GmuOpt = None,
    max_num_batched_tokens: MnbtOpt = None,
    max_num_seqs: MaxSeqsOpt = None,
    block_size: BlockSizeOpt = None,
    enforce_eager: EagerOpt = False,
    kv_dtype: KvDtypeOpt = None,
    mem_fraction_static: MemFractionOpt = None,
    non_torch_memory: NonTorchOpt = None,
    activation_memory: ActivationOpt = None,
    cuda_graph_memory: CudaGraphOpt = None,
    revision: RevisionOpt = None,
    quant: QuantOpt = None,
    keep_fp16: KeepFp16Opt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Paged KV blocks for your requests: blocks per request, tail waste, contiguous waste, or a step-by-step
    allocation trace (admit, grow, finish, preempt, evict) with prefix sharing.

    Exit code 0; 1 when the --requests do not all fit in the pool at once; 2 for bad input."""
    from kvcalc.cli.output import emit, warn
    from kvcalc.cli.plan_options import build_plan
    from kvcalc.errors import EXIT_DOES_NOT_FIT, InputError

    if (requests is None) == (trace is None):
        raise InputError("give one of --requests 1200,350,8000 or --trace FILE")
    options = dict(locals())
    plan = build_plan(model, options, warn)
    if trace is not None:
        _run_trace(plan, trace, step_ms, not no_prefix_caching, json_out, explain)
        return
    from kvcalc.report.paged import paged_report

    report = paged_report(plan, parse_requests(str(requests)), explain=explain)
    for message in report.warnings:
        warn(message)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.paged:render_paged")
    if not report.summary.fits:
        raise typer.Exit(EXIT_DOES_NOT_FIT)


def _run_trace(plan: object, trace: str, step_ms: float | None, caching: bool, json_out: bool,
               explain: bool) -> None:
    """Stream the trace: NDJSON (one event per line) with --json, else a summary table."""
    from kvcalc.cli.output import console, emit_line, warn
    from kvcalc.report.paged import render_trace, trace_simulation
    from kvcalc.sources.trace import read_trace

    requests, skipped = read_trace(trace)
    message = skipped.message("trace")
    if message:
        warn(message)
    start, events, warnings = trace_simulation(
        plan, requests, step_s=None if step_ms is None else step_ms / 1000, caching=caching,  # type: ignore[arg-type]
        explain=explain,
    )
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
        render_trace(out, start, summary, {k: v for k, v in counts.items() if k != "summary"})  # type: ignore[arg-type]
        if explain:
            out.print("\n[bold]How each figure was computed[/bold]")
            for d in start.explain:
                out.print(d.line(), markup=False)
