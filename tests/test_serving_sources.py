"""Traffic profiles and request-mix files: formats, inferred intervals, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvcalc.errors import InputError
from kvcalc.sources.mix import load_mix
from kvcalc.sources.traffic import load_traffic


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_hourly_profile_with_hour_column(tmp_path: Path) -> None:
    p = load_traffic(_write(tmp_path, "day.csv", "hour,rps\n0,2\n1,2.5\n2,6\n"))
    assert (p.interval_s, p.rps) == (3600.0, [2.0, 2.5, 6.0])


def test_clock_times_set_a_finer_interval(tmp_path: Path) -> None:
    p = load_traffic(_write(tmp_path, "d.csv", "time,qps\n00:00,1\n00:15,2\n00:30,3\n"))
    assert (p.interval_s, p.rps) == (900.0, [1.0, 2.0, 3.0])


def test_no_time_column_uses_the_default_interval(tmp_path: Path) -> None:
    p = load_traffic(_write(tmp_path, "d.csv", "requests_per_s\n1\n2\n"), default_interval_s=600)
    assert p.interval_s == 600


def test_json_lines_profile(tmp_path: Path) -> None:
    p = load_traffic(_write(tmp_path, "d.jsonl", '{"start_s": 0, "rps": 1}\n{"start_s": 60, "rps": 4}\n'))
    assert (p.interval_s, p.rps) == (60.0, [1.0, 4.0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hour,load\n0,1\n", "no rate column"),
        ("hour,rps\n0,1\n1,nan\n", "between 0 and"),
        ("hour,rps\n0,1\n1,-2\n", "between 0 and"),
        ("hour,rps\n0,1\n2,1\n3,1\n", "equally spaced"),
        ("hour,rps\n0,0\n1,0\n", "every rate is zero"),
        ("time,rps\n0:00,1\n0:75,1\n", "not a clock time"),
        ("hour,rps\n0,1,3\n", "3 fields"),
        ('{"rps": NaN}\n', "not a JSON object"),
        ("hour,rps\n", "no rows"),
    ],
)
def test_bad_profiles_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_traffic(_write(tmp_path, "bad.csv", text))


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_traffic(tmp_path / "nope.csv")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(InputError, match="not UTF-8"):
        load_mix(binary)


def test_mix_from_csv_with_weights(tmp_path: Path) -> None:
    mix = load_mix(_write(tmp_path, "m.csv", "input_tokens,output_tokens,count\n100,50,3\n1000,10,1\n"))
    # mean input (3 x 100 + 1000) / 4 = 325; mean output (3 x 50 + 10) / 4 = 40
    assert (mix.requests, mix.input.mean, mix.output.mean, mix.longest_request_tokens) == (2, 325, 40, 1010)


def test_mix_from_json_lines(tmp_path: Path) -> None:
    text = '{"prompt_tokens": 200, "completion_tokens": 20}\n\n{"prompt_tokens": 400, "completion_tokens": 60}\n'
    mix = load_mix(_write(tmp_path, "m.jsonl", text))
    assert (mix.input.mean, mix.output.mean, mix.input.p50) == (300, 40, 200)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,2\n", "needs an input column"),
        ("isl,osl\n10,0\n", "between 1 and"),
        ("isl,osl\n10.5,3\n", "whole numbers"),
        ("isl,osl,weight\n10,3,0\n", "every weight is zero"),
        ('[1, 2]\n', "no rows"),
    ],
)
def test_bad_mixes_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_mix(_write(tmp_path, "bad.csv", text))
