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
