"""The public Python API: one function per command, taking the same inputs as the CLI and returning the
records the CLI prints with --json (`kvcalc.spec.base.to_jsonable(report)`), plus `plan`, the engine's
DeploymentPlan every command is built from. `warn` receives warnings about the model as loaded (the CLI prints
them on stderr); the plan's own warnings are in its `warnings`.

>>> import kvcalc
>>> report = kvcalc.fit("llama-70b", gpu="h100", tp=4, context="32K")
>>> report.fits, report.capacity.max_concurrency
>>> plan = kvcalc.plan("gpt-oss-120b", gpu="h100", engine="vllm", version="0.19.0")
>>> plan.binding_device.kv_cache_bytes, plan.kv_pool.num_blocks

Inputs are checked here: a context of 8192, 1e6, "32k" (= 32,000), "32K" (= 32,768) or "1M" works; a value
of the wrong kind raises kvcalc.errors.InputError naming the argument, never a bare TypeError. Heavy modules
are imported inside each function (`import kvcalc` stays cheap).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvcalc.errors import InputError

if TYPE_CHECKING:
    from kvcalc.calc.plan import DeploymentPlan
    from kvcalc.calc.weights import WeightFormat
    from kvcalc.report.fit import FitReport
    from kvcalc.report.inspect import InspectReport
    from kvcalc.report.local import LocalReport
    from kvcalc.report.quant import QuantReport
    from kvcalc.report.variants import VariantsReport
    from kvcalc.spec.deployment import EngineSettings, Parallel
    from kvcalc.spec.gpu import GpuSpec
    from kvcalc.spec.model import ModelSpec

__all__ = ["attention_variants", "batch", "fit", "inspect", "local", "paged", "perf", "plan", "prefix", "quant"]

#: Engine options the API takes as keywords (the CLI's --flags), each with its kind.
_ENGINE_OPTIONS: dict[str, str] = {
    "version": "text", "gpu_memory_utilization": "fraction", "max_num_batched_tokens": "count",
    "max_num_seqs": "count", "block_size": "count", "enforce_eager": "flag", "kv_cache_dtype": "text",
    "usage": "text", "mem_fraction_static": "fraction", "free_gpu_memory_fraction": "fraction",
    "non_torch_memory": "bytes", "activation_memory": "bytes", "cuda_graph_memory": "bytes",
}
_RENAMED = {"non_torch_memory": "non_torch_bytes", "activation_memory": "activation_bytes",
            "cuda_graph_memory": "cuda_graph_bytes", "engine_version": "version", "kv_dtype": "kv_cache_dtype"}


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{what} must be a non-empty string, got {value!r}")
    return value.strip()


def _count(value: Any, what: str) -> int:
    """A whole number: an int, an integral float, or its text ('4')."""
    if isinstance(value, bool):
        raise InputError(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise InputError(f"{what} must be a whole number, got {value!r}")
    return value


def _fraction(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{what} must be a number in (0, 1], got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number in (0, 1], got {value!r}") from None
    if not 0 < number <= 1:
        raise InputError(f"{what} must be a number in (0, 1], got {value!r}")
    return number


def _tokens(value: Any, what: str = "context") -> int | None:
    """None, a whole number (8192, 1e6) or the CLI's text ('32k' = 32,000, '32K' = 32,768, '1M')."""
    from kvcalc.units import parse_tokens

    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"{what} must be a token count such as 8192, 1e6, '32K' or '1M', got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise InputError(f"{what} {value!r} is not a whole number of tokens")
        value = int(value)
    if not isinstance(value, (int, str)):
        raise InputError(f"{what} must be a token count such as 8192, 1e6, '32K' or '1M', got {value!r}")
    return parse_tokens(value, what)


def _bytes(value: Any, what: str, minimum: int = 0) -> int | None:
    from kvcalc.units import parse_bytes

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(f"{what} must be bytes (an int) or a size such as '0.5GiB', got {value!r}")
    return parse_bytes(value, what, minimum=minimum)


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{what} must be True or False, got {value!r}")
    return value


_CHECKS: dict[str, Any] = {"text": _text, "count": _count, "fraction": _fraction, "bytes": _bytes, "flag": _flag}


def _engine(engine: Any, options: dict[str, Any]) -> EngineSettings:
    """EngineSettings from the engine name and the CLI's engine options (unknown ones raise InputError)."""
    from kvcalc.spec.deployment import ENGINES, EngineSettings

    name = _text(engine, "engine").lower()
    if name not in ENGINES:
        raise InputError(f"unknown engine '{engine}'; use {', '.join(ENGINES)}")
    values: dict[str, Any] = {}
    for key, value in options.items():
        key = {"engine_version": "version", "kv_dtype": "kv_cache_dtype"}.get(key, key)
        kind = _ENGINE_OPTIONS.get(key)
        if kind is None:
            known = ", ".join(sorted(set(_ENGINE_OPTIONS) | {"engine_version", "kv_dtype"}))
            raise InputError(f"unknown engine option '{key}'; use {known}")
        if value is None or (key == "kv_cache_dtype" and value == "auto"):
            continue
        values[_RENAMED.get(key, key)] = _CHECKS[kind](value, key)
    return EngineSettings(name=name, **values)  # type: ignore[arg-type]


def _gpu(gpu: Any, gpu_file: Any = None) -> GpuSpec:
    from kvcalc.sources.hardware import find_gpu, load_gpu_file

    if gpu_file is not None:
        return load_gpu_file(_text(gpu_file, "gpu_file"))
    return find_gpu(_text(gpu, "gpu"))


def _model(model: Any, revision: Any, warn: Callable[[str], None] | None = None) -> ModelSpec:
    from kvcalc.sources.resolve import load_model

    return load_model(_text(model, "model"), revision=None if revision is None else _text(revision, "revision"),
                      warn=warn)


def _parallel(tp: Any, pp: Any, dp: Any, ep: Any, cp: Any) -> Parallel:
    from kvcalc.spec.deployment import Parallel

    return Parallel(tp=_count(tp, "tp"), pp=_count(pp, "pp"), dp=_count(dp, "dp"), ep=_count(ep, "ep"),
                    cp=_count(cp, "cp"))


def _format(model: ModelSpec, quant: Any, keep_fp16: Any) -> WeightFormat | None:
    if quant is None:
        if keep_fp16 is not None:
            raise InputError("--keep-fp16 needs --quant FORMAT (it changes which tensors that format quantizes)")
        return None
    from kvcalc.calc.quant import parse_quant

    return parse_quant(_text(quant, "quant"), None if keep_fp16 is None else _text(keep_fp16, "keep_fp16"),
                       model=model)


def inspect(model: str, *, kv_dtype: str | None = None, revision: str | None = None,
        warn: Callable[[str], None] | None = None,
            naive_mla: bool = False) -> InspectReport:
    """Architecture, parameters and KV cache of MODEL (a profile alias, config path or Hub id)."""
    from kvcalc.report.inspect import inspect_model

    kv = None if kv_dtype in (None, "auto") else _text(kv_dtype, "kv_dtype")
    return inspect_model(_model(model, revision, warn), kv, mla_naive=bool(naive_mla))


def plan(model: str, *, gpu: str = "h100", gpu_file: str | None = None, tp: int = 1, pp: int = 1, dp: int = 1,
         ep: int = 1, cp: int = 1, context: int | float | str | None = None, engine: str = "vllm",
         quant: str | None = None, keep_fp16: str | None = None, concurrency: int | None = None,
         revision: str | None = None,
        warn: Callable[[str], None] | None = None, **engine_options: Any) -> DeploymentPlan:
    """The engine's DeploymentPlan for MODEL on `gpu` (ledger per GPU, KV pool, limits, assumptions).
    `engine_options` are the CLI's engine flags: version, gpu_memory_utilization, max_num_batched_tokens,
    max_num_seqs, block_size, enforce_eager, kv_cache_dtype, mem_fraction_static, free_gpu_memory_fraction,
    non_torch_memory, activation_memory, cuda_graph_memory."""
    from kvcalc.calc.deploy import engine_settings, plan_deployment

    spec = _model(model, revision, warn)
    requests = None if concurrency is None else _count(concurrency, "concurrency")
    settings, warnings = engine_settings(_engine(engine, engine_options), concurrency=requests)
    result = plan_deployment(spec, _gpu(gpu, gpu_file), _parallel(tp, pp, dp, ep, cp), settings,
                             weight_format=_format(spec, quant, keep_fp16), context=_tokens(context))
    if warnings:
        from kvcalc.spec.base import replace

        result = replace(result, warnings=tuple(warnings) + result.warnings)
    return result


def fit(model: str, *, gpu: str = "h100", gpu_file: str | None = None, tp: int = 1, pp: int = 1, dp: int = 1,
        ep: int = 1, cp: int = 1, context: int | float | str | None = None, concurrency: int = 1,
        engine: str = "vllm", quant: str | None = None, keep_fp16: str | None = None, revision: str | None = None,
        warn: Callable[[str], None] | None = None,
        advise: bool = True, explain: bool = False, **engine_options: Any) -> FitReport:
    """Does MODEL fit on `gpu` with this layout? Same inputs as `kvcalc fit` (engine flags as keywords)."""
    from kvcalc.report.fit import fit_deployment

    spec = _model(model, revision, warn)
    return fit_deployment(spec, _gpu(gpu, gpu_file), _parallel(tp, pp, dp, ep, cp), _engine(engine, engine_options),
                          context=_tokens(context), concurrency=_count(concurrency, "concurrency"),
                          weight_format=_format(spec, quant, keep_fp16), advise=bool(advise), explain=bool(explain))


def quant(model: str, *, gpu: str = "h100", tp: int = 1, pp: int = 1, context: int | float | str | None = None,
          engine: str = "vllm", kv_dtype: str | None = None, formats: str | list[str] | None = None,
          keep_fp16: str | None = None, revision: str | None = None,
        warn: Callable[[str], None] | None = None) -> QuantReport:
    """MODEL under each weight format (`formats`: a list or the CLI's comma-separated text)."""
    from kvcalc.calc.quant import parse_keep
    from kvcalc.report.quant import DEFAULT_FORMATS, quant_report

    if isinstance(formats, str):
        names: tuple[str, ...] = tuple(f.strip() for f in formats.split(",") if f.strip())
    elif formats is None:
        names = DEFAULT_FORMATS
    else:
        names = tuple(_text(f, "formats") for f in formats)
    return quant_report(_model(model, revision, warn), _gpu(gpu), _parallel(tp, pp, 1, 1, 1),
                        _engine(engine, {"kv_cache_dtype": kv_dtype}), context=_tokens(context), formats=names,
                        keep_high_precision=parse_keep(None if keep_fp16 is None else _text(keep_fp16, "keep_fp16")))


def local(model: str, *, gpu: str | None = None, apple: str | None = None, cpu: bool = False,
          ram: int | str | None = None, quant: str | None = None, context: int | float | str | None = None,
          users: int = 1, kv_dtype: str | None = None, ram_bandwidth: float | str | None = None,
          revision: str | None = None,
        warn: Callable[[str], None] | None = None) -> LocalReport:
    """MODEL on one consumer GPU (`gpu`), a Mac (`apple`) or CPU only (`cpu=True`, needs `ram`)."""
    from kvcalc.calc.quant import format_from_quantization_config, parse_quant
    from kvcalc.report.local import local_report

    chosen = [name for name, given in (("gpu", gpu), ("apple", apple), ("cpu", cpu)) if given]
    if len(chosen) != 1:
        raise InputError("give exactly one of --gpu NAME, --apple NAME or --cpu"
                         + (f" (got {', '.join(chosen)})" if chosen else ""))
    hw = None
    device = "cpu"
    if gpu is not None or apple is not None:
        hw = _gpu(gpu if gpu is not None else apple)
        device = "apple" if hw.kind == "apple" else "gpu"
        if apple is not None and hw.kind != "apple":
            raise InputError(f"--apple {apple}: {hw.name} is not an Apple Silicon entry; use --gpu {hw.key}")
    spec = _model(model, revision, warn)
    tokens = _tokens(context) or 4096
    if warn is not None and spec.max_position_embeddings and tokens > spec.max_position_embeddings:
        warn(f"context {tokens:,} exceeds the model's max_position_embeddings {spec.max_position_embeddings:,}")
    fmt = parse_quant(_text(quant, "quant"), model=spec) if quant is not None else (
        format_from_quantization_config(spec) or parse_quant("Q4_K_M", model=spec))
    return local_report(spec, fmt, device=device, gpu=hw, ram_bytes=_bytes(ram, "ram", minimum=1),  # type: ignore[arg-type]
                        context=tokens, kv_dtype=None if kv_dtype in (None, "auto") else
                        _text(kv_dtype, "kv_dtype"), users=_count(users, "users"),
                        ram_bandwidth=_bandwidth(ram_bandwidth))


def _bandwidth(value: Any) -> float | None:
    """RAM bandwidth in GB/s (1e9 B/s): a number or text such as '89.6' or '120GB/s'."""
    import re

    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value) * 1e9
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:GB/s|GB|G)?\s*", str(value), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"--ram-bandwidth '{value}' is not a bandwidth in GB/s (e.g. 89.6 or 120GB/s)")
    return float(match.group(1)) * 1e9


def attention_variants(model: str, *, gpu: str = "h100", memory: int | str | None = None,
                       kv_dtype: str | None = None, context: int | float | str | None = None, tp: int | None = None,
                       engine: str = "vllm", revision: str | None = None,
        warn: Callable[[str], None] | None = None) -> VariantsReport:
    """MODEL's KV cache as MHA, GQA, MQA and MLA, in `memory` or the KV pool `fit` plans on `gpu`."""
    from kvcalc.report.variants import variants_plan, variants_report

    spec = _model(model, revision, warn)
    memory_bytes = _bytes(memory, "memory", minimum=1)
    kv = None if kv_dtype in (None, "auto") else _text(kv_dtype, "kv_dtype")
    planned = None
    if memory_bytes is None:
        planned = variants_plan(spec, _gpu(gpu), _engine(engine, {"kv_cache_dtype": kv}),
                                None if tp is None else _count(tp, "tp"))
    return variants_report(spec, kv_dtype=kv, memory_bytes=memory_bytes, context=_tokens(context), plan=planned)


def perf(model: str, *, gpu: str = "h100", tp: int = 1, pp: int = 1, ep: int = 1, cp: int = 1,
         input_tokens: int | str = 2048, output_tokens: int | str = 256, batch: int | None = None,
         concurrency: int | None = None, engine: str = "vllm", quant: str | None = None,
         calibration: str | None = None, revision: str | None = None, **engine_options: Any) -> Any:
    """TTFT, TPOT and tokens/s of MODEL for a static `batch` or `concurrency` closed-loop clients
    (`kvcalc perf`; returns kvcalc.report.perf.PerfReport)."""
    from kvcalc.report.perf import perf_report
    from kvcalc.sources.calibration import load_calibration

    spec = _model(model, revision)
    if _text(engine, "engine").lower() == "vllm":
        engine_options.setdefault("usage", "llm" if batch is not None else "serve")
    return perf_report(
        spec, _gpu(gpu), _parallel(tp, pp, 1, ep, cp), _engine(engine, engine_options),
        input_tokens=_tokens(input_tokens, "input") or 0, output_tokens=_tokens(output_tokens, "output") or 0,
        batch=None if batch is None else _count(batch, "batch"),
        concurrency=None if concurrency is None else _count(concurrency, "concurrency"),
        weight_format=_format(spec, quant, None),
        calibration=load_calibration(_text(calibration, "calibration")) if calibration else None,
    )


def batch(model: str, *, ttft_slo_s: float, tpot_slo_s: float, gpu: str = "h100", tp: int = 1, pp: int = 1,
          ep: int = 1, input_tokens: int | str = 2048, output_tokens: int | str = 256, engine: str = "vllm",
          quant: str | None = None, request_rate: float | None = None, revision: str | None = None,
          **engine_options: Any) -> Any:
    """The largest concurrency meeting both latency targets within the KV budget (`kvcalc batch`; returns
    kvcalc.report.batch.BatchReport)."""
    from kvcalc.report.batch import batch_report

    spec = _model(model, revision)
    return batch_report(
        spec, _gpu(gpu), _parallel(tp, pp, 1, ep, 1), _engine(engine, engine_options),
        input_tokens=_tokens(input_tokens, "input") or 0, output_tokens=_tokens(output_tokens, "output") or 0,
        ttft_slo_s=ttft_slo_s, tpot_slo_s=tpot_slo_s, request_rate=request_rate,
        weight_format=_format(spec, quant, None),
    )


def _plan(model: str, gpu: str, parallel: Parallel, context: int | str | None, engine: str, revision: str | None,
          engine_options: dict[str, Any]) -> Any:
    from kvcalc.calc.deploy import plan_deployment

    return plan_deployment(_model(model, revision), _gpu(gpu), parallel, _engine(engine, engine_options),
                           context=_tokens(context))


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

    plan = _plan(model, gpu, _parallel(tp, pp, 1, 1, 1), context, engine, revision, engine_options)
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
        raise InputError("prefix() needs a model, or usage=PATH")
    plan = _plan(model, gpu, _parallel(tp, 1, 1, 1, 1), context, engine, revision, engine_options)
    return prefix_report(plan, prefix_tokens=prefix_tokens, unique_tokens=unique_tokens, output_tokens=output_tokens,
                         requests_per_s=requests_per_s, tenants=tenants, isolate=isolate, prices=prices,
                         change_points=[], explain=True)
