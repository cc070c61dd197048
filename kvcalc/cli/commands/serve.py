"""`kvcalc serve`."""

from typing import Annotated, Any

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg
from kvcalc.cli.plan_options import deployment_options

SCHEMA = ("kvcalc.report.serve", "ServeReport")

#: --context in the serving commands: one replica's max_model_len.
SERVING_CONTEXT = "max_model_len: 8192, 32k, 32K (default: the longest request)."


@deployment_options(without=("dp",), calibration=True, workload=True, help={
    "tp": "Tensor-parallel degree of one replica.", "pp": "Pipeline-parallel degree of one replica.",
    "context": SERVING_CONTEXT, "engine": "vllm or sglang (trtllm, llamacpp: no launch line)."})
def command(
    model: ModelArg,
    deployment: dict[str, Any],
    load_bandwidth: Annotated[
        str | None, typer.Option("--load-bandwidth", help="Weight load bandwidth per replica per second: 2GB.")
    ] = None,
    engine_startup: Annotated[
        str | None, typer.Option("--engine-startup", help="Engine start-up after loading weights: 60s.")
    ] = None,
    traffic: Annotated[
        str | None, typer.Option("--traffic", help="CSV/JSON-lines day of request rates (hour,rps) to autoscale.")
    ] = None,
    traffic_interval: Annotated[
        str, typer.Option("--traffic-interval", help="Row length when the file has no time column.")
    ] = "1h",
    policy: Annotated[str, typer.Option("--policy", help="Autoscaling on utilization or queue length.")]
    = "utilization",
    min_replicas: Annotated[int, typer.Option("--min-replicas", min=0)] = 1,
    max_replicas: Annotated[int | None, typer.Option("--max-replicas", min=1)] = None,
    scale_up_delay: Annotated[
        str | None, typer.Option("--scale-up-delay", help="Request-to-serving delay (default: the cold start).")
    ] = None,
    target_utilization: Annotated[
        float | None, typer.Option("--target-utilization", help="Default 1 / (1 + headroom).")
    ] = None,
    target_queue: Annotated[
        float | None, typer.Option("--target-queue", help="Requests in flight per replica (queue policy).")
    ] = None,
    plot: Annotated[str | None, typer.Option("--plot", help="Write an SVG of load vs replicas here.")] = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """How many replicas serve a load within TTFT/TPOT targets, at what $ per million tokens; cold start and
    autoscaling over a day (--traffic).

    Exit code 0 when a replica meets the targets, 1 when none does, 2 for bad input."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import EXIT_DOES_NOT_FIT

    report = api.serve(
        model, load_bandwidth=load_bandwidth, engine_startup=engine_startup, traffic=traffic,
        traffic_interval=traffic_interval, policy=policy, min_replicas=min_replicas, max_replicas=max_replicas,
        scale_up_delay=scale_up_delay,
        target_utilization=target_utilization, target_queue=target_queue, plot=plot, explain=explain, warn=warn,
        **deployment,
    )
    for message in report.warnings:
        warn(message)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.serve_render:render_serve")
    if not report.meets_slo:
        raise typer.Exit(EXIT_DOES_NOT_FIT)
