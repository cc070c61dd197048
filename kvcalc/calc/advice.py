"""Advice: a pure search over plans. Each candidate changes one or two settings (tensor or pipeline parallel
degree, a larger card from the catalogue, an FP8 KV cache, a quantized weight format, a shorter context,
fewer concurrent requests), plans the deployment again with the same engine, and is kept when the new plan
runs the requested load. A change the engine refuses (its plan raises InputError or carries a start-up error)
is never suggested. The hardware catalogue is passed in (loaded once by the caller); nothing here reads
files.

Node boundaries: a TP group larger than the card's `node_gpus` is named as crossing nodes (its all-reduces
leave NVLink); pipeline stages across nodes are offered instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.engines.settings import AnySettings
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import KvcalcError
from kvcalc.spec.base import record, replace
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.gpu import GpuSpec

#: Cards named first when a larger card is suggested (then the rest of the catalogue by memory).
PREFERRED_CARDS = ("h200", "b200", "mi300x", "b300", "mi325x", "mi355x", "h100-nvl", "h20")
_FP8_KV = {"vllm": "fp8", "sglang": "fp8", "trtllm": "fp8", "llamacpp": "q8_0"}
_QUANTS = {"vllm": ("fp8", "awq:4:128"), "sglang": ("fp8", "awq:4:128"), "trtllm": ("fp8", "awq:4:128"),
           "llamacpp": ("Q8_0", "Q4_K_M")}


@record
class Suggestion:
    """A change that runs the requested load, with the capacity its plan gives (per replica) and a note."""

    change: str
    fits: bool
    max_concurrency: float
    kv_cache_tokens: int
    gpus: int
    note: str | None = None


Planner = Callable[[], DeploymentPlan]


def _try(make: Planner) -> DeploymentPlan | None:
    try:
        return make()
    except KvcalcError:
        return None


def _runs(plan: DeploymentPlan | None, concurrency: int) -> bool:
    return plan is not None and plan.admits_total(concurrency)


def _suggest(change: str, plan: DeploymentPlan, note: str | None = None) -> Suggestion:
    return Suggestion(change=change, fits=True, max_concurrency=plan.max_concurrency,
                      kv_cache_tokens=plan.kv_cache_tokens, gpus=plan.parallel.gpus, note=note)


def _replan(base: DeploymentPlan, *, gpu: GpuSpec | None = None, parallel: Parallel | None = None,
            settings: AnySettings | None = None, fmt: WeightFormat | None = None, explicit: bool = True,
            context: int | None = None) -> Planner:
    """A planner for `base` with some inputs changed (the base's weight format unless `fmt` is given)."""
    keep_fmt = base.weight_format if explicit else None

    def make() -> DeploymentPlan:
        return plan_deployment(base.model, gpu or base.gpu, parallel or base.parallel, settings or base.settings,
                               weight_format=fmt if fmt is not None else keep_fmt,
                               context=context or base.max_model_len)
    return make


def _node_note(gpu: GpuSpec, tp: int) -> str | None:
    node = gpu.node_gpus
    if node and tp > node:
        return (f"tp {tp} crosses nodes: {gpu.name} nodes hold {node}; TP all-reduces then run over the network "
                f"between {-(-tp // node)} nodes (prefer --tp {node} --pp {-(-tp // node)})")
    return None


def _parallel(base: DeploymentPlan, concurrency: int, explicit: bool) -> list[Suggestion]:
    """The least tensor-parallel degree that runs the load; pipeline stages when TP would cross a node."""
    if base.engine == "llamacpp":
        return []
    from kvcalc.calc.parallel import valid_tp

    out: list[Suggestion] = []
    p = base.parallel
    node = base.gpu.node_gpus or 8
    for tp in valid_tp(base.model, p.ep):
        if tp <= p.tp:
            continue
        layout = replace(p, tp=tp, ep=tp * p.dp if p.ep > 1 else 1)
        plan = _try(_replan(base, parallel=layout, explicit=explicit))
        if _runs(plan, concurrency):
            assert plan is not None
            out.append(_suggest(f"--tp {tp}", plan, _node_note(base.gpu, tp)))
            if tp <= node:
                return out
            break
    for pp in (2, 3, 4, 6, 8):
        tp = min(max(p.tp, node), node)
        layout = replace(p, tp=tp, pp=pp, ep=tp * p.dp if p.ep > 1 else 1)
        if pp > base.model.num_layers:
            break
        plan = _try(_replan(base, parallel=layout, explicit=explicit))
        if _runs(plan, concurrency):
            assert plan is not None
            change = f"--tp {tp} --pp {pp}" if tp != p.tp else f"--pp {pp}"
            out.append(_suggest(change, plan, f"{pp} pipeline stages of {tp} GPUs; each stage can be its own node"))
            break
    return out


def _cards(base: DeploymentPlan, concurrency: int, catalogue: Sequence[GpuSpec], explicit: bool) -> list[Suggestion]:
    """The first larger card (preferred names first, then by memory) on which the same layout runs the load,
    and the first from another vendor."""
    apple = base.gpu.kind == "apple"
    larger = [g for g in catalogue if g.usable_memory_bytes > base.gpu.usable_memory_bytes
              and (g.kind == "apple") == apple and g.kind != "cpu"]
    order = {key: i for i, key in enumerate(PREFERRED_CARDS)}
    larger.sort(key=lambda g: (order.get(g.key, len(order)), g.usable_memory_bytes))
    out: list[Suggestion] = []
    vendors: set[str] = set()
    for gpu in larger:
        if gpu.vendor in vendors or len(out) >= 2:
            continue
        plan = _try(_replan(base, gpu=gpu, explicit=explicit))
        if _runs(plan, concurrency):
            assert plan is not None
            out.append(_suggest(f"--gpu {gpu.key}", plan))
            vendors.add(gpu.vendor)
    return out


def _kv_and_weights(base: DeploymentPlan, concurrency: int, explicit: bool) -> list[Suggestion]:
    """An FP8 (llama.cpp: q8_0) KV cache, then the smallest weight format of the engine's list that runs."""
    from kvcalc.calc.quant import parse_quant

    out: list[Suggestion] = []
    kv = _FP8_KV[base.engine]
    if not base.kv_dtype.startswith(("fp8", "q")):
        settings = _with_kv(base.settings, kv)
        plan = _try(_replan(base, settings=settings, explicit=explicit))
        if _runs(plan, concurrency):
            assert plan is not None
            out.append(_suggest(f"--kv-dtype {kv}", plan))
    if getattr(base.weight_format, "name", "") in ("bf16", "fp16", "fp32", "BF16", "F16", "F32"):
        for name in _QUANTS[base.engine]:
            plan = _try(_replan(base, fmt=parse_quant(name, model=base.model)))
            if _runs(plan, concurrency):
                assert plan is not None
                warn = next((w for w in plan.warnings if "weight-only" in w), None)
                out.append(_suggest(f"--quant {name}", plan, warn))
                break
    return out


def _with_kv(settings: AnySettings, kv: str) -> AnySettings:
    if settings.name == "llamacpp":
        return replace(settings, cache_type_k=kv, cache_type_v=kv)
    return replace(settings, kv_cache_dtype=kv)


def _shorter_context(base: DeploymentPlan, concurrency: int, explicit: bool) -> Suggestion | None:
    """The longest context the engine accepts at which the requests fit (re-planned: a shorter context also
    changes what the engine allocates)."""
    from kvcalc.calc.engines.common import derived_max_model_len

    limit = min(base.max_model_len, derived_max_model_len(base.model) or base.max_model_len)
    per = base.per_replica(concurrency)
    shorter = base.max_context_at(per, limit) if base.kv_pool.num_blocks else 0
    for _ in range(8):
        if shorter <= 0 or (shorter >= base.max_model_len and base.startup_error is None):
            return None
        plan = _try(_replan(base, explicit=explicit, context=shorter))
        if _runs(plan, concurrency):
            assert plan is not None
            return _suggest(f"--context {shorter}", plan)
        if plan is None or (plan.startup_error is not None and not plan.kv_pool.num_blocks):
            return None
        shorter = min(shorter - 1, plan.max_context_at(per, shorter - 1))
    return None


def _load(base: DeploymentPlan, concurrency: int, explicit: bool) -> list[Suggestion]:
    """A shorter context for the same requests, fewer requests at the same context, or more data-parallel
    replicas (each holds its own pool)."""
    out: list[Suggestion] = []
    shorter = _shorter_context(base, concurrency, explicit)
    if shorter is not None:
        out.append(shorter)
    if base.startup_error is not None:
        return out
    fewer = min(int(base.concurrency_at(base.max_model_len)), base.max_num_seqs or concurrency) * base.parallel.dp
    if 1 <= fewer < concurrency:
        note = f"{fewer} requests of {base.max_model_len:,} tokens at once"
        out.append(_suggest(f"--concurrency {fewer}", base, note))
        per = fewer // base.parallel.dp
        replicas = -(-concurrency // per)
        if base.engine != "llamacpp" and replicas <= 64:
            layout = replace(base.parallel, dp=replicas, ep=base.parallel.tp * replicas if base.parallel.ep > 1 else 1)
            plan = _try(_replan(base, parallel=layout, explicit=explicit))
            if _runs(plan, concurrency):
                assert plan is not None
                size = base.parallel.tp * base.parallel.pp
                note = f"{replicas} replicas of {size} GPU(s), {per} requests each ({plan.parallel.gpus} GPUs)"
                out.append(_suggest(f"--dp {replicas}", plan, note))
    return out


def advise_plan(base: DeploymentPlan, concurrency: int, catalogue: Sequence[GpuSpec], *,
                explicit_format: bool = False) -> list[Suggestion]:
    """Changes that make `base` run `concurrency` requests of its context, smallest first within each kind:
    parallelism, a larger card, KV dtype and weight format, context and load; when no single change runs, TP
    with FP8 weights. `explicit_format`: the base's weight format was chosen (--quant) rather than the
    checkpoint's."""
    if base.admits(concurrency):
        return []
    if base.max_num_seqs is not None and concurrency > base.max_num_seqs and base.startup_error is None:
        field = {"vllm": "--max-num-seqs", "sglang": "--max-running-requests", "trtllm": "--max-batch-size",
                 "llamacpp": "-np"}[base.engine]
        plan = _try(_replan(base, settings=_with_seqs(base.settings, concurrency), explicit=explicit_format))
        if _runs(plan, concurrency):
            assert plan is not None
            return [_suggest(f"{field} {concurrency}", plan)]
    out = (_parallel(base, concurrency, explicit_format) + _cards(base, concurrency, catalogue, explicit_format)
           + _kv_and_weights(base, concurrency, explicit_format) + _load(base, concurrency, explicit_format)
           + _llamacpp_offload(base, concurrency))
    if not any(s.change.startswith(("--tp", "--pp", "--gpu", "--quant", "--kv")) for s in out):
        out += _combined(base, concurrency)
    return out


def _with_seqs(settings: AnySettings, seqs: int) -> AnySettings:
    field = {"vllm": "max_num_seqs", "sglang": "max_running_requests", "trtllm": "max_batch_size",
             "llamacpp": "n_parallel"}[settings.name]
    return replace(settings, **{field: seqs})


def _combined(base: DeploymentPlan, concurrency: int) -> list[Suggestion]:
    """No single change runs the load: the least TP with the engine's first quantized format."""
    if base.engine == "llamacpp" or getattr(base.weight_format, "name", "") not in ("bf16", "fp16", "fp32"):
        return []
    from kvcalc.calc.parallel import valid_tp
    from kvcalc.calc.quant import parse_quant

    name = _QUANTS[base.engine][0]
    fmt = parse_quant(name, model=base.model)
    for tp in valid_tp(base.model, base.parallel.ep):
        if tp <= base.parallel.tp:
            continue
        layout = replace(base.parallel, tp=tp, ep=tp * base.parallel.dp if base.parallel.ep > 1 else 1)
        plan = _try(_replan(base, parallel=layout, fmt=fmt))
        if _runs(plan, concurrency):
            assert plan is not None
            return [_suggest(f"--tp {tp} --quant {name}", plan, _node_note(base.gpu, tp))]
    return []


def _llamacpp_offload(base: DeploymentPlan, concurrency: int) -> list[Suggestion]:
    """A GGUF format on one GPU that does not fit: llama.cpp with layers in host RAM (its --fit default)."""
    if base.engine == "llamacpp" or getattr(base.weight_format, "family", "") != "gguf" or base.parallel.gpus != 1:
        return []
    from kvcalc.calc.engines.settings import LlamacppSettings

    plan = _try(lambda: plan_deployment(base.model, base.gpu, Parallel(), LlamacppSettings(n_parallel=concurrency),
                                        weight_format=base.weight_format, context=base.max_model_len))
    if not _runs(plan, concurrency):
        return []
    assert plan is not None
    layers = plan.assumptions["n_gpu_layers"].value
    flag = "--apple" if base.gpu.kind == "apple" else "--gpu"
    return [_suggest("--engine llamacpp", plan,
                     f"{layers} of {base.model.num_layers} layers on the GPU, the rest in host RAM; see `kvcalc local "
                     f"{base.model.id} {flag} {base.gpu.key} --quant {base.weight_format.name} --context "
                     f"{base.max_model_len}`")]
