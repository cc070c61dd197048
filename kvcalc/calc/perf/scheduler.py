"""The engine scheduler, simulated step by step: what a static batch, a closed-loop and an open-loop
(request-rate) benchmark measure.

Each step follows the engine's policy (`policy.SchedulerPolicy`, from its code):
1. running requests in admission order: a decode token each, or the next chunk of an unfinished prompt,
   while the token budget lasts;
2. KV blocks: each request holds the blocks of the tokens it has computed (`plan.blocks_per_request`); when
   the step's new tokens need more blocks than are free, the most recently admitted requests are preempted
   (vLLM: blocks freed, progress dropped, recomputed from the head of the queue) until the rest fit;
3. if nothing was preempted, waiting requests in arrival order are admitted while the budget, the running
   cap (max_num_seqs) and the KV admission rule allow ("chunk": the blocks of the chunk they are given,
   vLLM; "whole": prompt + reserved output, TensorRT-LLM and SGLang); each gets min(its remaining prompt,
   the budget left): long prompts are chunked over steps and share them with running decodes (chunked
   prefill; Sarathi-Serve, Agrawal et al. 2024). SGLang runs such a prefill batch on its own and decodes
   in the steps between.
The step's time is `step.step_time` of exactly that mix (pipeline micro-batches and async scheduling
included). Steps without prefill work run in vectorised stretches up to the next completion, arrival or
block shortage.

Workloads:
- static (`vllm bench latency`): B requests at t = 0, offline (no front end);
- closed loop (`vllm bench serve --max-concurrency C`): C clients each send a request as soon as their last
  one finished. The run starts in steady state: the running requests are spread evenly over their output
  (client phases at seeded random points, as a benchmark's random lengths leave them), and only requests sent
  after the start are measured;
- open loop (`vllm bench serve --request-rate R --num-prompts N`): N requests at the send times of
  `workload.arrival_times`, all measured; the benchmark's duration runs from t = 0 to the last completion.
Request lengths are per request (`workload.sample_lengths`).

Benchmark definitions (vLLM `benchmarks/serve.py::calculate_metrics`): TTFT = first token - send;
TPOT = (e2e - TTFT) / (output - 1) per request with output > 1, averaged over requests; ITL = every gap
between tokens, pooled (kvcalc reports its median and 99th percentile: steps that carry prefill chunks
stretch them); throughput = tokens / duration.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.model import PerfModel
from kvcalc.calc.perf.policy import (
    SGLANG_INIT_NEW_TOKEN_RATIO,
    SGLANG_MIN_NEW_TOKEN_RATIO,
    SGLANG_NEW_TOKEN_RATIO_DECAY,
    SchedulerPolicy,
    policy_for,
)
from kvcalc.calc.perf.step import StepTimer
from kvcalc.spec.base import record

#: Seed of the clients' random phases and of drawn lengths: the same inputs always give the same answer.
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
    ttft_p50_s: float = 0.0
    ttft_p99_s: float = 0.0
    tpot_p50_s: float = 0.0
    tpot_p99_s: float = 0.0
    duration_s: float = 0.0
    total_tokens_per_s: float = 0.0
    preemptions: int = 0
    peak_running: int = 0
    mean_waiting_s: float = 0.0


class _Blocks:
    """Blocks one request of t tokens holds (`plan.blocks_per_request`), vectorised through a table by
    token count: `plan.blocks_per_request` at each block boundary k x unit (blocks change only there), spread
    over the tokens t of (k - 1) x unit < t <= k x unit; counts past the table's end take its last entry."""

    def __init__(self, pm: PerfModel, longest: int) -> None:
        import numpy as np

        plan = pm.plan
        self.unit = max(1, plan.kv_pool.block_size) if plan.kv_pool.unit == "blocks" else 1
        self.cells = plan.kv_pool.unit == "cells"
        steps = -(-max(longest, 1) // self.unit) + 2
        per_block = (None if self.cells else
                     np.array([plan.blocks_per_request(k * self.unit) for k in range(steps)], dtype=np.int64))
        self.table = None if per_block is None else per_block[-(-np.arange((steps - 1) * self.unit + 1) // self.unit)]

    def __call__(self, tokens: Any) -> Any:
        import numpy as np

        if isinstance(tokens, (int, np.integer)):  # one request: plain ints, no array round trip
            n = int(tokens)
            return n if self.table is None else int(self.table[min(n, len(self.table) - 1)])
        if self.table is None:
            return np.asarray(tokens, dtype=np.int64)
        return self.table.take(tokens, mode="clip")


class _Run:
    """Simulation state: per-request arrays, the running list (admission order) and the FCFS queue."""

    def __init__(self, pm: PerfModel, coeffs: PerfCoefficients, policy: SchedulerPolicy, inputs: Any,
                 outputs: Any, arrivals: Any, measured: Any) -> None:
        import numpy as np

        self.np, self.pm, self.policy = np, pm, policy
        self.timer = StepTimer(pm, coeffs)
        self.inp = np.maximum(np.asarray(inputs, dtype=np.int64), 1)
        self.out = np.maximum(np.asarray(outputs, dtype=np.int64), 1)
        n = len(self.inp)
        self.arrival = np.asarray(arrivals, dtype=np.float64).copy()
        self.measured = np.asarray(measured, dtype=bool).copy()
        self.target = self.inp.copy()  # tokens to prefill before decoding (prompt, + outputs after preemption)
        self.computed = np.zeros(n, dtype=np.int64)
        self.generated = np.zeros(n, dtype=np.int64)
        self.first = np.full(n, np.nan)
        self.admitted_at = np.full(n, np.nan)
        self.done = np.full(n, np.nan)
        self.cached = np.zeros(n, dtype=np.int64)  # tokens of a preempted request still in the prefix cache
        self.cache_order: deque[int] = deque()
        self.blocks = _Blocks(pm, int((self.inp + self.out).max()))
        self.running = np.zeros(0, dtype=np.int64)  # request ids, in admission order
        self.waiting: deque[int] = deque()
        self.t = 0.0
        self.ratio = SGLANG_INIT_NEW_TOKEN_RATIO
        self.gaps: list[Any] = []
        self.gap_weights: list[Any] = []
        self.steps = self.prefill_steps = self.preemptions = self.peak = 0
        self.busy = 0.0

    # -- KV accounting ----------------------------------------------------------------------------------
    def held(self, ids: Any) -> int:
        return int(self.blocks(self.computed[ids]).sum()) if len(ids) else 0

    def reserved(self, ids: Any) -> int:
        """Blocks held back for running requests' remaining output ("whole" admission)."""
        p = self.policy
        if p.admission != "whole" or not len(ids):
            return 0
        np = self.np
        share = self.ratio if p.decaying_ratio else p.reserve_running
        left = np.maximum(self.out[ids] - self.generated[ids], 0)
        if p.output_clip is not None:
            left = np.minimum(left, p.output_clip)
        ahead = self.computed[ids] + np.ceil(left * share).astype(np.int64)
        return int((self.blocks(ahead) - self.blocks(self.computed[ids])).sum())

    def admission_blocks(self, r: int, chunk: int, start: int | None = None) -> int:
        """Blocks request r needs to be admitted with a chunk of `chunk` tokens after `start` (default: its
        computed tokens; a cached prefix's blocks count, they are reused)."""
        p = self.policy
        if p.admission == "chunk":
            return int(self.blocks((self.computed[r] if start is None else start) + chunk))
        out = int(self.out[r] - self.generated[r])
        if p.output_clip is not None:
            out = min(out, p.output_clip)
        return int(self.blocks(self.target[r] + int(-(-out * p.reserve_new // 1))))

    def cached_blocks(self) -> int:
        return int(self.blocks(self.cached[list(self.cache_order)]).sum()) if self.cache_order else 0

    def evict(self) -> None:
        """Evict cached blocks until running requests' blocks and the cache fit the pool: the oldest
        preempted request's blocks first, each from the end of its prefix (vLLM frees a request's blocks in
        reverse order to the tail of the free queue and allocates from its head)."""
        if not self.cache_order:
            return
        excess = self.held(self.running) + self.cached_blocks() - self.policy.pool_blocks
        while excess > 0 and self.cache_order:
            r = self.cache_order[0]
            have = int(self.blocks(self.cached[r]))
            drop = min(have, excess)
            self.cached[r] = (have - drop) * self.blocks.unit if have > drop else 0
            excess -= drop
            if not self.cached[r]:
                self.cache_order.popleft()

    def resume(self, r: int) -> None:
        """A readmitted request starts from its cached prefix (a prefix-cache hit; at least one token is
        recomputed to sample from)."""
        if self.cached[r]:
            self.computed[r] = min(int(self.cached[r]), int(self.target[r]) - 1)
            self.cached[r] = 0
            self.cache_order.remove(r)

    def start(self, r: int) -> None:
        self.running = self.np.append(self.running, r)

    def stop(self, r: int) -> None:
        self.running = self.running[self.running != r]

    def preempt(self, r: int) -> None:
        """vLLM recompute: blocks freed, progress dropped, back to the head of the queue; with prefix caching
        its full blocks stay cached (reusable) until another allocation evicts them."""
        self.stop(r)
        self.target[r] = self.inp[r] + self.generated[r]
        if self.policy.prefix_cache:
            self.cached[r] = int(self.computed[r]) // self.blocks.unit * self.blocks.unit
            self.cache_order.append(r)
        self.computed[r] = 0
        self.waiting.appendleft(r)
        self.preemptions += 1
        if self.policy.decaying_ratio:
            self.ratio = SGLANG_INIT_NEW_TOKEN_RATIO


def _arrive(run: _Run, pending: deque[int]) -> None:
    """Requests whose send time has come join the queue (in send order)."""
    while pending and run.arrival[pending[0]] <= run.t + 1e-12:
        run.waiting.append(pending.popleft())


def _takes(run: _Run, computed: Any, target: Any, budget: int) -> tuple[Any, Any]:
    """Tokens each running request (`computed` of its `target` tokens) is given this step, in admission order
    while the budget lasts (a decode 1, a prefilling request min(its remaining prompt, what is left)), and
    whether it decodes."""
    np = run.np
    decoding = computed >= target
    want = np.where(decoding, 1, target - computed)
    if not run.policy.mix_prefill:  # SGLang: a prefill batch alone, else every decode
        want = np.where(decoding, 0, want) if (~decoding).any() else want
    before = np.cumsum(want) - want
    return np.minimum(np.maximum(budget - before, 0), want), decoding


def _preempt_for(run: _Run, ids: Any, computed: Any, take: Any) -> int | None:
    """Preempt from the tail until the scheduled tokens' new blocks fit (vLLM `running.pop()`): None if any
    was, else the blocks the running requests hold once this step's tokens are computed."""
    np = run.np
    held = run.blocks(computed)
    need = run.blocks(computed + take) - held
    held_now, needed = int(held.sum()), int(need.sum())
    free = run.policy.pool_blocks - held_now
    if needed <= free or not run.policy.preempt:
        return held_now + needed
    n = len(ids)
    # c requests preempted from the tail free their blocks and drop their need
    freed = np.concatenate(([0], np.cumsum(held[::-1])))
    kept_need = np.concatenate(([0], np.cumsum(need)))[n - np.arange(n + 1)]
    c = int(np.argmax(kept_need <= free + freed))
    for r in [int(x) for x in ids[n - c:]][::-1]:
        run.preempt(r)
    return None if c else held_now + needed


def _admit(run: _Run, budget: int, free: int) -> list[tuple[int, int]]:
    """Waiting requests admitted this step (FCFS, no skipping) and the chunk each is given."""
    p = run.policy
    chunks: list[tuple[int, int]] = []
    reserve = run.reserved(run.running)
    room = p.max_running - len(run.running)
    while budget > 0 and run.waiting and len(chunks) < room:
        r = run.waiting[0]
        left = int(run.target[r] - max(run.computed[r], min(run.cached[r], run.target[r] - 1)))
        if not p.chunked and budget < left < p.budget:
            break  # TensorRT-LLM without chunked prefill: the whole prompt waits for a step with room
        chunk = min(left, budget)
        start = int(run.target[r]) - left
        need = run.admission_blocks(r, chunk, start)
        if need > free - reserve:
            break
        run.waiting.popleft()
        run.resume(r)
        if math.isnan(run.admitted_at[r]):
            run.admitted_at[r] = run.t
        got = int(run.blocks(run.computed[r] + chunk))
        free -= got
        reserve += need - got if p.admission == "whole" else 0
        chunks.append((r, chunk))
        budget -= chunk
    if chunks:
        run.running = run.np.concatenate((run.running, [r for r, _ in chunks]))
    return chunks


def _step(run: _Run) -> None:
    """One scheduler step with prefill work or a preemption (module docstring, steps 1-3)."""
    np = run.np
    p = run.policy
    ids = run.running
    computed = run.computed[ids]
    take, decoding = _takes(run, computed, run.target[ids], p.budget)
    admitted: list[tuple[int, int]] = []
    held = _preempt_for(run, ids, computed, take)
    if held is None:
        ids = run.running
        computed = run.computed[ids]
        take, decoding = _takes(run, computed, run.target[ids], p.budget)
    else:
        used = int(take.sum()) if p.mix_prefill else int(take[~decoding].sum())
        admitted = _admit(run, p.budget - used, p.pool_blocks - held)
        if admitted and not p.mix_prefill:
            take = np.where(decoding, 0, take)  # SGLang: the prefill batch runs alone
    decodes = decoding & (take > 0)
    prefilling = ~decoding
    chunks = [(int(r), int(n)) for r, n in zip(ids[prefilling], take[prefilling], strict=True) if n > 0]
    chunks += admitted
    if decodes.any() or chunks:
        _execute(run, ids[decodes], computed[decodes], chunks)


def _execute(run: _Run, dec: Any, contexts: Any, chunks: list[tuple[int, int]]) -> None:
    """Run one step: decode requests `dec` (their `contexts`: tokens computed) and prefill `chunks`."""
    prefill = [(int(run.computed[r]), n) for r, n in chunks]
    sampled = [prior + n >= int(run.target[r]) for (r, n), (prior, _) in zip(chunks, prefill, strict=True)]
    time = run.timer.step_time(contexts, prefill, sampled)
    run.t += time
    run.busy += time * (len(dec) + len(chunks))
    run.steps += 1
    run.prefill_steps += bool(chunks)
    run.computed[dec] += 1
    run.generated[dec] += 1
    if len(dec):
        run.gaps.append(run.np.array([time]))
        run.gap_weights.append(run.np.array([len(dec)]))
        _decay(run, 1)
    for (r, n), s in zip(chunks, sampled, strict=True):
        run.computed[r] += n
        if s:
            run.generated[r] += 1
            if math.isnan(run.first[r]):
                run.first[r] = run.t
    run.evict()


def _decay(run: _Run, steps: int) -> None:
    if run.policy.decaying_ratio:
        run.ratio = max(SGLANG_MIN_NEW_TOKEN_RATIO, run.ratio - steps * SGLANG_NEW_TOKEN_RATIO_DECAY)


def _admissible(run: _Run, n_dec: int) -> bool:
    """Whether the queue's head could be admitted now (without changing anything)."""
    p = run.policy
    if not run.waiting or len(run.running) >= p.max_running:
        return False
    r = run.waiting[0]
    budget = p.budget - (n_dec if p.mix_prefill else 0)
    left = int(run.target[r] - max(run.computed[r], min(run.cached[r], run.target[r] - 1)))
    if budget <= 0 or (not p.chunked and budget < left < p.budget):
        return False
    ids = run.running
    free = p.pool_blocks - (int(run.blocks(run.computed[ids] + 1).sum()) if len(ids) else 0)
    return run.admission_blocks(r, min(left, budget), int(run.target[r]) - left) <= free - run.reserved(ids)


def _decode_run(run: _Run, pending: deque[int]) -> bool:
    """A stretch of pure decode steps up to the next completion, admissible arrival or block shortage
    (vectorised); False when the next step needs the general path."""
    np = run.np
    ids = run.running
    if not len(ids) or (run.computed[ids] < run.target[ids]).any() or len(ids) > run.policy.budget:
        return False
    if _admissible(run, len(ids)):
        return False
    k = int((run.out[ids] - run.generated[ids]).min())
    if run.policy.preempt:
        k = min(k, _steps_before_shortage(run, ids, k))
        if k < 1:
            return False
    times = run.timer.decode_run_times(run.computed[ids], k)
    if pending and len(run.running) < run.policy.max_running:  # stop when the next request arrives
        arrives = run.arrival[pending[0]] - run.t
        k = min(k, int(np.searchsorted(np.cumsum(times), arrives)) + 1)
        times = times[:k]
    total = float(times.sum())
    run.t += total
    run.busy += total * len(ids)
    run.computed[ids] += k
    run.generated[ids] += k
    run.gaps.append(times)
    run.gap_weights.append(np.full(k, len(ids)))
    run.steps += k
    _decay(run, k)
    run.evict()
    return True


def _steps_before_shortage(run: _Run, ids: Any, k: int) -> int:
    """Decode steps (<= k) whose blocks all fit the pool: the first step j (1-based) with
    sum blocks(context + j) > pool stops the stretch before it."""
    pool = run.policy.pool_blocks
    c = run.computed[ids]
    if int(run.blocks(c + k).sum()) <= pool:
        return k
    lo, hi = 0, k  # blocks(c + lo) fit, blocks(c + hi) do not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if int(run.blocks(c + mid).sum()) <= pool:
            lo = mid
        else:
            hi = mid
    return lo


def _finish(run: _Run, frontend_s: float, on_done: Any) -> None:
    """Complete requests that produced every output token."""
    ids = run.running
    if not len(ids):
        return
    done = run.generated[ids] >= run.out[ids]
    if not done.any():
        run.peak = max(run.peak, len(ids))
        return
    finished = ids[done]
    run.running = ids[~done]
    for r in finished:
        run.done[r] = run.t
        on_done(int(r), run.t + frontend_s)
    run.peak = max(run.peak, len(run.running) + len(finished))


def _loop(run: _Run, pending: deque[int], frontend_s: float, on_done: Any, finished: Any) -> None:
    """Step the engine until `finished()`; idle gaps jump to the next arrival."""
    while not finished():
        _arrive(run, pending)
        if not len(run.running) and not run.waiting:
            if not pending:
                return
            run.t = max(run.t, float(run.arrival[pending[0]]))
            continue
        steps = run.steps
        if not _decode_run(run, pending):
            _step(run)
        if run.steps == steps and not len(run.running):  # the head of the queue can never be admitted
            if not pending:
                return
            run.t = max(run.t, float(run.arrival[pending[0]]))
        _finish(run, frontend_s, on_done)


def _weighted_percentile(values: Any, weights: Any, q: float) -> float:
    np = __import__("numpy")
    if len(values) == 0:
        return 0.0
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, q * cumulative[-1]))
    return float(values[order][min(index, len(values) - 1)])


def _stats(run: _Run, ids: Any, frontend_s: float, requests_per_s: float, duration: float,
           cap: int) -> RunStats:
    """The benchmark's figures over the measured requests `ids` (module docstring)."""
    np = run.np
    ids = ids[~np.isnan(run.done[ids])]
    if not len(ids):
        return RunStats(ttft_s=0.0, tpot_s=0.0, e2e_s=0.0, itl_p50_s=0.0, itl_p99_s=0.0, requests_per_s=0.0,
                        output_tokens_per_s=0.0, measured_requests=0, steps=run.steps,
                        prefill_steps=run.prefill_steps, running_cap=cap, mean_running=0.0)
    ttft = run.first[ids] + frontend_s - run.arrival[ids]
    e2e = run.done[ids] + frontend_s - run.arrival[ids]
    many = run.out[ids] > 1
    tpot = (e2e - ttft)[many] / (run.out[ids][many] - 1) if many.any() else np.zeros(1)
    gaps = np.concatenate(run.gaps) if run.gaps else np.zeros(0)
    weights = np.concatenate(run.gap_weights) if run.gap_weights else np.zeros(0)
    mean_out = float(run.out[ids].mean())
    return RunStats(
        ttft_s=float(ttft.mean()), tpot_s=float(tpot.mean()), e2e_s=float(e2e.mean()),
        itl_p50_s=_weighted_percentile(gaps, weights, 0.5), itl_p99_s=_weighted_percentile(gaps, weights, 0.99),
        requests_per_s=requests_per_s, output_tokens_per_s=requests_per_s * mean_out,
        measured_requests=len(ids), steps=run.steps, prefill_steps=run.prefill_steps, running_cap=cap,
        mean_running=run.busy / run.t if run.t else 0.0,
        ttft_p50_s=float(np.percentile(ttft, 50)), ttft_p99_s=float(np.percentile(ttft, 99)),
        tpot_p50_s=float(np.percentile(tpot, 50)), tpot_p99_s=float(np.percentile(tpot, 99)),
        duration_s=duration, total_tokens_per_s=requests_per_s * float((run.inp[ids] + run.out[ids]).mean()),
        preemptions=run.preemptions, peak_running=run.peak,
        mean_waiting_s=float(np.nanmean(run.admitted_at[ids] - run.arrival[ids])),
    )


def run_open_loop(pm: PerfModel, coeffs: PerfCoefficients, policy: SchedulerPolicy, inputs: Any, outputs: Any,
                  arrivals: Any, frontend_s: float = 0.0) -> RunStats:
    """N requests sent at `arrivals` (seconds), all measured: `vllm bench serve --request-rate` (and a static
    batch: every arrival 0, no front end). Duration: t = 0 to the last completion."""
    import numpy as np

    order = np.argsort(np.asarray(arrivals, dtype=np.float64), kind="stable")
    run = _Run(pm, coeffs, policy, inputs, outputs, arrivals, np.ones(len(order), dtype=bool))
    pending = deque(int(i) for i in order)
    left = [len(order)]

    def on_done(r: int, end: float) -> None:
        left[0] -= 1

    _loop(run, pending, frontend_s, on_done, lambda: left[0] == 0)
    duration = float(np.nanmax(run.done)) + frontend_s if left[0] < len(order) else run.t
    done = int(np.sum(~np.isnan(run.done)))
    return _stats(run, np.arange(len(order)), frontend_s, done / duration if duration else 0.0, duration,
                  policy.max_running)


def _place_steady(run: _Run, count: int, rng: Any) -> int:
    """The first `count` clients' requests already running at random points of their output (steady
    state), while the running cap and the KV pool hold them; returns how many were placed."""
    placed = 0
    for r in range(count):
        if len(run.running) >= run.policy.max_running:
            break
        generated = 1 + int(rng.random() * (int(run.out[r]) - 1))
        before = (int(run.computed[r]), int(run.generated[r]))
        run.computed[r], run.generated[r] = int(run.inp[r]) + generated - 1, generated
        run.start(r)
        if run.held(run.running) + run.reserved(run.running) > run.policy.pool_blocks and placed:
            run.stop(r)
            run.computed[r], run.generated[r] = before
            break
        run.first[r] = run.admitted_at[r] = -1.0
        placed += 1
    return placed


def run_closed_loop(pm: PerfModel, coeffs: PerfCoefficients, policy: SchedulerPolicy, inputs: Any, outputs: Any,
                    clients: int, frontend_s: float, measure: int, from_start: bool = False) -> RunStats:
    """`clients` clients in a closed loop (module docstring); request k has lengths inputs[k], outputs[k].
    Steady state (default; len(inputs) >= 2 x clients + measure): throughput by Little's law, clients / mean
    e2e. `from_start`: the benchmark as `vllm bench serve --max-concurrency C --num-prompts N` runs it, every
    client sending at t = 0 and all `measure` = N = len(inputs) requests measured; throughput N / duration."""
    import numpy as np

    n = len(inputs)
    run = _Run(pm, coeffs, policy, inputs, outputs, np.full(n, np.inf), np.full(n, from_start, dtype=bool))
    placed = 0 if from_start else _place_steady(run, clients, np.random.default_rng(SEED))
    first = min(clients, n)
    run.arrival[:placed] = -1.0
    run.arrival[placed:first] = 0.0
    pending = deque(range(placed, first))
    state = {"next": first, "measured": 0}

    def on_done(r: int, end: float) -> None:
        state["measured"] += bool(run.measured[r])
        k = state["next"]
        if k < n:
            run.arrival[k], run.measured[k] = end, True
            pending.append(k)
            state["next"] = k + 1

    _loop(run, pending, frontend_s, on_done, lambda: state["measured"] >= measure)
    ids = np.flatnonzero(run.measured & ~np.isnan(run.done))
    cap = min(clients, policy.max_running)
    if from_start:
        duration = float(np.nanmax(run.done)) + frontend_s if len(ids) else run.t
        return _stats(run, ids, frontend_s, len(ids) / duration if duration else 0.0, duration, cap)
    e2e = float((run.done[ids] + frontend_s - run.arrival[ids]).mean()) if len(ids) else 0.0
    return _stats(run, ids, frontend_s, clients / e2e if e2e else 0.0, run.t, cap)


def simulate(pm: PerfModel, coeffs: PerfCoefficients, *, input_tokens: int, output_tokens: int,
             concurrency: int, running_cap: int, budget: int, closed_loop: bool, mix_prefill: bool = True,
             measure: int | None = None) -> RunStats:
    """Identical requests (kept for callers of the first API): `concurrency` closed-loop clients or a static
    batch of that many; `running_cap` and `budget` replace the plan's max_num_seqs and token budget."""
    import numpy as np

    from kvcalc.spec.base import replace

    policy = replace(policy_for(pm.plan, max_running=running_cap), budget=max(1, budget), mix_prefill=mix_prefill)
    cap = max(1, min(concurrency, running_cap))
    if closed_loop:
        target = measure or max(2 * cap, 32)
        n = 2 * concurrency + target + 8
        return run_closed_loop(pm, coeffs, policy, np.full(n, input_tokens), np.full(n, output_tokens),
                               concurrency, coeffs.frontend_latency_s, target)
    stats = run_open_loop(pm, coeffs, policy, np.full(concurrency, input_tokens), np.full(concurrency, output_tokens),
                          np.zeros(concurrency))
    return replace(stats, running_cap=cap)
