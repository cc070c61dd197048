"""The public Python API: one function per command, taking the same inputs as the CLI and returning the
records the CLI prints with --json (`kvcalc.spec.base.to_jsonable(report)`), plus `plan`, the engine's
DeploymentPlan every command is built from. The CLI commands call these functions.

>>> import kvcalc
>>> report = kvcalc.fit("llama-70b", gpu="h100", tp=4, context="32K")
>>> report.fits, report.capacity.max_concurrency
>>> plan = kvcalc.plan("gpt-oss-120b", gpu="h100", engine="vllm", version="0.19.0")
>>> plan.binding_device.kv_cache_bytes, plan.kv_pool.num_blocks
>>> kvcalc.perf("llama-3.1-8b", gpu="h100", input_tokens="2k", output_tokens=256, concurrency=8).tpot_s

**Deployment keywords.** Every function that plans a deployment takes the CLI's shared deployment options as
keywords (`**deployment`): gpu, gpu_file, tp, pp, dp, ep, cp, context (max_model_len), engine, quant,
keep_fp16, revision, and the engine options engine_version (or version), gpu_memory_utilization,
max_num_batched_tokens, max_num_seqs, block_size, enforce_eager, kv_dtype (or kv_cache_dtype),
mem_fraction_static, free_gpu_memory_fraction, non_torch_memory, activation_memory, cuda_graph_memory. Those
that predict time also take `calibration` (a calibration file's path; the card's shipped calibration applies
without one).

Inputs are checked here (kvcalc.inputs): a context of 8192, 1e6, "32k" (= 32,000), "32K" (= 32,768) or "1M"
works, a duration "500ms" or 0.5 (seconds); a value of the wrong kind or an unknown keyword raises
kvcalc.errors.InputError naming the argument, never a bare TypeError. `warn` receives warnings (the CLI prints
them on stderr). Heavy modules are imported inside each function (`import kvcalc` stays cheap).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvcalc import inputs
from kvcalc.errors import InputError

if TYPE_CHECKING:
    from kvcalc.calc.paging.economics import Prices
    from kvcalc.calc.plan import DeploymentPlan
    from kvcalc.calc.weights import WeightFormat
    from kvcalc.report.attention import AttentionReport
    from kvcalc.report.batch import BatchReport
    from kvcalc.report.fit import FitReport
    from kvcalc.report.inspect import InspectReport
    from kvcalc.report.local import LocalReport
    from kvcalc.report.paged import PagedReport, TraceEvent, TraceStart, TraceSummary
    from kvcalc.report.perf import PerfReport
    from kvcalc.report.plan import PlanReport
    from kvcalc.report.prefix import PrefixReport, UsageReport
    from kvcalc.report.quant import QuantReport
    from kvcalc.report.serve import ServeReport, Traffic, Workload
    from kvcalc.report.spec import SpecReport
    from kvcalc.report.variants import VariantsReport
    from kvcalc.report.verify import VerifyReport
    from kvcalc.sources.calibration import Calibration
    from kvcalc.spec.deployment import EngineSettings, Parallel
    from kvcalc.spec.gpu import GpuSpec
    from kvcalc.spec.model import ModelSpec

__all__ = ["attention", "attention_variants", "batch", "fit", "inspect", "local", "paged", "paged_trace", "perf",
           "plan", "plan_fleet", "prefix", "quant", "serve", "speculative", "verify"]

Warn = Callable[[str], None] | None

#: Engine options the API takes as keywords (the CLI's --flags), each with its kind.
_ENGINE_OPTIONS: dict[str, str] = {
    "version": "text", "gpu_memory_utilization": "fraction", "max_num_batched_tokens": "count",
    "max_num_seqs": "count", "block_size": "count", "enforce_eager": "flag", "kv_cache_dtype": "text",
    "usage": "text", "mem_fraction_static": "fraction", "free_gpu_memory_fraction": "fraction",
    "non_torch_memory": "bytes", "activation_memory": "bytes", "cuda_graph_memory": "bytes",
    "language_model_only": "flag", "mm_encoder_tp_mode": "text",
}
_ALIASES = {"engine_version": "version", "kv_dtype": "kv_cache_dtype"}
_RENAMED = {"non_torch_memory": "non_torch_bytes", "activation_memory": "activation_bytes",
            "cuda_graph_memory": "cuda_graph_bytes"}
_CHECKS: dict[str, Any] = {"text": inputs.text, "count": inputs.count, "fraction": inputs.fraction,
                           "bytes": inputs.size, "flag": inputs.flag}


# --- the shared deployment (one place for the flags every plan-building command takes) ----------------------


def _engine(engine: Any, options: dict[str, Any]) -> EngineSettings:
    """EngineSettings from the engine name and the CLI's engine options (unknown ones raise InputError)."""
    from kvcalc.cli.options import version_arg
    from kvcalc.spec.deployment import ENGINES, EngineSettings

    name = inputs.text(engine, "engine").lower()
    if name not in ENGINES:
        raise InputError(f"unknown engine '{engine}'; use {', '.join(ENGINES)}")
    values: dict[str, Any] = {}
    for key, value in options.items():
        key = _ALIASES.get(key, key)
        kind = _ENGINE_OPTIONS.get(key)
        if kind is None:
            known = ", ".join(sorted(set(_ENGINE_OPTIONS) | set(_ALIASES)))
            raise InputError(f"unknown engine option '{key}'; use {known}")
        if value is None or (key == "kv_cache_dtype" and value == "auto"):
            continue
        values[_RENAMED.get(key, key)] = _CHECKS[kind](value, key)
    if "version" in values:
        values["version"] = version_arg(values["version"])
    if "kv_cache_dtype" in values:
        from kvcalc.cli.options import kv_dtype_arg

        values["kv_cache_dtype"] = kv_dtype_arg(values["kv_cache_dtype"])
    return EngineSettings(name=name, **values)  # type: ignore[arg-type]


def _gpu(gpu: Any, gpu_file: Any = None) -> GpuSpec:
    from kvcalc.sources.hardware import find_gpu, load_gpu_file

    if gpu_file is not None:
        return load_gpu_file(inputs.text(gpu_file, "gpu_file"))
    return find_gpu(inputs.text(gpu, "gpu"))


def _model(model: Any, revision: Any, warn: Warn = None) -> ModelSpec:
    from kvcalc.sources.resolve import load_model

    return load_model(inputs.text(model, "model"), revision=inputs.revision(revision), warn=warn)


def _parallel(tp: Any = 1, pp: Any = 1, dp: Any = 1, ep: Any = 1, cp: Any = 1) -> Parallel:
    from kvcalc.spec.deployment import Parallel

    return Parallel(tp=inputs.count(tp, "tp"), pp=inputs.count(pp, "pp"), dp=inputs.count(dp, "dp"),
                    ep=inputs.count(ep, "ep"), cp=inputs.count(cp, "cp"))


def _format(model: ModelSpec, quant: Any, keep_fp16: Any) -> WeightFormat | None:
    if quant is None:
        if keep_fp16 is not None:
            raise InputError("--keep-fp16 needs --quant FORMAT (it changes which tensors that format quantizes)")
        return None
    from kvcalc.calc.quant import parse_quant

    return parse_quant(inputs.text(quant, "quant"), inputs.optional_text(keep_fp16, "keep_fp16"), model=model)


@dataclass(frozen=True)
class Deployment:
    """What the deployment keywords describe: the model, card, layout, engine settings, weight format and
    max_model_len (None: the engine's default), each checked."""

    model: ModelSpec
    gpu: GpuSpec
    parallel: Parallel
    settings: EngineSettings
    weight_format: WeightFormat | None
    context: int | None

    def plan(self) -> DeploymentPlan:
        from kvcalc.calc.deploy import plan_deployment

        return plan_deployment(self.model, self.gpu, self.parallel, self.settings, weight_format=self.weight_format,
                               context=self.context)


def deployment(model: Any, warn: Warn = None, **options: Any) -> Deployment:
    """The Deployment the deployment keywords (module docstring) describe; unknown keywords raise InputError."""
    opts = dict(options)
    parallel = _parallel(*(opts.pop(name, 1) for name in ("tp", "pp", "dp", "ep", "cp")))
    context = inputs.tokens(opts.pop("context", None))
    quant, keep_fp16 = opts.pop("quant", None), opts.pop("keep_fp16", None)
    gpu, gpu_file, revision = opts.pop("gpu", "h100"), opts.pop("gpu_file", None), opts.pop("revision", None)
    settings = _engine(opts.pop("engine", "vllm"), opts)
    spec = _model(model, revision, warn)
    return Deployment(spec, _gpu(gpu, gpu_file), parallel, settings, _format(spec, quant, keep_fp16), context)


def _calibration(path: Any, gpus: list[GpuSpec], warn: Warn) -> Calibration | None:
    """A --calibration file (None: the cards' defaults, with their shipped calibration), and a warning when it
    was measured on another card than the one(s) it is applied to."""
    if path is None:
        return None
    from kvcalc.sources.calibration import load_calibration

    calibration = load_calibration(inputs.text(path, "calibration"))
    keys = {g.key for g in gpus}
    if warn is not None and calibration.gpu is not None and keys and calibration.gpu not in keys:
        warn(f"calibration {calibration.path} was measured on {calibration.gpu}, applied to "
             f"{', '.join(sorted(keys))}")
    return calibration


def _no_extra(options: dict[str, Any], allowed: tuple[str, ...], command: str) -> None:
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise InputError(f"{command} takes no option '{extra[0]}'")


# --- memory: fit, plan, inspect, quant, local, attention_variants -----------------------------------------------


def plan(model: str, *, concurrency: int | None = None, warn: Warn = None, **deployment_options: Any
         ) -> DeploymentPlan:
    """The engine's DeploymentPlan for MODEL (ledger per GPU, KV pool, limits, assumptions). `concurrency`:
    requests that must run at once (sets llama.cpp's slots)."""
    from kvcalc.calc.deploy import engine_settings, plan_deployment
    from kvcalc.spec.base import replace

    d = deployment(model, warn, **deployment_options)
    requests = inputs.optional_count(concurrency, "concurrency")
    settings, warnings = engine_settings(d.settings, concurrency=requests)
    result = plan_deployment(d.model, d.gpu, d.parallel, settings, weight_format=d.weight_format, context=d.context)
    return replace(result, warnings=tuple(warnings) + result.warnings) if warnings else result


def fit(model: str, *, concurrency: int = 1, gpus: int | None = None, advise: bool = True, explain: bool = False,
        warn: Warn = None, **deployment_options: Any) -> FitReport:
    """Does MODEL fit with this layout (`kvcalc fit`)? `gpus`: the total, which sets tp when tp, pp and dp are
    not given, else must equal tp x pp x dp."""
    from kvcalc.report.fit import fit_deployment

    if gpus is not None:
        total = inputs.count(gpus, "gpus")
        layout = [inputs.count(deployment_options.get(k, 1), k) for k in ("tp", "pp", "dp")]
        if layout == [1, 1, 1]:
            deployment_options["tp"] = total
        elif layout[0] * layout[1] * layout[2] != total:
            raise InputError(f"--gpus {total} does not equal tp x pp x dp = {layout[0] * layout[1] * layout[2]}")
    d = deployment(model, warn, **deployment_options)
    return fit_deployment(d.model, d.gpu, d.parallel, d.settings, context=d.context,
                          concurrency=inputs.count(concurrency, "concurrency"), weight_format=d.weight_format,
                          advise=bool(advise), explain=bool(explain))


def inspect(model: str, *, kv_dtype: str | None = None, revision: str | None = None, naive_mla: bool = False,
            warn: Warn = None) -> InspectReport:
    """Architecture, parameters and KV cache of MODEL (a profile alias, config path or Hub id)."""
    from kvcalc.cli.options import kv_dtype_arg
    from kvcalc.report.inspect import inspect_model

    kv = kv_dtype_arg(inputs.optional_text(kv_dtype, "kv_dtype"))
    return inspect_model(_model(model, revision, warn), kv, mla_naive=bool(naive_mla))


def quant(model: str, *, formats: str | list[str] | None = None, warn: Warn = None,
          **deployment_options: Any) -> QuantReport:
    """MODEL under each weight format (`formats`: a list or the CLI's comma-separated text; `keep_fp16` applies
    to every format)."""
    from kvcalc.calc.quant import parse_keep
    from kvcalc.report.quant import DEFAULT_FORMATS, quant_report

    if deployment_options.get("quant") is not None:
        raise InputError("quant compares the formats given as formats=...; it takes no quant=")
    keep = inputs.optional_text(deployment_options.pop("keep_fp16", None), "keep_fp16")
    d = deployment(model, warn, **deployment_options)
    names = tuple(inputs.names(formats, "formats") or ()) or DEFAULT_FORMATS
    return quant_report(d.model, d.gpu, d.parallel, d.settings, context=d.context, formats=names,
                        keep_high_precision=parse_keep(keep))


def local(model: str, *, gpu: str | None = None, apple: str | None = None, cpu: bool = False,
          ram: int | str | None = None, quant: str | None = None, context: int | float | str | None = None,
          users: int = 1, kv_dtype: str | None = None, ram_bandwidth: float | str | None = None,
          revision: str | None = None, warn: Warn = None) -> LocalReport:
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
    tokens = inputs.tokens(context) or 4096
    if warn is not None and spec.max_position_embeddings and tokens > spec.max_position_embeddings:
        warn(f"context {tokens:,} exceeds the model's max_position_embeddings {spec.max_position_embeddings:,}")
    fmt = parse_quant(inputs.text(quant, "quant"), model=spec) if quant is not None else (
        format_from_quantization_config(spec) or parse_quant("Q4_K_M", model=spec))
    from kvcalc.cli.options import kv_dtype_arg

    kv = kv_dtype_arg(inputs.optional_text(kv_dtype, "kv_dtype"))
    return local_report(spec, fmt, device=device, gpu=hw, ram_bytes=inputs.size(ram, "ram", minimum=1),  # type: ignore[arg-type]
                        context=tokens, kv_dtype=kv, users=inputs.count(users, "users"),
                        ram_bandwidth=inputs.bandwidth(ram_bandwidth))


def attention_variants(model: str, *, memory: int | str | None = None, tp: int | None = None,
                       context: int | float | str | None = None, warn: Warn = None,
                       **deployment_options: Any) -> VariantsReport:
    """MODEL's KV cache as MHA, GQA, MQA and MLA, in `memory` or the KV pool `fit` plans on `gpu` (at `tp`, else
    the least TP that fits). `context`: also count sequences of this many tokens."""
    from kvcalc.report.variants import variants_plan, variants_report

    d = deployment(model, warn, **deployment_options)
    memory_bytes = inputs.size(memory, "memory", minimum=1)
    planned = None
    if memory_bytes is None:
        planned = variants_plan(d.model, d.gpu, d.settings, inputs.optional_count(tp, "tp"))
    return variants_report(d.model, kv_dtype=d.settings.kv_cache_dtype, memory_bytes=memory_bytes,
                           context=inputs.tokens(context), plan=planned)


# --- time: perf, batch, attention, spec ---------------------------------------------------------------------


def _lengths(dist: Any, path: Any) -> Any:
    """The request-length distribution `input_dist` / `lengths_file` name (None: fixed input/output)."""
    if path is not None:
        from kvcalc.sources.lengths import load_lengths

        return load_lengths(inputs.text(path, "lengths_file"))
    name = inputs.text(dist, "input_dist").lower()
    if name == "fixed":
        return None
    if name == "sharegpt":
        from kvcalc.calc.perf.workload import sharegpt_lengths

        return sharegpt_lengths()
    raise InputError(f"--input-dist '{dist}': use fixed or sharegpt (or --lengths-file FILE)")


def perf(model: str, *, input_tokens: int | str = 2048, output_tokens: int | str = 256, batch: int | None = None,
         concurrency: int | None = None, request_rate: float | str | None = None, num_prompts: int | None = None,
         input_dist: str = "fixed", lengths_file: str | None = None, seed: int = 0, burstiness: float = 1.0,
         calibration: str | None = None, explain: bool = False, warn: Warn = None,
         **deployment_options: Any) -> PerfReport:
    """TTFT, TPOT and tokens/s (`kvcalc perf`) for a static `batch`, `concurrency` closed-loop clients, or
    `num_prompts` requests at `request_rate` per second ('inf': all at once), lengths fixed or drawn
    (`input_dist='sharegpt'`, `lengths_file`). On vLLM a static batch runs its offline LLM class."""
    from kvcalc.report.perf import perf_report

    if batch is not None and inputs.text(deployment_options.get("engine", "vllm"), "engine").lower() == "vllm":
        deployment_options.setdefault("usage", "llm")
    d = deployment(model, warn, **deployment_options)
    return perf_report(
        d.model, d.gpu, d.parallel, d.settings, weight_format=d.weight_format, context=d.context,
        input_tokens=inputs.tokens(input_tokens, "--input") or 0,
        output_tokens=inputs.tokens(output_tokens, "--output") or 0,
        batch=inputs.optional_count(batch, "batch"), concurrency=inputs.optional_count(concurrency, "concurrency"),
        request_rate=inputs.rate(request_rate), num_prompts=inputs.optional_count(num_prompts, "num_prompts"),
        lengths=_lengths(input_dist, lengths_file), seed=inputs.count(seed, "seed"),
        burstiness=inputs.number(burstiness, "burstiness", low=0.001, low_open=False),
        calibration=_calibration(calibration, [d.gpu], warn), explain=bool(explain),
    )


def batch(model: str, *, ttft_slo: float | str = "500ms", tpot_slo: float | str = "50ms",
          input_tokens: int | str = 2048, output_tokens: int | str = 256, rate: float | None = None,
          calibration: str | None = None, explain: bool = False, warn: Warn = None,
          **deployment_options: Any) -> BatchReport:
    """The largest concurrency meeting both latency targets within the KV budget (`kvcalc batch`); `rate`
    (requests/s) sizes the prefill/decode split (default: the throughput at that concurrency)."""
    from kvcalc.report.batch import batch_report

    d = deployment(model, warn, **deployment_options)
    return batch_report(
        d.model, d.gpu, d.parallel, d.settings, weight_format=d.weight_format, context=d.context,
        input_tokens=inputs.tokens(input_tokens, "--input") or 0,
        output_tokens=inputs.tokens(output_tokens, "--output") or 0,
        ttft_slo_s=inputs.seconds(ttft_slo, "--ttft-slo"), tpot_slo_s=inputs.seconds(tpot_slo, "--tpot-slo"),
        request_rate=None if rate is None else inputs.number(rate, "rate", low_open=False),
        calibration=_calibration(calibration, [d.gpu], warn), explain=bool(explain),
    )


def attention(model: str | None = None, *, seq: int | str, heads: int | None = None, head_dim: int | None = None,
              kv_heads: int | None = None, batch: int = 1, gpu: str = "h100", gpu_file: str | None = None,
              dtype: str | None = None, causal: bool = True, naive: str = "textbook", tp: int = 1,
              revision: str | None = None, explain: bool = False, warn: Warn = None) -> AttentionReport:
    """Naive attention's N x N scores vs FlashAttention's O(N) memory for MODEL or the given head shape."""
    from kvcalc.report.attention import attention_report

    n = inputs.tokens(seq, "--seq")
    if n is None:
        raise InputError("attention needs seq, the sequence length N (8192, '32K')")
    spec = None
    if model is not None:
        if heads is not None or head_dim is not None or kv_heads is not None:
            raise InputError("give MODEL or --heads/--head-dim/--kv-heads, not both")
        spec = _model(model, revision, warn)
    return attention_report(
        _gpu(gpu, gpu_file), n, model=spec, heads=inputs.optional_count(heads, "heads"),
        head_dim=inputs.optional_count(head_dim, "head_dim"), kv_heads=inputs.optional_count(kv_heads, "kv_heads"),
        batch=inputs.count(batch, "batch"), dtype=inputs.optional_text(dtype, "dtype"),
        causal=inputs.flag(causal, "causal"), naive=inputs.text(naive, "naive"), tp=inputs.count(tp, "tp"),
        explain=bool(explain),
    )


def speculative(model: str, *, draft: str | None = None, method: str | None = None, cost_ratio: float | None = None,
         alpha: float | None = None, acceptance: str | list[float] | None = None,
         acceptance_length: float | None = None, gamma: int = 4, topk: int = 1, verify_tokens: int | None = None,
         proposal_rate: float | None = None, batch: int = 1, context: int | str = 4096,
         input_tokens: int | str | None = None, output_tokens: int | str | None = None,
         calibration: str | None = None, explain: bool = False, warn: Warn = None,
         **deployment_options: Any) -> SpecReport:
    """Speculative decoding (`kvcalc spec`; named so because `kvcalc.spec` is the records package) with
    exactly one of `draft` (a model), `method` (eagle, eagle3, mtp,
    ngram) or `cost_ratio`. `context` here is the tokens already in each sequence while decoding (the plan's
    max_model_len is the engine's default)."""
    from kvcalc.report.spec import spec_report

    given = [name for name, value in (("--draft", draft), ("--method", method), ("--cost-ratio", cost_ratio))
             if value is not None]
    if len(given) != 1:
        raise InputError("give exactly one of --draft MODEL, --method eagle|eagle3|mtp|ngram, --cost-ratio C"
                         + (f" (got {', '.join(given)})" if given else ""))
    if method == "draft":
        raise InputError("use --draft MODEL for a separate draft model")
    d = deployment(model, warn, **deployment_options)
    draft_spec = _model(draft, None, warn) if draft is not None else None
    chosen = "draft" if draft is not None else "cost-ratio" if cost_ratio is not None else str(method)
    return spec_report(
        d.model, d.gpu, method=chosen, draft_model=draft_spec,
        cost_ratio=None if cost_ratio is None else inputs.number(cost_ratio, "cost_ratio", low_open=False),
        alpha=alpha, rates=inputs.rates_list(acceptance), acceptance_length=acceptance_length,
        gamma=inputs.count(gamma, "gamma"), topk=inputs.count(topk, "topk"),
        verify_tokens=inputs.optional_count(verify_tokens, "verify_tokens"), proposal_rate=proposal_rate,
        batch=inputs.count(batch, "batch"), context=inputs.tokens(context, "--context") or 0,
        input_tokens=inputs.tokens(input_tokens, "--input"), output_tokens=inputs.tokens(output_tokens, "--output"),
        parallel=d.parallel, weight_format=d.weight_format, engine=d.settings,
        calibration=_calibration(calibration, [d.gpu], warn), explain=bool(explain),
    )


# --- paged blocks and prefix caching --------------------------------------------------------------------------


def paged(model: str, *, requests: str | list[Any] | None = None, trace: str | list[Any] | None = None,
          step_ms: float | None = None, prefix_caching: bool = True, calibration: str | None = None,
          explain: bool = False, warn: Warn = None, **deployment_options: Any) -> PagedReport | list[Any]:
    """`kvcalc paged`: with `requests` (the CLI's text, or totals / (prompt, output) pairs) a PagedReport; with
    `trace` (a JSON-lines path or TraceRequest list) the events, start first and summary last."""
    if (requests is None) == (trace is None):
        raise InputError("give one of --requests 1200,350,8000 or --trace FILE")
    if trace is not None:
        start, events, notes = paged_trace(model, trace=trace, step_ms=step_ms, prefix_caching=prefix_caching,
                                           calibration=calibration, explain=explain, warn=warn, **deployment_options)
        for note in notes:
            if warn is not None:
                warn(note)
        return [start, *events]
    from kvcalc.report.paged import paged_report

    d = deployment(model, warn, **deployment_options)
    return paged_report(d.plan(), inputs.requests(requests), explain=bool(explain))


def paged_trace(model: str, *, trace: str | list[Any], step_ms: float | None = None, prefix_caching: bool = True,
                calibration: str | None = None, explain: bool = False, warn: Warn = None,
                **deployment_options: Any) -> tuple[TraceStart, Iterator[TraceEvent | TraceSummary], list[str]]:
    """The allocation trace of `kvcalc paged --trace` as a stream: (start, events with the summary last,
    warnings). Step times come from the perf model (its defaults or `calibration`) unless `step_ms`."""
    from kvcalc.report.paged import trace_simulation
    from kvcalc.report.perf import coefficients_for

    d = deployment(model, warn, **deployment_options)
    plan = d.plan()
    if isinstance(trace, str):
        from kvcalc.sources.trace import read_trace

        trace, skipped = read_trace(inputs.text(trace, "trace"))
        message = skipped.message("trace")
        if message and warn is not None:
            warn(message)
    step = None if step_ms is None else inputs.number(step_ms, "step_ms", low=0.0) / 1000
    coeffs = coefficients_for(plan, _calibration(calibration, [d.gpu], warn), online=True,
                              enforce_eager=d.settings.enforce_eager)
    return trace_simulation(plan, trace, step_s=step, caching=inputs.flag(prefix_caching, "prefix_caching"),
                            explain=bool(explain), coeffs=coeffs)


def prefix(model: str | None = None, *, prefix_tokens: int | None = None, requests_per_s: float | None = None,
           unique_tokens: int = 400, output_tokens: int = 256, tenants: int = 1, isolate: bool = False,
           price: str | Prices | None = None, change_at: list[int] | None = None, usage: str | None = None,
           min_cacheable: int = 1024, calibration: str | None = None, explain: bool = False, warn: Warn = None,
           **deployment_options: Any) -> PrefixReport | UsageReport:
    """`kvcalc prefix`: what a shared prefix saves for MODEL (a PrefixReport), or with `usage` (a JSON-lines
    path, - for stdin) real hit rates (a UsageReport). `price`: 'input=3,cached=0.3[,write=..][,output=..]'
    (USD per million tokens) or a Prices record."""
    prices = _token_prices(price)
    if usage is not None:
        if model is not None:
            raise InputError("--usage reads API responses; give no MODEL with it")
        return _usage(inputs.text(usage, "usage"), prices, inputs.count(min_cacheable, "min_cacheable"),
                      bool(explain), warn)
    if model is None or prefix_tokens is None or requests_per_s is None:
        raise InputError("give MODEL --prefix-tokens N --requests-per-s R (or --usage FILE)")
    from kvcalc.report.prefix import prefix_report

    groups = inputs.count(tenants, "tenants")
    if isolate and groups == 1 and warn is not None:
        warn("--isolate with one tenant changes nothing; add --tenants N")
    d = deployment(model, warn, **deployment_options)
    plan = d.plan()
    prefix_n, unique_n = inputs.count(prefix_tokens, "prefix_tokens"), inputs.count(unique_tokens, "unique_tokens")
    output_n = inputs.count(output_tokens, "output_tokens")
    if prefix_n + unique_n + output_n > plan.max_model_len:
        raise InputError(f"a request of {prefix_n:,} prefix + {unique_n:,} unique + {output_n:,} output tokens is "
                         f"longer than max_model_len ({plan.max_model_len:,}); shorten it or raise --context")
    return prefix_report(
        plan, prefix_tokens=prefix_n, unique_tokens=unique_n, output_tokens=output_n,
        requests_per_s=inputs.number(requests_per_s, "requests_per_s", low_open=False), tenants=groups,
        isolate=inputs.flag(isolate, "isolate"), prices=prices,
        change_points=[inputs.count(c, "change_at") for c in change_at or []], explain=bool(explain),
        calibration=_calibration(calibration, [d.gpu], warn),
    )


_PRICE_KEYS = {"input": "input_per_mtok", "cached": "cached_per_mtok", "write": "write_per_mtok",
               "output": "output_per_mtok"}


def _token_prices(value: Any) -> Prices | None:
    """'input=3,cached=0.3[,write=3.75][,output=15]' (USD per million tokens) -> Prices; a Prices passes."""
    from kvcalc.calc.paging.economics import Prices

    if value is None or isinstance(value, Prices):
        return value
    values: dict[str, float] = {}
    for item in inputs.text(value, "price").split(","):
        key, sep, number = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in _PRICE_KEYS:
            raise InputError(f"--price '{value}': use input=3.0,cached=0.3 (USD per million tokens; also write=, "
                             "output=)")
        values[_PRICE_KEYS[key]] = inputs.number(number, f"--price {key}", low_open=False)
    if "input_per_mtok" not in values or "cached_per_mtok" not in values:
        raise InputError("--price needs both input= and cached= (USD per million tokens)")
    return Prices(**values)


def _usage(source: str, prices: Prices | None, min_cacheable: int, explain: bool, warn: Warn) -> UsageReport:
    from kvcalc.report.prefix import usage_report
    from kvcalc.sources.usage import read_usage

    records, skipped = read_usage(source)
    message = skipped.message("usage")
    if message and warn is not None:
        warn(message)
    if not records:
        raise InputError(f"{source}: no usage objects found" + (f" ({skipped.first})" if skipped.first else ""))
    return usage_report(records, skipped, prices=prices, min_cacheable=min_cacheable, explain=explain)


# --- serving fleets: serve, plan_fleet ------------------------------------------------------------------------


def _gpu_prices(value: Any) -> dict[str, float]:
    """`h100=2.49` items (a list, comma-separated text, or a {gpu: usd} mapping) -> {gpu key: USD per GPU-hour};
    GPU names resolve like --gpu."""
    from kvcalc.sources.hardware import find_gpu

    if value is None:
        return {}
    pairs = list(value.items()) if isinstance(value, dict) else [
        item.partition("=")[::2] for entry in ([value] if isinstance(value, str) else value)
        for item in inputs.text(entry, "price").split(",") if item.strip()]
    out: dict[str, float] = {}
    for name, usd in pairs:
        try:
            price = float(usd)
        except (TypeError, ValueError):
            price = float("nan")
        if not str(name).strip() or not 0 < price <= 1000:
            raise InputError(f"--price '{name}={usd}' must be GPU=USD_PER_GPU_HOUR with 0 < USD <= 1000, e.g. "
                             "h100=2.49")
        out[find_gpu(str(name).strip()).key] = price
    return out


def _workload(rps: Any, input_tokens: Any, output_tokens: Any, mix: Any, ttft_slo: Any, tpot_slo: Any,
              headroom: Any, price: Any, load_bandwidth: Any = None, engine_startup: Any = None) -> Workload:
    """The Workload the serving options describe (`serve` and `plan_fleet`)."""
    from kvcalc.calc.serving.coldstart import DEFAULT_ENGINE_STARTUP_S, DEFAULT_LOAD_BYTES_PER_S
    from kvcalc.calc.serving.mix import fixed_mix
    from kvcalc.report.serve import Workload

    if mix is not None:
        if input_tokens or output_tokens:
            raise InputError("give either --mix FILE or --input/--output, not both")
        from kvcalc.sources.mix import load_mix

        summary = load_mix(inputs.text(mix, "mix"))
    else:
        if input_tokens is None or output_tokens is None:
            raise InputError("give --input and --output token counts per request (e.g. --input 2k --output 300), "
                             "or --mix FILE")
        summary = fixed_mix(inputs.tokens(input_tokens, "--input") or 0, inputs.tokens(output_tokens, "--output") or 0)
    spare = inputs.number(headroom, "--headroom", low_open=False, high=10)
    return Workload(
        requests_per_s=inputs.number(rps, "--rps", high=1e7), mix=summary,
        ttft_slo_s=inputs.seconds(ttft_slo, "--ttft-slo"), tpot_slo_s=inputs.seconds(tpot_slo, "--tpot-slo"),
        headroom=spare, prices=_gpu_prices(price),
        load_bytes_per_s=float(inputs.size(load_bandwidth, "--load-bandwidth", minimum=1) or DEFAULT_LOAD_BYTES_PER_S),
        engine_startup_s=DEFAULT_ENGINE_STARTUP_S if engine_startup is None
        else inputs.seconds(engine_startup, "--engine-startup", allow_zero=True),
    )


def _traffic(path: Any, interval: Any, policy: Any, min_replicas: Any, max_replicas: Any, delay: Any,
             target_utilization: Any, target_queue: Any) -> Traffic | None:
    """The autoscaling day `--traffic` names, with its policy (None without a file)."""
    if path is None:
        return None
    from kvcalc.report.serve import Traffic
    from kvcalc.sources.traffic import load_traffic

    rule = inputs.text(policy, "policy")
    if rule not in ("utilization", "queue"):
        raise InputError(f"--policy must be utilization or queue, got '{policy}'")
    low, high = inputs.count(min_replicas, "min_replicas"), inputs.optional_count(max_replicas, "max_replicas")
    if high is not None and high < low:
        raise InputError(f"--max-replicas {high} is below --min-replicas {low}")
    utilization = None if target_utilization is None else inputs.fraction(target_utilization, "--target-utilization")
    queue = None if target_queue is None else inputs.number(target_queue, "--target-queue", high=1e6)
    profile = load_traffic(inputs.text(path, "traffic"), inputs.seconds(interval, "--traffic-interval"))
    return Traffic(source=profile.source, interval_s=profile.interval_s, requests_per_s=profile.rps, policy=rule,
                   min_replicas=low, max_replicas=high,
                   scale_up_delay_s=inputs.optional_seconds(delay, "--scale-up-delay", allow_zero=True),
                   target_utilization=utilization, target_queue_per_replica=queue)


def serve(model: str, *, rps: float, input_tokens: int | str | None = None, output_tokens: int | str | None = None,
          mix: str | None = None, ttft_slo: float | str = "2s", tpot_slo: float | str = "200ms",
          headroom: float = 0.2, price: Any = None, load_bandwidth: str | None = None,
          engine_startup: str | None = None, traffic: str | None = None, traffic_interval: str = "1h",
          policy: str = "utilization", min_replicas: int = 1, max_replicas: int | None = None,
          scale_up_delay: str | None = None, target_utilization: float | None = None,
          target_queue: float | None = None, plot: str | None = None, calibration: str | None = None,
          explain: bool = False, warn: Warn = None, **deployment_options: Any) -> ServeReport:
    """Replicas, utilization and $ per million tokens for `rps` requests/s within the targets (`kvcalc
    serve`); `traffic` (a day of rates) adds autoscaling, `plot` writes its SVG. `context` defaults to the
    longest request. `price`: GPU=USD items or a {gpu: usd} mapping."""
    from kvcalc.report.serve import serve_deployment

    work = _workload(rps, input_tokens, output_tokens, mix, ttft_slo, tpot_slo, headroom, price, load_bandwidth,
                     engine_startup)
    day = _traffic(traffic, traffic_interval, policy, min_replicas, max_replicas, scale_up_delay,
                   target_utilization, target_queue)
    d = deployment(model, warn, **deployment_options)
    report = serve_deployment(d.model, d.gpu, d.parallel, d.settings, work, weight_format=d.weight_format,
                              context=d.context, traffic=day, calibration=_calibration(calibration, [d.gpu], warn),
                              explain=bool(explain))
    return report if plot is None else _write_plot(report, inputs.text(plot, "plot"))


def _write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    import os
    import tempfile
    from pathlib import Path

    target = inputs.user_path(path, "output file")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {target}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None


def _write_plot(report: ServeReport, path: str) -> ServeReport:
    from kvcalc.report.serve_plot import autoscale_svg
    from kvcalc.spec.base import replace

    r = report
    if r.autoscale is None or r.per_replica is None:
        raise InputError("--plot draws the autoscaling day: give --traffic FILE (and a replica that meets the SLOs)")
    title = f"{r.model} on {r.replicas} x {r.per_replica.gpus} {r.gpu}: load vs replicas ({r.autoscale.source})"
    _write_atomically(path, autoscale_svg(r.autoscale, r.per_replica.requests_per_s, title))
    return replace(r, autoscale=replace(r.autoscale, plot=path))


#: Engines `plan_fleet` can search (those with a launch line).
FLEET_ENGINES = ("vllm", "sglang")


def plan_fleet(model: str, *, rps: float, input_tokens: int | str | None = None,
               output_tokens: int | str | None = None, mix: str | None = None, ttft_slo: float | str = "2s",
               tpot_slo: float | str = "200ms", headroom: float = 0.2, price: Any = None,
               gpus: str | list[str] | None = None, quant: str | list[str] | None = None,
               engines: str | list[str] = "vllm,sglang", max_gpus: int = 16, calibration: str | None = None,
               explain: bool = False, warn: Warn = None, **engine_options: Any) -> PlanReport:
    """The cheapest way to serve a load within the targets (`kvcalc plan`): searches GPU x GPUs per replica x
    TP/PP/EP x weight format x engine. `engine_options` are the engine keywords (module docstring) plus
    `context` and `revision`; a `calibration` applies to the card it was measured on."""
    from kvcalc.report.plan import DEFAULT_GPUS, plan_search
    from kvcalc.sources.hardware import find_gpu

    for name in ("gpu", "gpu_file", "tp", "pp", "dp", "ep", "cp", "engine"):
        if name in engine_options:
            raise InputError(f"plan searches layouts, cards and engines: use gpus=, quant=, engines=, not {name}=")
    work = _workload(rps, input_tokens, output_tokens, mix, ttft_slo, tpot_slo, headroom, price)
    engine_names = inputs.names(engines, "--engines") or []
    bad = [e for e in engine_names if e not in FLEET_ENGINES]
    if bad:
        raise InputError(f"--engines: {', '.join(bad)} not searchable; use vllm and/or sglang")
    cards = list({g.key: g for g in map(find_gpu, inputs.names(gpus, "--gpus") or DEFAULT_GPUS)}.values())
    context = inputs.tokens(engine_options.pop("context", None))
    spec = _model(model, engine_options.pop("revision", None), warn)
    _engine("vllm", engine_options)  # every option checked once, up front

    def settings_for(engine: str) -> EngineSettings:
        return _engine(engine, engine_options)

    formats = [(q, None if q == "auto" else _format(spec, q, None)) for q in inputs.names(quant, "--quant") or ["auto"]]
    return plan_search(spec, cards, formats, engine_names, settings_for, work,
                       max_gpus=inputs.count(max_gpus, "max_gpus"), context=context,
                       calibration=_calibration(calibration, cards, warn), explain=bool(explain))


# --- verify -----------------------------------------------------------------------------------------------------


def verify(model: str, *, gpu: str = "auto", gpu_file: str | None = None, engine: str = "vllm",
           engine_version: str | None = None, context: int | str | None = None, dtype: str = "bf16",
           kv_dtype: str | None = None, block_size: int | None = None, gpu_memory_utilization: float | None = None,
           layers: int | None = None, batches: str | list[int] | None = None, contexts: str | list[int] | None = None,
           prompts: str | list[int] | None = None, quick: bool = False, calibration_out: str | None = None,
           raw_out: str | None = None, from_raw: str | None = None, gpus: int | None = None,
           revision: str | None = None, explain: bool = False, warn: Warn = None) -> VerifyReport:
    """Measure on this machine's GPU what kvcalc predicts for MODEL and fit the perf coefficients (`kvcalc
    verify`; torch and a CUDA GPU, else EnvironmentProblem), or re-read saved measurements (`from_raw`)."""
    from kvcalc.bench.run import VerifyRun, run_verify

    if dtype not in ("bf16", "fp16"):
        raise InputError(f"--dtype {dtype}: verify builds random weights in bf16 or fp16")
    spec_ = _model(model, revision, warn)
    settings = _engine(engine, {"version": engine_version, "block_size": block_size, "kv_dtype": kv_dtype,
                                "gpu_memory_utilization": gpu_memory_utilization})
    run = VerifyRun(
        model=inputs.text(model, "model"), spec=spec_, gpu=inputs.text(gpu, "gpu"),
        gpu_file=inputs.optional_text(gpu_file, "gpu_file"), settings=settings, dtype=dtype,
        context=inputs.tokens(context), layers=inputs.optional_count(layers, "layers"),
        sizes={"batches": inputs.positive_ints(batches, "--batches"),
               "contexts": inputs.positive_ints(contexts, "--contexts"),
               "prompts": inputs.positive_ints(prompts, "--prompts")},
        quick=inputs.flag(quick, "quick"), gpus=inputs.optional_count(gpus, "gpus"),
        from_raw=inputs.optional_text(from_raw, "from_raw"), raw_out=inputs.optional_text(raw_out, "raw_out"),
        calibration_out=inputs.optional_text(calibration_out, "calibration_out"),
    )
    return run_verify(run, explain=bool(explain))
