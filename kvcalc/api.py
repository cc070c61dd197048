"""The public Python API: the same pydantic results the CLI prints with --json.

>>> import kvcalc
>>> report = kvcalc.fit("llama-70b", gpu="h100", tp=4, context=8192)
>>> report.fits, report.capacity.max_concurrency
"""

from __future__ import annotations

from typing import Any, cast

from kvcalc.report.fit import FitReport, fit_deployment
from kvcalc.report.inspect import InspectReport, inspect_model
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.deployment import EngineName, EngineSettings, Parallel
from kvcalc.units import parse_tokens


def inspect(model: str, *, kv_dtype: str | None = None, revision: str | None = None) -> InspectReport:
    """Architecture, parameters and KV cache of MODEL (a profile alias, config path or Hub id)."""
    return inspect_model(load_model(model, revision=revision), kv_dtype)


def fit(
    model: str,
    *,
    gpu: str = "h100",
    tp: int = 1,
    pp: int = 1,
    dp: int = 1,
    ep: int = 1,
    cp: int = 1,
    context: int | str | None = None,
    concurrency: int = 1,
    engine: str = "vllm",
    revision: str | None = None,
    **engine_options: Any,
) -> FitReport:
    """Does MODEL fit on `gpu` with this layout? `engine_options` are EngineSettings fields
    (version, gpu_memory_utilization, max_num_batched_tokens, kv_cache_dtype, ...)."""
    settings = EngineSettings(name=cast(EngineName, engine), **engine_options)
    tokens = None if context is None else parse_tokens(context, "context")
    return fit_deployment(
        load_model(model, revision=revision),
        find_gpu(gpu),
        Parallel(tp=tp, pp=pp, dp=dp, ep=ep, cp=cp),
        settings,
        context=tokens,
        concurrency=concurrency,
    )


def perf(
    model: str,
    *,
    gpu: str = "h100",
    tp: int = 1,
    pp: int = 1,
    ep: int = 1,
    cp: int = 1,
    input_tokens: int | str = 2048,
    output_tokens: int | str = 256,
    batch: int | None = None,
    concurrency: int | None = None,
    engine: str = "vllm",
    quant: str | None = None,
    calibration: str | None = None,
    revision: str | None = None,
    **engine_options: Any,
) -> Any:
    """TTFT, TPOT and tokens/s of MODEL for a static `batch` or `concurrency` closed-loop clients
    (`kvcalc perf`; returns kvcalc.report.perf.PerfReport)."""
    from kvcalc.calc.quant import parse_quant
    from kvcalc.report.perf import perf_report
    from kvcalc.sources.calibration import load_calibration

    spec = load_model(model, revision=revision)
    if engine == "vllm":
        engine_options.setdefault("usage", "llm" if batch is not None else "serve")
    settings = EngineSettings(name=cast(EngineName, engine), **engine_options)
    return perf_report(
        spec, find_gpu(gpu), Parallel(tp=tp, pp=pp, ep=ep, cp=cp), settings,
        input_tokens=parse_tokens(input_tokens, "input"), output_tokens=parse_tokens(output_tokens, "output"),
        batch=batch, concurrency=concurrency, weight_format=parse_quant(quant, model=spec) if quant else None,
        calibration=load_calibration(calibration) if calibration else None,
    )


def batch(
    model: str,
    *,
    ttft_slo_s: float,
    tpot_slo_s: float,
    gpu: str = "h100",
    tp: int = 1,
    pp: int = 1,
    ep: int = 1,
    input_tokens: int | str = 2048,
    output_tokens: int | str = 256,
    engine: str = "vllm",
    quant: str | None = None,
    request_rate: float | None = None,
    revision: str | None = None,
    **engine_options: Any,
) -> Any:
    """The largest concurrency meeting both latency targets within the KV budget (`kvcalc batch`; returns
    kvcalc.report.batch.BatchReport)."""
    from kvcalc.calc.quant import parse_quant
    from kvcalc.report.batch import batch_report

    spec = load_model(model, revision=revision)
    settings = EngineSettings(name=cast(EngineName, engine), **engine_options)
    return batch_report(
        spec, find_gpu(gpu), Parallel(tp=tp, pp=pp, ep=ep), settings,
        input_tokens=parse_tokens(input_tokens, "input"), output_tokens=parse_tokens(output_tokens, "output"),
        ttft_slo_s=ttft_slo_s, tpot_slo_s=tpot_slo_s, request_rate=request_rate,
        weight_format=parse_quant(quant, model=spec) if quant else None,
    )


def _plan(model: str, gpu: str, parallel: Parallel, context: int | str | None, engine: str, revision: str | None,
          engine_options: dict[str, Any]) -> Any:
    from kvcalc.calc.deploy import plan_deployment

    settings = EngineSettings(name=cast(EngineName, engine), **engine_options)
    tokens = None if context is None else parse_tokens(context, "context")
    return plan_deployment(load_model(model, revision=revision), find_gpu(gpu), parallel, settings, context=tokens)


def paged(
    model: str,
    *,
    requests: list[int | tuple[int, int]] | None = None,
    trace: str | list[Any] | None = None,
    gpu: str = "h100",
    tp: int = 1,
    pp: int = 1,
    context: int | str | None = None,
    engine: str = "vllm",
    step_s: float | None = None,
    prefix_caching: bool = True,
    revision: str | None = None,
    **engine_options: Any,
) -> Any:
    """`kvcalc paged`: with `requests` (total tokens or (prompt, output) pairs) a PagedReport; with `trace` (a
    JSON-lines path or TraceRequest list) the list of events, start first and summary last."""
    from kvcalc.report.paged import paged_report, trace_simulation

    plan = _plan(model, gpu, Parallel(tp=tp, pp=pp), context, engine, revision, engine_options)
    if trace is None:
        pairs = [r if isinstance(r, tuple) else (r, 0) for r in requests or []]
        return paged_report(plan, pairs, explain=True)
    if isinstance(trace, str):
        from kvcalc.sources.trace import read_trace

        trace = read_trace(trace)[0]
    start, events, _ = trace_simulation(plan, trace, step_s=step_s, caching=prefix_caching, explain=True)
    return [start, *events]


def prefix(
    model: str | None = None,
    *,
    prefix_tokens: int = 0,
    requests_per_s: float = 1.0,
    unique_tokens: int = 400,
    output_tokens: int = 256,
    tenants: int = 1,
    isolate: bool = False,
    prices: Any = None,
    usage: str | None = None,
    gpu: str = "h100",
    tp: int = 1,
    context: int | str | None = None,
    engine: str = "vllm",
    revision: str | None = None,
    **engine_options: Any,
) -> Any:
    """`kvcalc prefix`: a PrefixReport for MODEL, or with `usage` (a JSON-lines path) a UsageReport.
    `prices`: kvcalc.calc.paging.economics.Prices (USD per million tokens)."""
    from kvcalc.report.prefix import prefix_report, usage_report

    if usage is not None:
        from kvcalc.sources.usage import read_usage

        records, skipped = read_usage(usage)
        return usage_report(records, skipped, prices=prices, min_cacheable=1024, explain=True)
    if model is None:
        raise ValueError("prefix() needs a model, or usage=PATH")
    plan = _plan(model, gpu, Parallel(tp=tp), context, engine, revision, engine_options)
    return prefix_report(plan, prefix_tokens=prefix_tokens, unique_tokens=unique_tokens, output_tokens=output_tokens,
                         requests_per_s=requests_per_s, tenants=tenants, isolate=isolate, prices=prices,
                         change_points=[], explain=True)
