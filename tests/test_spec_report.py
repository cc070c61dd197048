"""`kvcalc spec` on real models and cards: the report, draft memory, end to end, the CLI and its JSON schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kvcalc.report.spec import SpecReport, spec_report
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.deployment import EngineSettings

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}


def kvcalc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvcalc", *args], capture_output=True, text=True, env=ENV,
                          timeout=120)


def test_cost_ratio_reproduces_the_worked_example() -> None:
    r = spec_report(load_model("llama-3.1-8b"), find_gpu("h100"), method="cost-ratio", cost_ratio=0.05,
                    alpha=0.8, gamma=4)
    # (1 - 0.8^5) / 0.2 = 3.3616; c = 0.05 by construction: 3.3616 / 1.2 = 2.8013x
    assert r.expected_tokens_per_pass == pytest.approx(3.3616)
    assert r.cost_ratio == pytest.approx(0.05) and r.alpha == pytest.approx(0.8)
    assert r.leviathan_speedup == pytest.approx(2.801333, rel=1e-6)
    # at batch 1 the verification of 5 tokens is memory-bound: it costs a decode step (within 0.5 %)
    assert r.verify_step_s == pytest.approx(r.target_step_s, rel=5e-3)
    assert r.speedup == pytest.approx(2.801333, rel=5e-3)
    assert r.memory is None and r.spec_overhead_s == 0


def test_engine_costs_make_the_speedup_fall_below_leviathan() -> None:
    r = spec_report(load_model("llama-3.1-8b"), find_gpu("h100"), method="eagle3", gamma=3, context=512)
    # default acceptance (vLLM #20780): 1 + 0.78 + 0.78 x 0.74 + 0.78 x 0.74 x 0.74 = 2.784328
    assert r.expected_tokens_per_pass == pytest.approx(2.784328)
    assert r.spec_step_s == pytest.approx(r.verify_step_s + r.draft_kernels_s + r.draft_overhead_s
                                          + r.spec_overhead_s)
    assert r.draft_overhead_s == pytest.approx(3 * 0.445e-3) and r.spec_overhead_s == pytest.approx(0.99e-3)
    assert 1 < r.speedup < r.leviathan_speedup < r.expected_tokens_per_pass
    assert r.speedup == pytest.approx(r.expected_tokens_per_pass * r.target_step_s / r.spec_step_s)


def test_verification_turns_compute_bound_and_speculation_stops_paying() -> None:
    r = spec_report(load_model("llama-3.1-8b"), find_gpu("a100-80gb"), method="eagle", gamma=4, batch=8,
                    context=512)
    for row in r.by_batch:
        assert row.speedup <= r.expected_tokens_per_pass
        assert row.verify_step_s >= row.target_step_s * (1 - 5e-3)
    bounds = [row.verify_bound for row in r.by_batch]
    assert bounds[0] == "memory" and bounds[-1] == "compute"
    # short contexts: B (gamma + 1) verified tokens cross the A100's ridge and speculation stops paying
    assert r.crossover_batch is not None and 8 < r.crossover_batch <= 256
    after = [row for row in r.by_batch if row.batch >= r.crossover_batch]
    assert after and all(row.speedup < 1 for row in after)


def test_ngram_drafts_for_free() -> None:
    r = spec_report(load_model("llama-3.1-8b"), find_gpu("h100"), method="ngram", gamma=3)
    assert r.draft_step_s == 0 and r.cost_ratio == 0 and r.spec_overhead_s == 0
    # 1 + 0.13 + 0.13 x 0.77 + 0.13 x 0.77 x 0.82 = 1.312182
    assert r.expected_tokens_per_pass == pytest.approx(1.312182)
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
    assert r.expected_tokens_per_pass == pytest.approx(1.85)  # 1 + 0.85
    assert r.memory is not None and r.memory.draft_weights_bytes > 1e9  # ~11.6B params / 8 GPUs in fp8
    assert 1 < r.speedup < 1.85


def test_end_to_end_includes_the_shared_prefill() -> None:
    r = spec_report(load_model("llama-3.1-8b"), find_gpu("h100"), method="eagle3", gamma=3, batch=64,
                    input_tokens=800, output_tokens=300)
    x = r.end_to_end
    assert x is not None and r.context == 800 + 150  # decode at input + output / 2
    # (T_p + N t) / (T_p + N / E t_spec), the prefill unchanged: between 1 and the decode speedup
    assert x.plain_s == pytest.approx(x.prefill_s + 300 * r.target_step_s)
    assert x.speculative_s == pytest.approx(x.prefill_s + 300 / r.expected_tokens_per_pass * r.spec_step_s)
    assert 1 < x.speedup < r.speedup


def test_sglang_trees_and_measured_acceptance() -> None:
    r = spec_report(load_model("llama-3.1-8b"), find_gpu("h100"), method="eagle3", gamma=5, topk=8,
                    verify_tokens=64, acceptance_length=4.68, context=512, engine=EngineSettings(name="sglang"))
    assert r.engine == "sglang" and r.verify_tokens == 64 and r.topk == 8
    assert r.expected_tokens_per_pass == pytest.approx(4.68, abs=1e-6)  # the measured mean, at gamma 5
    assert r.spec_overhead_s == pytest.approx(3.73e-3) and r.draft_overhead_s == pytest.approx(5 * 0.156e-3)
    assert not any("tree" in n for n in r.notes)  # the acceptance was measured on this tree
    default = spec_report(load_model("llama-3.1-8b"), find_gpu("h100"), method="eagle3", gamma=5, topk=8,
                          verify_tokens=64, context=512, engine=EngineSettings(name="sglang"))
    assert any("tree accepts more than a chain" in n for n in default.notes)
    chain = spec_report(load_model("llama-3.1-8b"), find_gpu("h100"), method="eagle3", gamma=5, context=512,
                        engine=EngineSettings(name="sglang"))
    assert chain.verify_tokens == 6 and r.verify_step_s >= chain.verify_step_s


def test_cli_json_contract_and_schema() -> None:
    r = kvcalc("spec", "llama-3.1-8b", "--method", "eagle3", "--gamma", "4", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    # 1 + 0.78 + 0.5772 + 0.427128 + 0.286176 = 3.070504
    assert doc["expected_tokens_per_pass"] == pytest.approx(3.070504, abs=1e-6)
    assert doc["best_gamma"] >= 1 and doc["speedup"] > 1 and doc["engine"] == "vllm"
    assert r.stderr == ""
    from pydantic import TypeAdapter

    TypeAdapter(SpecReport).validate_python(doc)  # the document matches `kvcalc schema spec`
    schema = json.loads(kvcalc("schema", "spec").stdout)
    assert {"expected_tokens_per_pass", "speedup", "best_gamma", "acceptance_rates"} <= set(schema["properties"])


def test_cli_acceptance_options_and_explain() -> None:
    r = kvcalc("spec", "llama-3.1-8b", "--method", "eagle", "--acceptance", "0.8,0.6,0.4", "--gamma", "3",
               "--input", "1k", "--output", "200", "--json", "--explain")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["expected_tokens_per_pass"] == pytest.approx(2.472)  # 1 + 0.8 + 0.48 + 0.192
    assert doc["end_to_end"]["input_tokens"] == 1000 and doc["context"] == 1100
    assert any(d["figure"] == "expected tokens per target pass" for d in doc["explain"])
    human = kvcalc("spec", "llama-3.1-8b", "--method", "ngram", "--engine", "sglang", "--explain")
    assert human.returncode == 0 and "tokens per target pass" in human.stdout and human.stderr == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("spec", "llama-3.1-8b"), "exactly one of"),
        (("spec", "llama-3.1-8b", "--method", "eagle", "--cost-ratio", "0.1"), "exactly one of"),
        (("spec", "llama-3.1-8b", "--method", "medusa"), "unknown --method"),
        (("spec", "llama-3.1-8b", "--method", "mtp"), "no MTP layers"),
        (("spec", "llama-3.1-8b", "--method", "eagle", "--alpha", "1.5"), "alpha"),
        (("spec", "llama-3.1-8b", "--method", "eagle", "--acceptance", "0.8,high"), "--acceptance"),
        (("spec", "llama-3.1-8b", "--method", "eagle", "--acceptance-length", "9", "--gamma", "3"), "gamma + 1"),
        (("spec", "llama-3.1-8b", "--method", "eagle", "--alpha", "0.7", "--acceptance-length", "2"), "give one"),
        (("spec", "llama-3.1-8b", "--method", "eagle", "--input", "1k"), "--output"),
        (("spec", "llama-3.1-8b", "--method", "eagle", "--engine", "tgi"), "unknown engine"),
    ],
)
def test_bad_input_exit_2(args: tuple[str, ...], needle: str) -> None:
    r = kvcalc(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) <= 4
