"""`kvcalc serve` end to end: the JSON contract, figures that agree with each other and with the perf model,
exit codes, autoscaling and the plot."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.perf.defaults import default_coefficients
from kvcalc.calc.perf.model import perf_model
from kvcalc.calc.perf.runs import prefill_step
from kvcalc.calc.serving.launch import launch_command
from kvcalc.calc.serving.replica import load_point, perf_capacity, prefill_chunks, screen_capacity
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.deployment import EngineSettings, Parallel

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "160"}
SERVE = ("serve", "llama-70b", "--gpu", "h100", "--tp", "4", "--rps", "12", "--input", "2k", "--output", "300",
         "--ttft-slo", "1s", "--tpot-slo", "60ms")


def kvcalc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvcalc", *args], capture_output=True, text=True, env=ENV,
                          timeout=120)


@pytest.fixture(scope="module")
def doc() -> dict:
    r = kvcalc(*SERVE, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_json_contract(doc: dict) -> None:
    assert {"replicas", "gpus_total", "per_replica", "cost", "price_source"} <= doc.keys()
    assert {"max_concurrency", "requests_per_s"} <= doc["per_replica"].keys()
    assert {"per_hour", "per_million_input_tokens", "per_million_output_tokens"} <= doc["cost"].keys()
    assert "2026-05-22" in doc["price_source"] and "runpod" in doc["price_source"].lower()
    assert "explain" not in doc


def test_figures_agree_with_each_other(doc: dict) -> None:
    per = doc["per_replica"]
    # Little's law: mu = C / (TTFT + (300 - 1) x TPOT)
    assert per["requests_per_s"] == pytest.approx(per["max_concurrency"] / (per["ttft_s"] + 299 * per["tpot_s"]))
    # replicas = ceil(12 x 1.2 / mu); 4 GPUs each
    assert doc["replicas"] == math.ceil(12 * 1.2 / per["requests_per_s"])
    assert doc["gpus_total"] == 4 * doc["replicas"]
    # cost per hour = GPUs x $2.69 (hardware/h100-sxm.yaml); blended = per hour / (3600 x 12) / 2300 x 1e6
    assert doc["cost"]["per_hour"] == pytest.approx(doc["gpus_total"] * 2.69)
    assert doc["cost"]["per_million_tokens"] == pytest.approx(doc["cost"]["per_hour"] / 43_200 / 2300 * 1e6)
    # the SLOs hold at the concurrency found
    assert per["ttft_s"] <= 1.0 and per["tpot_s"] <= 0.060


def test_capacity_is_the_perf_models_slo_search(doc: dict) -> None:
    from kvcalc.calc.perf.slo import max_concurrency_under_slo

    model, gpu = load_model("llama-70b"), find_gpu("h100")
    plan = plan_deployment(model, gpu, Parallel(tp=4), EngineSettings(), context=2300)
    pm, coeffs = perf_model(plan), default_coefficients(gpu, "vllm")
    slo = max_concurrency_under_slo(pm, coeffs, 2000, 300, 1.0, 0.060)
    per = doc["per_replica"]
    assert (per["max_concurrency"], per["limit"]) == (slo.max_concurrency, slo.binding) == (per["max_concurrency"],
                                                                                            "tpot_slo")
    assert (per["ttft_s"], per["tpot_s"]) == pytest.approx((slo.ttft_s, slo.tpot_s))
    # Little's law over the simulated latencies agrees with the simulation's own request count
    assert per["requests_per_s"] == pytest.approx(slo.requests_per_s, rel=0.01)
    # the cost split uses the prompt's GPU time as one step on its own
    assert per["prefill_s"] == pytest.approx(prefill_step(pm, coeffs, 2000).time_s)


@pytest.mark.parametrize(("name", "tp", "engine"), [("llama-3.1-8b", 1, "vllm"), ("llama-70b", 4, "vllm"),
                                                     ("qwen3-30b-a3b", 1, "vllm"), ("llama-3.1-8b", 1, "sglang")])
def test_the_plan_screen_agrees_with_the_simulation(name: str, tp: int, engine: str) -> None:
    model, gpu = load_model(name), find_gpu("h100")
    plan = plan_deployment(model, gpu, Parallel(tp=tp), EngineSettings(name=engine), context=2300)  # type: ignore[arg-type]
    pm, coeffs = perf_model(plan), default_coefficients(gpu, engine)
    screened = screen_capacity(plan, pm, coeffs, 2000, 300, 1.0, 0.060)
    simulated, _ = perf_capacity(pm, coeffs, 2000, 300, 1.0, 0.060)
    assert screened is not None and simulated is not None
    assert screened.requests_per_s == pytest.approx(simulated.requests_per_s, rel=0.05)
    # and the screen's own answer is the largest concurrency its latencies allow
    above = load_point(pm, coeffs, plan, screened.max_concurrency + 1, 2000, 300)
    if screened.limit == "tpot_slo":
        assert screened.tpot_s <= 0.060 < above.tpot_s
    assert screened.ttft_s <= 1.0


def test_prefill_chunks() -> None:
    # 2000 tokens under a budget of 8192: one chunk; 20,000 under 8192: 8192 + 8192 + 3616
    assert prefill_chunks(2000, 8192) == [(0, 2000)]
    assert prefill_chunks(20_000, 8192) == [(0, 8192), (8192, 8192), (16384, 3616)]


def test_launch_commands_reproduce_the_plan() -> None:
    from kvcalc.calc.quant import parse_quant

    model, gpu = load_model("llama-70b"), find_gpu("h100")
    fp8 = parse_quant("fp8", None, model=model)
    plan = plan_deployment(model, gpu, Parallel(tp=4), EngineSettings(), context=2300, weight_format=fp8)
    launch = launch_command(plan, 96)
    assert launch is not None and launch.command == (
        "vllm serve meta-llama/Llama-3.1-70B --tensor-parallel-size 4 --quantization fp8 --max-model-len 2300 "
        "--gpu-memory-utilization 0.92 --max-num-seqs 96")
    sg = plan_deployment(model, gpu, Parallel(tp=4), EngineSettings(name="sglang"), context=2300)
    frac = sg.assumptions["mem_fraction_static"].value
    assert launch_command(sg, 64).command == (  # type: ignore[union-attr]
        f"python -m sglang.launch_server --model-path meta-llama/Llama-3.1-70B --tp-size 4 --context-length 2300 "
        f"--mem-fraction-static {frac:g} --max-running-requests 64")
    awq = plan_deployment(model, gpu, Parallel(tp=4), EngineSettings(), context=2300,
                          weight_format=parse_quant("awq", None, model=model))
    assert any("AWQ checkpoint" in note for note in launch_command(awq, 8).notes)  # type: ignore[union-attr]


def test_price_override_and_headroom_change_the_bill() -> None:
    cheap = json.loads(kvcalc(*SERVE, "--price", "h100=1.00", "--json").stdout)
    assert cheap["price"]["origin"] == "override" and cheap["cost"]["per_hour"] == pytest.approx(
        cheap["gpus_total"] * 1.00)
    roomy = json.loads(kvcalc(*SERVE, "--headroom", "1.0", "--json").stdout)
    assert roomy["replicas"] == math.ceil(12 * 2.0 / roomy["per_replica"]["requests_per_s"])


def test_no_catalogue_price_means_no_cost_and_a_warning() -> None:
    r = kvcalc("serve", "llama-3.1-8b", "--gpu", "rtx-3090", "--rps", "1", "--input", "500", "--output", "100",
               "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["cost"] is None and doc["price_source"] is None and doc["replicas"] >= 1
    assert "--price rtx-3090=" in r.stderr


def test_impossible_targets_exit_1() -> None:
    r = kvcalc(*SERVE[:-4], "--ttft-slo", "1s", "--tpot-slo", "1ms", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["meets_slo"] is False and "TPOT" in doc["reason"] and doc["replicas"] == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--rps", "0"), "--rps"),
        (("--price", "h100=abc"), "--price"),
        (("--price", "nope=2"), "unknown GPU"),
        (("--ttft-slo", "fast"), "not a duration"),
        (("--headroom", "-1"), "--headroom"),
        (("--traffic", "/no/such.csv"), "no such file"),
        (("--plot", "/tmp/x.svg"), "--traffic"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: tuple[str, ...], needle: str) -> None:
    base = [a for a in SERVE if a not in ("--rps", "12")] if "--rps" in args else list(SERVE)
    r = kvcalc(*base, *args, "--json")
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and needle in r.stderr and len(r.stderr.strip().splitlines()) <= 4


def test_missing_lengths_is_a_usage_error() -> None:
    r = kvcalc("serve", "llama-70b", "--rps", "3")
    assert r.returncode == 2 and "--input" in r.stderr


def test_autoscaling_day_and_plot(tmp_path: Path) -> None:
    day = tmp_path / "day.csv"
    day.write_text("hour,rps\n" + "".join(f"{h},{rate}\n" for h, rate in enumerate([2, 2, 12, 12, 6, 2])))
    svg = tmp_path / "day.svg"
    r = kvcalc(*SERVE, "--traffic", str(day), "--scale-up-delay", "10m", "--plot", str(svg), "--json")
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)["autoscale"]
    mu = json.loads(r.stdout)["per_replica"]["requests_per_s"]
    # desired = ceil(rate / (mu / 1.2)) per hour (target utilization 1 / (1 + headroom))
    assert [row["desired"] for row in a["intervals"]] == [math.ceil(x * 1.2 / mu) for x in (2, 2, 12, 12, 6, 2)]
    assert a["static_replicas"] == math.ceil(12 * 1.2 / mu)
    assert a["gpu_hours"] < a["static_gpu_hours"] and a["violation_intervals"] >= 1  # hour 2 waits 10 min
    assert a["plot"] == str(svg) and svg.read_text().startswith("<svg")
    assert not list(tmp_path.glob(".day.svg.*")), "no temporary file left behind"


def test_human_output_and_explain() -> None:
    r = kvcalc(*SERVE, "--explain")
    assert r.returncode == 0, r.stderr
    for needle in ("Replicas", "$ per million tokens", "vllm serve meta-llama/Llama-3.1-70B", "Little's law",
                   "ceil(12 x 1.2 /"):
        assert needle in r.stdout


def test_request_mix_file_sizes_for_the_mean_and_the_longest(tmp_path: Path) -> None:
    mix = tmp_path / "mix.csv"
    mix.write_text("input_tokens,output_tokens,count\n1000,200,3\n5000,600,1\n")
    r = kvcalc("serve", "llama-3.1-8b", "--gpu", "h100", "--rps", "5", "--mix", str(mix), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    # mean input (3 x 1000 + 5000) / 4 = 2000, mean output (3 x 200 + 600) / 4 = 300; longest 5000 + 600
    assert (doc["workload"]["mix"]["input"]["mean"], doc["workload"]["mix"]["output"]["mean"]) == (2000, 300)
    assert doc["context"] == 5600
    assert doc["cost"]["per_million_tokens"] == pytest.approx(doc["cost"]["per_hour"] / (3600 * 5) / 2300 * 1e6)
    both = kvcalc("serve", "llama-3.1-8b", "--rps", "5", "--mix", str(mix), "--input", "1k", "--output", "1")
    assert both.returncode == 2 and "not both" in both.stderr


def test_queue_policy_from_the_cli(tmp_path: Path) -> None:
    day = tmp_path / "day.csv"
    day.write_text("time,rps\n00:00,2\n00:30,12\n01:00,2\n")
    r = kvcalc(*SERVE, "--traffic", str(day), "--policy", "queue", "--scale-up-delay", "0", "--json")
    a = json.loads(r.stdout)["autoscale"]
    assert a["interval_s"] == 1800 and a["policy"]["kind"] == "queue" and a["violation_intervals"] == 0
    bad = kvcalc(*SERVE, "--traffic", str(day), "--policy", "vibes")
    assert bad.returncode == 2 and "--policy" in bad.stderr
