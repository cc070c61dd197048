"""`kvcalc batch`."""

from typing import Annotated

import typer

from kvcalc.cli.commands.perf import (
    CalibrationOpt,
    CpOpt,
    EagerOpt,
    EngineOpt,
    EngineVersionOpt,
    EpOpt,
    InputOpt,
    MnbtOpt,
    OutputOpt,
    PpOpt,
    SeqsOpt,
    TpOpt,
    calibration_arg,
    engine_settings,
    parallel_arg,
)
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
    tokens_arg,
    weight_format_arg,
)

SCHEMA = ("kvcalc.report.batch", "BatchReport")

_UNITS = {"ms": 1e-3, "s": 1.0, "us": 1e-6}


def duration_arg(text: str, what: str) -> float:
    """'500ms', '0.5s', '50 ms' or a bare number of seconds -> seconds."""
    from kvcalc.errors import InputError

    value = text.strip().lower().replace(" ", "")
    for unit in ("ms", "us", "s"):
        if value.endswith(unit):
            number, scale = value[: -len(unit)], _UNITS[unit]
            break
    else:
        number, scale = value, 1.0
    try:
        seconds = float(number) * scale
    except ValueError:
        raise InputError(f"{what} '{text}' is not a duration; use e.g. 500ms, 0.5s or 50ms") from None
    if not seconds > 0:
        raise InputError(f"{what} must be positive, got '{text}'")
    return seconds


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
    ttft_slo: Annotated[str, typer.Option("--ttft-slo", help="Mean time-to-first-token target: 500ms, 2s.")] = "500ms",
    tpot_slo: Annotated[str, typer.Option("--tpot-slo", help="Mean time-per-output-token target: 50ms.")] = "50ms",
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.0, help="Requests/s to size prefill/decode replicas for (default: the "
                     "throughput at the largest concurrency)."),
    ] = None,
    max_num_batched_tokens: MnbtOpt = None,
    max_num_seqs: SeqsOpt = None,
    enforce_eager: EagerOpt = False,
    calibration: CalibrationOpt = None,
    revision: RevisionOpt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Batching under latency targets: the most concurrent requests meeting --ttft-slo and --tpot-slo within
    the KV budget, the chunked-prefill budget's effect, and a prefill/decode disaggregated split."""
    from kvcalc.cli.output import emit, warn
    from kvcalc.report.batch import batch_report
    from kvcalc.sources.resolve import load_model

    spec = load_model(model, revision=revision, warn=warn)
    settings = engine_settings(engine, engine_version, kv_dtype, max_num_batched_tokens, max_num_seqs,
                               enforce_eager, offline=False)
    report = batch_report(
        spec, gpu_arg(gpu, gpu_file), parallel_arg(tp, pp, ep, cp), settings,
        input_tokens=tokens_arg(input_tokens, "--input") or 0,
        output_tokens=tokens_arg(output_tokens, "--output") or 0,
        ttft_slo_s=duration_arg(ttft_slo, "--ttft-slo"), tpot_slo_s=duration_arg(tpot_slo, "--tpot-slo"),
        weight_format=weight_format_arg(spec, quant, None), calibration=calibration_arg(calibration),
        request_rate=rate, explain=explain,
    )
    for message in report.warnings:
        warn(message)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.batch:render_batch")
