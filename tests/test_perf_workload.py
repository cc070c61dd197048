"""What a benchmark sends (calc/perf/workload.py, sources/lengths.py): arrivals as `vllm bench serve` draws
them, the ShareGPT length model, lengths read from a file."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.calc.perf.workload import (
    SHAREGPT_MAX_PROMPT,
    SHAREGPT_MAX_TOTAL,
    SHAREGPT_MIN_TOKENS,
    arrival_times,
    fixed_lengths,
    sample_lengths,
    sharegpt_lengths,
)
from kvcalc.errors import InputError
from kvcalc.sources.lengths import load_lengths


def test_poisson_arrivals_hand_checked():
    # vllm bench serve, 4 requests at 2 req/s, seed 0: gaps gamma(1, 1/2) = exponential; numpy's legacy
    # generator draws them as -ln(1 - U) x 0.5 from its uniforms U = 0.5488135, 0.71518937, 0.60276338,
    # 0.54488318 (RandomState(0).random_sample(4)):
    #   gaps 0.39793725, 0.62796538, 0.46161157, 0.39360058; sums 0.39793725, 1.02590263, 1.48751420, 1.88111478
    # then rescaled so the last request leaves at N / R = 4 / 2 = 2 s: x 2 / 1.88111478 = 1.06320064
    sums = [0.39793725, 1.02590263, 1.48751420, 1.88111478]
    expected = [x * 2.0 / 1.88111478 for x in sums]  # 0.42309, 1.09074, 1.58152, 2.0
    assert arrival_times(4, 2.0, seed=0) == pytest.approx(expected, rel=1e-7)


def test_infinite_rate_sends_everything_at_once():
    assert list(arrival_times(5, math.inf)) == [0.0] * 5


def test_burstiness_spreads_gaps_but_keeps_the_rate():
    # gamma(k, 1/(R k)): mean gap 1/R for every k; k -> large makes the gaps even (CV = 1/sqrt(k))
    bursty, even = np.diff(arrival_times(2000, 5.0, 3, 0.25)), np.diff(arrival_times(2000, 5.0, 3, 16.0))
    assert bursty.std() > 4 * even.std()
    assert arrival_times(2000, 5.0, 3, 0.25)[-1] == pytest.approx(400.0)  # N / R


@given(n=st.integers(1, 300), rate=st.floats(0.1, 1000.0), seed=st.integers(0, 2**31 - 1))
@settings(max_examples=30, deadline=None)
def test_arrivals_sorted_and_last_at_n_over_rate(n, rate, seed):
    t = arrival_times(n, rate, seed)
    assert (np.diff(t) >= 0).all()
    assert t[-1] == pytest.approx(n / rate)


def test_bad_rate_is_an_input_error():
    with pytest.raises(InputError):
        arrival_times(3, 0.0)
    with pytest.raises(InputError):
        arrival_times(3, 1.0, burstiness=0.0)


def test_sharegpt_model_matches_the_published_means_and_the_filter():
    # 1,000-prompt vllm bench runs average ~220 prompt / ~200 output tokens (gpustack Qwen3: 217,393 /
    # 201,396; vLLM PR #18566 Llama 3.1: 229,711 / 203,068); the benchmark keeps pairs with both >= 4 tokens,
    # prompt <= 1,024 and prompt + output <= 2,048
    i, o = sample_lengths(sharegpt_lengths(), 40_000, seed=7)
    assert i.mean() == pytest.approx(220, rel=0.03)
    assert o.mean() == pytest.approx(200, rel=0.03)
    assert i.min() >= SHAREGPT_MIN_TOKENS and o.min() >= SHAREGPT_MIN_TOKENS
    assert i.max() <= SHAREGPT_MAX_PROMPT and (i + o).max() <= SHAREGPT_MAX_TOTAL
    assert np.median(o) < o.mean()  # heavy-tailed: a few long answers pull the mean above the median


def test_lengths_are_seeded():
    a = sample_lengths(sharegpt_lengths(), 50, seed=1)
    b = sample_lengths(sharegpt_lengths(), 50, seed=1)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    fixed = sample_lengths(fixed_lengths(300, 20), 3)
    assert list(fixed[0]) == [300] * 3 and list(fixed[1]) == [20] * 3


def test_lengths_file_csv_with_weights(tmp_path):
    path = tmp_path / "lengths.csv"
    path.write_text("input_tokens,output_tokens,weight\n100,10,3\n1000,50,1\n")
    dist = load_lengths(path)
    assert dist.kind == "empirical" and dist.inputs == (100, 1000) and dist.weights == (3.0, 1.0)
    i, o = sample_lengths(dist, 8000, seed=0)
    # weight 3 : 1 -> three quarters of the requests are the short kind
    assert (i == 100).mean() == pytest.approx(0.75, abs=0.02)
    assert set(zip(i.tolist(), o.tolist(), strict=True)) == {(100, 10), (1000, 50)}


def test_lengths_file_json_lines(tmp_path):
    path = tmp_path / "lengths.jsonl"
    path.write_text('{"prompt_tokens": 64, "completion_tokens": 8}\n{"prompt_tokens": 32, "completion_tokens": 4}\n')
    assert load_lengths(path).outputs == (8, 4)


@pytest.mark.parametrize(("text", "message"), [
    ("tokens,out\n1,2\n", "needs an input column"),
    ("input,output\n10,0\n", "output"),
    ("input,output\n10.5,3\n", "whole numbers"),
])
def test_lengths_file_errors(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_lengths(path)
