"""`kvcalc perf` and its report: JSON contract, schema, errors, calibration (through the CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kvcalc.errors import InputError
from kvcalc.report.perf import PerfReport, perf_report
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.deployment import EngineSettings, Parallel

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}


def kvcalc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvcalc", *args], capture_output=True, text=True, env=ENV,
                          timeout=120)


def test_perf_json_contract_and_schema():
    r = kvcalc("perf", "llama-3.1-8b", "--gpu", "h100", "--input", "2k", "--output", "256", "--concurrency", "8",
               "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    for key in ("ttft_s", "tpot_s", "tokens_per_s_per_user", "tokens_per_s_total", "ridge_point",
                "efficiencies"):
        assert key in doc
    assert {"flops", "bytes", "bound"} <= doc["prefill"].keys()
    assert {"flops", "bytes", "bound", "arithmetic_intensity"} <= doc["decode"].keys()
    assert doc["input_tokens"] == 2000  # "2k" = 2,000
    assert doc["decode"]["bound"] == "memory" and doc["prefill"]["bound"] == "compute"
    # H100 SXM bf16 ridge point: 989.4e12 / 3.35e12 = 295.3 FLOP/B
    assert doc["ridge_point"] == pytest.approx(295.34, abs=0.01)
    assert doc["efficiencies"]["weight_bw_eff"]["value"] == 0.902
    assert "hbm_copy" in doc["efficiencies"]["weight_bw_eff"]["source"]
    assert doc["tokens_per_s_per_user"] == pytest.approx(1 / doc["tpot_s"])
    from pydantic import TypeAdapter

    TypeAdapter(PerfReport).validate_python(doc)  # the document matches `kvcalc schema perf`
    schema = json.loads(kvcalc("schema", "perf").stdout)
    assert {"ttft_s", "tpot_s", "prefill", "decode", "efficiencies"} <= set(schema["properties"])


def test_perf_human_and_explain():
    r = kvcalc("perf", "qwen3-30b-a3b", "--gpu", "h100", "--batch", "4", "--explain")
    assert r.returncode == 0, r.stderr
    for text in ("TTFT", "ridge point", "Step terms", "MoE: 128 experts", "How each figure was computed",
                 "decode memory time"):
        assert text in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--batch", "2", "--concurrency", "2"), "exactly one of"),
        ((), "exactly one of"),
        (("--batch", "1", "--input", "lots"), "--input"),
        (("--batch", "1", "--calibration", "/nonexistent/cal.yaml"), "cannot read calibration"),
        (("--batch", "1", "--engine", "tgi"), "unknown engine"),
        (("--request-rate", "fast"), "--request-rate"),
        (("--request-rate", "-2"), "--request-rate"),
        (("--request-rate", "5", "--concurrency", "4"), "exactly one of"),
        (("--batch", "4", "--num-prompts", "10"), "--num-prompts"),
        (("--request-rate", "5", "--input-dist", "zipf"), "--input-dist"),
        (("--request-rate", "5", "--lengths-file", "/nonexistent/lengths.csv"), "no such file"),
    ],
)
def test_perf_bad_input_exit_2(args, message):
    r = kvcalc("perf", "llama-3.1-8b", *args)
    assert r.returncode == 2 and r.stdout == ""
    assert message in r.stderr and "Traceback" not in r.stderr


def test_calibration_replaces_defaults(tmp_path):
    path = tmp_path / "h100.yaml"
    path.write_text("kind: kvcalc-calibration\nversion: 1\ncard: NVIDIA H100 80GB HBM3\ndriver: '580'\n"
                    "torch: '2.11'\ndate: '2026-11-28'\ncoefficients:\n  weight_bw_eff: 0.45\n")
    base = json.loads(kvcalc("perf", "llama-3.1-8b", "--batch", "1", "--json").stdout)
    cal = json.loads(kvcalc("perf", "llama-3.1-8b", "--batch", "1", "--json", "--calibration", str(path)).stdout)
    assert cal["efficiencies"]["weight_bw_eff"]["value"] == 0.45
    assert str(path) in cal["efficiencies"]["weight_bw_eff"]["source"]
    assert cal["tpot_s"] > base["tpot_s"] * 1.5  # half the bandwidth: the weight read takes twice as long


def test_static_batch_uses_offline_budgets_and_no_front_end():
    model, gpu = load_model("llama-3.1-8b"), find_gpu("h100")
    report = perf_report(model, gpu, Parallel(), EngineSettings(usage="llm"), input_tokens=32, output_tokens=128,
                         batch=8)
    assert report.efficiencies["frontend_latency_s"].value == 0.0
    assert report.mode == "batch" and report.running_cap >= 8
    assert report.e2e_s == pytest.approx(report.ttft_s + 127 * report.tpot_s)


def test_long_context_warning_and_kv_per_request():
    model, gpu = load_model("llama-3.1-8b"), find_gpu("h200")
    report = perf_report(model, gpu, Parallel(), EngineSettings(), input_tokens=120_000, output_tokens=1000,
                         concurrency=1)
    # 121,000 tokens x 131,072 B = 15,859,712,000 B of KV for the request
    assert report.long_context.kv_bytes_per_request == 121_000 * 131_072
    assert report.long_context.attention_share_of_prefill > 0.3  # the quadratic term matters at 120k
    # past the scaled context (131,072) vLLM refuses to start: an input error, not a silent estimate
    with pytest.raises(InputError, match="max_model_len"):
        perf_report(model, gpu, Parallel(), EngineSettings(), input_tokens=140_000, output_tokens=100,
                    concurrency=1)


def test_batch_command_json():
    r = kvcalc("batch", "llama-3.1-8b", "--gpu", "h100", "--input", "1k", "--output", "128", "--ttft-slo",
               "500ms", "--tpot-slo", "20ms", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {"max_concurrency", "binding", "ttft_s", "tpot_s"} <= doc.keys()
    assert doc["binding"] in ("ttft_slo", "tpot_slo", "kv_cache", "max_num_seqs")
    assert doc["tpot_s"] <= 0.020 and doc["ttft_s"] <= 0.5
    assert [b["max_num_batched_tokens"] for b in doc["budgets"]][:2] == [512, 1024]
    assert doc["disaggregation"]["kv_bytes_per_request"] == 1000 * 131_072


@pytest.mark.parametrize("slo", ["fast", "-5ms", "0"])
def test_batch_bad_duration(slo):
    r = kvcalc("batch", "llama-3.1-8b", "--ttft-slo", slo)
    assert r.returncode == 2 and "--ttft-slo" in r.stderr and r.stdout == ""


def test_python_api_matches_cli():
    import kvcalc

    report = kvcalc.perf("llama-3.1-8b", gpu="h100", input_tokens="2k", output_tokens=256, concurrency=8)
    doc = json.loads(kvcalc_cli_json("perf", "llama-3.1-8b", "--input", "2k", "--output", "256",
                                     "--concurrency", "8"))
    assert report.tpot_s == pytest.approx(doc["tpot_s"]) and report.ttft_s == pytest.approx(doc["ttft_s"])
    slo = kvcalc.batch("llama-3.1-8b", ttft_slo="500ms", tpot_slo=0.02, input_tokens=1000, output_tokens=128)
    assert slo.tpot_s <= 0.02 and slo.max_concurrency >= 1


def kvcalc_cli_json(*args: str) -> str:
    r = kvcalc(*args, "--json")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_perf_request_rate_json_validates():
    r = kvcalc("perf", "llama-3.1-8b", "--gpu", "h100", "--request-rate", "8", "--num-prompts", "200",
               "--input-dist", "sharegpt", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    from pydantic import TypeAdapter

    TypeAdapter(PerfReport).validate_python(doc)
    assert doc["mode"] == "rate" and doc["request_rate"] == 8 and doc["num_prompts"] == 200
    assert doc["lengths"] == "sharegpt" and 150 < doc["mean_input_tokens"] < 300
    # an open loop below capacity: the last request leaves at N / R = 25 s and the run ends when it is done;
    # requests/s = N / duration, as vllm bench serve divides
    assert 25 < doc["duration_s"] < 25 + 10 and doc["requests_per_s"] == pytest.approx(200 / doc["duration_s"])
    assert doc["ttft_p99_s"] >= doc["ttft_p50_s"] and doc["preemptions"] == 0
    schema = json.loads(kvcalc("schema", "perf").stdout)
    assert {"request_rate", "num_prompts", "lengths", "ttft_p99_s", "duration_s"} <= set(schema["properties"])


def test_perf_burst_from_a_lengths_file_and_dp(tmp_path):
    path = tmp_path / "lengths.csv"
    path.write_text("input_tokens,output_tokens\n1000,100\n3000,300\n")
    one = json.loads(kvcalc_cli_json("perf", "llama-3.1-8b", "--request-rate", "inf", "--num-prompts", "64",
                                     "--lengths-file", str(path)))
    two = json.loads(kvcalc_cli_json("perf", "llama-3.1-8b", "--request-rate", "inf", "--num-prompts", "64",
                                     "--lengths-file", str(path), "--dp", "2"))
    assert one["request_rate"] is None and one["max_request_tokens"] == 3300
    # two replicas each prefill half the burst (TTFT falls) and decode half the batch in steps that cost
    # about as much (memory-bound): more throughput, not twice as much
    assert two["gpus"] == 2 and 1.2 * one["total_tokens_per_s"] < two["total_tokens_per_s"]
    assert two["ttft_s"] < one["ttft_s"]
