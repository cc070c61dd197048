"""`kvcalc perf`."""

from typing import Annotated, Any

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg
from kvcalc.cli.plan_options import deployment_options

SCHEMA = ("kvcalc.report.perf", "PerfReport")

InputOpt = Annotated[str, typer.Option("--input", help="Prompt tokens per request: 2048, 2k (=2,000), 32K.")]
OutputOpt = Annotated[str, typer.Option("--output", help="Generated tokens per request.")]
RateOpt = Annotated[
    str | None,
    typer.Option("--request-rate", help="Open loop: requests/s sent as a Poisson process (vllm bench serve), or "
                 "'inf' to send every request at once."),
]
NumPromptsOpt = Annotated[
    int | None, typer.Option("--num-prompts", min=1, help="Requests an open-loop run sends (default 1000).")
]
InputDistOpt = Annotated[
    str, typer.Option("--input-dist", help="Request lengths: 'fixed' (--input/--output) or 'sharegpt' (vllm bench "
                      "serve's ShareGPT, modelled).")
]
LengthsFileOpt = Annotated[
    str | None, typer.Option("--lengths-file", help="CSV or JSON lines of input/output lengths (and weight) to "
                             "draw requests from.")
]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Seed of arrivals and drawn lengths (vllm bench: 0).")]
BurstinessOpt = Annotated[
    float, typer.Option("--burstiness", min=0.001, help="Gamma shape of the gaps between requests (1 = Poisson).")
]


@deployment_options(calibration=True)
def command(
    model: ModelArg,
    deployment: dict[str, Any],
    input_tokens: InputOpt = "2048",
    output_tokens: OutputOpt = "256",
    batch: Annotated[int | None, typer.Option("--batch", min=1, help="A static batch of B requests.")] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="C clients in a closed loop (serving).")
    ] = None,
    request_rate: RateOpt = None,
    num_prompts: NumPromptsOpt = None,
    input_dist: InputDistOpt = "fixed",
    lengths_file: LengthsFileOpt = None,
    seed: SeedOpt = 0,
    burstiness: BurstinessOpt = 1.0,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """How fast: TTFT, TPOT and tokens/s of MODEL for a static --batch, --concurrency serving clients, or
    --request-rate R open-loop arrivals (--num-prompts N; 'inf' = all at once), with fixed or drawn request
    lengths (--input-dist sharegpt, --lengths-file).

    Says which bound each phase is on (arithmetic intensity vs the card's ridge point), the batch where
    decode turns compute-bound, a table over batch sizes, and every efficiency with its source."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn

    report = api.perf(model, input_tokens=input_tokens, output_tokens=output_tokens, batch=batch,
                      concurrency=concurrency, request_rate=request_rate, num_prompts=num_prompts,
                      input_dist=input_dist, lengths_file=lengths_file, seed=seed, burstiness=burstiness,
                      explain=explain, warn=warn, **deployment)
    for message in report.warnings:
        warn(message)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.perf:render_perf")
