"""The engine scheduler, simulated step by step: what a static batch and a closed-loop benchmark measure.

Each step follows vLLM V1's scheduler (`vllm/v1/core/sched/scheduler.py::Scheduler.schedule`): running
requests first (a decode token each, then the unfinished prompt of a partially prefilled request), then
waiting requests admitted first-come-first-served while the token budget (`max_num_batched_tokens`) and
the running cap last, each given min(its remaining prompt, the budget left): long prompts are chunked over
steps and share them with the running decodes (chunked prefill; Sarathi-Serve, Agrawal et al. 2024). The
step's time is `step.step_cost` of exactly that mix. SGLang's default scheduler runs a prefill batch on its
own and pauses decoding meanwhile (`mix_prefill=False`; SGLang `--enable-mixed-chunk` is off by default).

The running cap is min(max_num_seqs, requests of input + output tokens the plan's KV pool holds):
requests beyond it wait (their TTFT includes the wait). kvcalc admits a request only when its whole KV
fits, where vLLM admits on the prompt and preempts later: with identical requests the steady state is the
same.

Closed loop (`vllm bench serve --max-concurrency C`): C clients each send a request as soon as their last
one finished. The run starts in steady state: the running requests are spread evenly over their output
(client phases), as they are once a benchmark's random lengths have desynchronised them, and only
requests sent after the start are measured. Static batch (`vllm bench latency`): B requests at t = 0.

Benchmark definitions (vLLM `benchmarks/serve.py::calculate_metrics`): TTFT = first token - send;
TPOT = (e2e - TTFT) / (output - 1) per request, averaged over requests; ITL = every gap between tokens,
pooled (kvcalc reports its median and 99th percentile: steps that carry prefill chunks stretch them).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.model import PerfModel
from kvcalc.calc.perf.step import decode_run_times, step_cost
from kvcalc.spec.base import record

#: Seed of the clients' random phases: the same inputs always give the same answer.
SEED = 20261206


@record
class RunStats:
    """What a benchmark reports for the simulated run (seconds; means over measured requests)."""

    ttft_s: float
    tpot_s: float
    e2e_s: float
    itl_p50_s: float
    itl_p99_s: float
    requests_per_s: float
    output_tokens_per_s: float
    measured_requests: int
    steps: int
    prefill_steps: int
    running_cap: int
    mean_running: float


class _Engine:
    """Mutable simulation state: slots of running requests (numpy arrays) and a FCFS waiting queue."""

    def __init__(self, cap: int, input_tokens: int, output_tokens: int) -> None:
        import numpy as np

        self.np = np
        self.I, self.O = input_tokens, output_tokens
        self.active = np.zeros(cap, dtype=bool)
        self.computed = np.zeros(cap, dtype=np.int64)
        self.generated = np.zeros(cap, dtype=np.int64)
        self.arrival = np.zeros(cap)
        self.first = np.zeros(cap)
        self.order = np.zeros(cap, dtype=np.int64)
        self.measured = np.zeros(cap, dtype=bool)
        self.waiting: deque[tuple[float, bool]] = deque()
        self.admitted = 0
        self.t = 0.0
        self.results: list[tuple[float, float]] = []
        self.gaps: list[Any] = []
        self.gap_weights: list[Any] = []
        self.steps = self.prefill_steps = 0
        self.running_time = 0.0

    def place(self, slot: int, arrival: float, measured: bool, generated: int = 0) -> None:
        self.active[slot], self.arrival[slot], self.measured[slot] = True, arrival, measured
        self.computed[slot] = self.I if generated else 0
        self.generated[slot], self.first[slot] = generated, arrival
        self.order[slot] = self.admitted
        self.admitted += 1

    def decoding(self) -> Any:
        return self.np.flatnonzero(self.active & (self.computed >= self.I))


def _plan_prefill(eng: _Engine, budget: int) -> list[tuple[int, int]]:
    """Chunks of this step (slot, tokens): partial prefills by admission order, then waiting requests."""
    np = eng.np
    chunks: list[tuple[int, int]] = []
    partial = np.flatnonzero(eng.active & (eng.computed < eng.I))
    for slot in partial[np.argsort(eng.order[partial])]:
        if budget <= 0:
            return chunks
        take = int(min(eng.I - eng.computed[slot], budget))
        chunks.append((int(slot), take))
        budget -= take
    free = list(np.flatnonzero(~eng.active))
    while budget > 0 and eng.waiting and free and eng.waiting[0][0] <= eng.t:
        arrival, measured = eng.waiting.popleft()
        slot = int(free.pop(0))
        eng.place(slot, arrival, measured)
        take = min(eng.I, budget)
        chunks.append((slot, take))
        budget -= take
    return chunks


def _finish(eng: _Engine, closed_loop: bool, frontend_s: float) -> None:
    """Complete requests that produced every output token; a closed-loop client sends its next one."""
    np = eng.np
    done = np.flatnonzero(eng.active & (eng.generated >= eng.O))
    for slot in done:
        eng.active[slot] = False
        end = eng.t + frontend_s
        if eng.measured[slot]:
            eng.results.append((eng.first[slot] + frontend_s - eng.arrival[slot], end - eng.arrival[slot]))
        if closed_loop:
            eng.waiting.append((end, True))


def _step(eng: _Engine, pm: PerfModel, coeffs: PerfCoefficients, budget: int, mix: bool) -> None:
    """One scheduler step with prefill work (or a run of pure decode steps up to the next completion)."""
    np = eng.np
    dec = eng.decoding()
    n_dec = len(dec) if mix else 0
    chunks = _plan_prefill(eng, budget - n_dec if mix else budget)
    if not chunks:
        if not len(dec):  # idle until the next request reaches the engine
            eng.t = max(eng.t, eng.waiting[0][0])
            return
        k = int((eng.O - eng.generated[dec]).min())
        times = decode_run_times(pm, coeffs, eng.I + eng.generated[dec] - 1, k)
        if eng.waiting and not eng.active.all():  # stop when the next request arrives
            arrives = eng.waiting[0][0] - eng.t
            k = min(k, int(np.searchsorted(np.cumsum(times), arrives)) + 1)
            times = times[:k]
        eng.t += float(times.sum())
        eng.running_time += float(times.sum()) * len(dec)
        eng.generated[dec] += k
        eng.gaps.append(times)
        eng.gap_weights.append(np.full(k, len(dec)))
        eng.steps += k
        return
    dec = dec if mix else dec[:0]
    prefill = [(int(eng.computed[s]), n) for s, n in chunks]
    finishing = sum(1 for s, n in chunks if eng.computed[s] + n >= eng.I)
    cost = step_cost(pm, coeffs, decode_contexts=eng.I + eng.generated[dec] - 1, prefill=prefill,
                     sampled_prefills=finishing)
    eng.t += cost.time_s
    eng.running_time += cost.time_s * (len(dec) + len(chunks))
    eng.steps += 1
    eng.prefill_steps += 1
    eng.generated[dec] += 1
    if len(dec):
        eng.gaps.append(np.array([cost.time_s]))
        eng.gap_weights.append(np.array([len(dec)]))
    for slot, n in chunks:
        eng.computed[slot] += n
        if eng.computed[slot] >= eng.I:
            eng.generated[slot] = 1
            eng.first[slot] = eng.t


def _weighted_percentile(values: Any, weights: Any, q: float) -> float:
    np = __import__("numpy")
    if len(values) == 0:
        return 0.0
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, q * cumulative[-1]))
    return float(values[order][min(index, len(values) - 1)])


def simulate(pm: PerfModel, coeffs: PerfCoefficients, *, input_tokens: int, output_tokens: int,
             concurrency: int, running_cap: int, budget: int, closed_loop: bool, mix_prefill: bool = True,
             measure: int | None = None) -> RunStats:
    """Run the scheduler (module docstring). `concurrency`: clients (closed loop) or the static batch;
    `running_cap`: requests the engine runs at once; `budget`: max_num_batched_tokens; `measure`: requests
    measured in a closed loop (default max(cap, 16))."""
    np = __import__("numpy")
    cap = max(1, min(concurrency, running_cap))
    eng = _Engine(cap, max(1, input_tokens), max(1, output_tokens))
    frontend = coeffs.frontend_latency_s if closed_loop else 0.0
    if closed_loop:
        phases = np.random.default_rng(SEED).integers(0, eng.O, size=cap)  # clients at random points
        for slot in range(cap):
            eng.place(slot, -1.0, False, generated=1 + int(phases[slot]) * (eng.O - 1) // eng.O)
        eng.waiting.extend((0.0, False) for _ in range(concurrency - cap))
        target = measure or max(2 * cap, 32)
    else:
        eng.waiting.extend((0.0, True) for _ in range(concurrency))
        target = concurrency
    _finish(eng, closed_loop, frontend)
    while len(eng.results) < target:
        _step(eng, pm, coeffs, budget, mix_prefill)
        _finish(eng, closed_loop, frontend)
    ttft, e2e = (np.array(v) for v in zip(*eng.results, strict=True))
    tpot = (e2e - ttft) / (eng.O - 1) if eng.O > 1 else np.zeros_like(e2e)
    gaps = np.concatenate(eng.gaps) if eng.gaps else np.zeros(0)
    weights = np.concatenate(eng.gap_weights) if eng.gap_weights else np.zeros(0)
    # closed loop, Little's law: C clients each send one request per e2e; static: B requests in the run
    rate = concurrency / float(e2e.mean()) if closed_loop else concurrency / eng.t
    return RunStats(
        ttft_s=float(ttft.mean()), tpot_s=float(tpot.mean()), e2e_s=float(e2e.mean()),
        itl_p50_s=_weighted_percentile(gaps, weights, 0.5), itl_p99_s=_weighted_percentile(gaps, weights, 0.99),
        requests_per_s=rate, output_tokens_per_s=rate * eng.O, measured_requests=len(eng.results),
        steps=eng.steps, prefill_steps=eng.prefill_steps, running_cap=cap,
        mean_running=eng.running_time / eng.t if eng.t else 0.0,
    )
