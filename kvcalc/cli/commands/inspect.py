"""`kvcalc inspect`."""

from typing import Annotated

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, KvDtypeOpt, ModelArg, RevisionOpt, kv_dtype_arg

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
    from kvcalc.cli.output import emit, warn
    from kvcalc.report.inspect import inspect_model
    from kvcalc.sources.resolve import load_model

    spec = load_model(model, revision=revision, warn=warn)
    report = inspect_model(spec, kv_dtype_arg(kv_dtype), mla_naive=naive_mla)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.render:render_inspect")


