"""`kvcalc quant`."""

from typing import Annotated

import typer

from kvcalc.cli.options import (
    ExplainOpt,
    GpuOpt,
    JsonOpt,
    KeepFp16Opt,
    KvDtypeOpt,
    ModelArg,
    RevisionOpt,
    kv_dtype_arg,
    tokens_arg,
)

SCHEMA = ("kvcalc.report.quant", "QuantReport")


def command(
    model: ModelArg,
    gpu: GpuOpt = "h100",
    tp: Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel degree.")] = 1,
    pp: Annotated[int, typer.Option("--pp", min=1, help="Pipeline-parallel degree.")] = 1,
    context: Annotated[
        str | None, typer.Option("--context", help="Tokens per request (max_model_len): 8192, 32k, 32K, 1M.")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="vllm, sglang, trtllm or llamacpp.")] = "vllm",
    kv_dtype: KvDtypeOpt = None,
    formats: Annotated[
        str | None,
        typer.Option("--formats", help="Comma-separated formats to compare (default: bf16, fp8 ... Q2_K, IQ4_XS)."),
    ] = None,
    keep_fp16: KeepFp16Opt = None,
    revision: RevisionOpt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """MODEL under each weight format: weight bytes, bits per weight, fits?, KV tokens, concurrency, quality.

    Exit code 0 when at least one format fits, 1 when none does, 2 for bad input."""
    from kvcalc.calc.quant import parse_keep
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import EXIT_DOES_NOT_FIT, InputError
    from kvcalc.report.quant import DEFAULT_FORMATS, quant_report
    from kvcalc.sources.hardware import find_gpu
    from kvcalc.sources.resolve import load_model
    from kvcalc.spec.deployment import EngineSettings, Parallel

    if engine not in ("vllm", "sglang", "trtllm", "llamacpp"):
        raise InputError(f"unknown engine '{engine}'; use vllm, sglang, trtllm or llamacpp")
    spec = load_model(model, revision=revision, warn=warn)
    names = tuple(f.strip() for f in formats.split(",") if f.strip()) if formats else DEFAULT_FORMATS
    report = quant_report(
        spec,
        find_gpu(gpu),
        Parallel(tp=tp, pp=pp),
        EngineSettings(name=engine, kv_cache_dtype=kv_dtype_arg(kv_dtype)),  # type: ignore[arg-type]
        context=tokens_arg(context, "--context"),
        formats=names,
        keep_high_precision=parse_keep(keep_fp16),
    )
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.quant:render_quant")
    if not any(row.fits for row in report.rows):
        raise typer.Exit(EXIT_DOES_NOT_FIT)


