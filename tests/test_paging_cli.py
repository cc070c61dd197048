"""`kvcalc paged` and `kvcalc prefix` as a user runs them: real subprocesses for stdout purity and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}


def kvcalc(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvcalc", *args], capture_output=True, text=True, env=ENV,
                          input=stdin, timeout=120)


def test_paged_json_contract() -> None:
    r = kvcalc("paged", "llama-3.1-8b", "--gpu", "h100", "--context", "8192", "--requests", "1,16,17,100:0,90:10",
               "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {"blocks_used", "blocks_free", "tail_waste_tokens", "contiguous_waste_tokens"} <= doc["summary"].keys()
    assert [(q["tokens"], q["blocks"]) for q in doc["requests"]] == [(1, 1), (16, 1), (17, 2), (100, 7), (100, 7)]
    assert doc["summary"]["blocks_used"] == 18 and doc["summary"]["tail_waste_tokens"] == 15 + 0 + 15 + 12 + 12
    assert doc["summary"]["blocks_free"] == doc["pool"]["num_blocks"] - 1 - 18  # block 0: vLLM's null block
    assert "explain" not in doc and r.stderr == ""


def test_paged_trace_ndjson(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    lines = [{"id": i, "arrival_s": i * 0.01, "prompt_tokens": 3400, "output_tokens": 20, "prefix_id": "sys",
              "prefix_tokens": 3000} for i in range(5)]
    trace.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    r = kvcalc("paged", "llama-3.1-8b", "--gpu", "h100", "--context", "8192", "--trace", str(trace), "--json")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "summary"
    admits = [e for e in events if e["event"] == "admit"]
    # the first computes the prefix; the other four find its 187 full blocks (2,992 tokens) cached
    assert [e["cached_tokens"] for e in admits] == [0, 2992, 2992, 2992, 2992]
    assert events[-1]["finished"] == 5
    assert "skipped 1 malformed trace line" in r.stderr


def test_paged_bad_input_exit_2() -> None:
    for args in (("--requests", "1,2", "--trace", "x.jsonl"), ("--requests", "abc"), ("--trace", "/nonexistent")):
        r = kvcalc("paged", "llama-3.1-8b", *args)
        assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith("kvcalc: error:"), r.stderr


def test_paged_exit_1_when_requests_do_not_fit() -> None:
    r = kvcalc("paged", "llama-3.1-8b", "--gpu", "l4", "--context", "131072", "--quant", "fp8",
               "--requests", ",".join(["131072"] * 4), "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["summary"]["shortfall_blocks"] > 0


def test_prefix_json_and_usage_from_stdin() -> None:
    r = kvcalc("prefix", "llama-3.1-8b", "--gpu", "h100", "--prefix-tokens", "3000", "--requests-per-s", "20",
               "--tenants", "5", "--isolate", "--price", "input=3,cached=0.3", "--json")
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)["economics"]
    assert e["cached_tokens_per_request"] == 2992 and e["copies"] == 5
    usage = "\n".join([
        json.dumps({"usage": {"prompt_tokens": 2006, "completion_tokens": 300,
                              "prompt_tokens_details": {"cached_tokens": 1920}}}),
        "oops",
        json.dumps({"type": "message", "usage": {"input_tokens": 50, "cache_read_input_tokens": 2000,
                                                 "cache_creation_input_tokens": 0, "output_tokens": 5}}),
    ])
    r = kvcalc("prefix", "--usage", "-", "--json", stdin=usage)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    # cached 1,920 + 2,000 of input 2,006 + 2,050; both requests hit
    assert (doc["requests"], doc["cached_tokens"], doc["input_tokens"]) == (2, 3920, 4056)
    assert doc["hit_rate_tokens"] == 3920 / 4056 and doc["hit_rate_requests"] == 1.0
    assert "skipped 1 malformed usage line" in r.stderr


def test_prefix_bad_price_and_schema() -> None:
    r = kvcalc("prefix", "llama-3.1-8b", "--prefix-tokens", "100", "--requests-per-s", "1", "--price", "input=3")
    assert r.returncode == 2 and "cached=" in r.stderr
    for command in ("paged", "prefix"):
        schema = json.loads(kvcalc("schema", command).stdout)
        assert "anyOf" in schema or "oneOf" in schema


def test_python_api(tmp_path: Path) -> None:
    import kvcalc
    from kvcalc.spec.workload import TraceRequest

    report = kvcalc.paged("llama-3.1-8b", requests=[1, 16, 17, (90, 10)], context=8192)
    assert [r.blocks for r in report.requests] == [1, 1, 2, 7] and report.summary.blocks_used == 11
    trace = [TraceRequest(id=str(i), arrival_s=i * 0.1, prompt_tokens=3400, output_tokens=10, prefix_id="sys",
                          prefix_tokens=3000) for i in range(3)]
    events = kvcalc.paged("llama-3.1-8b", trace=trace, context=8192, step_ms=10)
    assert events[0].event == "start" and events[-1].cached_tokens == 2 * 2992
    assert kvcalc.prefix("llama-3.1-8b", prefix_tokens=3000, requests_per_s=20).economics.copies == 1
