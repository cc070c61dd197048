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
