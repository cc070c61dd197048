"""`kvcalc spec`."""

from typing import Annotated

import typer

from kvcalc.cli.options import (
    ExplainOpt,
    GpuFileOpt,
    GpuOpt,
    JsonOpt,
    ModelArg,
    RevisionOpt,
    gpu_arg,
    tokens_arg,
)

SCHEMA = ("kvcalc.report.spec", "SpecReport")


def command(
    model: ModelArg,
    draft: Annotated[str | None, typer.Option("--draft", help="A separate draft model (same tokenizer).")] = None,
    method: Annotated[
        str | None, typer.Option("--method", help="eagle, eagle3, mtp (the model's own MTP layers) or ngram.")
    ] = None,
    cost_ratio: Annotated[
        float | None, typer.Option("--cost-ratio", min=0.0, help="Draft step / target step, c (no draft model).")
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option("--alpha", min=0.0, max=1.0, help="Per-token acceptance rate (default: the method's "
                     "published figure; 0.7 for --draft and --cost-ratio)."),
    ] = None,
    gamma: Annotated[int, typer.Option("--gamma", min=1, max=64, help="Draft tokens per step.")] = 4,
    gpu: GpuOpt = "h100",
    gpu_file: GpuFileOpt = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Sequences decoding together.")] = 1,
    context: Annotated[
        str, typer.Option("--context", help="Tokens already in each sequence while decoding: 4096, 32k, 32K.")
    ] = "4096",
    tp: Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel degree of the target (and draft).")] = 1,
    revision: RevisionOpt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Speculative decoding: tokens per target pass, speedup, best draft length, the batch where it stops
    paying, and the draft's memory against the KV pool (Leviathan et al. 2023; EAGLE; DeepSeek-V3 MTP)."""
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import InputError
    from kvcalc.report.spec import spec_report
    from kvcalc.sources.resolve import load_model

    given = [name for name, value in (("--draft", draft), ("--method", method), ("--cost-ratio", cost_ratio))
             if value is not None]
    if len(given) != 1:
        raise InputError("give exactly one of --draft MODEL, --method eagle|eagle3|mtp|ngram, --cost-ratio C"
                         + (f" (got {', '.join(given)})" if given else ""))
    if method == "draft":
        raise InputError("use --draft MODEL for a separate draft model")
    target = load_model(model, revision=revision, warn=warn)
    draft_spec = load_model(draft, warn=warn) if draft is not None else None
    chosen = "draft" if draft is not None else "cost-ratio" if cost_ratio is not None else str(method)
    n = tokens_arg(context, "--context")
    assert n is not None
    report = spec_report(target, gpu_arg(gpu, gpu_file), method=chosen, draft_model=draft_spec,
                         cost_ratio=cost_ratio, alpha=alpha, gamma=gamma, batch=batch, context=n, tp=tp,
                         explain=explain)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.spec:render_spec")
