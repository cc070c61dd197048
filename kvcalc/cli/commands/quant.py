"""`kvcalc quant`."""

from typing import Annotated, Any

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg
from kvcalc.cli.plan_options import deployment_options

SCHEMA = ("kvcalc.report.quant", "QuantReport")


@deployment_options(without=("quant",))
def command(
    model: ModelArg,
    deployment: dict[str, Any],
    formats: Annotated[
        str | None,
        typer.Option("--formats", help="Comma-separated formats to compare (default: bf16, fp8 ... Q2_K, IQ4_XS)."),
    ] = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """MODEL under each weight format: weight bytes, bits per weight, fits?, KV tokens, concurrency, quality.

    Exit code 0 when at least one format fits, 1 when none does, 2 for bad input."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import EXIT_DOES_NOT_FIT

    report = api.quant(model, formats=formats, warn=warn, **deployment)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.quant:render_quant")
    if not any(row.fits for row in report.rows):
        raise typer.Exit(EXIT_DOES_NOT_FIT)
