"""`kvcalc local`."""

from typing import Annotated

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg, RevisionOpt, bytes_arg, kv_dtype_arg, tokens_arg

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
    import re

    from kvcalc.calc.offload import Device
    from kvcalc.calc.quant import format_from_quantization_config, parse_quant
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import EXIT_DOES_NOT_FIT, InputError
    from kvcalc.report.local import local_report
    from kvcalc.sources.hardware import find_gpu
    from kvcalc.sources.resolve import load_model

    chosen = [name for name, given in (("--gpu", gpu), ("--apple", apple), ("--cpu", cpu)) if given]
    if len(chosen) != 1:
        raise InputError("give exactly one of --gpu NAME, --apple NAME or --cpu"
                         + (f" (got {', '.join(chosen)})" if chosen else ""))
    bandwidth: float | None = None
    if ram_bandwidth is not None:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:GB/s|GB|G)?\s*", ram_bandwidth, re.IGNORECASE)
        if not match or float(match.group(1)) <= 0:
            raise InputError(f"--ram-bandwidth '{ram_bandwidth}' is not a bandwidth in GB/s (e.g. 89.6 or 120GB/s)")
        bandwidth = float(match.group(1)) * 1e9
    hw = None
    device: Device = "cpu"
    if gpu is not None or apple is not None:
        hw = find_gpu(gpu if gpu is not None else str(apple))
        device = "apple" if hw.kind == "apple" else "gpu"
        if apple is not None and hw.kind != "apple":
            raise InputError(f"--apple {apple}: {hw.name} is not an Apple Silicon entry; use --gpu {hw.key}")
    spec = load_model(model, revision=revision, warn=warn)
    if quant is not None:
        fmt = parse_quant(quant, model=spec)
    else:
        fmt = format_from_quantization_config(spec) or parse_quant("Q4_K_M", model=spec)
    tokens = tokens_arg(context, "--context") or 4096
    if spec.max_position_embeddings and tokens > spec.max_position_embeddings:
        warn(f"context {tokens:,} exceeds the model's max_position_embeddings {spec.max_position_embeddings:,}")
    report = local_report(
        spec, fmt, device=device, gpu=hw, ram_bytes=bytes_arg(ram, "--ram"), context=tokens,
        kv_dtype=kv_dtype_arg(kv_dtype), users=users, ram_bandwidth=bandwidth,
    )
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.local:render_local")
    if not report.fits:
        raise typer.Exit(EXIT_DOES_NOT_FIT)


