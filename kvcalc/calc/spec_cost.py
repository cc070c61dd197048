"""What one speculative step costs on the card: the drafter's passes, the verification, the engine's fixed costs.

How the engines run a step (read from their code):

- vLLM V1 (`vllm/v1/spec_decode/eagle.py`, `EagleProposer.propose`; draft models and MTP use the same loop):
  after the target's pass the drafter runs once over every token the target just processed (B x (gamma + 1)
  tokens: it needs their features and KV) and samples one token per sequence from the last position, then
  `for token_index in range(num_speculative_tokens - 1)` one pass over B tokens each. Every pass rebuilds its
  attention metadata on the host (`build_for_drafting`) and replays a PIECEWISE CUDA graph (attention runs
  eagerly between the pieces; vllm-project/vllm#45258), so each pass pays a host cost besides its kernels.
  The target then verifies B x (gamma + 1) tokens in one forward and the rejection sampler compares them
  (`vllm/v1/sample/rejection_sampler.py`; < 1.7 % of the time, SpecDecode-Bench arXiv:2601.11580 Fig. 4).
- SGLang (`python/sglang/srt/speculative/eagle_worker.py`): `draft()` runs num_steps - 1 passes of the draft
  over B x topk tokens, replayed as one CUDA graph (`EAGLEDraftCudaGraphRunner`), builds a tree of
  num_draft_tokens per sequence (`build_tree_kernel_efficient`), `verify()` runs the target over them with a
  tree mask, and `forward_draft_extend_after_decode` runs the draft over the accepted tokens (another graph,
  `EAGLEDraftExtendCudaGraphRunner`). A chain is topk = 1, num_draft_tokens = num_steps + 1.
- TensorRT-LLM (`tensorrt_llm/_torch/speculative/mtp.py`, "MTP Eagle"; tech blog 2): one model engine runs
  verification and the draft passes, "both the verification and draft stages can be captured in one graph".

So all three run the same shape, which kvcalc costs with the perf model (`kvcalc.calc.perf.step.step_cost`):

    t_spec = t_verify(B, N) + [t_pass_1(B, gamma + 1) + (gamma - 1) x t_pass(B, topk)] + gamma x h + s

- t_verify: a target step with a chunk of N tokens per sequence after its context (N = gamma + 1 for a chain,
  num_draft_tokens for a tree), logits at every one of them; it pays the step and request overheads. Only
  sequences that drafted verify N (`DraftShape.proposal_rate`; vLLM's n-gram proposer returns no draft for a
  request whose suffix has no match, `vllm/v1/spec_decode/ngram_proposer.py`), the others verify 1.
- t_pass: the draft network's kernels at that load (its weights, its KV, its lm_head for the sampled rows,
  its per-layer fixed cost), without the engine's step overheads.
- h (`pass_overhead_s`): host cost of one draft pass; s (`step_overhead_s`): what speculation adds to a step
  outside the passes (preparing the drafter's inputs from the accepted tokens, rejection sampling, the
  scheduler's bookkeeping of draft tokens). Both per engine, `ENGINE_SPEC_COSTS`, with where each comes from.

n-gram lookup has no passes and is free here (vLLM's numba proposer: 0.6 % of the verification time,
SpecDecode-Bench).
"""

from __future__ import annotations

from typing import Any

from kvcalc.calc.plan import DeploymentPlan
from kvcalc.errors import InputError
from kvcalc.spec.base import record


@record
class EngineSpecCosts:
    """What an engine pays for speculation besides kernels (seconds) and where the figures come from."""

    engine: str
    pass_overhead_s: float
    step_overhead_s: float
    source: str


#: vLLM: fitted to vllm-project/vllm#20780 (Llama-3.1-8B on H100, batch 1, MT-bench): 12 spec steps (EAGLE-1
#: and EAGLE-3 heads, K = 2..7) whose time is TPOT x AL; least squares of t_spec - kvcalc's verification and
#: pass kernels on K (slope h) and 1 (intercept s). SGLang: the same on sgl-project/sglang#4247's three batch-1
#: runs (EAGLE-3 at 5 and 8 steps, EAGLE-2 at 8; tree topk 8, 64 tokens). `docs/dev/spec_fit.py` reproduces both.
ENGINE_SPEC_COSTS: dict[str, EngineSpecCosts] = {
    "vllm": EngineSpecCosts(
        engine="vllm", pass_overhead_s=0.445e-3, step_overhead_s=0.99e-3,
        source="fitted to vllm-project/vllm#20780 (H100, Llama-3.1-8B, EAGLE-1/EAGLE-3, K = 2..7, batch 1): "
               "host cost per draft pass (metadata rebuild, PIECEWISE graph) and per step; docs/dev/spec_fit.py",
    ),
    "sglang": EngineSpecCosts(
        engine="sglang", pass_overhead_s=0.156e-3, step_overhead_s=3.73e-3,
        source="fitted to sgl-project/sglang#4247 (H100, Llama-3.1-8B, EAGLE-2/EAGLE-3 trees of topk 8 and 64 "
               "tokens, batch 1, early 2025): per pass (one graph replay for the draft loop) and per step (tree "
               "building, verification, draft extend, not overlapped); docs/dev/spec_fit.py",
    ),
    "trtllm": EngineSpecCosts(
        engine="trtllm", pass_overhead_s=0.0, step_overhead_s=0.30e-3,
        source="one model engine captures verification and drafting in one CUDA graph (TensorRT-LLM tech blog "
               "2): no host cost per pass; 0.3 ms per step assumed for acceptance and KV rewind",
    ),
}


def engine_spec_costs(engine: str) -> EngineSpecCosts:
    """The engine's speculation costs (vLLM's for engines without a figure, e.g. llama.cpp)."""
    return ENGINE_SPEC_COSTS.get(engine, ENGINE_SPEC_COSTS["vllm"])


@record
class DraftShape:
    """One speculative step's shape: `gamma` draft passes (chain length, SGLang num_steps), `topk` candidates
    per sequence in each pass after the first (SGLang speculative_eagle_topk; 1 = chain), `verify_tokens`
    per sequence verified by the target (SGLang num_draft_tokens; None = gamma + 1)."""

    gamma: int
    topk: int = 1
    verify_tokens: int | None = None
    proposal_rate: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.proposal_rate <= 1.0:
            raise InputError(f"the proposal rate must be in [0, 1], got {self.proposal_rate}")
        if self.gamma < 1:
            raise InputError(f"--gamma must be >= 1, got {self.gamma}")
        if self.topk < 1:
            raise InputError(f"--topk must be >= 1, got {self.topk}")
        if self.verify_tokens is not None and self.verify_tokens < 2:
            raise InputError(f"--verify-tokens must be >= 2, got {self.verify_tokens}")

    @property
    def tokens_verified(self) -> int:
        return self.verify_tokens if self.verify_tokens is not None else self.gamma + 1

    @property
    def is_tree(self) -> bool:
        return self.topk > 1 or self.tokens_verified > self.gamma + 1

    def with_gamma(self, gamma: int) -> DraftShape:
        """The same tree at another depth (a chain stays a chain; a tree keeps at least gamma + 1 tokens)."""
        tokens = None if self.verify_tokens is None else max(self.verify_tokens, gamma + 1)
        return DraftShape(gamma=gamma, topk=self.topk, verify_tokens=tokens, proposal_rate=self.proposal_rate)


@record
class SpecStep:
    """One speculative step at batch B, every part in seconds (module docstring)."""

    target_step_s: float
    verify_step_s: float
    verify_bound: str
    draft_kernels_s: float
    draft_overhead_s: float
    step_overhead_s: float

    @property
    def draft_step_s(self) -> float:
        return self.draft_kernels_s + self.draft_overhead_s

    @property
    def spec_step_s(self) -> float:
        return self.verify_step_s + self.draft_step_s + self.step_overhead_s


class SpecTimer:
    """Step times from the perf model for a target plan and a draft plan (None: no network, n-gram), or with
    `ratio`, a draft pass costing ratio x the target's decode step and no engine overheads (Leviathan's c)."""

    def __init__(self, plan: DeploymentPlan, draft_plan: DeploymentPlan | None, context: int, *,
                 ratio: float | None = None, coeffs: Any = None, costs: EngineSpecCosts | None = None) -> None:
        from kvcalc.calc.perf.defaults import default_coefficients
        from kvcalc.calc.perf.model import perf_model

        self.coeffs = coeffs if coeffs is not None else default_coefficients(
            plan.gpu, plan.engine, cuda_graphs=not getattr(plan.settings, "enforce_eager", False))
        self.costs = costs if costs is not None else engine_spec_costs(plan.engine)
        self.pm = perf_model(plan)
        self.dm = perf_model(draft_plan) if draft_plan is not None else None
        self.context, self.ratio = context, ratio
        self._cache: dict[tuple[Any, ...], tuple[float, str]] = {}

    def _cost(self, key: tuple[Any, ...], pm: Any, fixed: bool, **load: Any) -> tuple[float, str]:
        from kvcalc.calc.perf.step import step_cost

        if key not in self._cache:
            cost = step_cost(pm, self.coeffs, **load)
            c = self.coeffs
            drop = 0.0 if fixed else c.step_overhead_s + cost.requests * c.request_overhead_s
            self._cache[key] = (cost.time_s - drop, cost.bound)
        return self._cache[key]

    def target(self, batch: int) -> float:
        """A plain decode step of B sequences (with the engine's step overheads)."""
        return self._cost(("target", batch), self.pm, True, decode_contexts=[self.context] * batch)[0]

    def _verify_with(self, batch: int, drafting: int, n: int) -> tuple[float, str]:
        """`drafting` of the B sequences verify n tokens, the rest only their own token."""
        load = [(self.context, n)] * drafting + [(self.context, 1)] * (batch - drafting)
        return self._cost(("verify", batch, drafting, n), self.pm, True, prefill=load,
                          sampled_prefills=drafting * n + batch - drafting)

    def verify(self, batch: int, shape: DraftShape) -> tuple[float, str]:
        """The target over N tokens per sequence after its context, logits at each (kvcalc.calc.perf). With a
        proposal rate p < 1 (n-gram: a request without a match drafts nothing) B p sequences verify N and the
        rest one token, interpolated linearly between the whole numbers around B p."""
        n = shape.tokens_verified
        expected = batch * shape.proposal_rate
        low = int(expected)
        t_low, bound = self._verify_with(batch, low, n)
        if low == expected:
            return t_low, bound
        t_high, bound_high = self._verify_with(batch, low + 1, n)
        share = expected - low
        return t_low + share * (t_high - t_low), bound_high if share >= 0.5 else bound

    def pass_kernels(self, batch: int, shape: DraftShape) -> tuple[float, float]:
        """Kernel time of the first draft pass (over gamma + 1 tokens per sequence, one sampled) and of each
        later pass (over topk tokens per sequence)."""
        if self.ratio is not None:
            per_pass = self.ratio * self.target(batch)
            return per_pass, per_pass
        if self.dm is None:
            return 0.0, 0.0
        first = self._cost(("first", batch, shape.gamma), self.dm, False,
                           prefill=[(self.context, shape.gamma + 1)] * batch, sampled_prefills=batch)[0]
        if shape.topk == 1:
            later = self._cost(("pass", batch, 1), self.dm, False, decode_contexts=[self.context] * batch)[0]
        else:
            later = self._cost(("pass", batch, shape.topk), self.dm, False,
                               prefill=[(self.context, shape.topk)] * batch, sampled_prefills=batch * shape.topk)[0]
        return first, later

    def step(self, batch: int, shape: DraftShape) -> SpecStep:
        """Every part of one speculative step at batch B (module docstring)."""
        verify, bound = self.verify(batch, shape)
        first, later = self.pass_kernels(batch, shape)
        drafting = self.dm is not None and self.ratio is None
        return SpecStep(
            target_step_s=self.target(batch), verify_step_s=verify, verify_bound=bound,
            draft_kernels_s=first + (shape.gamma - 1) * later,
            draft_overhead_s=shape.gamma * self.costs.pass_overhead_s if drafting else 0.0,
            step_overhead_s=self.costs.step_overhead_s if drafting else 0.0,
        )

    def prefill(self, batch: int, input_tokens: int) -> float:
        """One prefill of B prompts of `input_tokens` (the same with and without speculation)."""
        return self._cost(("prefill", batch, input_tokens), self.pm, True, prefill=[(0, input_tokens)] * batch)[0]
