"""Hand-worked serving math: Little's law, replicas, utilization, cost split, cold start, mixes, Pareto."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvcalc.calc.serving.capacity import ReplicaCapacity, request_latency_s, requests_per_s
from kvcalc.calc.serving.coldstart import cold_start
from kvcalc.calc.serving.cost import input_share, token_cost
from kvcalc.calc.serving.fleet import replicas_for_load, size_fleet, utilization
from kvcalc.calc.serving.mix import RequestShape, fixed_mix, percentile, summarize_mix
from kvcalc.calc.serving.pareto import pareto_front


def test_littles_law_request_rate() -> None:
    # W = ttft + (out - 1) x tpot = 0.5 + 300 x 0.05 = 15.5 s; 32 in flight -> 32 / 15.5 = 2.0645 req/s
    assert request_latency_s(0.5, 0.05, 301) == pytest.approx(15.5)
    assert requests_per_s(32, 0.5, 0.05, 301) == pytest.approx(32 / 15.5)
    # one output token: the request is done at its first token
    assert request_latency_s(0.2, 0.05, 1) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        request_latency_s(0.2, 0.05, 0)


def test_replica_capacity_record() -> None:
    cap = ReplicaCapacity(max_concurrency=32, ttft_s=0.5, tpot_s=0.05, prefill_s=0.2, output_tokens=301)
    assert cap.latency_s == pytest.approx(15.5)
    assert cap.requests_per_s == pytest.approx(2.064516129)
    # decode GPU time per request: 300 steps of 0.05 s, each shared by 32 requests = 0.46875 s
    assert cap.decode_s == pytest.approx(0.46875)


def test_replicas_for_a_load_with_headroom() -> None:
    mu = 32 / 15.5  # 2.0645 req/s per replica
    # 12 req/s x 1.2 = 14.4 req/s needed; 14.4 / 2.0645 = 6.975 -> 7 replicas
    assert replicas_for_load(12, mu, 0.2) == 7
    # without headroom: 12 / 2.0645 = 5.8125 -> 6
    assert replicas_for_load(12, mu, 0.0) == 6
    # utilization of 7 replicas: 12 / (7 x 2.0645) = 12 / 14.4516 = 0.8304
    assert utilization(12, 7, mu) == pytest.approx(12 / (7 * 32 / 15.5))
    # 12 x 1.2 / 2.4 is 6.000000000000001 in floating point: still 6 replicas, not 7
    assert replicas_for_load(12, 2.4, 0.2) == 6
    assert replicas_for_load(0, 2.4, 0.2) == 0


def test_size_fleet_counts_gpus_and_gpu_hours() -> None:
    # 7 replicas of TP 4 = 28 GPUs; 28 x 24 = 672 GPU-hours a day
    fleet = size_fleet(12, 32 / 15.5, gpus_per_replica=4, headroom=0.2)
    assert (fleet.replicas, fleet.gpus_total, fleet.gpu_hours_per_day) == (7, 28, 672.0)


def test_cost_per_token_split_by_phase_time() -> None:
    # 7 GPUs at $2.69 = $18.83/h; 12 req/s = 43,200 req/h -> $18.83 / 43,200 = $0.000435880 per request
    share = input_share(prefill_s=0.2, decode_s=0.46875)  # 0.2 / 0.66875 = 0.299065
    assert share == pytest.approx(0.2 / 0.66875)
    cost = token_cost(7, 2.69, 12.0, input_tokens=2000, output_tokens=300, share_of_input=share)
    per_request = 18.83 / 43_200
    assert cost.per_hour == pytest.approx(18.83)
    assert cost.per_day == pytest.approx(18.83 * 24)
    assert cost.per_request == pytest.approx(per_request)
    # input: 0.000435880 x 0.299065 / 2000 x 1e6 = $0.065178 per million input tokens
    assert cost.per_million_input_tokens == pytest.approx(per_request * 0.2 / 0.66875 / 2000 * 1e6)
    assert cost.per_million_input_tokens == pytest.approx(0.065178, rel=1e-4)
    # output: 0.000435880 x 0.700935 / 300 x 1e6 = $1.018424 per million output tokens
    assert cost.per_million_output_tokens == pytest.approx(1.018424, rel=1e-4)
    # blended: 0.000435880 / 2300 x 1e6 = $0.189513 per million tokens
    assert cost.per_million_tokens == pytest.approx(0.189513, rel=1e-4)
    # the split adds back up to the request's cost
    assert (2000 * cost.per_million_input_tokens + 300 * cost.per_million_output_tokens) / 1e6 == pytest.approx(
        cost.per_request)


def test_cold_start() -> None:
    # 16.06e9 bytes at 1.3e9 B/s = 12.354 s, + 60 s engine start-up = 72.354 s
    cs = cold_start(16_060_000_000, 1.3e9, 60.0)
    assert cs.load_s == pytest.approx(16.06 / 1.3)
    assert cs.total_s == pytest.approx(16.06 / 1.3 + 60.0)


def test_mix_percentiles_are_nearest_rank_and_weighted() -> None:
    assert percentile([100, 200, 300, 400], [1, 1, 1, 1], 0.5) == 200  # cumulative 2/4 reaches 0.5 at 200
    assert percentile([100, 200, 300, 400], [1, 1, 1, 1], 0.9) == 400
    # weights 3:1 -> 75% of requests are 100 tokens: p50 = 100, p90 = 1000, mean (300 + 1000) / 4 = 325
    mix = summarize_mix([RequestShape(input_tokens=100, output_tokens=50, weight=3),
                         RequestShape(input_tokens=1000, output_tokens=10, weight=1)], "t")
    assert (mix.input.mean, mix.input.p50, mix.input.p90, mix.input.max) == (325, 100, 1000, 1000)
    # outputs: (3 x 50 + 10) / 4 = 40
    assert mix.output.mean == 40
    assert mix.longest_request_tokens == 1010  # max(100 + 50, 1000 + 10)
    fixed = fixed_mix(2000, 300)
    assert (fixed.input.mean, fixed.output.p99, fixed.longest_request_tokens) == (2000, 300, 2300)


def test_pareto_front_keeps_only_non_dominated() -> None:
    points = [(1.0, 0.09), (2.0, 0.05), (1.5, 0.10), (3.0, 0.05), (2.5, 0.03), (1.0, 0.12)]
    front = pareto_front(points, x=lambda p: p[0], y=lambda p: p[1])
    # (1.5, .10) is beaten by (1.0, .09); (3.0, .05) by (2.0, .05); (1.0, .12) by (1.0, .09)
    assert front == [(1.0, 0.09), (2.0, 0.05), (2.5, 0.03)]


positive = st.floats(min_value=0.01, max_value=1e4, allow_nan=False, allow_infinity=False)
fraction = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)


@given(demand=positive, more=positive, mu=positive, headroom=fraction)
def test_more_load_never_needs_fewer_replicas(demand: float, more: float, mu: float, headroom: float) -> None:
    assert replicas_for_load(demand + more, mu, headroom) >= replicas_for_load(demand, mu, headroom)


@given(demand=positive, mu=positive, headroom=fraction, extra=fraction)
def test_more_headroom_never_fewer_replicas(demand: float, mu: float, headroom: float, extra: float) -> None:
    assert replicas_for_load(demand, mu, headroom + extra) >= replicas_for_load(demand, mu, headroom)


@given(demand=positive, mu=positive, headroom=fraction)
def test_replicas_cover_the_load_with_headroom(demand: float, mu: float, headroom: float) -> None:
    n = replicas_for_load(demand, mu, headroom)
    assert n * mu >= demand * (1 + headroom) * (1 - 2e-9)  # ceil_ratio forgives 1e-9 relative dust
    assert (n - 1) * mu < demand * (1 + headroom)  # and not one more than needed


@given(price=positive, cheaper=st.floats(min_value=0.0, max_value=0.99), demand=positive,
       share=st.floats(min_value=0.0, max_value=1.0))
def test_a_cheaper_price_never_raises_cost_per_token(price: float, cheaper: float, demand: float,
                                                     share: float) -> None:
    high = token_cost(8, price, demand, 2000, 300, share)
    low = token_cost(8, price * (1 - cheaper), demand, 2000, 300, share)
    assert low.per_million_tokens <= high.per_million_tokens
    assert low.per_million_input_tokens <= high.per_million_input_tokens
    assert low.per_million_output_tokens <= high.per_million_output_tokens


@given(c=st.integers(1, 4096), ttft=st.floats(0.001, 30), tpot=st.floats(0.001, 1), out=st.integers(1, 32_000))
def test_requests_per_s_times_latency_is_concurrency(c: int, ttft: float, tpot: float, out: int) -> None:
    assert math.isclose(requests_per_s(c, ttft, tpot, out) * request_latency_s(ttft, tpot, out), c)
