"""`kvcalc perf`."""

from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

if TYPE_CHECKING:
    from kvcalc.spec.deployment import EngineName, EngineSettings, Parallel

from kvcalc.cli.options import (
    ExplainOpt,
    GpuFileOpt,
    GpuOpt,
    JsonOpt,
    KvDtypeOpt,
    ModelArg,
    QuantOpt,
    RevisionOpt,
    gpu_arg,
    kv_dtype_arg,
    tokens_arg,
    weight_format_arg,
)

SCHEMA = ("kvcalc.report.perf", "PerfReport")

TpOpt = Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel degree.")]
PpOpt = Annotated[int, typer.Option("--pp", min=1, help="Pipeline-parallel degree.")]
EpOpt = Annotated[int, typer.Option("--ep", min=1, help="Expert-parallel degree (= tp when used).")]
CpOpt = Annotated[int, typer.Option("--cp", min=1, help="Decode context-parallel degree (divides --tp).")]
EngineOpt = Annotated[str, typer.Option("--engine", help="vllm, sglang, trtllm or llamacpp.")]
EngineVersionOpt = Annotated[str | None, typer.Option("--engine-version", help="Engine release to model.")]
InputOpt = Annotated[str, typer.Option("--input", help="Prompt tokens per request: 2048, 2k (=2,000), 32K.")]
OutputOpt = Annotated[str, typer.Option("--output", help="Generated tokens per request.")]
MnbtOpt = Annotated[
    int | None, typer.Option("--max-num-batched-tokens", min=1, help="Chunked-prefill token budget per step.")
]
SeqsOpt = Annotated[int | None, typer.Option("--max-num-seqs", min=1, help="Most requests running at once.")]
EagerOpt = Annotated[bool, typer.Option("--enforce-eager", help="No CUDA graphs (a launch per kernel).")]
DpOpt = Annotated[int, typer.Option("--dp", min=1, help="Data-parallel replicas (each a whole engine).")]
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
CalibrationOpt = Annotated[
    str | None,
    typer.Option("--calibration", help="Calibration YAML (kvcalc verify) replacing the default efficiencies."),
]


def engine_settings(engine: str, version: str | None, kv_dtype: str | None, mnbt: int | None,
                    seqs: int | None, eager: bool, offline: bool) -> "EngineSettings":
    """EngineSettings for perf/batch; a static batch on vLLM runs its offline LLM class (larger budgets)."""
    from kvcalc.spec.deployment import EngineSettings

    return EngineSettings(name=cast("EngineName", engine), version=version, kv_cache_dtype=kv_dtype_arg(kv_dtype),
                          max_num_batched_tokens=mnbt, max_num_seqs=seqs, enforce_eager=eager,
                          usage="llm" if offline and engine == "vllm" else "serve")


def parallel_arg(tp: int, pp: int, ep: int, cp: int, dp: int = 1) -> "Parallel":
    from kvcalc.spec.deployment import Parallel

    return Parallel(tp=tp, pp=pp, ep=ep, cp=cp, dp=dp)


def rate_arg(text: str | None) -> float | None:
    """'inf' / 'infinity' -> inf; a positive number of requests/s; else InputError."""
    if text is None:
        return None
    from kvcalc.errors import InputError

    value = text.strip().lower()
    if value in ("inf", "infinity"):
        return float("inf")
    try:
        rate = float(value)
    except ValueError:
        raise InputError(f"--request-rate '{text}' is not a number of requests/s or 'inf'") from None
    if not 0 < rate < float("inf"):
        raise InputError(f"--request-rate must be positive (or inf), got '{text}'")
    return rate


def lengths_arg(dist: str, path: str | None) -> Any:
    """The length distribution the options name (None: fixed --input/--output)."""
    from kvcalc.errors import InputError

    if path is not None:
        from kvcalc.sources.lengths import load_lengths

        return load_lengths(path)
    name = dist.strip().lower()
    if name == "fixed":
        return None
    if name == "sharegpt":
        from kvcalc.calc.perf.workload import sharegpt_lengths

        return sharegpt_lengths()
    raise InputError(f"--input-dist '{dist}': use fixed or sharegpt (or --lengths-file FILE)")


def calibration_arg(path: str | None) -> Any:
    if path is None:
        return None
    from kvcalc.sources.calibration import load_calibration

    return load_calibration(path)


def command(
    model: ModelArg,
    gpu: GpuOpt = "h100",
    gpu_file: GpuFileOpt = None,
    tp: TpOpt = 1,
    pp: PpOpt = 1,
    ep: EpOpt = 1,
    cp: CpOpt = 1,
    quant: QuantOpt = None,
    kv_dtype: KvDtypeOpt = None,
    engine: EngineOpt = "vllm",
    engine_version: EngineVersionOpt = None,
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
    dp: DpOpt = 1,
    max_num_batched_tokens: MnbtOpt = None,
    max_num_seqs: SeqsOpt = None,
    enforce_eager: EagerOpt = False,
    calibration: CalibrationOpt = None,
    revision: RevisionOpt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """How fast: TTFT, TPOT and tokens/s of MODEL for a static --batch, --concurrency serving clients, or
    --request-rate R open-loop arrivals (--num-prompts N; 'inf' = all at once), with fixed or drawn request
    lengths (--input-dist sharegpt, --lengths-file).

    Says which bound each phase is on (arithmetic intensity vs the card's ridge point), the batch where
    decode turns compute-bound, a table over batch sizes, and every efficiency with its source."""
    from kvcalc.cli.output import emit, warn
    from kvcalc.report.perf import perf_report
    from kvcalc.sources.resolve import load_model

    spec = load_model(model, revision=revision, warn=warn)
    settings = engine_settings(engine, engine_version, kv_dtype, max_num_batched_tokens, max_num_seqs,
                               enforce_eager, offline=batch is not None)
    report = perf_report(
        spec, gpu_arg(gpu, gpu_file), parallel_arg(tp, pp, ep, cp, dp), settings,
        input_tokens=tokens_arg(input_tokens, "--input") or 0,
        output_tokens=tokens_arg(output_tokens, "--output") or 0,
        batch=batch, concurrency=concurrency, weight_format=weight_format_arg(spec, quant, None),
        calibration=calibration_arg(calibration), explain=explain, request_rate=rate_arg(request_rate),
        num_prompts=num_prompts, lengths=lengths_arg(input_dist, lengths_file), seed=seed, burstiness=burstiness,
    )
    for message in report.warnings:
        warn(message)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.perf:render_perf")
