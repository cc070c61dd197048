"""`kvcalc plan`."""

from typing import Annotated, Any

import typer

from kvcalc.cli.commands.serve import SERVING_CONTEXT
from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg
from kvcalc.cli.plan_options import ENGINE, deployment_options

SCHEMA = ("kvcalc.report.plan", "PlanReport")


@deployment_options((*ENGINE, "context", "revision"), without=("engine", "engine_version"), calibration=True,
                    workload=True, help={"context": SERVING_CONTEXT})
def command(
    model: ModelArg,
    deployment: dict[str, Any],
    gpus: Annotated[
        str | None, typer.Option("--gpus", help="GPUs to search (default h100,h200,a100-80gb,l40s,mi300x).")
    ] = None,
    quant: Annotated[
        str | None, typer.Option("--quant", help="Weight formats to search: bf16,fp8,awq (default: the checkpoint's).")
    ] = None,
    engines: Annotated[str, typer.Option("--engines", help="Engines to search: vllm,sglang.")] = "vllm,sglang",
    max_gpus: Annotated[int, typer.Option("--max-gpus", min=1, max=64, help="Most GPUs in one replica.")] = 16,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """The cheapest way to serve a load within TTFT/TPOT targets: searches GPU x GPUs per replica x TP/PP/EP x
    weight format x engine, prints the Pareto front ($ per million tokens vs TPOT) and the cheapest plan's
    launch command.

    Exit code 0 when some plan meets the targets, 1 when none does, 2 for bad input."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import EXIT_DOES_NOT_FIT

    report = api.plan_fleet(model, gpus=gpus, quant=quant, engines=engines, max_gpus=max_gpus, explain=explain,
                            warn=warn, **deployment)
    for why in report.skipped.values():
        warn(why)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.serve_render:render_plan")
    if report.best is None:
        raise typer.Exit(EXIT_DOES_NOT_FIT)
