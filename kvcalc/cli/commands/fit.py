"""`kvcalc fit`."""

from typing import Annotated

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
    kv_dtype_arg,
    version_arg,
)

SCHEMA = ("kvcalc.report.fit", "FitReport")


def command(
    model: ModelArg,
    gpu: GpuOpt = "h100",
    gpu_file: GpuFileOpt = None,
    tp: Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel degree.")] = 1,
    pp: Annotated[int, typer.Option("--pp", min=1, help="Pipeline-parallel degree.")] = 1,
    dp: Annotated[int, typer.Option("--dp", min=1, help="Data-parallel replicas.")] = 1,
    ep: Annotated[int, typer.Option("--ep", min=1, help="Expert-parallel degree (= tp x dp when used).")] = 1,
    cp: Annotated[
        int,
        typer.Option("--cp", min=1, help="Decode context-parallel degree: each sequence's KV split over cp ranks "
                     "of the TP group (divides --tp; adds no GPUs)."),
    ] = 1,
    gpus: Annotated[
        int | None, typer.Option("--gpus", min=1, help="Total GPUs; sets tp when only this is given.")
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context", help="Tokens per request (max_model_len): 8192, 32k (=32,000), 32K (=32,768), 1M."
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", min=1, help="Concurrent requests of --context tokens that must fit."),
    ] = 1,
    engine: Annotated[str, typer.Option("--engine", help="vllm, sglang, trtllm or llamacpp.")] = "vllm",
    engine_version: Annotated[
        str | None,
        typer.Option(
            "--engine-version",
            help="Engine release whose accounting to apply (vLLM 0.10 to 0.33, default 0.33.0; other engines: "
            "their modelled release).",
        ),
    ] = None,
    gpu_memory_utilization: Annotated[
        float | None,
        typer.Option(
            "--gpu-memory-utilization", "--device-memory-utilization",
            help="vLLM utilization (default 0.92 from v0.20, 0.9 before; the second name is v0.31's alias).",
        ),
    ] = None,
    max_num_batched_tokens: Annotated[int | None, typer.Option("--max-num-batched-tokens", min=1)] = None,
    max_num_seqs: Annotated[int | None, typer.Option("--max-num-seqs", min=1)] = None,
    block_size: Annotated[int | None, typer.Option("--block-size", min=1)] = None,
    enforce_eager: Annotated[
        bool, typer.Option("--enforce-eager", help="No CUDA graphs (no graph reservation).")
    ] = False,
    kv_dtype: KvDtypeOpt = None,
    mem_fraction_static: Annotated[
        float | None, typer.Option("--mem-fraction-static", help="SGLang's fraction for weights + KV.")
    ] = None,
    non_torch_memory: Annotated[
        str | None, typer.Option("--non-torch-memory", help="Override non-torch memory per GPU, e.g. 0.5GiB.")
    ] = None,
    activation_memory: Annotated[
        str | None,
        typer.Option("--activation-memory", help="Override the activation peak per GPU, e.g. 2GiB."),
    ] = None,
    cuda_graph_memory: Annotated[
        str | None,
        typer.Option("--cuda-graph-memory", help="Override the CUDA-graph reservation, e.g. 0.5GiB."),
    ] = None,
    revision: RevisionOpt = None,
    quant: QuantOpt = None,
    keep_fp16: KeepFp16Opt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Does MODEL fit on these GPUs: memory per GPU, KV capacity, concurrency, and what would make it fit.

    Exit code 0 when it fits, 1 when it does not, 2 for bad input."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import EXIT_DOES_NOT_FIT, InputError

    if gpus is not None:
        if tp == 1 and pp == 1 and dp == 1:
            tp = gpus
        elif tp * pp * dp != gpus:
            raise InputError(f"--gpus {gpus} does not equal tp x pp x dp = {tp * pp * dp}")
    report = api.fit(
        model, gpu=gpu, gpu_file=gpu_file, tp=tp, pp=pp, dp=dp, ep=ep, cp=cp, context=context,
        concurrency=concurrency, engine=engine, quant=quant, keep_fp16=keep_fp16, revision=revision, warn=warn,
        explain=explain, version=version_arg(engine_version), gpu_memory_utilization=gpu_memory_utilization,
        max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs, block_size=block_size,
        enforce_eager=enforce_eager, kv_cache_dtype=kv_dtype_arg(kv_dtype), mem_fraction_static=mem_fraction_static,
        non_torch_memory=non_torch_memory, activation_memory=activation_memory, cuda_graph_memory=cuda_graph_memory,
    )
    for message in report.warnings:
        warn(message)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.render:render_fit")
    if not report.fits:
        raise typer.Exit(EXIT_DOES_NOT_FIT)
