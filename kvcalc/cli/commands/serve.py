"""`kvcalc serve`."""

from typing import Annotated, Any

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg
from kvcalc.cli.plan_options import deployment_options

SCHEMA = ("kvcalc.report.serve", "ServeReport")

#: --context in the serving commands: one replica's max_model_len.
SERVING_CONTEXT = "max_model_len: 8192, 32k, 32K (default: the longest request)."


LoadBandwidthOpt = Annotated[
    str | None,
    typer.Option("--load-bandwidth", help="Weight load rate per replica, per second: 2GB = 2e9 B/s (default 1.3GB)."),
]
EngineStartupOpt = Annotated[
    str | None, typer.Option("--engine-startup", help="Engine start-up after loading weights: 60s (the default).")
]
TrafficOpt = Annotated[
    str | None, typer.Option("--traffic", help="CSV/JSON-lines day of request rates (hour,rps) to autoscale.")
]
TrafficIntervalOpt = Annotated[
    str, typer.Option("--traffic-interval", help="Row length when the file has no time column.")
]
PolicyOpt = Annotated[str, typer.Option("--policy", help="Autoscaling on utilization or queue length.")]
MinReplicasOpt = Annotated[
    int, typer.Option("--min-replicas", min=0, help="Fewest replicas the autoscaler keeps (--traffic).")
]
MaxReplicasOpt = Annotated[
    int | None, typer.Option("--max-replicas", min=1, help="Most replicas the autoscaler may run (--traffic).")
]
ScaleUpDelayOpt = Annotated[
    str | None,
    typer.Option("--scale-up-delay", help="Time from asking for a replica to its serving: 3m (default: cold start)."),
]
TargetUtilizationOpt = Annotated[
    float | None,
    typer.Option("--target-utilization", help="Utilization policy's target (default 1 / (1 + headroom)).")
]
TargetQueueOpt = Annotated[
    float | None, typer.Option("--target-queue", help="Requests in flight per replica (queue policy).")
]
PlotOpt = Annotated[str | None, typer.Option("--plot", help="Write an SVG of load vs replicas here.")]


@deployment_options(without=("dp",), calibration=True, workload=True, help={
    "tp": "Tensor-parallel degree of one replica.", "pp": "Pipeline-parallel degree of one replica.",
    "context": SERVING_CONTEXT, "engine": "vllm or sglang (trtllm, llamacpp: no launch line)."})
def command(
    model: ModelArg,
    deployment: dict[str, Any],
    load_bandwidth: LoadBandwidthOpt = None,
    engine_startup: EngineStartupOpt = None,
    traffic: TrafficOpt = None,
    traffic_interval: TrafficIntervalOpt = "1h",
    policy: PolicyOpt = "utilization",
    min_replicas: MinReplicasOpt = 1,
    max_replicas: MaxReplicasOpt = None,
    scale_up_delay: ScaleUpDelayOpt = None,
    target_utilization: TargetUtilizationOpt = None,
    target_queue: TargetQueueOpt = None,
    plot: PlotOpt = None,
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
