"""The plan search: GPU type x GPUs per replica x TP/PP/EP x weight format x engine, keeping the deployments
that fit and meet the SLOs, each sized and priced for the load (the same code path as `kvcalc serve`).

Layouts per GPU count n (powers of two up to `max_gpus`): within a node (n <= 8) tensor parallelism only, the
largest TP the model allows that divides n (TP beats PP on latency when links are NVLink-class); beyond a node,
TP 8 x PP n/8. Mixture-of-experts models also try expert parallelism (ep = tp). Pruning, before any latency
work: a format whose whole weights exceed n GPUs' usable memory skips that n (a lower bound: sharding only
adds replicated tensors); layouts the engine refuses (startup_error) or whose KV cache holds no request are
dropped after planning (0.3-1 ms a plan). Coefficients are built once per (GPU, engine), each format's
per-tensor bytes once (MemoFormat), each perf model once per deployment (shared by the engines' plans).

Candidates are screened with the closed-form steady state (replica.screen_capacity, 1-3 ms); the cheapest are
then confirmed with the perf model's own SLO search (replica.perf_capacity, what `kvcalc serve` prints), in
order of screened cost, until the cheapest confirmed plan costs no more than the next unconfirmed one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.parallel import valid_tp, weights_per_stage
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.defaults import default_coefficients
from kvcalc.calc.perf.model import PerfModel, perf_model
from kvcalc.calc.perf.runs import running_cap
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.serving.capacity import ReplicaCapacity
from kvcalc.calc.serving.cost import input_share, token_cost
from kvcalc.calc.serving.fleet import size_fleet
from kvcalc.calc.serving.launch import launch_command
from kvcalc.calc.serving.pricing import PriceUsed
from kvcalc.calc.serving.replica import confirmed_capacity, screen_capacity
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import InputError
from kvcalc.spec.base import record, replace
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.layers import MoEMLP
from kvcalc.spec.model import ModelSpec

GPUS_PER_NODE = 8


@record
class SearchTarget:
    """The load and targets every candidate is judged against."""

    requests_per_s: float
    input_tokens: int
    output_tokens: int
    mean_input_tokens: float
    mean_output_tokens: float
    ttft_slo_s: float
    tpot_slo_s: float
    headroom: float
    context: int


@record
class Candidate:
    """One deployment that fits and meets the SLOs, sized and priced for the load."""

    gpu: str
    gpu_name: str
    count: int
    parallel: Parallel
    parallel_text: str
    quant: str
    engine: str
    replicas: int
    gpus_total: int
    max_concurrency: int
    requests_per_s: float
    ttft_s: float
    tpot_s: float
    limit: str
    utilization: float
    cost_per_hour: float
    cost_per_million_tokens: float
    cost_per_million_input_tokens: float
    cost_per_million_output_tokens: float
    price_usd_per_gpu_hour: float
    price_source: str
    launch: str
    launch_notes: list[str]
    capacity_model: Literal["screen", "perf"] = "screen"


def layouts(model: ModelSpec, max_gpus: int) -> list[Parallel]:
    """The layouts searched for `model` (module docstring), fewest GPUs first: for each power of two n, the
    largest TP (<= 8) the model allows that divides n, times PP n / TP; with ep = tp too for MoE models."""
    moe = any(isinstance(layer.mlp, MoEMLP) for layer in model.layers)
    out = []
    n = 1
    while n <= max_gpus:
        for ep_mode in (False, True) if moe else (False,):
            allowed = [t for t in valid_tp(model, ep=2 if ep_mode else 1, limit=GPUS_PER_NODE) if n % t == 0]
            tp = max(allowed, default=0)
            if tp and not (ep_mode and tp == 1):
                out.append(Parallel(tp=tp, pp=n // tp, ep=tp if ep_mode else 1))
        n *= 2
    return out


def parallel_text(p: Parallel) -> str:
    return " ".join(f"{name}{value}" for name, value in (("tp", p.tp), ("pp", p.pp), ("ep", p.ep)) if value > 1) \
        or "1 GPU"


def _perf_model(plan: DeploymentPlan, cache: dict[tuple[object, ...], PerfModel]) -> PerfModel:
    """perf_model(plan), shared between engines: it reads only the model, GPU, layout, weight format and KV
    dtype of the plan (calc/perf/model.py), which two engines' plans of one deployment have in common."""
    key = (plan.gpu.key, plan.parallel, plan.kv_dtype, id(plan.weight_format))
    if key not in cache:
        cache[key] = perf_model(plan)
    return replace(cache[key], plan=plan)


def _candidate(plan: DeploymentPlan, cap: ReplicaCapacity, target: SearchTarget, price: PriceUsed,
               model: Literal["screen", "perf"]) -> Candidate:
    """Size and price one plan at the capacity `cap`."""
    fleet = size_fleet(target.requests_per_s, cap.requests_per_s, plan.parallel.gpus, target.headroom)
    cost = token_cost(fleet.gpus_total, price.usd_per_gpu_hour, target.requests_per_s, target.mean_input_tokens,
                      target.mean_output_tokens, input_share(cap.prefill_s, cap.decode_s))
    launch = launch_command(plan, cap.max_concurrency)
    return Candidate(
        gpu=plan.gpu.key, gpu_name=plan.gpu.name, count=plan.parallel.gpus, parallel=plan.parallel,
        parallel_text=parallel_text(plan.parallel), quant=plan.weight_format.name, engine=plan.engine,
        replicas=fleet.replicas, gpus_total=fleet.gpus_total, max_concurrency=cap.max_concurrency,
        requests_per_s=cap.requests_per_s, ttft_s=cap.ttft_s, tpot_s=cap.tpot_s, limit=cap.limit,
        utilization=fleet.utilization, cost_per_hour=cost.per_hour, cost_per_million_tokens=cost.per_million_tokens,
        cost_per_million_input_tokens=cost.per_million_input_tokens,
        cost_per_million_output_tokens=cost.per_million_output_tokens,
        price_usd_per_gpu_hour=price.usd_per_gpu_hour, price_source=price.describe(),
        launch=launch.command if launch else "", launch_notes=launch.notes if launch else [], capacity_model=model,
    )


class MemoFormat:
    """A weight format that remembers each tensor's bytes and quantization: the search plans the same model in
    the same format on many GPUs, layouts and engines, and the per-tensor answers never change. Only what the
    format has is forwarded (`getattr(fmt, "quantizes", None)` stays None for plain dtypes)."""

    def __init__(self, inner: WeightFormat) -> None:
        self._inner = inner
        self.name = inner.name
        self._bytes: dict[tuple[int, int], int] = {}
        if hasattr(inner, "quantizes"):
            flags: dict[int, bool] = {}

            def quantizes(t: object) -> bool:
                key = id(t)
                if key not in flags:
                    flags[key] = inner.quantizes(t)
                return flags[key]

            self.quantizes = quantizes

    def tensor_bytes(self, t: object, numel: int) -> int:
        key = (id(t), numel)
        if key not in self._bytes:
            self._bytes[key] = self._inner.tensor_bytes(t, numel)  # type: ignore[arg-type]
        return self._bytes[key]

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


@dataclass
class _Found:
    """A screened candidate and what confirming it needs."""

    candidate: Candidate
    plan: DeploymentPlan
    pm: PerfModel
    coeffs: PerfCoefficients
    price: PriceUsed


@dataclass
class SearchResult:
    found: list[_Found]
    searched: int
    planned: int
    target: SearchTarget

    @property
    def candidates(self) -> list[Candidate]:
        return [f.candidate for f in self.found]


def _whole_weights(model: ModelSpec, fmt: WeightFormat) -> int:
    return weights_per_stage(model, Parallel(), fmt)[0].weights_bytes


def search(
    model: ModelSpec,
    gpus: Sequence[tuple[GpuSpec, PriceUsed]],
    formats: Sequence[WeightFormat | None],
    engines: Sequence[str],
    settings_for: Callable[[str], EngineSettings],
    target: SearchTarget,
    max_gpus: int,
    calibration: Any = None,
) -> SearchResult:
    """Every (GPU, layout, format, engine) that fits and meets the targets (module docstring). `calibration`:
    measured coefficients (`.apply(defaults)`) for the card `.gpu` names (every card when None)."""
    found: list[_Found] = []
    models: dict[tuple[object, ...], PerfModel] = {}
    searched = planned = 0
    memo: list[WeightFormat | None] = [MemoFormat(f) if f is not None else None for f in formats]
    whole = {id(f): _whole_weights(model, f) if f is not None else 0 for f in memo}
    shapes = layouts(model, max_gpus)
    for gpu, price in gpus:
        coeffs = {e: _coefficients(gpu, e, not settings_for(e).enforce_eager, calibration) for e in engines}
        for parallel in shapes:
            for fmt in memo:
                if whole[id(fmt)] > gpu.usable_memory_bytes * parallel.gpus:
                    searched += len(engines)
                    continue
                for engine in engines:
                    searched += 1
                    try:
                        plan = plan_deployment(model, gpu, parallel, settings_for(engine), weight_format=fmt,
                                               context=target.context)
                    except InputError:
                        continue
                    planned += 1
                    if plan.startup_error or running_cap(plan, target.input_tokens, target.output_tokens)[0] < 1:
                        continue
                    pm = _perf_model(plan, models)
                    cap = screen_capacity(plan, pm, coeffs[engine], target.input_tokens, target.output_tokens,
                                          target.ttft_slo_s, target.tpot_slo_s)
                    if cap is not None:
                        found.append(_Found(_candidate(plan, cap, target, price, "screen"), plan, pm,
                                            coeffs[engine], price))
    return SearchResult(found=found, searched=searched, planned=planned, target=target)


def _coefficients(gpu: GpuSpec, engine: str, cuda_graphs: bool, calibration: Any) -> PerfCoefficients:
    """The engine's default coefficients on `gpu`, with a calibration measured on that card applied."""
    base = default_coefficients(gpu, engine, cuda_graphs=cuda_graphs)
    if calibration is None or getattr(calibration, "gpu", None) not in (None, gpu.key):
        return base
    return calibration.apply(base)


def confirm(result: SearchResult, limit: int = 6) -> tuple[list[Candidate], list[Candidate]]:
    """(confirmed, rejected): the cheapest screened candidates re-run through the perf model's SLO search, in
    order of screened cost, until the cheapest confirmed one costs no more than the next unconfirmed (at most
    `limit` confirmations). Rejected: screened plans the perf model says miss a target."""
    order = sorted(result.found, key=lambda f: (f.candidate.cost_per_million_tokens, f.candidate.tpot_s))
    t = result.target
    confirmed: list[Candidate] = []
    rejected: list[Candidate] = []
    for i, f in enumerate(order[:limit]):
        cap = confirmed_capacity(f.pm, f.coeffs, t.input_tokens, t.output_tokens, t.ttft_slo_s, t.tpot_slo_s,
                                 hint=f.candidate.max_concurrency)
        if cap is None:
            rejected.append(f.candidate)
        else:
            confirmed.append(_candidate(f.plan, cap, t, f.price, "perf"))
        nxt = order[i + 1].candidate.cost_per_million_tokens if i + 1 < len(order) else float("inf")
        if confirmed and min(c.cost_per_million_tokens for c in confirmed) <= nxt:
            break
    return confirmed, rejected
