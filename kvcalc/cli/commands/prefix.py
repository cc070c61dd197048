"""`kvcalc prefix`."""

from typing import TYPE_CHECKING, Annotated

import typer

from kvcalc.cli.options import (
    ExplainOpt,
    GpuFileOpt,
    GpuOpt,
    JsonOpt,
    KeepFp16Opt,
    KvDtypeOpt,
    QuantOpt,
    RevisionOpt,
)
from kvcalc.cli.plan_options import (
    ActivationOpt,
    BlockSizeOpt,
    ContextOpt,
    CpOpt,
    CudaGraphOpt,
    EagerOpt,
    EngineOpt,
    EngineVersionOpt,
    EpOpt,
    GmuOpt,
    MaxSeqsOpt,
    MemFractionOpt,
    MnbtOpt,
    NonTorchOpt,
    PpOpt,
    TpOpt,
)

if TYPE_CHECKING:
    from kvcalc.calc.paging.economics import Prices

SCHEMA = ("kvcalc.report.prefix", "PrefixOutput")

_PRICE_KEYS = {"input": "input_per_mtok", "cached": "cached_per_mtok", "write": "write_per_mtok",
               "output": "output_per_mtok"}


def parse_prices(text: str | None) -> "Prices | None":
    """'input=3,cached=0.3[,write=3.75][,output=15]' (USD per million tokens) -> Prices."""
    import math

    from kvcalc.calc.paging.economics import Prices
    from kvcalc.errors import InputError

    if text is None:
        return None
    values: dict[str, float] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in _PRICE_KEYS:
            raise InputError(f"--price '{text}': use input=3.0,cached=0.3 (USD per million tokens; also write=, "
                             "output=)")
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"--price {key}={value!r} is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise InputError(f"--price {key} must be a non-negative number, got {value}")
        values[_PRICE_KEYS[key]] = number
    if "input_per_mtok" not in values or "cached_per_mtok" not in values:
        raise InputError("--price needs both input= and cached= (USD per million tokens)")
    return Prices(**values)


def command(
    model: Annotated[
        str | None, typer.Argument(help="Profile alias, config.json / folder / .gguf, or Hub repo (not with --usage).")
    ] = None,
    prefix_tokens: Annotated[
        int | None, typer.Option("--prefix-tokens", min=1, help="Shared prefix (system prompt, tools) in tokens.")
    ] = None,
    requests_per_s: Annotated[
        float | None, typer.Option("--requests-per-s", min=0.0, help="Requests per second sharing it.")
    ] = None,
    unique_tokens: Annotated[
        int, typer.Option("--unique-tokens", min=0, help="Unique prompt tokens per request.")
    ] = 400,
    output_tokens: Annotated[
        int, typer.Option("--output-tokens", min=0, help="Output tokens per request (sizes the KV it holds).")
    ] = 256,
    tenants: Annotated[int, typer.Option("--tenants", min=1, help="Tenants sending the same prefix.")] = 1,
    isolate: Annotated[bool, typer.Option("--isolate", help="A cache salt per tenant: nothing shared across.")] = False,
    price: Annotated[
        str | None,
        typer.Option("--price", help="USD per million tokens: input=3.0,cached=0.3[,write=3.75][,output=15]."),
    ] = None,
    change_at: Annotated[
        list[int] | None, typer.Option("--change-at", min=0, help="Also show a prefix change at this token (repeat).")
    ] = None,
    usage: Annotated[
        str | None,
        typer.Option("--usage", help="API responses (JSON lines; a file or - for stdin): report real hit rates."),
    ] = None,
    min_cacheable: Annotated[
        int, typer.Option("--min-cacheable", min=1, help="--usage: smallest prompt the provider caches.")
    ] = 1024,
    gpu: GpuOpt = "h100",
    gpu_file: GpuFileOpt = None,
    tp: TpOpt = 1,
    pp: PpOpt = 1,
    ep: EpOpt = 1,
    cp: CpOpt = 1,
    context: ContextOpt = None,
    engine: EngineOpt = "vllm",
    engine_version: EngineVersionOpt = None,
    gpu_memory_utilization: GmuOpt = None,
    max_num_batched_tokens: MnbtOpt = None,
    max_num_seqs: MaxSeqsOpt = None,
    block_size: BlockSizeOpt = None,
    enforce_eager: EagerOpt = False,
    kv_dtype: KvDtypeOpt = None,
    mem_fraction_static: MemFractionOpt = None,
    non_torch_memory: NonTorchOpt = None,
    activation_memory: ActivationOpt = None,
    cuda_graph_memory: CudaGraphOpt = None,
    revision: RevisionOpt = None,
    quant: QuantOpt = None,
    keep_fp16: KeepFp16Opt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Prefix caching: cacheable tokens, KV memory, prefill FLOPs, TTFT and money saved by a shared prefix,
    what tenant isolation and prompt changes cost; or, with --usage, real hit rates from API responses."""
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import InputError

    prices = parse_prices(price)
    if usage is not None:
        if model is not None:
            raise InputError("--usage reads API responses; give no MODEL with it")
        from kvcalc.report.prefix import usage_report
        from kvcalc.sources.usage import read_usage

        records, skipped = read_usage(usage)
        message = skipped.message("usage")
        if message:
            warn(message)
        if not records:
            raise InputError(f"{usage}: no usage objects found" + (f" ({skipped.first})" if skipped.first else ""))
        usage_result = usage_report(records, skipped, prices=prices, min_cacheable=min_cacheable, explain=explain)
        emit(usage_result, as_json=json_out, explain=explain, render="kvcalc.report.prefix:render_usage")
        return
    if model is None or prefix_tokens is None or requests_per_s is None:
        raise InputError("give MODEL --prefix-tokens N --requests-per-s R (or --usage FILE)")
    if isolate and tenants == 1:
        warn("--isolate with one tenant changes nothing; add --tenants N")
    from kvcalc.cli.plan_options import build_plan
    from kvcalc.report.prefix import prefix_report

    plan = build_plan(model, dict(locals()), warn)
    report = prefix_report(plan, prefix_tokens=prefix_tokens, unique_tokens=unique_tokens,
                           output_tokens=output_tokens, requests_per_s=requests_per_s, tenants=tenants,
                           isolate=isolate, prices=prices, change_points=list(change_at or []), explain=explain)
    for message in report.warnings:
        warn(message)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.prefix:render_prefix")
