"""`kvcalc local`."""

from typing import Annotated

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg, RevisionOpt

SCHEMA = ("kvcalc.report.local", "LocalReport")


def command(
    model: ModelArg,
    gpu: Annotated[
        str | None, typer.Option("--gpu", help="GPU key or alias (kvcalc gpus): rtx-4090, rtx-3090, rtx-5090 ...")
    ] = None,
    apple: Annotated[
        str | None, typer.Option("--apple", help="Apple Silicon entry: m3-max-128, m4-max-128, m4-pro-64 ...")
    ] = None,
    cpu: Annotated[bool, typer.Option("--cpu", help="CPU only: everything in RAM (needs --ram).")] = False,
    ram: Annotated[
        str | None, typer.Option("--ram", help="Host RAM, e.g. 64G (= GiB); Apple: defaults to the unified memory.")
    ] = None,
    quant: Annotated[
        str | None,
        typer.Option("--quant", help="Weight format, default Q4_K_M (or the checkpoint's own): Q4_K_M, Q8_0, IQ4_XS, "
                     "awq:4:128 ..."),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="Tokens per user: 8192, 32k (=32,000), 32K (=32,768). Default 4096.")
    ] = None,
    users: Annotated[int, typer.Option("--users", min=1, help="Concurrent users (llama-server -np slots).")] = 1,
    kv_dtype: Annotated[
        str | None,
        typer.Option("--kv-dtype", help="llama.cpp KV cache type: f16 (default), bf16, q8_0, q4_0, q5_0, iq4_nl ..."),
    ] = None,
    ram_bandwidth: Annotated[
        str | None,
        typer.Option("--ram-bandwidth", help="RAM bandwidth in GB/s (1e9 B/s), e.g. 89.6 or 120GB/s. Default: "
                     "dual-channel DDR5-5600 (89.6 GB/s); Apple: the SoC's bandwidth."),
    ] = None,
    revision: RevisionOpt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Local deployment: layers on the GPU (--n-gpu-layers), RAM for the rest, decode tokens/s, runtimes.

    Exit code 0 when it fits (on the GPU, or with offload within RAM), 1 when it does not, 2 for bad input."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import EXIT_DOES_NOT_FIT

    report = api.local(model, gpu=gpu, apple=apple, cpu=cpu, ram=ram, quant=quant, context=context, users=users,
                       kv_dtype=kv_dtype, ram_bandwidth=ram_bandwidth, revision=revision, warn=warn)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.local:render_local")
    if not report.fits:
        raise typer.Exit(EXIT_DOES_NOT_FIT)
