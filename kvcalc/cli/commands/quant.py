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
    from kvcalc import api
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import EXIT_DOES_NOT_FIT

    report = api.quant(model, gpu=gpu, tp=tp, pp=pp, context=context, engine=engine, kv_dtype=kv_dtype_arg(kv_dtype),
                       formats=formats, keep_fp16=keep_fp16, revision=revision, warn=warn)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.quant:render_quant")
    if not any(row.fits for row in report.rows):
        raise typer.Exit(EXIT_DOES_NOT_FIT)
