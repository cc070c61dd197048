"""A step-by-step allocation trace for an arrival order: admit, grow, finish, preempt, evict.

The scheduler follows vLLM V1's (`vllm/v1/core/sched/scheduler.py::Scheduler.schedule`), one engine step at a
time with a token budget of max_num_batched_tokens:
1. running requests first, in order: a decoding request computes one token; one still in prefill computes
   the next chunk of its prompt (chunked prefill). When its slots cannot be allocated, the lowest-priority
   running request is preempted (vLLM: the last admitted, `self.running.pop()`; SGLang's retract_decode: the
   one with the fewest output tokens, then the longest prompt), its blocks freed, and it goes back to the
   head of the queue to be recomputed (vLLM V1 only recomputes; a swap would move its KV over PCIe instead:
   both costs are reported);
2. then, if nothing was preempted, waiting requests in arrival order while the budget and max_num_seqs
   allow: the cache hit is looked up, slots for the first chunk allocated, or the queue stops at the first
   request that does not fit (first come, first served).
Shared prefixes: a request takes a reference on every cached block of its hit; the prefix's partial last block
is never shared (vLLM caches full blocks only), so each request recomputes those tokens into a block of its
own: PagedAttention's copy-on-write of a shared partial block, done by recomputation.
A request of P prompt and O output tokens holds P + O token slots when it finishes (kvcalc counts the KV of
every generated token; vLLM never writes the last one's, at most one block fewer).

Time: each step takes `step_time(decode contexts, prefill chunks)` seconds when the caller gives one (the perf
model's step cost, calc/paging/timing.py), else the constant `step_s`; idle gaps jump to the next arrival.
Steps in which no request crosses a block boundary, finishes, or could be admitted are taken in one stride
(timed at the stride's first step). TTFT = end of the step that completes a prompt - arrival.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import Literal, Protocol

from kvcalc.calc.paging.tokens import TokenSeq
from kvcalc.spec.base import record
from kvcalc.spec.workload import TraceRequest

EventKind = Literal["admit", "grow", "finish", "preempt", "evict", "reject"]


@record
class SimConfig:
    max_num_batched_tokens: int
    max_num_seqs: int | None
    max_model_len: int
    step_s: float
    block_bytes: int
    victim: Literal["newest", "fewest_outputs"] = "newest"


@record
class TraceEvent:
    """One event. `blocks`: the change in blocks (cells) in use that it caused (+ taken from the free pool,
    - returned to it; blocks shared with other requests do not count); `held`: blocks the request references
    after it; `used`/`free`: the pool after it (free counts cached, evictable blocks)."""

    event: EventKind
    step: int
    t_s: float
    id: str | None
    blocks: int
    held: int
    used: int
    free: int
    cached_tokens: int = 0
    recompute_tokens: int = 0
    recompute_s: float = 0.0
    swap_bytes: int = 0
    swap_s: float = 0.0
    reason: str = ""


@record
class TraceSummary:
    event: Literal["summary"]
    unit: str
    capacity: int
    requests: int
    finished: int
    rejected: int
    steps: int
    duration_s: float
    prompt_tokens: int
    cached_tokens: int
    hit_rate_tokens: float
    peak_used: int
    peak_running: int
    ttft_s_p50: float
    ttft_s_p99: float
    preemptions: int
    recompute_tokens: int
    swap_bytes: int
    evictions: int


def request_tokens(req: TraceRequest) -> TokenSeq:
    """prefix stream (prefix_tokens of prefix_id; the whole prompt when None) + the request's own tokens."""
    shared = 0
    if req.prefix_id is not None:
        shared = min(req.prompt_tokens, req.prompt_tokens if req.prefix_tokens is None else req.prefix_tokens)
    own = req.prompt_tokens - shared + req.output_tokens
    return TokenSeq([(("prefix", req.prefix_id), 0, shared), (("request", req.id), 0, own)])


class Manager(Protocol):
    unit: str
    capacity: int

    @property
    def evictions(self) -> int: ...
    @property
    def used(self) -> int: ...
    def held(self, rid: str) -> int: ...
    def lookup(self, rid: str, seq: TokenSeq, prefill_tokens: int, salt: str | None) -> int: ...
    def allocate(self, rid: str, seq: TokenSeq, salt: str | None, computed: int, total: int) -> bool: ...
    def commit(self, rid: str, computed: int, prompt_done: bool = False) -> None: ...
    def quiet_steps(self, rid: str, computed: int) -> int: ...
    def release(self, rid: str, computed: int, finished: bool) -> int: ...


#: (tokens to recompute, bytes to swap) -> (recompute seconds, swap seconds)
PreemptCost = Callable[[int, int], tuple[float, float]]
#: (decode contexts, prefill chunks (prior, new)) -> seconds of one engine step
StepTime = Callable[[list[int], list[tuple[int, int]]], float]


class _State:
    __slots__ = ("admitted", "computed", "prefill", "req", "seq", "total", "ttft")

    def __init__(self, req: TraceRequest, max_model_len: int) -> None:
        self.req = req
        self.seq = request_tokens(req)
        self.computed = 0
        self.prefill = req.prompt_tokens
        self.total = min(req.prompt_tokens + req.output_tokens, max_model_len)
        self.admitted = False
        self.ttft: float | None = None

    @property
    def decoding(self) -> bool:
        return self.computed >= self.prefill


class Simulation:
    """Runs a trace against a manager; iterate `events()` (the summary comes last)."""

    def __init__(self, requests: list[TraceRequest], manager: Manager, config: SimConfig,
                 cost: PreemptCost | None = None, step_time: StepTime | None = None) -> None:
        self.m, self.cfg, self.cost, self.step_time = manager, config, cost, step_time
        self.ttfts: list[float] = []
        self.pending = deque(sorted(requests, key=lambda r: r.arrival_s))
        self.waiting: deque[_State] = deque()
        self.running: list[_State] = []
        self.t, self.step = 0.0, 0
        self.stats = dict(finished=0, rejected=0, prompt=0, cached=0, peak_used=0, peak_running=0,
                          preemptions=0, recompute=0, swap=0)
        self.requests = len(requests)
        self._rejected: list[_State] = []
        self._blocked = False

    def events(self) -> Iterator[TraceEvent | TraceSummary]:
        while self.pending or self.waiting or self.running:
            self._arrivals()
            for st in self._rejected:
                yield self._event("reject", st, 0, reason=f"prompt over max_model_len {self.cfg.max_model_len:,}")
            self._rejected = []
            if not self.waiting and not self.running:
                if self.pending:
                    self.t = max(self.t, self.pending[0].arrival_s)
                continue
            yield from self._one_step()
        yield self._summary()

    def _event(self, kind: EventKind, st: _State | None, blocks: int, **extra: object) -> TraceEvent:
        held = self.m.held(st.req.id) if st is not None else 0
        return TraceEvent(event=kind, step=self.step, t_s=round(self.t, 6), id=st.req.id if st else None,
                          blocks=blocks, held=held, used=self.m.used, free=self.m.capacity - self.m.used,
                          **extra)  # type: ignore[arg-type]

    def _arrivals(self) -> None:
        while self.pending and self.pending[0].arrival_s <= self.t + 1e-12:
            req = self.pending.popleft()
            st = _State(req, self.cfg.max_model_len)
            if req.prompt_tokens > self.cfg.max_model_len:
                self.stats["rejected"] += 1
                self._rejected.append(st)
            else:
                self.waiting.append(st)

    def _one_step(self) -> Iterator[TraceEvent]:
        evictions = self.m.evictions
        scheduled: dict[str, tuple[_State, int]] = {}
        preempted = yield from self._schedule_running(scheduled)
        self._blocked = False
        if not preempted:
            yield from self._admit(scheduled)
        work = list(scheduled.values())
        dt = self._seconds([s.computed for s, _ in work if s.decoding], [(s.computed, n) for s, n in work
                                                                            if not s.decoding])
        yield from self._execute(work, self.t + dt)
        if self.m.evictions > evictions:
            yield self._event("evict", None, self.m.evictions - evictions)
        self.stats["peak_running"] = max(self.stats["peak_running"], len(scheduled))
        self.t += dt
        self.step += 1
        self._stride(preempted)

    def _seconds(self, contexts: list[int], chunks: list[tuple[int, int]]) -> float:
        if self.step_time is None:
            return self.cfg.step_s
        return self.step_time(contexts, chunks)

    def _budget(self, scheduled: dict[str, tuple[_State, int]]) -> int:
        return self.cfg.max_num_batched_tokens - sum(n for _, n in scheduled.values())

    def _schedule_running(self, scheduled: dict[str, tuple[_State, int]]) -> Generator[TraceEvent, None, bool]:
        """Step 1: running requests in order; preempt from the back of the line when slots run out.
        Returns (as the generator's value) whether anything was preempted."""
        preempted = False
        i = 0
        while i < len(self.running) and self._budget(scheduled) > 0:
            st = self.running[i]
            n_new = 1 if st.decoding else min(st.prefill - st.computed, self._budget(scheduled))
            before = self.m.used
            while not self.m.allocate(st.req.id, st.seq, st.req.salt, st.computed, st.computed + n_new):
                if self.running == [st]:  # alone and still short: it can never finish
                    yield self._drop(st)
                    break
                victim = self._victim()
                preempted = True
                if victim.req.id in scheduled:
                    del scheduled[victim.req.id]
                    i -= 1
                yield self._preempt(victim)
                before = self.m.used  # the grow event counts this request's allocation only
                if victim is st:
                    break
            else:
                grown = self.m.used - before
                if grown and self.m.unit == "blocks":  # cells grow by one per token: no event
                    yield self._event("grow", st, grown)
                scheduled[st.req.id] = (st, n_new)
                i += 1
        return preempted

    def _admit(self, scheduled: dict[str, tuple[_State, int]]) -> Iterator[TraceEvent]:
        """Step 2: waiting requests, first come first served."""
        limit = self.cfg.max_num_seqs
        while self.waiting and self._budget(scheduled) > 0 and (limit is None or len(self.running) < limit):
            st = self.waiting[0]
            hit = self.m.lookup(st.req.id, st.seq, st.prefill, st.req.salt)
            n_new = min(st.prefill - hit, self._budget(scheduled))
            before = self.m.used
            if not self.m.allocate(st.req.id, st.seq, st.req.salt, hit, hit + n_new):
                if not self.running and not scheduled:
                    self.waiting.popleft()
                    self.stats["rejected"] += 1
                    yield self._event("reject", st, 0, reason=f"needs more than the {self.m.capacity:,} "
                                      f"{self.m.unit} of the pool")
                    continue
                self._blocked = True
                break
            self.waiting.popleft()
            if not st.admitted:
                st.admitted = True
                self.stats["prompt"] += st.req.prompt_tokens
                self.stats["cached"] += hit
            st.computed = hit
            self.running.append(st)
            scheduled[st.req.id] = (st, n_new)
            yield self._event("admit", st, self.m.used - before, cached_tokens=hit)

    def _execute(self, scheduled: list[tuple[_State, int]], t_end: float) -> Iterator[TraceEvent]:
        self.stats["peak_used"] = max(self.stats["peak_used"], self.m.used)
        for st, n_new in scheduled:
            st.computed += n_new
            self.m.commit(st.req.id, st.computed, prompt_done=st.computed >= st.prefill)
            if st.ttft is None and st.computed >= st.req.prompt_tokens:
                st.ttft = t_end - st.req.arrival_s
                self.ttfts.append(st.ttft)
            if st.computed >= st.total:
                before = self.m.used
                self.m.release(st.req.id, st.computed, finished=True)
                self.running.remove(st)
                self.stats["finished"] += 1
                yield self._event("finish", st, self.m.used - before)

    def _victim(self) -> _State:
        if self.cfg.victim == "fewest_outputs":
            pick = min(self.running, key=lambda s: (max(0, s.computed - s.req.prompt_tokens),
                                                     -s.req.prompt_tokens))
            self.running.remove(pick)
            return pick
        return self.running.pop()

    def _drop(self, st: _State) -> TraceEvent:
        """Reject a running request that cannot grow even with the whole pool to itself."""
        before = self.m.used
        self.m.release(st.req.id, st.computed, finished=False)
        self.running.remove(st)
        self.stats["rejected"] += 1
        return self._event("reject", st, self.m.used - before, reason=f"{st.total:,} tokens need more than the "
                           f"{self.m.capacity:,} {self.m.unit} of the pool")

    def _preempt(self, st: _State) -> TraceEvent:
        held = self.m.held(st.req.id)
        swap = held * self.cfg.block_bytes
        recompute_s, swap_s = self.cost(st.computed, swap) if self.cost else (0.0, 0.0)
        tokens = st.computed
        before = self.m.used
        self.m.release(st.req.id, st.computed, finished=False)
        self.stats["preemptions"] += 1
        self.stats["recompute"] += tokens
        self.stats["swap"] += swap
        st.prefill = max(st.prefill, st.computed)
        st.computed = 0
        self.waiting.appendleft(st)
        return self._event("preempt", st, self.m.used - before, recompute_tokens=tokens, recompute_s=recompute_s,
                           swap_bytes=swap, swap_s=swap_s)

    def _stride(self, preempted: bool) -> None:
        """Take the following quiet steps at once (see the module docstring)."""
        if preempted or not self.running or len(self.running) > self.cfg.max_num_batched_tokens:
            return
        if self.waiting and not self._blocked and self._could_admit():
            return
        k = 1 << 62
        for st in self.running:
            if not st.decoding:
                return
            k = min(k, st.total - st.computed - 1, self.m.quiet_steps(st.req.id, st.computed))
        dt = self._seconds([st.computed for st in self.running], [])
        if self.pending and dt > 0:
            k = min(k, int((self.pending[0].arrival_s - self.t) / dt))
        if k <= 0:
            return
        for st in self.running:
            self.m.allocate(st.req.id, st.seq, st.req.salt, st.computed, st.computed + k)
            st.computed += k
            self.m.commit(st.req.id, st.computed, prompt_done=True)
        self.t += k * dt
        self.step += k

    def _could_admit(self) -> bool:
        limit = self.cfg.max_num_seqs
        return limit is None or len(self.running) < limit

    def _summary(self) -> TraceSummary:
        s = self.stats
        return TraceSummary(
            event="summary", unit=self.m.unit, capacity=self.m.capacity, requests=self.requests,
            finished=s["finished"], rejected=s["rejected"], steps=self.step, duration_s=round(self.t, 6),
            prompt_tokens=s["prompt"], cached_tokens=s["cached"],
            hit_rate_tokens=s["cached"] / s["prompt"] if s["prompt"] else 0.0, peak_used=s["peak_used"],
            peak_running=s["peak_running"], ttft_s_p50=_quantile(self.ttfts, 0.5),
            ttft_s_p99=_quantile(self.ttfts, 0.99), preemptions=s["preemptions"], recompute_tokens=s["recompute"],
            swap_bytes=s["swap"], evictions=self.m.evictions,
        )


def _quantile(values: list[float], q: float) -> float:
    """The q-quantile by the nearest-rank rule (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 6)
