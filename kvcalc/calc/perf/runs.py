"""Benchmarks over a DeploymentPlan: a static batch, closed-loop serving, and the roofline summaries.

- `run_static(pm, coeffs, batch, input, output)`: `vllm bench latency` (one static batch of B requests:
  their prompts prefilled in chunks of max_num_batched_tokens, then decoded together);
- `run_serving(pm, coeffs, concurrency, input, output)`: `vllm bench serve --max-concurrency C`;
- `run_rate(pm, coeffs, num_prompts, rate, lengths)`: `vllm bench serve --request-rate R --num-prompts N`
  (open loop; `rate` inf = every request at once);
- `running_cap(plan, input, output)`: how many such requests the engine runs at once, and which limit;
- `decode_step(...)`, `prefill_step(...)`: one decode step of B requests at a context / one prefill of a
  prompt, as StepCost (for bounds, arithmetic intensity and tables);
- `compute_bound_batch(...)`: the smallest decode batch at which the step turns compute-bound.

Data parallelism (`plan.parallel.dp` replicas, each a whole engine with its own KV pool, as `vllm serve
--data-parallel-size` runs them): clients and requests are dealt to the replicas in turn (round robin), each
replica is simulated on its share, and the figures combine: latencies are means over all requests,
throughput adds up (the run lasts as long as its slowest replica). Capacity and throughput scale with dp;
a request's latency is its replica's.
"""

from __future__ import annotations

from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.model import PerfModel
from kvcalc.calc.perf.policy import policy_for
from kvcalc.calc.perf.scheduler import SEED, RunStats, run_closed_loop, run_open_loop, simulate
from kvcalc.calc.perf.step import StepCost, step_cost
from kvcalc.calc.perf.workload import LengthDistribution, arrival_times, sample_lengths
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.spec.base import replace

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
    if plan.parallel.dp > 1:
        return run_rate(pm, coeffs, batch, float("inf"), _fixed(input_tokens, output_tokens), online=False)
    cap, _ = running_cap(plan, input_tokens, output_tokens)
    return simulate(pm, coeffs, input_tokens=input_tokens, output_tokens=output_tokens, concurrency=batch,
                    running_cap=max(cap, 1), budget=plan.max_num_batched_tokens, closed_loop=False,
                    mix_prefill=plan.engine in MIXED_PREFILL_ENGINES)


def run_serving(pm: PerfModel, coeffs: PerfCoefficients, concurrency: int, input_tokens: int,
                output_tokens: int, measure: int | None = None,
                lengths: LengthDistribution | None = None, num_prompts: int | None = None) -> RunStats:
    """Closed-loop serving with `concurrency` clients (module docstring): identical requests of
    input/output tokens, or drawn from `lengths` (admitted by the engine's own policy, policy.py). Without
    `num_prompts`, the long-run steady state; with it, the whole benchmark from its start (every client
    sends at t = 0; `num_prompts` requests, all measured)."""
    plan = pm.plan
    if num_prompts is not None:
        return _from_start(pm, coeffs, concurrency, num_prompts,
                           lengths if lengths is not None else _fixed(input_tokens, output_tokens))
    if lengths is None and plan.parallel.dp == 1:
        cap, _ = running_cap(plan, input_tokens, output_tokens)
        return simulate(pm, coeffs, input_tokens=input_tokens, output_tokens=output_tokens,
                        concurrency=concurrency, running_cap=max(cap, 1), budget=plan.max_num_batched_tokens,
                        closed_loop=True, mix_prefill=plan.engine in MIXED_PREFILL_ENGINES, measure=measure)
    dist = lengths if lengths is not None else _fixed(input_tokens, output_tokens)
    shares = _deal(concurrency, plan.parallel.dp)
    runs = []
    for clients, replicas in sorted(set((c, shares.count(c)) for c in shares if c)):
        target = measure or max(2 * min(clients, plan.max_num_seqs or clients), 32)
        n = 2 * clients + target + 8
        inputs, outputs = sample_lengths(dist, n, SEED)
        stats = run_closed_loop(pm, coeffs, policy_for(plan), inputs, outputs, clients, coeffs.frontend_latency_s,
                                target)
        runs.append((stats, replicas))
    return _combine(runs, closed_loop=True)


def _from_start(pm: PerfModel, coeffs: PerfCoefficients, concurrency: int, num_prompts: int,
                lengths: LengthDistribution) -> RunStats:
    """`vllm bench serve --max-concurrency C --num-prompts N` from t = 0, dealt over dp replicas."""
    plan = pm.plan
    inputs, outputs = sample_lengths(lengths, num_prompts, SEED)
    dp = plan.parallel.dp
    runs = []
    for k in range(min(dp, num_prompts)):
        clients = _deal(concurrency, dp)[k]
        if clients:
            runs.append((run_closed_loop(pm, coeffs, policy_for(plan), inputs[k::dp], outputs[k::dp], clients,
                                         coeffs.frontend_latency_s, len(inputs[k::dp]), from_start=True), 1))
    return _combine(runs, closed_loop=False)


def run_rate(pm: PerfModel, coeffs: PerfCoefficients, num_prompts: int, rate: float,
             lengths: LengthDistribution, seed: int = 0, burstiness: float = 1.0,
             online: bool = True) -> RunStats:
    """Open loop (module docstring): `num_prompts` requests sent at `rate` requests/s (inf: all at t = 0)
    as `vllm bench serve` draws them (workload.arrival_times, seeded), lengths from `lengths`; every
    request measured; `online` adds the front end's latency."""
    plan = pm.plan
    arrivals = arrival_times(num_prompts, rate, seed, burstiness)
    inputs, outputs = sample_lengths(lengths, num_prompts, seed)
    dp = plan.parallel.dp
    frontend = coeffs.frontend_latency_s if online else 0.0
    runs = [(run_open_loop(pm, coeffs, policy_for(plan), inputs[k::dp], outputs[k::dp], arrivals[k::dp], frontend), 1)
            for k in range(min(dp, num_prompts))]
    return _combine(runs, closed_loop=False)


def _fixed(input_tokens: int, output_tokens: int) -> LengthDistribution:
    from kvcalc.calc.perf.workload import fixed_lengths

    return fixed_lengths(input_tokens, output_tokens)


def _deal(clients: int, replicas: int) -> list[int]:
    """Clients per replica, dealt in turn (the first `clients mod replicas` get one more)."""
    return [clients // replicas + (k < clients % replicas) for k in range(replicas)]


def _combine(runs: list[tuple[RunStats, int]], closed_loop: bool) -> RunStats:
    """dp replicas' runs as one benchmark: latencies averaged over requests, throughput summed (open loop:
    requests / the slowest replica's duration)."""
    if len(runs) == 1 and runs[0][1] == 1:
        return runs[0][0]
    weight = [s.measured_requests * k for s, k in runs]
    total = sum(weight) or 1

    def mean(name: str) -> float:
        return sum(getattr(s, name) * w for (s, _), w in zip(runs, weight, strict=True)) / total

    duration = max(s.duration_s for s, _ in runs)
    if closed_loop:
        rate = sum(s.requests_per_s * k for s, k in runs)
        out = sum(s.output_tokens_per_s * k for s, k in runs)
        tokens = sum(s.total_tokens_per_s * k for s, k in runs)
    else:
        rate = total / duration if duration else 0.0
        out = sum(s.output_tokens_per_s * s.duration_s for s, _ in runs) / duration if duration else 0.0
        tokens = sum(s.total_tokens_per_s * s.duration_s for s, _ in runs) / duration if duration else 0.0
    first = runs[0][0]
    return replace(first, **{n: mean(n) for n in ("ttft_s", "tpot_s", "e2e_s", "ttft_p50_s", "ttft_p99_s",
                                                   "tpot_p50_s", "tpot_p99_s", "mean_waiting_s")},
                   requests_per_s=rate, output_tokens_per_s=out, total_tokens_per_s=tokens, duration_s=duration,
                   measured_requests=total, running_cap=sum(s.running_cap * k for s, k in runs),
                   mean_running=sum(s.mean_running * k for s, k in runs),
                   preemptions=sum(s.preemptions * k for s, k in runs),
                   peak_running=sum(s.peak_running * k for s, k in runs),
                   steps=max(s.steps for s, _ in runs), prefill_steps=max(s.prefill_steps for s, _ in runs))


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
