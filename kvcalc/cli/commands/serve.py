"""`kvcalc serve`."""

from typing import TYPE_CHECKING, Annotated, cast

import typer

from kvcalc.cli.options import (
    ExplainOpt,
    GpuFileOpt,
    GpuOpt,
    JsonOpt,
    KeepFp16Opt,
    KvDtypeOpt,
    ModelArg,
    QuantOpt,
    RevisionOpt,
    gpu_arg,
    kv_dtype_arg,
    tokens_arg,
    weight_format_arg,
)

if TYPE_CHECKING:
    from kvcalc.report.serve import ServeReport, Traffic, Workload
    from kvcalc.spec.deployment import EngineName

SCHEMA = ("kvcalc.report.serve", "ServeReport")

RpsOpt = Annotated[float, typer.Option("--rps", help="Mean requests per second to serve.")]
InputOpt = Annotated[str | None, typer.Option("--input", help="Input tokens per request: 2000, 2k, 2K.")]
OutputOpt = Annotated[str | None, typer.Option("--output", help="Output tokens per request: 300, 1k.")]
MixOpt = Annotated[
    str | None,
    typer.Option("--mix", help="CSV or JSON-lines file of request lengths (input_tokens, output_tokens[, weight]); "
                 "replaces --input/--output."),
]
TtftOpt = Annotated[
    str, typer.Option("--ttft-slo", help="Time-to-first-token target: 1s, 500ms (default: MLPerf Llama-2-70B server).")
]
TpotOpt = Annotated[str, typer.Option("--tpot-slo", help="Time-per-output-token target: 60ms, 0.2s.")]
HeadroomOpt = Annotated[
    float, typer.Option("--headroom", help="Spare capacity kept above the mean load: 0.2 = 20%.")
]
PriceOpt = Annotated[
    list[str] | None,
    typer.Option("--price", help="USD per GPU-hour overriding the catalogue, GPU=USD (repeatable): h100=2.49."),
]


def workload_from_options(rps: float, input_tokens: str | None, output_tokens: str | None, mix: str | None,
                          ttft_slo: str, tpot_slo: str, headroom: float, price: list[str] | None,
                          load_bandwidth: str | None = None, engine_startup: str | None = None) -> "Workload":
    """The Workload the serving options describe (shared with `kvcalc plan`)."""
    from kvcalc.calc.serving.coldstart import DEFAULT_ENGINE_STARTUP_S, DEFAULT_LOAD_BYTES_PER_S
    from kvcalc.calc.serving.mix import fixed_mix
    from kvcalc.cli.serving_options import parse_headroom, parse_positive, parse_prices, parse_seconds
    from kvcalc.errors import InputError
    from kvcalc.report.serve import Workload
    from kvcalc.units import parse_bytes

    if mix is not None:
        if input_tokens or output_tokens:
            raise InputError("give either --mix FILE or --input/--output, not both")
        from kvcalc.sources.mix import load_mix

        summary = load_mix(mix)
    else:
        if input_tokens is None or output_tokens is None:
            raise InputError("give --input and --output token counts per request (e.g. --input 2k --output 300), "
                             "or --mix FILE")
        summary = fixed_mix(cast(int, tokens_arg(input_tokens, "--input")),
                            cast(int, tokens_arg(output_tokens, "--output")))
    return Workload(
        requests_per_s=parse_positive(rps, "--rps", maximum=1e7), mix=summary,
        ttft_slo_s=parse_seconds(ttft_slo, "--ttft-slo"), tpot_slo_s=parse_seconds(tpot_slo, "--tpot-slo"),
        headroom=parse_headroom(headroom), prices=parse_prices(price or []),
        load_bytes_per_s=float(parse_bytes(load_bandwidth, "--load-bandwidth")) if load_bandwidth
        else DEFAULT_LOAD_BYTES_PER_S,
        engine_startup_s=parse_seconds(engine_startup, "--engine-startup", allow_zero=True) if engine_startup
        else DEFAULT_ENGINE_STARTUP_S,
    )


def _traffic(path: str | None, interval: str, policy: str, min_replicas: int, max_replicas: int | None,
             delay: str | None, target_utilization: float | None, target_queue: float | None) -> "Traffic | None":
    from kvcalc.cli.serving_options import parse_seconds
    from kvcalc.errors import InputError
    from kvcalc.report.serve import Traffic

    if path is None:
        return None
    if policy not in ("utilization", "queue"):
        raise InputError(f"--policy must be utilization or queue, got '{policy}'")
    if max_replicas is not None and max_replicas < min_replicas:
        raise InputError(f"--max-replicas {max_replicas} is below --min-replicas {min_replicas}")
    if target_utilization is not None and not 0 < target_utilization <= 1:
        raise InputError(f"--target-utilization must be in (0, 1], got {target_utilization}")
    if target_queue is not None and not 0 < target_queue <= 1e6:
        raise InputError(f"--target-queue must be above 0, got {target_queue}")
    from kvcalc.sources.traffic import load_traffic

    profile = load_traffic(path, parse_seconds(interval, "--traffic-interval"))
    return Traffic(source=profile.source, interval_s=profile.interval_s, requests_per_s=profile.rps, policy=policy,
                   min_replicas=min_replicas, max_replicas=max_replicas,
                   scale_up_delay_s=parse_seconds(delay, "--scale-up-delay", allow_zero=True) if delay else None,
                   target_utilization=target_utilization, target_queue_per_replica=target_queue)


def command(
    model: ModelArg,
    rps: RpsOpt,
    input_tokens: InputOpt = None,
    output_tokens: OutputOpt = None,
    mix: MixOpt = None,
    ttft_slo: TtftOpt = "2s",
    tpot_slo: TpotOpt = "200ms",
    headroom: HeadroomOpt = 0.2,
    price: PriceOpt = None,
    gpu: GpuOpt = "h100",
    gpu_file: GpuFileOpt = None,
    tp: Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel degree of one replica.")] = 1,
    pp: Annotated[int, typer.Option("--pp", min=1, help="Pipeline-parallel degree of one replica.")] = 1,
    ep: Annotated[int, typer.Option("--ep", min=1, help="Expert-parallel degree (= tp when used).")] = 1,
    context: Annotated[
        str | None, typer.Option("--context", help="max_model_len (default: the longest request).")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="vllm or sglang (trtllm, llamacpp: no launch line).")]
    = "vllm",
    engine_version: Annotated[str | None, typer.Option("--engine-version", help="Engine release to model.")] = None,
    gpu_memory_utilization: Annotated[float | None, typer.Option("--gpu-memory-utilization")] = None,
    max_num_seqs: Annotated[int | None, typer.Option("--max-num-seqs", min=1)] = None,
    max_num_batched_tokens: Annotated[int | None, typer.Option("--max-num-batched-tokens", min=1)] = None,
    mem_fraction_static: Annotated[float | None, typer.Option("--mem-fraction-static")] = None,
    enforce_eager: Annotated[bool, typer.Option("--enforce-eager", help="No CUDA graphs.")] = False,
    kv_dtype: KvDtypeOpt = None,
    quant: QuantOpt = None,
    keep_fp16: KeepFp16Opt = None,
    revision: RevisionOpt = None,
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
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import EXIT_DOES_NOT_FIT
    from kvcalc.report.serve import serve_deployment
    from kvcalc.sources.resolve import load_model
    from kvcalc.spec.deployment import EngineSettings, Parallel

    work = workload_from_options(rps, input_tokens, output_tokens, mix, ttft_slo, tpot_slo, headroom, price,
                                 load_bandwidth, engine_startup)
    day = _traffic(traffic, traffic_interval, policy, min_replicas, max_replicas, scale_up_delay,
                   target_utilization, target_queue)
    spec = load_model(model, revision=revision, warn=warn)
    settings = EngineSettings(
        name=cast("EngineName", engine), version=engine_version, gpu_memory_utilization=gpu_memory_utilization,
        max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens, enforce_eager=enforce_eager,
        kv_cache_dtype=kv_dtype_arg(kv_dtype), mem_fraction_static=mem_fraction_static,
    )
    report = serve_deployment(
        spec, gpu_arg(gpu, gpu_file), Parallel(tp=tp, pp=pp, ep=ep), settings, work,
        weight_format=weight_format_arg(spec, quant, keep_fp16), context=tokens_arg(context, "--context"),
        traffic=day, explain=explain,
    )
    if plot is not None:
        report = _write_plot(report, plot)
    for message in report.warnings:
        warn(message)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.serve_render:render_serve")
    if not report.meets_slo:
        raise typer.Exit(EXIT_DOES_NOT_FIT)


def _write_plot(report: "ServeReport", path: str) -> "ServeReport":
    from kvcalc.cli.serving_options import write_atomically
    from kvcalc.errors import InputError
    from kvcalc.report.serve_plot import autoscale_svg
    from kvcalc.spec.base import replace

    r = report
    if r.autoscale is None or r.per_replica is None:
        raise InputError("--plot draws the autoscaling day: give --traffic FILE (and a replica that meets the SLOs)")
    title = f"{r.model} on {r.replicas} x {r.per_replica.gpus} {r.gpu}: load vs replicas ({r.autoscale.source})"
    write_atomically(path, autoscale_svg(r.autoscale, r.per_replica.requests_per_s, title))
    return replace(r, autoscale=replace(r.autoscale, plot=path))
