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
    version_arg,
)

SCHEMA = ("kvcalc.report.spec", "SpecReport")


def _rates(text: str | None) -> tuple[float, ...] | None:
    """--acceptance 0.8,0.6,0.4 -> (0.8, 0.6, 0.4)."""
    if text is None:
        return None
    from kvcalc.errors import InputError

    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"--acceptance takes rates separated by commas, like 0.8,0.6,0.4; got '{text[:40]}'") from None


def command(
    model: ModelArg,
    draft: Annotated[str | None, typer.Option("--draft", help="A separate draft model (same tokenizer).")] = None,
    method: Annotated[
        str | None, typer.Option("--method", help="eagle, eagle3, mtp (the model's own MTP layers) or ngram.")
    ] = None,
    cost_ratio: Annotated[
        float | None, typer.Option("--cost-ratio", min=0.0, help="Draft pass / target step, c (no draft model).")
    ] = None,
    alpha: Annotated[
        float | None, typer.Option("--alpha", min=0.0, max=1.0, help="A constant per-token acceptance rate.")
    ] = None,
    acceptance: Annotated[
        str | None,
        typer.Option("--acceptance", help="Conditional acceptance per draft position, 0.8,0.6,0.4 (the last "
                     "repeats). vLLM logs unconditional rates r_i: pass r_i / r_(i-1)."),
    ] = None,
    acceptance_length: Annotated[
        float | None,
        typer.Option("--acceptance-length", min=1.0, help="Mean tokens per target pass as vLLM/SGLang log it "
                     "('Mean acceptance length', 'accept len'), measured at --gamma."),
    ] = None,
    gamma: Annotated[int, typer.Option("--gamma", min=1, max=64, help="Draft tokens per step (passes).")] = 4,
    topk: Annotated[int, typer.Option("--topk", min=1, max=64, help="Tree branching (SGLang eagle topk).")] = 1,
    verify_tokens: Annotated[
        int | None, typer.Option("--verify-tokens", min=2, help="Tokens per sequence verified (SGLang "
                                 "num-draft-tokens; default gamma + 1).")
    ] = None,
    proposal_rate: Annotated[
        float | None, typer.Option("--proposal-rate", min=0.0, max=1.0, help="Share of sequences that draft in "
                                   "a step (n-gram: those whose suffix matches; default 0.30, networks 1).")
    ] = None,
    gpu: GpuOpt = "h100",
    gpu_file: GpuFileOpt = None,
    engine: Annotated[str, typer.Option("--engine", help="vllm, sglang or trtllm.")] = "vllm",
    engine_version: Annotated[str | None, typer.Option("--engine-version", help="Engine release to model.")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Sequences decoding together.")] = 1,
    context: Annotated[
        str, typer.Option("--context", help="Tokens already in each sequence while decoding: 4096, 32k, 32K.")
    ] = "4096",
    input_tokens: Annotated[
        str | None, typer.Option("--input", help="Prompt tokens per request (with --output: end-to-end speedup).")
    ] = None,
    output_tokens: Annotated[str | None, typer.Option("--output", help="Generated tokens per request.")] = None,
    tp: Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel degree of the target (and draft).")] = 1,
    revision: RevisionOpt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Speculative decoding: tokens per target pass, speedup from the engine's draft and verification steps on
    the card, best draft length, the batch where it stops paying, and the draft's memory against the KV pool
    (Leviathan et al. 2023; EAGLE; DeepSeek-V3 MTP)."""
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import InputError
    from kvcalc.report.spec import spec_report
    from kvcalc.sources.resolve import load_model
    from kvcalc.spec.deployment import EngineSettings

    given = [name for name, value in (("--draft", draft), ("--method", method), ("--cost-ratio", cost_ratio))
             if value is not None]
    if len(given) != 1:
        raise InputError("give exactly one of --draft MODEL, --method eagle|eagle3|mtp|ngram, --cost-ratio C"
                         + (f" (got {', '.join(given)})" if given else ""))
    if method == "draft":
        raise InputError("use --draft MODEL for a separate draft model")
    settings = EngineSettings(name=engine, version=version_arg(engine_version))  # type: ignore[arg-type]
    target = load_model(model, revision=revision, warn=warn)
    draft_spec = load_model(draft, warn=warn) if draft is not None else None
    chosen = "draft" if draft is not None else "cost-ratio" if cost_ratio is not None else str(method)
    n = tokens_arg(context, "--context")
    assert n is not None
    report = spec_report(
        target, gpu_arg(gpu, gpu_file), method=chosen, draft_model=draft_spec, cost_ratio=cost_ratio, alpha=alpha,
        rates=_rates(acceptance), acceptance_length=acceptance_length, gamma=gamma, topk=topk,
        verify_tokens=verify_tokens, proposal_rate=proposal_rate, batch=batch, context=n,
        input_tokens=tokens_arg(input_tokens, "--input"), output_tokens=tokens_arg(output_tokens, "--output"),
        tp=tp, engine=settings, explain=explain,
    )
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.spec_render:render_spec")
