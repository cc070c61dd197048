"""`kvcalc fit`."""

from typing import Annotated, Any

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg
from kvcalc.cli.plan_options import deployment_options

SCHEMA = ("kvcalc.report.fit", "FitReport")


@deployment_options()
def command(
    model: ModelArg,
    deployment: dict[str, Any],
    gpus: Annotated[
        int | None, typer.Option("--gpus", min=1, help="Total GPUs; sets tp when only this is given.")
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", min=1, help="Concurrent requests of --context tokens that must fit."),
    ] = 1,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Does MODEL fit on these GPUs: memory per GPU, KV capacity, concurrency, and what would make it fit.

    Exit code 0 when it fits, 1 when it does not, 2 for bad input."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import EXIT_DOES_NOT_FIT

    report = api.fit(model, gpus=gpus, concurrency=concurrency, explain=explain, warn=warn, **deployment)
    for message in report.warnings:
        warn(message)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.render:render_fit")
    if not report.fits:
        raise typer.Exit(EXIT_DOES_NOT_FIT)
