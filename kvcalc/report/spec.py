"""`kvcalc spec`: speculative decoding for a model on a card: tokens per pass, speedup, the best draft length,
the batch where it stops paying, and what the draft costs in KV memory.

Formulas: `kvcalc.calc.speculative` (Leviathan et al. 2023; per-position acceptance); draft networks and
default acceptance: `kvcalc.calc.drafts`; step times: `kvcalc.calc.spec_cost` (the engine's drafting loop
costed by the perf model on the target's DeploymentPlan and on the draft's).
"""

from __future__ import annotations

from typing import Any, Protocol

from kvcalc.calc import speculative as sd
from kvcalc.calc.drafts import DraftNetwork, draft_method
from kvcalc.calc.engines import Assumption
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.spec_cost import DraftShape, SpecStep
from kvcalc.errors import InputError
from kvcalc.report.explain import Derivation
from kvcalc.spec.base import record
from kvcalc.spec.model import ModelSpec

_LEVIATHAN = "Leviathan et al. 2023 arXiv:2211.17192"
_NO_NETWORK = {"ngram": "prompt n-gram lookup on the host (no network: drafting is free)",
               "cost-ratio": "a draft of the given cost ratio c (its memory is not known)"}


class StepTimer(Protocol):
    """Costs one speculative step at batch B (`kvcalc.calc.spec_cost.SpecTimer`)."""

    def step(self, batch: int, shape: DraftShape) -> SpecStep: ...


@record
class Acceptance:
    """Conditional per-position acceptance a_1, a_2, ... (the last repeats) and where it comes from."""

    rates: tuple[float, ...]
    source: str

    def expected_tokens(self, gamma: int) -> float:
        return sd.expected_tokens_from_rates(self.rates, gamma)


@record
class GammaRow:
    gamma: int
    expected_tokens_per_pass: float
    leviathan_speedup: float
    speedup: float


@record
class BatchRow:
    """Speculation at batch B: each part of the step, the speedup at --gamma and at the best gamma."""

    batch: int
    target_step_s: float
    draft_step_s: float
    verify_step_s: float
    spec_step_s: float
    verify_bound: str
    speedup: float
    best_gamma: int
    best_speedup: float


@record
class DraftMemory:
    """The draft's weights and KV on one GPU against the target plan's KV pool.

    tokens_with_draft = (pool - draft weights) / (target + draft KV bytes per token): the draft's KV shares the
    pool's blocks (vLLM allocates the draft layers' KV in the same blocks). Concurrency scales alike."""

    draft_weights_bytes: int
    draft_kv_bytes_per_token: int
    target_kv_bytes_per_token: int
    kv_pool_bytes: int
    kv_cache_tokens: int
    kv_cache_tokens_with_draft: int
    target_tokens_lost: int
    concurrency_at_context: float
    concurrency_with_draft: float


@record
class EndToEnd:
    """A whole request (offline batch): one prefill of `input_tokens`, then `output_tokens` decoded."""

    input_tokens: int
    output_tokens: int
    prefill_s: float
    plain_s: float
    speculative_s: float
    speedup: float


@record
class SpecReport:
    model: str
    gpu: str
    engine: str
    engine_version: str
    method: str
    draft: str | None
    draft_description: str
    tp: int
    batch: int
    context: int
    gamma: int
    topk: int
    verify_tokens: int
    acceptance_rates: tuple[float, ...]
    acceptance_source: str
    alpha: float
    expected_tokens_per_pass: float
    cost_ratio: float
    leviathan_speedup: float
    speedup: float
    best_gamma: int
    best_speedup: float
    target_step_s: float
    draft_step_s: float
    draft_kernels_s: float
    draft_overhead_s: float
    spec_overhead_s: float
    verify_step_s: float
    spec_step_s: float
    verify_bound: str
    by_gamma: tuple[GammaRow, ...]
    by_batch: tuple[BatchRow, ...]
    crossover_batch: int | None
    crossover_batch_best_gamma: int | None
    end_to_end: EndToEnd | None
    memory: DraftMemory | None
    papers: tuple[str, ...]
    assumptions: dict[str, Assumption]
    notes: tuple[str, ...]
    explain: tuple[Derivation, ...] = ()


def resolve_acceptance(method: str, *, alpha: float | None = None, rates: tuple[float, ...] | None = None,
                       acceptance_length: float | None = None, gamma: int = 4) -> Acceptance:
    """--acceptance (conditional rates), else --acceptance-length (a measured mean, as a constant alpha at
    --gamma), else --alpha, else the method's default (`kvcalc.calc.drafts.METHODS`)."""
    given = [n for n, v in (("--acceptance", rates), ("--acceptance-length", acceptance_length), ("--alpha", alpha))
             if v is not None]
    if len(given) > 1:
        raise InputError(f"give one of --alpha, --acceptance, --acceptance-length (got {', '.join(given)})")
    if rates is not None:
        sd.expected_tokens_from_rates(rates, 1)  # validates
        return Acceptance(rates=tuple(rates), source="--acceptance (conditional per position)")
    if acceptance_length is not None:
        a = sd.alpha_for_acceptance_length(acceptance_length, gamma)
        return Acceptance(rates=(a,), source=f"--acceptance-length {acceptance_length} at gamma {gamma}: "
                                             f"constant alpha {a:.4f} (Leviathan eq. 1 solved for alpha)")
    if alpha is not None:
        sd.check_alpha(alpha)
        return Acceptance(rates=(alpha,), source="--alpha (constant)")
    m = draft_method("draft" if method == "cost-ratio" else method)
    return Acceptance(rates=m.rates, source=m.rates_source)


def _speedup(timer: StepTimer, acc: Acceptance, shape: DraftShape, batch: int) -> float:
    s = timer.step(batch, shape)
    return sd.step_speedup(acc.expected_tokens(shape.gamma), s.target_step_s, s.spec_step_s)


def _best(timer: StepTimer, acc: Acceptance, shape: DraftShape, batch: int) -> tuple[int, float]:
    return sd.best_gamma(lambda g: _speedup(timer, acc, shape.with_gamma(g), batch))


def _batches(batch: int, max_batch: int) -> list[int]:
    out, b = set(), 1
    while b <= max_batch:
        out.add(b)
        b *= 2
    out.add(batch)
    return sorted(out)


def _batch_row(timer: StepTimer, acc: Acceptance, shape: DraftShape, batch: int) -> BatchRow:
    s = timer.step(batch, shape)
    best = _best(timer, acc, shape, batch)
    return BatchRow(batch=batch, target_step_s=s.target_step_s, draft_step_s=s.draft_step_s,
                    verify_step_s=s.verify_step_s, spec_step_s=s.spec_step_s, verify_bound=s.verify_bound,
                    speedup=_speedup(timer, acc, shape, batch), best_gamma=best[0], best_speedup=best[1])


def leviathan_speedup(expected_tokens: float, gamma: int, s: SpecStep) -> tuple[float, float, float]:
    """(alpha, c, E / (gamma c + 1)): the constant alpha with the same E at gamma, c = one draft pass over a
    decode step (drafting spread evenly over the gamma passes), Leviathan's speedup with those."""
    alpha = sd.alpha_for_acceptance_length(expected_tokens, gamma)
    c = s.draft_step_s / (gamma * s.target_step_s)
    return alpha, c, sd.speedup(alpha, gamma, c)


def speculation(
    timer: StepTimer, acc: Acceptance, shape: DraftShape, *, batch: int, max_batch: int,
) -> tuple[tuple[GammaRow, ...], tuple[BatchRow, ...], int | None, int | None]:
    """The gamma table (at the batch), the batch table and both crossover batches (--gamma and best gamma)."""
    if shape.gamma > 64:
        raise InputError(f"--gamma must be from 1 to 64, got {shape.gamma}")
    gammas = []
    for g in range(1, max(sd.MAX_GAMMA, shape.gamma) + 1):
        s = timer.step(batch, shape.with_gamma(g))
        e = acc.expected_tokens(g)
        gammas.append(GammaRow(gamma=g, expected_tokens_per_pass=e, leviathan_speedup=leviathan_speedup(e, g, s)[2],
                               speedup=sd.step_speedup(e, s.target_step_s, s.spec_step_s)))
    batches = tuple(_batch_row(timer, acc, shape, b) for b in _batches(batch, max_batch))
    cross = sd.crossover_batch(lambda b: _speedup(timer, acc, shape, b), max_batch)
    cross_best = sd.crossover_batch(lambda b: _best(timer, acc, shape, b)[1], max_batch)
    return tuple(gammas), batches, cross, cross_best


def draft_memory(plan: DeploymentPlan, network: DraftNetwork | None, context: int) -> DraftMemory:
    """The draft's bytes on one GPU of the binding stage and what they cost the target's KV pool."""
    from kvcalc.calc import kv as kvmod
    from kvcalc.calc.weights import PlainFormat
    from kvcalc.spec.dtypes import storage_type

    tp = plan.parallel.tp
    weights = kv_draft = 0
    if network is not None:
        fmt = PlainFormat(plan.serving_dtype) if network.own_format else plan.weight_format
        weights = sum(fmt.tensor_bytes(t, t.numel // tp) for t in network.extra_tensors)
        kv_draft = kvmod.kv_bytes_per_token(network.model, storage_type(plan.kv_dtype), tp)
    pool = plan.binding_device.kv_cache_bytes
    kv_target = plan.kv_pool.kv_bytes_per_token
    tokens = plan.kv_cache_tokens
    with_draft = max(0, pool - weights) // (kv_target + kv_draft) if kv_target + kv_draft else tokens
    with_draft = min(tokens, with_draft)
    conc = plan.concurrency_at(context)
    return DraftMemory(
        draft_weights_bytes=weights, draft_kv_bytes_per_token=kv_draft, target_kv_bytes_per_token=kv_target,
        kv_pool_bytes=pool, kv_cache_tokens=tokens, kv_cache_tokens_with_draft=with_draft,
        target_tokens_lost=tokens - with_draft, concurrency_at_context=round(conc, 2),
        concurrency_with_draft=round(conc * with_draft / tokens, 2) if tokens else 0.0,
    )


def end_to_end(timer: Any, batch: int, input_tokens: int, output_tokens: int, expected_tokens: float,
               s: SpecStep) -> EndToEnd:
    """Run time of the batch with and without speculation, the prefill shared (`speculative.end_to_end_speedup`)."""
    prefill = timer.prefill(batch, input_tokens)
    plain = prefill + output_tokens * s.target_step_s
    spec = prefill + output_tokens / expected_tokens * s.spec_step_s
    return EndToEnd(input_tokens=input_tokens, output_tokens=output_tokens, prefill_s=prefill, plain_s=plain,
                    speculative_s=spec, speedup=sd.end_to_end_speedup(prefill, output_tokens, expected_tokens,
                                                                      s.target_step_s, s.spec_step_s))


@record
class SpecRequest:
    """What `kvcalc spec` was asked: the method, its acceptance, the step's shape, the load."""

    method: str
    acceptance: Acceptance
    shape: DraftShape
    batch: int
    context: int
    max_batch: int
    input_tokens: int | None = None
    output_tokens: int | None = None


def build_spec_report(target: ModelSpec, plan: DeploymentPlan, timer: Any, req: SpecRequest, *,
                      network: DraftNetwork | None, notes: list[str], assumptions: dict[str, Assumption],
                      explain: bool) -> SpecReport:
    """Assemble the report from a timer (`kvcalc.calc.spec_cost.SpecTimer`)."""
    acc, shape, batch = req.acceptance, req.shape, req.batch
    gammas, batches, cross, cross_best = speculation(timer, acc, shape, batch=batch, max_batch=req.max_batch)
    s = timer.step(batch, shape)
    e = acc.expected_tokens(shape.gamma)
    alpha, c, lev = leviathan_speedup(e, shape.gamma, s)
    best = _best(timer, acc, shape, batch)
    if cross is None:
        notes.append("speculation pays at every batch up to the largest: the KV read dominates and one "
                     "verification reads it for all draft tokens (MagicDec, Chen et al. 2024 arXiv:2408.11049)")
    e2e = None
    if req.input_tokens is not None and req.output_tokens is not None:
        e2e = end_to_end(timer, batch, req.input_tokens, req.output_tokens, e, s)
    papers = [_LEVIATHAN] + ([draft_method(req.method).paper] if req.method not in ("draft", "cost-ratio") else [])
    report = SpecReport(
        model=target.id, gpu=plan.gpu.name, engine=plan.engine, engine_version=plan.engine_version,
        method=req.method, draft=network.model.id if network else None,
        draft_description=network.description if network else _NO_NETWORK[req.method],
        tp=plan.parallel.tp, batch=batch, context=req.context, gamma=shape.gamma, topk=shape.topk,
        verify_tokens=shape.tokens_verified, acceptance_rates=acc.rates, acceptance_source=acc.source,
        alpha=alpha, expected_tokens_per_pass=e, cost_ratio=c, leviathan_speedup=lev,
        speedup=sd.step_speedup(e, s.target_step_s, s.spec_step_s), best_gamma=best[0], best_speedup=best[1],
        target_step_s=s.target_step_s, draft_step_s=s.draft_step_s, draft_kernels_s=s.draft_kernels_s,
        draft_overhead_s=s.draft_overhead_s, spec_overhead_s=s.step_overhead_s, verify_step_s=s.verify_step_s,
        spec_step_s=s.spec_step_s, verify_bound=s.verify_bound, by_gamma=gammas, by_batch=batches,
        crossover_batch=cross, crossover_batch_best_gamma=cross_best, end_to_end=e2e,
        memory=draft_memory(plan, network, req.context) if req.method != "cost-ratio" else None,
        papers=tuple(papers), assumptions=assumptions, notes=tuple(notes),
    )
    if explain:
        from kvcalc.report.spec_render import spec_derivations
        from kvcalc.spec.base import replace

        report = replace(report, explain=spec_derivations(report))
    return report


def _draft_plan(network: DraftNetwork, gpu: Any, tp: int, engine: Any, notes: list[str]) -> DeploymentPlan:
    """The draft network's own plan at the target's tp, or tp = 1 when its heads do not split that way
    (vLLM `draft_tensor_parallel_size`)."""
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.errors import ParallelismError
    from kvcalc.spec.deployment import Parallel

    try:
        return plan_deployment(network.model, gpu, Parallel(tp=tp), engine)
    except ParallelismError:
        notes.append(f"the draft does not split over tp={tp}; costed at tp=1 (draft_tensor_parallel_size=1)")
        return plan_deployment(network.model, gpu, Parallel(tp=1), engine)


def _method_notes(method: str, shape: DraftShape, acc: Acceptance, target: ModelSpec,
                  draft_model: ModelSpec | None) -> list[str]:
    notes: list[str] = []
    if draft_model is not None and draft_model.vocab_size != target.vocab_size:
        notes.append(f"draft vocabulary {draft_model.vocab_size:,} differs from the target's "
                     f"{target.vocab_size:,}: speculation needs one tokenizer")
    if shape.is_tree and acc.source == draft_method("draft" if method == "cost-ratio" else method).rates_source:
        notes.append("a tree accepts more than a chain of the same depth; the default acceptance is a chain's, "
                     "so pass --acceptance-length as your engine logs it for this tree")
    if method == "ngram":
        notes.append("n-gram drafting is free here; a request without a match drafts nothing and verifies only "
                     "its own token (--proposal-rate: the share of steps with a match)")
    return notes


def spec_report(
    target: ModelSpec, gpu: Any, *, method: str, draft_model: ModelSpec | None = None,
    cost_ratio: float | None = None, alpha: float | None = None, rates: tuple[float, ...] | None = None,
    acceptance_length: float | None = None, gamma: int = 4, topk: int = 1, verify_tokens: int | None = None,
    proposal_rate: float | None = None, batch: int = 1, context: int = 4096, input_tokens: int | None = None,
    output_tokens: int | None = None, tp: int = 1, engine: Any = None, explain: bool = False,
    calibration: Any = None, parallel: Any = None, weight_format: Any = None,
) -> SpecReport:
    """Speculative decoding of `target` on `gpu` (the engine's plan at `tp`, default vLLM) with `method`
    ("draft" with `draft_model`, "eagle", "eagle3", "mtp", "ngram", or "cost-ratio" with `cost_ratio`).
    With `input_tokens` and `output_tokens` the decode context is input + output / 2 and the report adds the
    end-to-end speedup of a batch of such requests. `calibration`: a `--calibration` file's coefficients;
    `parallel` (default tp=`tp`) and `weight_format` plan the target as `kvcalc fit` would."""
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.calc.drafts import draft_network
    from kvcalc.calc.spec_cost import SpecTimer
    from kvcalc.spec.deployment import EngineSettings, Parallel

    if batch < 1:
        raise InputError(f"--batch must be positive, got {batch}")
    if (input_tokens is None) != (output_tokens is None):
        raise InputError("give --input and --output together (or neither)")
    if input_tokens is not None and output_tokens is not None:
        context = input_tokens + output_tokens // 2
    acc = resolve_acceptance(method, alpha=alpha, rates=rates, acceptance_length=acceptance_length, gamma=gamma)
    if proposal_rate is None:
        proposal_rate = draft_method("draft" if method == "cost-ratio" else method).proposal_rate
    shape = DraftShape(gamma=gamma, topk=topk, verify_tokens=verify_tokens, proposal_rate=proposal_rate)
    settings = engine if engine is not None else EngineSettings()
    layout = parallel if parallel is not None else Parallel(tp=tp)
    tp = layout.tp
    plan = plan_deployment(target, gpu, layout, settings, weight_format=weight_format)
    if plan.startup_error:
        raise InputError(f"{target.id} does not start on {gpu.name} at tp={tp}: {plan.startup_error}")
    network = None if method == "cost-ratio" else draft_network(method, target, draft_model)
    notes = _method_notes(method, shape, acc, target, draft_model)
    draft_plan = _draft_plan(network, gpu, tp, settings, notes) if network is not None else None
    fits = plan.requests_at(context)
    if batch > fits:
        notes.append(f"the plan's KV pool holds {fits} request(s) of {context:,} tokens, fewer than --batch {batch}")
    from kvcalc.report.perf import coefficients_for

    coeffs = coefficients_for(plan, calibration, online=True, enforce_eager=settings.enforce_eager)
    timer = SpecTimer(plan, draft_plan, context, ratio=cost_ratio, coeffs=coeffs)
    assumptions = {
        "engine": Assumption(value=f"{plan.engine} {plan.engine_version}", source="DeploymentPlan (kvcalc fit)"),
        "step_model": Assumption(value=timer.coeffs.source, source="kvcalc.calc.perf.defaults" if calibration is None
                                 else "--calibration"),
        "speculation_costs": Assumption(
            value=f"{timer.costs.pass_overhead_s * 1e3:.2f} ms per draft pass, "
                  f"{timer.costs.step_overhead_s * 1e3:.2f} ms per step", source=timer.costs.source),
        "acceptance": Assumption(value=", ".join(f"{a:.3f}" for a in acc.rates), source=acc.source),
    }
    req = SpecRequest(method=method, acceptance=acc, shape=shape, batch=batch, context=context,
                      max_batch=max(batch, min(fits, 1024)), input_tokens=input_tokens,
                      output_tokens=output_tokens)
    return build_spec_report(target, plan, timer, req, network=network, notes=notes, assumptions=assumptions,
                             explain=explain)
