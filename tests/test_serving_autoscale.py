"""Autoscaling traces on small synthetic days, with the replica counts worked out by hand."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.calc.serving.autoscale import ScalingPolicy, desired_replicas, simulate


def _util(delay: float, target: float = 1.0, lo: int = 1, hi: int = 10) -> ScalingPolicy:
    return ScalingPolicy(kind="utilization", min_replicas=lo, max_replicas=hi, scale_up_delay_s=delay,
                         target_utilization=target)


def test_utilization_policy_day_with_a_30_minute_scale_up_delay() -> None:
    # One replica sustains 2 req/s. Hourly demand 2, 2, 6, 6, 2 req/s; target utilization 1.0 -> desired
    # ceil(d / 2) = 1, 1, 3, 3, 1. The day repeats, so hour 0 starts with the 1 replica hour 4 needed.
    trace = simulate([2, 2, 6, 6, 2], 3600, 2.0, 10.0, _util(1800), headroom=0.0)
    assert [r.desired for r in trace.intervals] == [1, 1, 3, 3, 1]
    # hour 2: 2 more replicas requested at 7200 s serve from 9000 s; until then 1 replica (2 req/s) meets
    # 6 req/s: 1800 s short, 4 req/s x 1800 s = 7200 requests late. Hour 4 scales down at once.
    assert [r.ready_at_start for r in trace.intervals] == [1, 1, 1, 3, 1]
    assert [r.ready_at_end for r in trace.intervals] == [1, 1, 3, 3, 1]
    assert [r.shortfall_s for r in trace.intervals] == [0, 0, 1800, 0, 0]
    assert trace.late_requests == pytest.approx(7200)
    assert trace.violation_intervals == 1
    # billed replica-seconds: 3600 + 3600 + (3 x 1800 booting-and-serving + 3 x 1800) + 3 x 3600 + 3600
    # = 32,400 s = 9 replica-hours; static peak provisioning: 3 replicas x 5 h = 15 replica-hours
    assert [r.billed_replica_s for r in trace.intervals] == [3600, 3600, 10800, 10800, 3600]
    assert trace.replica_hours == pytest.approx(9.0)
    assert (trace.static_replicas, trace.static_replica_hours) == (3, 15.0)
    assert trace.peak_replicas == 3
    assert trace.total_requests == pytest.approx((2 + 2 + 6 + 6 + 2) * 3600)


def test_no_delay_means_no_violation() -> None:
    trace = simulate([2, 2, 6, 6, 2], 3600, 2.0, 10.0, _util(0), headroom=0.0)
    assert trace.violation_intervals == 0 and trace.late_requests == 0
    assert trace.replica_hours == pytest.approx(1 + 1 + 3 + 3 + 1)


def test_target_utilization_and_min_max_clamp() -> None:
    # target 0.8: desired = ceil(d / (2 x 0.8)) = ceil(d / 1.6): 0 -> min 2; 3.2 -> 2; 3.3 -> 3; 40 -> max 5
    policy = _util(0, target=0.8, lo=2, hi=5)
    assert [desired_replicas(policy, d, 2.0, 10.0, 0.0) for d in (0, 3.2, 3.3, 40)] == [2, 2, 3, 5]
    # capped at 5 replicas (10 req/s) against 40 req/s: short the whole hour, 30 x 3600 late
    trace = simulate([40.0], 3600, 2.0, 10.0, policy, headroom=0.25)
    assert trace.intervals[0].ready_at_end == 5 and trace.late_requests == pytest.approx(30 * 3600)
    # static peak: ceil(40 x 1.25 / 2) = 25 replicas, not clamped (that is what static would provision)
    assert trace.static_replicas == 25


def test_queue_policy_reacts_to_the_backlog() -> None:
    # Queue policy: in flight = demand x latency (10 s) + backlog; target 20 per replica; max 10.
    policy = ScalingPolicy(kind="queue", min_replicas=0, max_replicas=10, scale_up_delay_s=600,
                           target_queue_per_replica=20)
    trace = simulate([2, 6, 2], 3600, 2.0, 10.0, policy, headroom=0.0)
    # hour 0: 2 x 10 / 20 = 1 replica (entered with the 1 that hour 2's demand wants).
    # hour 1: 6 x 10 / 20 = 3; 2 more serve from 4200 s: 600 s at 2 req/s vs 6 -> 2400 late, backlog 2400.
    # hour 2: (2 x 10 + 2400) / 20 = 121 -> max 10; 7 more from 7800 s. 3 replicas (6 req/s) vs 2 req/s
    #         drain the 2400 backlog in exactly 600 s.
    assert [r.desired for r in trace.intervals] == [1, 3, 10]
    assert [r.ready_at_end for r in trace.intervals] == [1, 3, 10]
    assert [r.late_requests for r in trace.intervals] == pytest.approx([0, 2400, 0])
    assert [r.backlog_end for r in trace.intervals] == pytest.approx([0, 2400, 0])
    # billed: 3600 + 3 x 3600 + (10 x 600 + 10 x 3000) = 3600 + 10800 + 36000 = 50,400 s = 14 replica-hours
    assert trace.replica_hours == pytest.approx(14.0)


def test_scaling_down_cancels_starting_replicas_first() -> None:
    # 5-minute intervals, 20-minute delay: demand 2 -> 8 -> 2 req/s. At 300 s 3 replicas are requested
    # (ready at 1500 s); at 600 s demand falls, so they are cancelled before they serve: 0 late after.
    trace = simulate([2, 8, 2, 2, 2, 2], 300, 2.0, 10.0, _util(1200), headroom=0.0)
    assert [r.ready_at_end for r in trace.intervals] == [1, 1, 1, 1, 1, 1]
    # billed: 300 + 4 x 300 (1 serving + 3 starting) + 4 x 300 = 6,600 replica-seconds
    assert sum(r.billed_replica_s for r in trace.intervals) == pytest.approx(300 + 1200 + 4 * 300)
    assert trace.late_requests == pytest.approx(6 * 300)


def test_bad_policies_are_rejected() -> None:
    with pytest.raises(ValueError):
        ScalingPolicy(kind="utilization", min_replicas=3, max_replicas=2, scale_up_delay_s=0)
    with pytest.raises(ValueError):
        ScalingPolicy(kind="queue", min_replicas=0, max_replicas=2, scale_up_delay_s=0)
    with pytest.raises(ValueError):
        simulate([], 3600, 2.0, 10.0, _util(0), headroom=0.0)


profile = st.lists(st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=50)), min_size=1, max_size=24)


@settings(max_examples=60, deadline=None)
@given(demand=profile, delay=st.floats(0, 7200), more=st.floats(0, 7200))
def test_a_longer_delay_never_serves_more_on_time(demand: list[float], delay: float, more: float) -> None:
    fast = simulate(demand, 3600, 2.0, 10.0, _util(delay, hi=100), headroom=0.0)
    slow = simulate(demand, 3600, 2.0, 10.0, _util(delay + more, hi=100), headroom=0.0)
    assert slow.late_requests >= fast.late_requests - 1e-6


@settings(max_examples=60, deadline=None)
@given(demand=profile)
def test_autoscaling_never_bills_more_than_static_peak_without_delay(demand: list[float]) -> None:
    trace = simulate(demand, 3600, 2.0, 10.0, _util(0, target=1 / 1.2, lo=0, hi=1000), headroom=0.2)
    assert trace.replica_hours <= trace.static_replica_hours + 1e-9
    assert trace.late_requests == 0
