"""The `kvcalc` command line: parse options -> build specs -> call calc -> render. No arithmetic here."""


import sys
from typing import TYPE_CHECKING, Annotated, cast

import typer

from kvcalc.errors import EXIT_INPUT, KvcalcError

if TYPE_CHECKING:
    from kvcalc.calc.weights import WeightFormat
    from kvcalc.spec.deployment import EngineName
    from kvcalc.spec.gpu import GpuSpec
    from kvcalc.spec.model import ModelSpec

app = typer.Typer(
    name="kvcalc",
    help="Capacity and cost calculator for LLM inference: does it fit, how many users, how fast, at what cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ModelArg = Annotated[
    str,
    typer.Argument(
        help="Profile alias (kvcalc models), config.json / model folder / .gguf, or Hub repo id[@revision]."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout, nothing else.")]
ExplainOpt = Annotated[
    bool, typer.Option("--explain", help="Show each figure's formula with the numbers substituted.")
]
KvDtypeOpt = Annotated[
    str | None,
    typer.Option(
        "--kv-dtype",
        help="KV-cache dtype: auto (model dtype), bf16, fp16, fp8, fp8_e4m3, fp8_e5m2, int8, q8_0, q4_0 ...",
    ),
]
RevisionOpt = Annotated[str | None, typer.Option("--revision", help="Hub revision (branch, tag or commit).")]


def _kv_dtype(value: str | None) -> str | None:
    return None if value in (None, "auto") else value


@app.command()
def inspect(
    model: ModelArg,
    kv_dtype: KvDtypeOpt = None,
    revision: RevisionOpt = None,
    naive_mla: Annotated[
        bool,
        typer.Option(
            "--naive-mla", help="Size MLA as full per-head K/V (a naive cache) instead of the latent engines store."
        ),
    ] = False,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Architecture summary, layer pattern, parameters, and KV bytes per token and per sequence."""
    from kvcalc.cli.output import emit, warn
    from kvcalc.report.inspect import inspect_model
    from kvcalc.sources.resolve import load_model

    spec = load_model(model, revision=revision, warn=warn)
    report = inspect_model(spec, _kv_dtype(kv_dtype), mla_naive=naive_mla)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.render:render_inspect")


@app.command()
def models(json_out: JsonOpt = False) -> None:
    """The shipped model profiles, with aliases and Hub repo ids."""
    import json

    from kvcalc.cli.output import console
    from kvcalc.sources.profiles import profile_headers

    headers = profile_headers()
    if json_out:
        rows = [
            {"name": h["name"], "aliases": h.get("aliases") or [], "hf_repo": h.get("hf_repo")}
            for h in headers
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="Model profiles (work offline)", title_justify="left")
    for col in ("profile", "aliases", "Hub repo"):
        table.add_column(col)
    for h in headers:
        table.add_row(h["name"], ", ".join(h.get("aliases") or []), h.get("hf_repo") or "")
    console().print(table)


GpuOpt = Annotated[
    str, typer.Option("--gpu", help="GPU key or alias (kvcalc gpus), or a path to your own GPU .yaml.")
]
GpuFileOpt = Annotated[
    str | None,
    typer.Option("--gpu-file", help="Your own GPU .yaml (same fields as hardware/*.yaml); overrides --gpu."),
]


def _gpu(name: str, gpu_file: str | None) -> "GpuSpec":
    """--gpu-file when given (validated like the shipped files), else --gpu resolved by key or alias."""
    from kvcalc.sources.hardware import find_gpu, load_gpu_file

    return load_gpu_file(gpu_file) if gpu_file else find_gpu(name)


QuantOpt = Annotated[
    str | None,
    typer.Option(
        "--quant",
        help="Weight format: bf16, fp8[:channel|:block], int8, gptq:4:128[:act], awq:4:128, nf4[:dq], nvfp4, "
        "mxfp4, or a GGUF type (Q4_K_M, Q8_0, IQ4_XS ...). Default: as the checkpoint's quantization_config "
        "stores it, else the model dtype.",
    ),
]
KeepFp16Opt = Annotated[
    str | None,
    typer.Option(
        "--keep-fp16",
        help="Tensors kept 16-bit instead of the format's default: lm_head, embed, none, attn, experts or a role.",
    ),
]


def _weight_format(spec: "ModelSpec", quant: str | None, keep_fp16: str | None) -> "WeightFormat | None":
    """--quant parsed and bound to the model; None (the checkpoint's own format) without it."""
    from kvcalc.errors import InputError

    if quant is None:
        if keep_fp16 is not None:
            raise InputError("--keep-fp16 needs --quant FORMAT (it changes which tensors that format quantizes)")
        return None
    from kvcalc.calc.quant import parse_quant

    return parse_quant(quant, keep_fp16, model=spec)


def _parse_tokens(value: str | None, what: str) -> int | None:
    from kvcalc.units import parse_tokens

    return None if value is None else parse_tokens(value, what)


def _parse_bytes(value: str | None, what: str) -> int | None:
    from kvcalc.units import parse_bytes

    return None if value is None else parse_bytes(value, what)


@app.command()
def fit(
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
            help="Engine release whose accounting to apply (vLLM >= 0.10; default newest modelled).",
        ),
    ] = None,
    gpu_memory_utilization: Annotated[
        float | None,
        typer.Option(
            "--gpu-memory-utilization", help="vLLM utilization (default 0.92 from v0.21, 0.9 before)."
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
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import EXIT_DOES_NOT_FIT, InputError
    from kvcalc.report.fit import fit_deployment
    from kvcalc.sources.resolve import load_model
    from kvcalc.spec.deployment import EngineSettings, Parallel

    if gpus is not None:
        if tp == 1 and pp == 1 and dp == 1:
            tp = gpus
        elif tp * pp * dp != gpus:
            raise InputError(f"--gpus {gpus} does not equal tp x pp x dp = {tp * pp * dp}")
    spec = load_model(model, revision=revision, warn=warn)
    gpu_spec = _gpu(gpu, gpu_file)
    settings = EngineSettings(
        name=cast("EngineName", engine),
        version=engine_version,
        gpu_memory_utilization=gpu_memory_utilization,
        max_num_batched_tokens=max_num_batched_tokens,
        max_num_seqs=max_num_seqs,
        block_size=block_size,
        enforce_eager=enforce_eager,
        kv_cache_dtype=_kv_dtype(kv_dtype),
        mem_fraction_static=mem_fraction_static,
        non_torch_bytes=_parse_bytes(non_torch_memory, "--non-torch-memory"),
        activation_bytes=_parse_bytes(activation_memory, "--activation-memory"),
        cuda_graph_bytes=_parse_bytes(cuda_graph_memory, "--cuda-graph-memory"),
    )
    report = fit_deployment(
        spec,
        gpu_spec,
        Parallel(tp=tp, pp=pp, dp=dp, ep=ep, cp=cp),
        settings,
        context=_parse_tokens(context, "--context"),
        concurrency=concurrency,
        weight_format=_weight_format(spec, quant, keep_fp16),
        explain=explain,
    )
    for message in report.warnings:
        warn(message)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.render:render_fit")
    if not report.fits:
        raise typer.Exit(EXIT_DOES_NOT_FIT)


@app.command()
def quant(
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
    """MODEL under each weight format: weight bytes, bits per weight, fits?, KV tokens, concurrency, quality."""
    from kvcalc.calc.quant import parse_keep
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import InputError
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
        EngineSettings(name=engine, kv_cache_dtype=_kv_dtype(kv_dtype)),  # type: ignore[arg-type]
        context=_parse_tokens(context, "--context"),
        formats=names,
        keep_high_precision=parse_keep(keep_fp16),
    )
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.quant:render_quant")


@app.command()
def local(
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
    tokens = _parse_tokens(context, "--context") or 4096
    if spec.max_position_embeddings and tokens > spec.max_position_embeddings:
        warn(f"context {tokens:,} exceeds the model's max_position_embeddings {spec.max_position_embeddings:,}")
    report = local_report(
        spec, fmt, device=device, gpu=hw, ram_bytes=_parse_bytes(ram, "--ram"), context=tokens,
        kv_dtype=_kv_dtype(kv_dtype), users=users, ram_bandwidth=bandwidth,
    )
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.local:render_local")
    if not report.fits:
        raise typer.Exit(EXIT_DOES_NOT_FIT)


@app.command()
def gpus(json_out: JsonOpt = False) -> None:
    """The accelerator catalogue (hardware/*.yaml): memory, bandwidth, dense peaks, price."""
    import json

    from kvcalc.cli.output import console
    from kvcalc.sources.hardware import list_gpus
    from kvcalc.spec.base import to_jsonable

    catalogue = list_gpus()
    if json_out:
        sys.stdout.write(json.dumps([to_jsonable(g) for g in catalogue], indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="GPUs (dense peaks; GiB = 2^30 B, TB/s = 1e12 B/s)", title_justify="left")
    for col in ("key", "name", "aliases", "memory GiB", "usable GiB", "TB/s", "bf16 TFLOP/s", "$/h"):
        table.add_column(col, justify="right" if col[0].isupper() or " " in col or col == "$/h" else "left")
    for g in catalogue:
        table.add_row(
            g.key,
            g.name,
            ", ".join(g.aliases),
            f"{g.memory_bytes / 2**30:.1f}",
            f"{g.usable_memory_bytes / 2**30:.2f}",
            f"{g.memory_bandwidth_bytes_per_s / 1e12:.2f}",
            f"{g.peak_flops.get('bf16', 0) / 1e12:.0f}",
            f"{g.price.usd_per_gpu_hour:.2f}" if g.price else "-",
        )
    console().print(table)


@app.command()
def schema(command: Annotated[str, typer.Argument(help="fit, inspect, quant, local or attention-variants")]) -> None:
    """Print the JSON Schema of a command's --json output (generated by pydantic from the report records)."""
    import json

    from kvcalc.errors import InputError
    from kvcalc.spec.base import json_schema

    reports = {
        "fit": ("kvcalc.report.fit", "FitReport"),
        "inspect": ("kvcalc.report.inspect", "InspectReport"),
        "quant": ("kvcalc.report.quant", "QuantReport"),
        "local": ("kvcalc.report.local", "LocalReport"),
        "attention-variants": ("kvcalc.report.variants", "VariantsReport"),
    }
    if command not in reports:
        raise InputError(f"no schema for '{command}'; use {', '.join(reports)}")
    import importlib

    module, name = reports[command]
    report_type = getattr(importlib.import_module(module), name)
    sys.stdout.write(json.dumps(json_schema(report_type), indent=2) + "\n")


@app.command("attention-variants")
def attention_variants(
    model: ModelArg,
    gpu: GpuOpt = "h100",
    memory: Annotated[
        str | None,
        typer.Option(
            "--memory", help="KV memory to fill, e.g. 40GiB (default: the GPU's usable memory minus bf16 weights)."
        ),
    ] = None,
    kv_dtype: KvDtypeOpt = None,
    context: Annotated[
        str | None,
        typer.Option("--context", help="Also count sequences of this many tokens that fit: 8192, 32k, 32K, 1M."),
    ] = None,
    revision: RevisionOpt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """MODEL's KV bytes per token and the tokens that fit as MHA, GQA (every group count), MQA and MLA."""
    from kvcalc.cli.output import emit, warn
    from kvcalc.report.variants import variants_report
    from kvcalc.sources.hardware import find_gpu
    from kvcalc.sources.resolve import load_model

    spec = load_model(model, revision=revision, warn=warn)
    memory_bytes = _parse_bytes(memory, "--memory")
    report = variants_report(
        spec,
        kv_dtype=_kv_dtype(kv_dtype),
        gpu=None if memory_bytes is not None else find_gpu(gpu),
        memory_bytes=memory_bytes,
        context=_parse_tokens(context, "--context"),
    )
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.variants:render_variants")


def _app_for(argv: list[str]) -> typer.Typer:
    """The app to run for `argv`: when it names a command, an app holding just that command.

    Typer introspects every registered command's signature on each call (about 2 ms a command); building
    only the one asked for keeps start-up fast. Its help, options and errors are the same; `kvcalc --help`
    and unknown names go to the full app.
    """
    wanted = argv[0] if argv else ""
    for info in app.registered_commands:
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
        if name == wanted:
            single = typer.Typer(name="kvcalc", add_completion=False, pretty_exceptions_enable=False)
            single.callback()(_group)
            single.registered_commands.append(info)
            return single
    return app


def _group() -> None:
    """Capacity and cost calculator for LLM inference."""


def main() -> None:
    """Entry point: run the app, turning kvcalc errors into one stderr line and an exit code."""
    try:
        code = _app_for(sys.argv[1:])(standalone_mode=False)
    except KvcalcError as err:
        print(f"kvcalc: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as err:
        if hasattr(err, "format_message"):  # click usage errors (typer vendors click)
            print(f"kvcalc: error: {err.format_message()}", file=sys.stderr)
            sys.exit(EXIT_INPUT)
        raise
    sys.exit(code if isinstance(code, int) else 0)
