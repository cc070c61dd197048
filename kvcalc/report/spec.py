"""`kvcalc spec`: speculative decoding for a model on a card: tokens per pass, speedup, the best draft length,
the batch where it stops paying, and what the draft costs in KV memory.

Formulas: `kvcalc.calc.speculative` (Leviathan et al. 2023); draft networks and default acceptance rates:
`kvcalc.calc.drafts`; step times: the perf model (`kvcalc.calc.perf`) on the target's DeploymentPlan and on
the draft's. A speculative step = gamma draft steps + one target pass verifying gamma + 1 tokens per sequence
(the perf model's prefill chunk (context, gamma + 1)); its baseline is one target decode step per token.
"""

from __future__ import annotations

from typing import Any, Protocol

from kvcalc.calc import speculative as sd
from kvcalc.calc.drafts import DraftNetwork, draft_method
from kvcalc.calc.engines import Assumption
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.errors import InputError
from kvcalc.report.explain import Derivation
from kvcalc.spec.base import record
from kvcalc.spec.model import ModelSpec
from kvcalc.units import fmt_bytes

_LEVIATHAN = "Leviathan et al. 2023 arXiv:2211.17192"
_NO_NETWORK = {"ngram": "prompt n-gram lookup on the host (no network: drafting is free)",
               "cost-ratio": "a draft of the given cost ratio c (its memory is not known)"}


class StepTimer(Protocol):
    """Step times (seconds) at batch B: a plain decode step, one draft step, a verification of gamma + 1."""

    def target(self, batch: int) -> float: ...

    def draft(self, batch: int) -> float: ...

    def verify(self, batch: int, gamma: int) -> tuple[float, str]: ...


@record
class GammaRow:
    gamma: int
    expected_tokens_per_pass: float
    leviathan_speedup: float
    speedup: float


@record
class BatchRow:
    """Speculation at batch B: the verification's bound, the speedup at --gamma and at the best gamma."""

    batch: int
    target_step_s: float
    draft_step_s: float
    verify_step_s: float
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
class SpecReport:
    model: str
    gpu: str
    method: str
    draft: str | None
    draft_description: str
    tp: int
    batch: int
    context: int
    alpha: float
    alpha_source: str
    gamma: int
    expected_tokens_per_pass: float
    cost_ratio: float
    leviathan_speedup: float
    speedup: float
    best_gamma: int
    best_speedup: float
    target_step_s: float
    draft_step_s: float
    verify_step_s: float
    verify_bound: str
    by_gamma: tuple[GammaRow, ...]
    by_batch: tuple[BatchRow, ...]
    crossover_batch: int | None
    crossover_batch_best_gamma: int | None
    memory: DraftMemory | None
    papers: tuple[str, ...]
    assumptions: dict[str, Assumption]
    notes: tuple[str, ...]
    explain: tuple[Derivation, ...] = ()


class RatioTimer:
    """Leviathan's model with a given cost ratio c: target 1, draft c, verification 1 at every batch."""

    def __init__(self, cost_ratio: float) -> None:
        self.c = cost_ratio

    def target(self, batch: int) -> float:
        return 1.0

    def draft(self, batch: int) -> float:
        return self.c

    def verify(self, batch: int, gamma: int) -> tuple[float, str]:
        return 1.0, "assumed equal to a decode step"


def _speedup(timer: StepTimer, alpha: float, gamma: int, batch: int) -> float:
    verify, _ = timer.verify(batch, gamma)
    return sd.step_speedup(alpha, gamma, timer.target(batch), timer.draft(batch), verify)


def _best(timer: StepTimer, alpha: float, batch: int) -> tuple[int, float]:
    return sd.best_gamma(lambda g: _speedup(timer, alpha, g, batch))


def _batches(batch: int, max_batch: int) -> list[int]:
    out, b = set(), 1
    while b <= max_batch:
        out.add(b)
        b *= 2
    out.add(batch)
    return sorted(out)


def _batch_row(timer: StepTimer, alpha: float, gamma: int, batch: int) -> BatchRow:
    verify, bound = timer.verify(batch, gamma)
    best = _best(timer, alpha, batch)
    return BatchRow(batch=batch, target_step_s=timer.target(batch), draft_step_s=timer.draft(batch),
                    verify_step_s=verify, verify_bound=bound, speedup=_speedup(timer, alpha, gamma, batch),
                    best_gamma=best[0], best_speedup=best[1])


def speculation(
    timer: StepTimer, *, alpha: float, gamma: int, batch: int, max_batch: int,
) -> tuple[BatchRow, tuple[GammaRow, ...], tuple[BatchRow, ...], int | None, int | None]:
    """The figures at (gamma, batch), the gamma table, the batch table and both crossover batches."""
    sd.check_alpha(alpha)
    if gamma < 1 or gamma > 64:
        raise InputError(f"--gamma must be from 1 to 64, got {gamma}")
    c = timer.draft(batch) / timer.target(batch)
    gammas = tuple(
        GammaRow(gamma=g, expected_tokens_per_pass=sd.expected_tokens_per_pass(alpha, g),
                 leviathan_speedup=sd.speedup(alpha, g, c), speedup=_speedup(timer, alpha, g, batch))
        for g in range(1, max(sd.MAX_GAMMA, gamma) + 1)
    )
    batches = tuple(_batch_row(timer, alpha, gamma, b) for b in _batches(batch, max_batch))
    at = next(r for r in batches if r.batch == batch)
    cross = sd.crossover_batch(lambda b: _speedup(timer, alpha, gamma, b), max_batch)
    cross_best = sd.crossover_batch(lambda b: _best(timer, alpha, b)[1], max_batch)
    return at, gammas, batches, cross, cross_best


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


def resolve_alpha(method: str, alpha: float | None) -> tuple[float, str]:
    """--alpha when given, else the method's published default with its source."""
    if alpha is not None:
        sd.check_alpha(alpha)
        return alpha, "--alpha"
    m = draft_method("draft" if method == "cost-ratio" else method)
    return m.alpha, m.alpha_source


def build_spec_report(
    target: ModelSpec, plan: DeploymentPlan | None, timer: StepTimer, *, method: str, network: DraftNetwork | None,
    alpha: float | None, gamma: int, batch: int, context: int, max_batch: int, gpu_name: str, explain: bool,
    notes: list[str], assumptions: dict[str, Assumption],
) -> SpecReport:
    """Assemble the report from a step timer (perf model or a cost ratio)."""
    a, source = resolve_alpha(method, alpha)
    at, gammas, batches, cross, cross_best = speculation(timer, alpha=a, gamma=gamma, batch=batch,
                                                        max_batch=max_batch)
    c = at.draft_step_s / at.target_step_s
    best = _best(timer, a, batch)
    if cross is None and plan is not None:
        notes.append("speculation pays at every batch up to the largest: the KV read dominates and one "
                     "verification reads it for gamma + 1 tokens (MagicDec, Chen et al. 2024 arXiv:2408.11049)")
    papers = [_LEVIATHAN] + ([draft_method(method).paper] if method not in ("draft", "cost-ratio") else [])
    report = SpecReport(
        model=target.id, gpu=gpu_name, method=method, draft=network.model.id if network else None,
        draft_description=network.description if network else _NO_NETWORK[method],
        tp=plan.parallel.tp if plan else 1, batch=batch, context=context, alpha=a, alpha_source=source,
        gamma=gamma, expected_tokens_per_pass=sd.expected_tokens_per_pass(a, gamma), cost_ratio=c,
        leviathan_speedup=sd.speedup(a, gamma, c), speedup=at.speedup, best_gamma=best[0], best_speedup=best[1],
        target_step_s=at.target_step_s, draft_step_s=at.draft_step_s, verify_step_s=at.verify_step_s,
        verify_bound=at.verify_bound, by_gamma=gammas, by_batch=batches, crossover_batch=cross,
        crossover_batch_best_gamma=cross_best,
        memory=draft_memory(plan, network, context) if plan is not None and method != "cost-ratio" else None,
        papers=tuple(papers), assumptions=assumptions, notes=tuple(notes),
    )
    if explain:
        from kvcalc.spec.base import replace

        report = replace(report, explain=_explain(report))
    return report


def _explain(r: SpecReport) -> tuple[Derivation, ...]:
    e = r.expected_tokens_per_pass
    out = [
        Derivation(figure="expected tokens per target pass", formula="(1 - alpha^(gamma+1)) / (1 - alpha)",
                   substituted=f"(1 - {r.alpha}^{r.gamma + 1}) / (1 - {r.alpha})", value=f"{e:.4f}",
                   source=f"{_LEVIATHAN} eq. 1; alpha: {r.alpha_source}"),
        Derivation(figure="cost ratio c", formula="draft step / target decode step at the batch",
                   substituted=f"{r.draft_step_s * 1e3:.4f} ms / {r.target_step_s * 1e3:.4f} ms",
                   value=f"{r.cost_ratio:.4f}", source="kvcalc.calc.perf step_cost (draft: kernels only)"),
        Derivation(figure="speedup, verification = one decode step", formula="E / (gamma c + 1)",
                   substituted=f"{e:.4f} / ({r.gamma} x {r.cost_ratio:.4f} + 1)",
                   value=f"{r.leviathan_speedup:.4f}x", source=f"{_LEVIATHAN} Theorem 3.8"),
        Derivation(figure="speedup, verification costed", formula="E x t_target / (gamma t_draft + t_verify)",
                   substituted=f"{e:.4f} x {r.target_step_s * 1e3:.4f} / ({r.gamma} x {r.draft_step_s * 1e3:.4f}"
                               f" + {r.verify_step_s * 1e3:.4f}) ms",
                   value=f"{r.speedup:.4f}x (verification {r.verify_bound})",
                   source="verify = a step with a chunk of gamma + 1 tokens per sequence (kvcalc.calc.perf)"),
        Derivation(figure="best gamma", formula="argmax over gamma = 1..16 of the costed speedup",
                   substituted=", ".join(f"{g.gamma}: {g.speedup:.3f}" for g in r.by_gamma[:8]) + ", ...",
                   value=f"gamma = {r.best_gamma} ({r.best_speedup:.3f}x)", source="kvcalc.calc.speculative"),
        Derivation(figure="batch where speculation stops paying",
                   formula="smallest B with speedup(B) < 1 (doubling, then bisection)",
                   substituted=f"gamma = {r.gamma}; best gamma per batch",
                   value=f"{r.crossover_batch} / {r.crossover_batch_best_gamma}",
                   source="kvcalc.calc.speculative.crossover_batch"),
    ]
    m = r.memory
    if m is not None:
        out.append(Derivation(
            figure="target KV tokens with the draft",
            formula="(KV pool - draft weights) / (target + draft KV bytes per token)",
            substituted=f"({m.kv_pool_bytes:,} - {m.draft_weights_bytes:,}) / ({m.target_kv_bytes_per_token:,} + "
                        f"{m.draft_kv_bytes_per_token:,})",
            value=f"{m.kv_cache_tokens_with_draft:,} tokens (of {m.kv_cache_tokens:,})",
            source="DeploymentPlan KV pool; draft layers' KV share its blocks"))
    return tuple(out)


def render_spec(console: Any, r: SpecReport) -> None:
    """Summary, the gamma table, the batch table, memory."""
    from rich.table import Table

    console.print(f"[bold]{r.model}[/bold] + {r.method}{f' ({r.draft})' if r.draft else ''} on {r.gpu}: batch "
                  f"{r.batch}, context {r.context:,}, alpha {r.alpha} ({r.alpha_source})", markup=True)
    console.print(f"gamma {r.gamma}: {r.expected_tokens_per_pass:.4f} tokens per target pass; c = "
                  f"{r.cost_ratio:.4f}; speedup {r.speedup:.3f}x (Leviathan's E/(gamma c + 1): "
                  f"{r.leviathan_speedup:.3f}x); best gamma {r.best_gamma} at {r.best_speedup:.3f}x", markup=False)
    g = Table(title="By draft length (at the batch)", title_justify="left")
    for col in ("gamma", "tokens/pass", "E/(gamma c+1)", "speedup"):
        g.add_column(col, justify="right")
    for row in r.by_gamma[:10]:
        g.add_row(str(row.gamma), f"{row.expected_tokens_per_pass:.3f}", f"{row.leviathan_speedup:.3f}",
                  f"{row.speedup:.3f}")
    console.print(g)
    b = Table(title=f"By batch (gamma {r.gamma} and the best gamma)", title_justify="left")
    for col in ("batch", "decode ms", "draft ms", "verify ms", "verify bound", "speedup", "best gamma", "best"):
        b.add_column(col, justify="right")
    for brow in r.by_batch:
        b.add_row(str(brow.batch), f"{brow.target_step_s * 1e3:.3f}", f"{brow.draft_step_s * 1e3:.3f}",
                  f"{brow.verify_step_s * 1e3:.3f}", brow.verify_bound, f"{brow.speedup:.3f}",
                  str(brow.best_gamma), f"{brow.best_speedup:.3f}")
    console.print(b)
    cross = "never below 1x up to the largest batch" if r.crossover_batch is None else str(r.crossover_batch)
    best = "never" if r.crossover_batch_best_gamma is None else str(r.crossover_batch_best_gamma)
    console.print(f"speculation stops paying at batch {cross} (gamma {r.gamma}); {best} with the best gamma",
                  markup=False)
    m = r.memory
    if m is not None:
        console.print(f"draft memory per GPU: weights {fmt_bytes(m.draft_weights_bytes)}, KV "
                      f"{m.draft_kv_bytes_per_token:,} B/token; target KV tokens {m.kv_cache_tokens:,} -> "
                      f"{m.kv_cache_tokens_with_draft:,}; concurrency at {r.context:,}: "
                      f"{m.concurrency_at_context} -> {m.concurrency_with_draft}", markup=False)
    console.print("sources: " + "; ".join(r.papers), markup=False)
    for note in r.notes:
        console.print(f"note: {note}", markup=False)


class PerfTimer:
    """Step times from the perf model: the target's decode step and verification on its DeploymentPlan; the
    draft's step on the draft's plan, kernels only (the engine drafts inside one scheduler step, so the
    per-step and per-request overheads are paid once, by the verification); `ratio` replaces the draft by c x
    the target's step (--cost-ratio); no draft plan and no ratio: free drafting (n-gram)."""

    def __init__(self, plan: DeploymentPlan, draft_plan: DeploymentPlan | None, context: int,
                 ratio: float | None = None) -> None:
        from kvcalc.calc.perf.defaults import default_coefficients
        from kvcalc.calc.perf.model import perf_model

        self.coeffs = default_coefficients(plan.gpu, plan.engine)
        self.pm = perf_model(plan)
        self.dm = perf_model(draft_plan) if draft_plan is not None else None
        self.context, self.ratio = context, ratio
        self._cache: dict[tuple[str, int, int], tuple[float, str]] = {}

    def _step(self, kind: str, batch: int, gamma: int = 0) -> tuple[float, str]:
        from kvcalc.calc.perf.step import step_cost

        key = (kind, batch, gamma)
        if key not in self._cache:
            if kind == "verify":
                cost = step_cost(self.pm, self.coeffs, prefill=[(self.context, gamma + 1)] * batch,
                                 sampled_prefills=batch * (gamma + 1))
                self._cache[key] = (cost.time_s, cost.bound)
            else:
                pm = self.pm if kind == "target" else self.dm
                assert pm is not None
                cost = step_cost(pm, self.coeffs, decode_contexts=[self.context] * batch)
                c = self.coeffs
                fixed = 0.0 if kind == "target" else c.step_overhead_s + batch * c.request_overhead_s
                self._cache[key] = (cost.time_s - fixed, cost.bound)
        return self._cache[key]

    def target(self, batch: int) -> float:
        return self._step("target", batch)[0]

    def draft(self, batch: int) -> float:
        if self.ratio is not None:
            return self.ratio * self.target(batch)
        return self._step("draft", batch)[0] if self.dm is not None else 0.0

    def verify(self, batch: int, gamma: int) -> tuple[float, str]:
        return self._step("verify", batch, gamma)


def _draft_plan(network: DraftNetwork, gpu: Any, tp: int, notes: list[str]) -> DeploymentPlan:
    """The draft network's own plan at the target's tp, or tp = 1 when its heads do not split that way
    (vLLM `draft_tensor_parallel_size`)."""
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.errors import ParallelismError
    from kvcalc.spec.deployment import EngineSettings, Parallel

    try:
        return plan_deployment(network.model, gpu, Parallel(tp=tp), EngineSettings())
    except ParallelismError:
        notes.append(f"the draft does not split over tp={tp}; costed at tp=1 (draft_tensor_parallel_size=1)")
        return plan_deployment(network.model, gpu, Parallel(tp=1), EngineSettings())


def spec_report(
    target: ModelSpec, gpu: Any, *, method: str, draft_model: ModelSpec | None = None,
    cost_ratio: float | None = None, alpha: float | None = None, gamma: int = 4, batch: int = 1,
    context: int = 4096, tp: int = 1, explain: bool = False,
) -> SpecReport:
    """Speculative decoding of `target` on `gpu` (vLLM plan at `tp`) with `method` ("draft" with
    `draft_model`, "eagle", "eagle3", "mtp", "ngram", or "cost-ratio" with `cost_ratio`)."""
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.calc.drafts import draft_network
    from kvcalc.spec.deployment import EngineSettings, Parallel

    if batch < 1:
        raise InputError(f"--batch must be positive, got {batch}")
    notes: list[str] = []
    plan = plan_deployment(target, gpu, Parallel(tp=tp), EngineSettings())
    if plan.startup_error:
        raise InputError(f"{target.id} does not start on {gpu.name} at tp={tp}: {plan.startup_error}")
    network = None if method == "cost-ratio" else draft_network(method, target, draft_model)
    draft_plan = _draft_plan(network, gpu, tp, notes) if network is not None else None
    if draft_model is not None and draft_model.vocab_size != target.vocab_size:
        notes.append(f"draft vocabulary {draft_model.vocab_size:,} differs from the target's "
                     f"{target.vocab_size:,}: speculation needs one tokenizer")
    if method == "eagle":
        notes.append("EAGLE's acceptance falls with draft depth (0-alpha ~0.71 to 6-alpha ~0.52): a constant "
                     "alpha overstates long drafts")
    if method == "mtp":
        notes.append("engines reuse the first MTP module for every draft position; its acceptance was measured "
                     "for the next token only (DeepSeek-V3 ships one module), so gamma > 1 is optimistic")
    fits = plan.requests_at(context)
    if batch > fits:
        notes.append(f"the plan's KV pool holds {fits} request(s) of {context:,} tokens, fewer than --batch {batch}")
    timer = PerfTimer(plan, draft_plan, context, ratio=cost_ratio)
    assumptions = {
        "engine": Assumption(value=f"{plan.engine} {plan.engine_version}", source="DeploymentPlan (kvcalc fit)"),
        "step_model": Assumption(value=timer.coeffs.source, source="kvcalc.calc.perf.defaults"),
        "acceptance": Assumption(value="independent per token (constant alpha)", source=f"{_LEVIATHAN} s3.1"),
    }
    return build_spec_report(
        target, plan, timer, method=method, network=network, alpha=alpha, gamma=gamma, batch=batch,
        context=context, max_batch=max(batch, min(plan.max_num_seqs or 256, 1024)), gpu_name=gpu.name,
        explain=explain, notes=notes, assumptions=assumptions,
    )
