"""`kvcalc attention-variants`."""

from typing import Annotated, Any

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg
from kvcalc.cli.plan_options import ENGINE, deployment_options

SCHEMA = ("kvcalc.report.variants", "VariantsReport")


@deployment_options(("gpu", "gpu_file", *ENGINE, "revision"),
                    help={"engine": "vllm, sglang, trtllm or llamacpp (whose budget)."})
def command(
    model: ModelArg,
    deployment: dict[str, Any],
    memory: Annotated[
        str | None,
        typer.Option(
            "--memory", help="KV memory to fill, e.g. 40GiB (default: the KV pool `kvcalc fit` plans on --gpu)."
        ),
    ] = None,
    tp: Annotated[
        int | None, typer.Option("--tp", min=1, help="Tensor-parallel degree (default: the least that fits).")
    ] = None,
    context: Annotated[
        str | None,
        typer.Option("--context", help="Also count sequences of this many tokens that fit: 8192, 32k, 32K, 1M."),
    ] = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """MODEL's KV bytes per token and the tokens that fit as MHA, GQA (every group count), MQA and MLA.

    The memory is --memory, else the KV pool `kvcalc fit` plans on --gpu with --engine at --tp."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn

    report = api.attention_variants(model, memory=memory, tp=tp, context=context, warn=warn, **deployment)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.variants:render_variants")
