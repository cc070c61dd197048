"""`kvcalc spec` on real models and cards: step times from the perf model, draft memory, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kvcalc.report.spec import spec_report
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}


def kvcalc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvcalc", *args], capture_output=True, text=True, env=ENV,
                          timeout=120)


def test_cost_ratio_reproduces_the_worked_example() -> None:
    r = spec_report(load_model("llama-3.1-8b"), find_gpu("h100"), method="cost-ratio", cost_ratio=0.05,
                    alpha=0.8, gamma=4)
    # (1 - 0.8^5) / 0.2 = 3.3616; c = 0.05 by construction: 3.3616 / 1.2 = 2.8013x
    assert r.expected_tokens_per_pass == pytest.approx(3.3616)
    assert r.cost_ratio == pytest.approx(0.05)
    assert r.leviathan_speedup == pytest.approx(2.801333, rel=1e-6)
    # at batch 1 the verification of 5 tokens is memory-bound: it costs a decode step (within 0.1 %)
    assert r.verify_step_s == pytest.approx(r.target_step_s, rel=1e-3)
    assert r.speedup == pytest.approx(2.801333, rel=1e-3)
    assert r.memory is None


def test_speedup_bounded_and_verification_turns_compute_bound() -> None:
    r = spec_report(load_model("llama-3.1-8b"), find_gpu("a100-80gb"), method="eagle", gamma=4, batch=8,
                    context=512)
    for row in r.by_batch:
        assert row.speedup <= r.gamma + 1 and row.best_speedup <= 17
        assert row.verify_step_s >= row.target_step_s * (1 - 1e-6)
    bounds = [row.verify_bound for row in r.by_batch]
    assert bounds[0] == "memory" and bounds[-1] == "compute"
    # short contexts: B (gamma + 1) verified tokens cross the ridge and speculation stops paying
    assert r.crossover_batch is not None and 8 < r.crossover_batch <= 256
    after = [row for row in r.by_batch if row.batch >= r.crossover_batch]
    assert after and all(row.speedup < 1 for row in after)


def test_ngram_drafts_for_free() -> None:
    r = spec_report(load_model("llama-3.1-8b"), find_gpu("h100"), method="ngram", gamma=3)
    assert r.draft_step_s == 0 and r.cost_ratio == 0
    assert r.alpha == 0.5 and r.expected_tokens_per_pass == pytest.approx((1 - 0.5**4) / 0.5)
    assert r.memory is not None and r.memory.kv_cache_tokens_with_draft == r.memory.kv_cache_tokens


def test_eagle3_memory_against_the_kv_pool() -> None:
    r = spec_report(load_model("llama-3.1-8b"), find_gpu("h100"), method="eagle3")
    m = r.memory
    assert m is not None
    # head: 424,685,568 params x 2 B (bf16); its one layer caches 2 x 8 heads x 128 x 2 B = 4,096 B per token
    assert m.draft_weights_bytes == 424_685_568 * 2
    assert m.draft_kv_bytes_per_token == 4096 and m.target_kv_bytes_per_token == 131_072
    assert m.kv_cache_tokens_with_draft == (m.kv_pool_bytes - 849_371_136) // (131_072 + 4096)
    assert m.concurrency_with_draft < m.concurrency_at_context


def test_mtp_on_deepseek_v3() -> None:
    r = spec_report(load_model("deepseek-v3"), find_gpu("h200"), method="mtp", tp=8, gamma=1)
    assert r.alpha == 0.85 and r.expected_tokens_per_pass == pytest.approx(1.85)
    assert r.memory is not None and r.memory.draft_weights_bytes > 1e9  # ~11.6B params / 8 GPUs in fp8
    assert 1 < r.speedup < 1.85


def test_cli_json_contract() -> None:
    r = kvcalc("spec", "llama-3.1-8b", "--method", "eagle3", "--gamma", "4", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["expected_tokens_per_pass"] == pytest.approx((1 - 0.79**5) / 0.21)
    assert doc["best_gamma"] >= 1 and doc["speedup"] > 1
    assert r.stderr == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("spec", "llama-3.1-8b"), "exactly one of"),
        (("spec", "llama-3.1-8b", "--method", "eagle", "--cost-ratio", "0.1"), "exactly one of"),
        (("spec", "llama-3.1-8b", "--method", "medusa"), "unknown --method"),
        (("spec", "llama-3.1-8b", "--method", "mtp"), "no MTP layers"),
        (("spec", "llama-3.1-8b", "--method", "eagle", "--alpha", "1.5"), "alpha"),
    ],
)
def test_bad_input_exit_2(args: tuple[str, ...], needle: str) -> None:
    r = kvcalc(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) <= 4
