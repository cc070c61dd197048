"""Benchmarks over a DeploymentPlan: a static batch, closed-loop serving, and the roofline summaries.

- `run_static(pm, coeffs, batch, input, output)`: `vllm bench latency` (one static batch of B requests:
  their prompts prefilled in chunks of max_num_batched_tokens, then decoded together);
- `run_serving(pm, coeffs, concurrency, input, output)`: `vllm bench serve --max-concurrency C`;
- `running_cap(plan, input, output)`: how many such requests the engine runs at once, and which limit;
- `decode_step(...)`, `prefill_step(...)`: one decode step of B requests at a context / one prefill of a
  prompt, as StepCost (for bounds, arithmetic intensity and tables);
- `compute_bound_batch(...)`: the smallest decode batch at which the step turns compute-bound.
"""

from __future__ import annotations

from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.model import PerfModel
from kvcalc.calc.perf.scheduler import RunStats, simulate
from kvcalc.calc.perf.step import StepCost, step_cost
from kvcalc.calc.plan import DeploymentPlan

#: Engines whose scheduler runs prefill chunks in the same step as running decodes (vLLM V1
#: `Scheduler.schedule`; TRT-LLM in-flight batching; llama.cpp server batches prompt and generated tokens in
#: one `llama_decode`). SGLang runs prefill batches alone unless `--enable-mixed-chunk`.
MIXED_PREFILL_ENGINES = frozenset({"vllm", "trtllm", "llamacpp"})


def running_cap(plan: DeploymentPlan, input_tokens: int, output_tokens: int) -> tuple[int, str]:
    """Requests of input + output tokens the engine runs at once: min(whole requests the KV pool holds,
    max_num_seqs), and the limit that binds ("kv_cache" or "max_num_seqs")."""
    tokens = input_tokens + output_tokens
    whole = int(plan.concurrency_at(tokens))
    if plan.max_num_seqs is not None and plan.max_num_seqs < whole:
        return plan.max_num_seqs, "max_num_seqs"
    return whole, "kv_cache"


def run_static(pm: PerfModel, coeffs: PerfCoefficients, batch: int, input_tokens: int,
               output_tokens: int) -> RunStats:
    """A static batch of `batch` identical requests (module docstring)."""
    plan = pm.plan
    cap, _ = running_cap(plan, input_tokens, output_tokens)
    return simulate(pm, coeffs, input_tokens=input_tokens, output_tokens=output_tokens, concurrency=batch,
                    running_cap=max(cap, 1), budget=plan.max_num_batched_tokens, closed_loop=False,
                    mix_prefill=plan.engine in MIXED_PREFILL_ENGINES)


def run_serving(pm: PerfModel, coeffs: PerfCoefficients, concurrency: int, input_tokens: int,
                output_tokens: int, measure: int | None = None) -> RunStats:
    """Closed-loop serving with `concurrency` clients (module docstring)."""
    plan = pm.plan
    cap, _ = running_cap(plan, input_tokens, output_tokens)
    return simulate(pm, coeffs, input_tokens=input_tokens, output_tokens=output_tokens,
                    concurrency=concurrency, running_cap=max(cap, 1), budget=plan.max_num_batched_tokens,
                    closed_loop=True, mix_prefill=plan.engine in MIXED_PREFILL_ENGINES, measure=measure)


def decode_step(pm: PerfModel, coeffs: PerfCoefficients, batch: int, context: int) -> StepCost:
    """One decode step of `batch` requests, each with `context` tokens before its new one."""
    return step_cost(pm, coeffs, decode_contexts=[context] * batch)


def prefill_step(pm: PerfModel, coeffs: PerfCoefficients, tokens: int, batch: int = 1) -> StepCost:
    """The prefill of `batch` prompts of `tokens` tokens as one step (no chunking)."""
    return step_cost(pm, coeffs, prefill=[(0, tokens)] * batch)


def compute_bound_batch(pm: PerfModel, coeffs: PerfCoefficients, context: int,
                        limit: int = 65536) -> int | None:
    """Smallest decode batch B <= limit whose step is compute-bound at `context` (binary search: the
    compute share grows with B), or None when even `limit` stays memory-bound (long contexts: the KV read
    grows with B as fast as the FLOPs)."""
    if decode_step(pm, coeffs, limit, context).bound == "memory":
        return None
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi) // 2
        if decode_step(pm, coeffs, mid, context).bound == "compute":
            hi = mid
        else:
            lo = mid + 1
    return lo
