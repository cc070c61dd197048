"""Autoscaling over a traffic profile: replicas per interval under a policy, vs static peak provisioning.

The profile is a day of intervals (hourly or finer), each with a mean request rate. At each interval start
the autoscaler picks the replicas it wants (`desired`), clamped to [min_replicas, max_replicas]:

- target utilization: `desired = ceil(demand / (per_replica_rps x target_utilization))`;
- queue length (KEDA-style, on vLLM's `num_requests_running + num_requests_waiting`):
  `desired = ceil((demand x latency + backlog) / target_queue_per_replica)`, where `demand x latency` is the
  requests in flight by Little's law and `backlog` the requests still waiting from earlier intervals.

Scaling down is immediate (stopping a replica is quick). Scaling up is not: a new replica serves only
`scale_up_delay_s` after it is requested (cold start: weight load + engine start-up, coldstart.py), but is billed
from the request. Within an interval the fleet's capacity is `ready replicas x per_replica_rps`; while demand
exceeds it the SLOs are violated: those seconds are `shortfall_s` and the requests that arrived beyond capacity
`late_requests` (the integral of demand - capacity). Late requests queue: the backlog grows by the excess and
drains at the spare capacity.

The decision at an interval's start uses that interval's rate (a finer profile is closer to a reactive
scaler). The profile is one day that repeats: the fleet enters the first interval as the last one's demand
would have left it. Static peak provisioning keeps `max(min_replicas, replicas_for_load(peak, headroom))` all day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kvcalc.calc.serving.fleet import ceil_ratio, replicas_for_load
from kvcalc.spec.base import record

SECONDS_PER_HOUR = 3600.0


@record
class ScalingPolicy:
    kind: Literal["utilization", "queue"]
    min_replicas: int
    max_replicas: int
    scale_up_delay_s: float
    target_utilization: float = 0.8
    target_queue_per_replica: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas")
        if not 0 < self.target_utilization <= 1:
            raise ValueError("target utilization must be in (0, 1]")
        if self.kind == "queue" and self.target_queue_per_replica <= 0:
            raise ValueError("the queue policy needs a positive target queue per replica")
        if self.scale_up_delay_s < 0:
            raise ValueError("the scale-up delay must not be negative")


def desired_replicas(policy: ScalingPolicy, demand_rps: float, per_replica_rps: float, latency_s: float,
                     backlog: float) -> int:
    """The replicas `policy` asks for at this demand (module docstring), clamped to [min, max]."""
    if policy.kind == "utilization":
        want = ceil_ratio(demand_rps, per_replica_rps * policy.target_utilization) if demand_rps > 0 else 0
    else:
        in_flight = demand_rps * latency_s + backlog
        want = ceil_ratio(in_flight, policy.target_queue_per_replica) if in_flight > 0 else 0
    return min(policy.max_replicas, max(policy.min_replicas, want))


@record
class IntervalResult:
    start_s: float
    duration_s: float
    demand_rps: float
    desired: int
    ready_at_start: int
    ready_at_end: int
    billed_replica_s: float
    shortfall_s: float
    late_requests: float
    backlog_end: float


@record
class AutoscaleTrace:
    """Per-interval results and the day's totals (replica-hours include replicas still starting)."""

    policy: ScalingPolicy
    per_replica_rps: float
    intervals: list[IntervalResult]
    replica_hours: float
    peak_replicas: int
    static_replicas: int
    static_replica_hours: float
    violation_intervals: int
    shortfall_s: float
    late_requests: float
    total_requests: float


@dataclass
class _Fleet:
    """Mutable simulation state: replicas serving and replicas starting."""

    ready: int
    pending: list[tuple[float, int]]  # (ready time, replicas), earliest first

    @property
    def starting(self) -> int:
        return sum(n for _, n in self.pending)


def _rescale(fleet: _Fleet, want: int, now: float, delay: float) -> None:
    """Scale to `want`: down at once (cancel starting replicas first), up after `delay`."""
    if want > fleet.ready + fleet.starting:
        fleet.pending.append((now + delay, want - fleet.ready - fleet.starting))
        return
    surplus = fleet.ready + fleet.starting - want
    while surplus > 0 and fleet.pending:
        when, n = fleet.pending.pop()
        if n > surplus:
            fleet.pending.append((when, n - surplus))
        surplus -= min(n, surplus)
    fleet.ready -= surplus


def _mature(fleet: _Fleet, now: float) -> None:
    """Replicas whose start-up has finished by `now` start serving."""
    fleet.ready += sum(n for t, n in fleet.pending if t <= now)
    fleet.pending = [(t, n) for t, n in fleet.pending if t > now]


def _run_interval(fleet: _Fleet, start: float, duration: float, demand: float, mu: float,
                  backlog: float) -> tuple[float, float, float, float]:
    """Advance `fleet` through one interval: (billed replica-s, shortfall s, late requests, backlog)."""
    billed = shortfall = late = 0.0
    now, end = start, start + duration
    while now < end:
        _mature(fleet, now)
        nxt = min([end] + [t for t, _ in fleet.pending if t > now])
        seg = nxt - now
        billed += (fleet.ready + fleet.starting) * seg
        excess = (demand - fleet.ready * mu) * seg
        if excess > 1e-9 * max(1.0, demand * seg):
            shortfall += seg
            late += excess
        backlog = max(0.0, backlog + excess)
        now = nxt
    _mature(fleet, now)
    return billed, shortfall, late, backlog


def simulate(demand_rps: list[float], interval_s: float, per_replica_rps: float, latency_s: float,
             policy: ScalingPolicy, headroom: float) -> AutoscaleTrace:
    """Replicas per interval of `demand_rps` under `policy` (module docstring)."""
    if not demand_rps or interval_s <= 0 or per_replica_rps <= 0:
        raise ValueError("need a non-empty profile, a positive interval and a positive per-replica capacity")
    fleet = _Fleet(ready=desired_replicas(policy, demand_rps[-1], per_replica_rps, latency_s, 0.0), pending=[])
    backlog, results = 0.0, []
    for i, demand in enumerate(demand_rps):
        start = i * interval_s
        want = desired_replicas(policy, demand, per_replica_rps, latency_s, backlog)
        _rescale(fleet, want, start, policy.scale_up_delay_s)
        ready_at_start = fleet.ready
        billed, short, late, backlog = _run_interval(fleet, start, interval_s, demand, per_replica_rps, backlog)
        results.append(IntervalResult(
            start_s=start, duration_s=interval_s, demand_rps=demand, desired=want, ready_at_start=ready_at_start,
            ready_at_end=fleet.ready, billed_replica_s=billed, shortfall_s=short,
            late_requests=late, backlog_end=backlog,
        ))
    static = max(policy.min_replicas, replicas_for_load(max(demand_rps), per_replica_rps, headroom))
    return AutoscaleTrace(
        policy=policy, per_replica_rps=per_replica_rps, intervals=results,
        replica_hours=sum(r.billed_replica_s for r in results) / SECONDS_PER_HOUR,
        peak_replicas=max(max(r.desired, r.ready_at_end) for r in results),
        static_replicas=static, static_replica_hours=static * len(demand_rps) * interval_s / SECONDS_PER_HOUR,
        violation_intervals=sum(1 for r in results if r.shortfall_s > 0),
        shortfall_s=sum(r.shortfall_s for r in results),
        late_requests=sum(r.late_requests for r in results),
        total_requests=sum(d * interval_s for d in demand_rps),
    )
