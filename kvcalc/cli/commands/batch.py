"""`kvcalc batch`."""

from typing import Annotated, Any

import typer

from kvcalc.cli.commands.perf import InputOpt, OutputOpt
from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg
from kvcalc.cli.plan_options import deployment_options

SCHEMA = ("kvcalc.report.batch", "BatchReport")


@deployment_options(calibration=True)
def command(
    model: ModelArg,
    deployment: dict[str, Any],
    input_tokens: InputOpt = "2048",
    output_tokens: OutputOpt = "256",
    ttft_slo: Annotated[str, typer.Option("--ttft-slo", help="Mean time-to-first-token target: 500ms, 2s.")] = "500ms",
    tpot_slo: Annotated[str, typer.Option("--tpot-slo", help="Mean time-per-output-token target: 50ms.")] = "50ms",
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.0, help="Requests/s to size prefill/decode replicas for (default: the "
                     "throughput at the largest concurrency)."),
    ] = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Batching under latency targets: the most concurrent requests meeting --ttft-slo and --tpot-slo within
    the KV budget, the chunked-prefill budget's effect, and a prefill/decode disaggregated split."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn

    report = api.batch(model, input_tokens=input_tokens, output_tokens=output_tokens, ttft_slo=ttft_slo,
                       tpot_slo=tpot_slo, rate=rate, explain=explain, warn=warn, **deployment)
    for message in report.warnings:
        warn(message)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.batch:render_batch")
