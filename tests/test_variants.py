"""`kvcalc attention-variants`: MHA / GQA / MQA / MLA KV bytes, savings and capacity, worked by hand.

Per attention layer and token: 2 x n_kv x head_dim x bytes (K and V); MLA: (kv_lora_rank + qk_rope) x bytes.
40 GiB = 40 x 2^30 = 42,949,672,960 B throughout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from kvcalc.calc import kv as kvcalc_kv
from kvcalc.calc import variants as calc
from kvcalc.errors import InputError
from kvcalc.report.fit import fit_deployment
from kvcalc.report.variants import VariantRow, VariantsReport, memory_budget, variants_plan, variants_report
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.hf_config import model_from_config
from kvcalc.spec.base import to_jsonable
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.layers import FullAttention, MLAAttention, SlidingWindowAttention
from kvcalc.spec.model import ModelSpec
from tests.conftest import DEEPSEEK_V3, GPT_OSS_20B, JAMBA, LLAMA_70B

BF16 = storage_type("bf16")
FP8 = storage_type("fp8")
GIB40 = 40 * 2**30  # 42,949,672,960

# Model configs (DEEPSEEK_V3, JAMBA, LLAMA_70B, GPT_OSS_20B) come from tests/conftest.py. The tiny Jamba has
# attention at i % 4 == 1 (layers 1 and 5: 4 heads of 32 / 4 = 8, 2 KV heads) and six Mamba-1 layers of
# (3 x 64 conv + 64 x 4 SSM) x 2 B = 896 B each.

# A tiny Mistral v0.1: every layer slides over 16 tokens; 4 heads of 64 / 4 = 16, 2 KV heads.
MISTRAL_SLIDING: dict[str, Any] = {
    "model_type": "mistral",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 100,
    "sliding_window": 16,
    "torch_dtype": "bfloat16",
}


def _model(config: dict[str, Any], name: str = "test") -> ModelSpec:
    return model_from_config(dict(config), model_id=name)


def _rows(report: VariantsReport) -> dict[str, VariantRow]:
    return {row.name: row for row in report.variants}


# --- calc: group counts and the modified layer specs --------------------------------------------------------


def test_group_counts_are_the_divisors_of_n_heads() -> None:
    assert calc.group_counts(64) == [64, 32, 16, 8, 4, 2, 1]
    assert calc.group_counts(40) == [40, 20, 10, 8, 5, 4, 2, 1]
    assert calc.group_counts(12) == [12, 6, 4, 3, 2, 1]


def test_llama_70b_bytes_per_token_by_variant() -> None:
    m = _model(LLAMA_70B)
    variants = {v.name: v for v in calc.attention_variants(m)}
    assert list(variants) == ["MHA", "GQA-32", "GQA-16", "GQA-8", "GQA-4", "GQA-2", "MQA", "MLA 512+64"]
    # MHA:   80 layers x 2 x 64 x 128 x 2 B = 2,621,440 B/token
    # GQA-8: 80 x 2 x 8 x 128 x 2           =   327,680 (the model's own: 64 / 8 = 8 query heads per group)
    # MQA:   80 x 2 x 1 x 128 x 2           =    40,960
    assert calc.cached_token_bytes(variants["MHA"].model, BF16) == 2_621_440
    assert calc.cached_token_bytes(variants["GQA-8"].model, BF16) == 327_680
    assert calc.cached_token_bytes(variants["MQA"].model, BF16) == 40_960
    # GQA-32: 80 x 2 x 32 x 128 x 2 = 1,310,720
    assert calc.cached_token_bytes(variants["GQA-32"].model, BF16) == 1_310_720
    assert variants["GQA-8"].model_own and variants["GQA-8"].model is m
    assert not variants["GQA-8"].hypothetical and variants["MHA"].hypothetical
    # the modified layers are the model's layers with num_kv_heads replaced, nothing else
    mha_mixer = variants["MHA"].model.layers[0].mixer
    assert mha_mixer == FullAttention(num_heads=64, num_kv_heads=64, head_dim=128)
    # fp8 KV halves each: GQA-8 80 x 2 x 8 x 128 x 1 = 163,840
    assert kvcalc_kv.kv_bytes_per_token(variants["GQA-8"].model, FP8) == 163_840


def test_llama_70b_hypothetical_mla_latent() -> None:
    # DeepSeek-V3-size latent on every full layer: 80 x (512 + 64) x 2 = 92,160 B/token;
    # vs MHA 2,621,440 / 92,160 = 28.44x; vs own GQA-8 327,680 / 92,160 = 3.56x
    m = _model(LLAMA_70B)
    latent = calc.with_mla_latent(m)
    assert all(isinstance(layer.mixer, MLAAttention) for layer in latent.layers)
    assert calc.cached_token_bytes(latent, BF16) == 92_160
    assert calc.savings(2_621_440, 92_160) == pytest.approx(28.444, abs=1e-3)


def test_savings_are_n_heads_over_n_kv() -> None:
    # uniform layers: bytes are linear in n_kv, so bytes(MHA) / bytes(GQA-k) = 64 / k
    m = _model(LLAMA_70B)
    mha = calc.cached_token_bytes(calc.with_kv_heads(m, lambda h: h), BF16)
    for k in calc.group_counts(64):
        assert calc.savings(mha, calc.cached_token_bytes(calc.with_kv_heads(m, k), BF16)) == 64 / k


def test_max_tokens_in_40_gib() -> None:
    m = _model(LLAMA_70B)
    # GQA-8: floor(42,949,672,960 / 327,680) = 131,072 tokens (exactly 128K: 40 GiB / 320 KiB)
    assert calc.max_tokens(m, BF16, GIB40) == 131_072
    # MHA:   floor(42,949,672,960 / 2,621,440) = 16,384; MQA: / 40,960 = 1,048,576
    assert calc.max_tokens(calc.with_kv_heads(m, 64), BF16, GIB40) == 16_384
    assert calc.max_tokens(calc.with_kv_heads(m, 1), BF16, GIB40) == 1_048_576
    # 8,192-token sequences: 8,192 x 327,680 = 2,684,354,560 B each -> 16 fit in 40 GiB
    assert calc.sequences_at_context(m, BF16, GIB40, 8192) == 16
    assert calc.max_tokens(m, BF16, 327_679) == 0


def test_deepseek_v3_latent_vs_naive_per_head() -> None:
    m = _model(DEEPSEEK_V3)
    variants = {v.name: v for v in calc.attention_variants(m)}
    names = list(variants)
    assert names[0] == "MHA (naive K/V)" and names[-1] == "MLA 512+64"
    assert variants["MLA 512+64"].model_own and variants["MLA 512+64"].model is m
    # latent:  61 layers x (512 + 64) x 2 B                  =    70,272 B/token
    # naive:   61 x 128 heads x (K 128 + 64 = 192, V 128) x 2 = 61 x 128 x 320 x 2 = 4,997,120
    assert calc.cached_token_bytes(m, BF16) == 70_272
    naive = variants["MHA (naive K/V)"].model
    assert calc.cached_token_bytes(naive, BF16) == 4_997_120
    mla = m.layers[0].mixer
    assert isinstance(mla, MLAAttention)
    assert 61 * mla.naive_kv_bytes_per_token(BF16) == 4_997_120  # the same as spec/layers.py's naive cache
    # hypothetical per-head GQA-8 / MQA with the same head sizes: 61 x 8 x 320 x 2 = 312,320; 61 x 320 x 2 = 39,040
    assert calc.cached_token_bytes(variants["GQA-8"].model, BF16) == 312_320
    assert calc.cached_token_bytes(variants["MQA"].model, BF16) == 39_040
    assert variants["GQA-8"].model.layers[0].mixer == FullAttention(
        num_heads=128, num_kv_heads=8, head_dim=192, v_head_dim=128
    )
    # latent vs naive: 4,997,120 / 70,272 = 71.11x (= 128 x 320 / 576); 40 GiB hold
    # floor(42,949,672,960 / 70,272) = 611,191 tokens latent, / 4,997,120 = 8,594 naive
    assert calc.savings(4_997_120, 70_272) == pytest.approx(71.111, abs=1e-3)
    assert calc.max_tokens(m, BF16, GIB40) == 611_191
    assert calc.max_tokens(naive, BF16, GIB40) == 8_594


def test_sliding_layers_keep_their_window() -> None:
    m = _model(GPT_OSS_20B)
    mqa = calc.with_kv_heads(m, 1)
    assert [layer.kind for layer in mqa.layers] == [layer.kind for layer in m.layers]
    sliding = mqa.layers[0].mixer
    assert isinstance(sliding, SlidingWindowAttention)
    assert sliding.sliding_window == 128 and sliding.num_kv_heads == 1
    # own GQA-8, per layer 2 x 8 x 64 x 2 = 2,048 B/token:
    #   12 full layers: 24,576 B/token; 12 sliding layers: 12 x 2,048 x 128 = 3,145,728 B per sequence
    assert kvcalc_kv.kv_bytes_per_token(m, BF16) == 24_576
    assert kvcalc_kv.fixed_bytes_per_sequence(m, BF16) == 3_145_728
    # MQA, per layer 2 x 1 x 64 x 2 = 256: 12 x 256 = 3,072 B/token; 12 x 256 x 128 = 393,216 per sequence
    assert kvcalc_kv.kv_bytes_per_token(mqa, BF16) == 3_072
    assert kvcalc_kv.fixed_bytes_per_sequence(mqa, BF16) == 393_216
    # 1 GiB: largest L with 3,072 L + 393,216 <= 1,073,741,824 -> floor(1,073,348,608 / 3,072) = 349,397
    assert calc.max_tokens(mqa, BF16, 2**30) == 349_397
    # hypothetical MLA on the 12 full layers only: 12 x 576 x 2 = 13,824 B/token; sliding layers unchanged
    latent = calc.with_mla_latent(m)
    assert kvcalc_kv.kv_bytes_per_token(latent, BF16) == 13_824
    assert kvcalc_kv.fixed_bytes_per_sequence(latent, BF16) == 3_145_728
    assert calc.cached_token_bytes(latent, BF16) == 13_824 + 12 * 2_048  # 38,400


def test_recurrent_layers_keep_their_state() -> None:
    m = _model(JAMBA)
    report = variants_report(m, memory_bytes=10_000)
    rows = _rows(report)
    assert list(rows) == ["MHA", "GQA-2", "MQA", "MLA 512+64"]
    # two attention layers: MHA 2 x (2 x 4 x 8 x 2) = 256 B/token, GQA-2 (own) 128, MQA 64, latent 2 x 1,152
    assert [r.kv_bytes_per_token for r in report.variants] == [256, 128, 64, 2_304]
    # six Mamba layers x 896 B = 5,376 B per sequence in every variant
    assert {r.fixed_bytes_per_sequence for r in report.variants} == {5_376}
    # MQA in 10,000 B: floor((10,000 - 5,376) / 64) = 72 tokens
    assert rows["MQA"].max_tokens == 72
    assert rows["MQA"].savings_vs_mha == 4.0 and rows["MQA"].savings_vs_model == 2.0
    assert report.layer_kinds == {"mamba": 6, "full": 2}
    assert report.num_heads == 4 and report.model_kv_heads == 2


def test_every_layer_windowed_any_length_fits() -> None:
    m = _model(MISTRAL_SLIDING)
    # GQA-2, per layer 2 x 2 x 16 x 2 = 128 B/token, at most 16 tokens: 2 x 128 x 16 = 4,096 B per sequence
    assert kvcalc_kv.kv_bytes_per_token(m, BF16) == 0
    assert calc.max_tokens(m, BF16, 4_096) is None
    # 1,000 B: 2 x 128 x L <= 1,000 -> L = 3
    assert calc.max_tokens(m, BF16, 1_000) == 3
    # no full-attention layer, so no hypothetical MLA row
    assert [v.scheme for v in calc.attention_variants(m)] == ["MHA", "GQA", "MQA"]


# --- the report ---------------------------------------------------------------------------------------------


def test_report_llama_70b_in_40_gib() -> None:
    report = variants_report(_model(LLAMA_70B, "llama-70b"), memory_bytes=GIB40, context=8192)
    rows = _rows(report)
    own = rows["GQA-8"]
    assert own.model_own and own.kv_heads == 8 and own.queries_per_kv_head == 8.0
    assert own.kv_bytes_per_token == own.bytes_per_token == 327_680
    assert own.max_tokens == 131_072 and own.sequences_at_context == 16
    assert own.savings_vs_mha == 8.0 and own.savings_vs_model == 1.0
    assert rows["MHA"].savings_vs_model == 0.125  # 327,680 / 2,621,440
    assert rows["MQA"].savings_vs_mha == 64.0 and rows["MQA"].savings_vs_model == 8.0
    mla = rows["MLA 512+64"]
    assert mla.hypothetical and mla.kv_heads is None and mla.savings_vs_mha == 28.4444
    assert any("hypothetical" in note for note in report.notes)
    doc = json.loads(json.dumps(to_jsonable(report)))
    assert doc["memory"] == {
        "bytes": GIB40,
        "source": "--memory",
        "gpu": None,
        "gpu_count": None,
        "usable_bytes_per_gpu": None,
        "weights_bytes": None,
        "engine": None,
        "tp": None,
        "block_size": None,
        "fit_kv_cache_tokens": None,
    }
    assert doc["variants"][3]["max_tokens"] == 131_072
    assert any("floor(42,949,672,960 / 327,680)" in d.substituted for d in report.explain)


def test_default_memory_is_the_kv_pool_fit_plans() -> None:
    # The budget is the KV pool `kvcalc fit` plans for the same GPU and engine (issue #8: 88,279 vs 17,600 tokens
    # before): Llama-3.1-70B's 141 GB of bf16 weights need tp=2 on H100s. Tokens are counted on one GPU: its pool
    # A against its bytes per token, 80 layers x 2 x (8 / 2 = 4 KV heads) x 128 x 2 B = 163,840, in whole blocks
    # of 16: floor(A / (16 x 163,840)) x 16, fit's "GPU KV cache size" exactly.
    model = _model(LLAMA_70B)
    plan = variants_plan(model, find_gpu("h100"), EngineSettings())
    budget = memory_budget(model, plan, None)
    fit = fit_deployment(model, find_gpu("h100"), Parallel(tp=2), EngineSettings(), advise=False, explain=False)
    assert plan.parallel.tp == 2 and budget.gpu_count == 2 and budget.tp == 2
    assert budget.bytes == fit.per_gpu.kv_cache_bytes
    report = variants_report(model, gpu=find_gpu("h100"))
    rows = _rows(report)
    own = rows["GQA-8"]
    assert report.tp == 2 and own.bytes_per_token == 163_840 and own.kv_bytes_per_token == 327_680
    assert own.max_tokens == fit.capacity.kv_cache_tokens == budget.bytes // (16 * 163_840) * 16
    # MQA at tp=2: its one KV head is replicated on both GPUs (vLLM max(1, n_kv / tp)), so each GPU holds
    # 80 x 2 x 1 x 128 x 2 = 40,960 B per token, as GQA-2 does (1 head per GPU): the same tokens, not twice
    # GQA-2's as whole-model bytes (40,960) against both GPUs' pools (2A) would say
    assert rows["MQA"].bytes_per_token == rows["GQA-2"].bytes_per_token == 40_960
    assert rows["MQA"].max_tokens == rows["GQA-2"].max_tokens == budget.bytes // (16 * 40_960) * 16
    explain = {d.figure: d for d in report.explain}
    assert explain["MQA: KV bytes per token on one GPU of tp=2"].substituted == "80 x 2 x 1 x 128 x 2"
    assert explain["GQA-8 (own): max tokens in 2.71 GiB per GPU".replace(" (own)", "")].substituted == (
        f"floor(floor({budget.bytes:,} / 163,840) / 16) x 16")
    assert any("one GPU" in note and "tp=2" in note for note in report.notes)
    with pytest.raises(InputError):
        memory_budget(model, None, None)


def test_mla_latent_on_every_rank_matches_fit() -> None:
    # DeepSeek-V3 (the test config: bf16 weights) on H200s: fit plans tp=16; every rank caches the whole latent,
    # 61 layers x (512 + 64) x 2 B = 70,272 B per token per GPU, in blocks of 64 (vLLM's MLA block size):
    # floor(A / (64 x 70,272)) x 64 tokens, fit's own figure (whole-model bytes against all 16 pools counted
    # 16x as many)
    model = _model(DEEPSEEK_V3)
    report = variants_report(model, gpu=find_gpu("h200"))
    own = next(r for r in report.variants if r.model_own)
    pool = report.memory.bytes
    assert report.tp == 16 and own.bytes_per_token == own.kv_bytes_per_token == 70_272
    assert own.max_tokens == pool // (64 * 70_272) * 64 == report.memory.fit_kv_cache_tokens


# --- the CLI ------------------------------------------------------------------------------------------------


def test_cli_attention_variants_json() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "kvcalc", "attention-variants", "llama-70b", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # the whole of stdout is one JSON document
    assert "explain" not in doc
    own = next(v for v in doc["variants"] if v["model_own"])
    assert own["name"] == "GQA-8" and own["kv_bytes_per_token"] == 327_680
    # default: the KV pool `kvcalc fit` plans at tp=2 (one H100 cannot hold 141 GB of bf16 weights)
    assert doc["memory"]["tp"] == 2 and own["max_tokens"] == doc["memory"]["fit_kv_cache_tokens"]
    assert [v["scheme"] for v in doc["variants"]] == ["MHA", "GQA", "GQA", "GQA", "GQA", "GQA", "MQA", "MLA"]
