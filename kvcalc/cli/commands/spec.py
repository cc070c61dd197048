"""`kvcalc spec`."""

from typing import Annotated, Any

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg
from kvcalc.cli.plan_options import deployment_options

SCHEMA = ("kvcalc.report.spec", "SpecReport")


@deployment_options(without=("context",), calibration=True,
                    help={"tp": "Tensor-parallel degree of the target (and draft)."})
def command(
    model: ModelArg,
    deployment: dict[str, Any],
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
    batch: Annotated[int, typer.Option("--batch", min=1, help="Sequences decoding together.")] = 1,
    context: Annotated[
        str, typer.Option("--context", help="Tokens already in each sequence while decoding: 4096, 32k, 32K (the "
                          "plan's max_model_len is the engine's default).")
    ] = "4096",
    input_tokens: Annotated[
        str | None, typer.Option("--input", help="Prompt tokens per request (with --output: end-to-end speedup).")
    ] = None,
    output_tokens: Annotated[str | None, typer.Option("--output", help="Generated tokens per request.")] = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Speculative decoding: tokens per target pass, speedup from the engine's draft and verification steps on
    the card, best draft length, the batch where it stops paying, and the draft's memory against the KV pool
    (Leviathan et al. 2023; EAGLE; DeepSeek-V3 MTP)."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn

    report = api.speculative(
        model, draft=draft, method=method, cost_ratio=cost_ratio, alpha=alpha, acceptance=acceptance,
        acceptance_length=acceptance_length, gamma=gamma, topk=topk, verify_tokens=verify_tokens,
        proposal_rate=proposal_rate, batch=batch, context=context, input_tokens=input_tokens,
        output_tokens=output_tokens, explain=explain, warn=warn, **deployment,
    )
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.spec_render:render_spec")
