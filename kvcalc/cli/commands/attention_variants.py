"""`kvcalc attention-variants`."""

from typing import Annotated

import typer

from kvcalc.cli.options import (
    ExplainOpt,
    GpuOpt,
    JsonOpt,
    KvDtypeOpt,
    ModelArg,
    RevisionOpt,
    kv_dtype_arg,
)

SCHEMA = ("kvcalc.report.variants", "VariantsReport")


def command(
    model: ModelArg,
    gpu: GpuOpt = "h100",
    memory: Annotated[
        str | None,
        typer.Option(
            "--memory", help="KV memory to fill, e.g. 40GiB (default: the GPU's usable memory minus bf16 weights)."
        ),
    ] = None,
    kv_dtype: KvDtypeOpt = None,
    tp: Annotated[
        int | None, typer.Option("--tp", min=1, help="Tensor-parallel degree (default: the least that fits).")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="vllm, sglang, trtllm or llamacpp (whose budget).")] = "vllm",
    context: Annotated[
        str | None,
        typer.Option("--context", help="Also count sequences of this many tokens that fit: 8192, 32k, 32K, 1M."),
    ] = None,
    revision: RevisionOpt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """MODEL's KV bytes per token and the tokens that fit as MHA, GQA (every group count), MQA and MLA.

    The memory is --memory, else the KV pool `kvcalc fit` plans on --gpu with --engine at --tp."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn

    report = api.attention_variants(model, gpu=gpu, memory=memory, kv_dtype=kv_dtype_arg(kv_dtype), context=context,
                                    tp=tp, engine=engine, revision=revision, warn=warn)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.variants:render_variants")
