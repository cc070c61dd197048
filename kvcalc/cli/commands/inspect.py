"""`kvcalc inspect`."""

from typing import Annotated

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, KvDtypeOpt, ModelArg, RevisionOpt

SCHEMA = ("kvcalc.report.inspect", "InspectReport")


def command(
    model: ModelArg,
    kv_dtype: KvDtypeOpt = None,
    revision: RevisionOpt = None,
    naive_mla: Annotated[
        bool,
        typer.Option(
            "--naive-mla", help="Size MLA as full per-head K/V (a naive cache) instead of the latent engines store."
        ),
    ] = False,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Architecture summary, layer pattern, parameters, and KV bytes per token and per sequence."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn

    report = api.inspect(model, kv_dtype=kv_dtype, revision=revision, naive_mla=naive_mla, warn=warn)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.render:render_inspect")
