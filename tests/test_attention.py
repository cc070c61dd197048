"""`kvcalc attention`: naive vs FlashAttention memory, HBM traffic and FLOPs, worked by hand."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.calc import attention_memory as am
from kvcalc.errors import InputError
from kvcalc.report.attention import attention_report
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model

GIB = 2**30
H100_SRAM = 233_472  # 228 KiB shared memory per SM (CUDA programming guide, compute capability 9.0)


def footprint(n: int = 8192, heads: int = 32, d: int = 128, **kw: object) -> am.AttentionFootprint:
    return am.attention_footprint(n, heads, d, **kw)  # type: ignore[arg-type]


# --- memory, by hand ---------------------------------------------------------------------------------------


def test_textbook_scores_32_heads_8192_bf16_are_4_gib_each() -> None:
    f = footprint(causal=False)
    # S = 32 heads x 8192^2 scores x 2 B = 4 GiB; the softmax phase holds S and P: 8 GiB.
    assert f.naive.tensors == {"S": 4 * GIB, "P": 4 * GIB}
    assert f.naive_extra_bytes == 8 * GIB and f.naive.phase == "softmax"
    assert f.naive.bytes_per_score == 4


def test_flash_extra_is_output_plus_fp32_lse() -> None:
    f = footprint()
    # O = 32 x 8192 x 128 x 2 = 67,108,864; LSE = 32 x 8192 x 4 = 1,048,576
    assert f.flash_extra_bytes == 67_108_864 + 1_048_576 == 68_157_440


def test_eager_holds_scores_fp32_softmax_and_probs() -> None:
    f = footprint(naive="eager")
    # S (2) + fp32 softmax (4) + P (2) = 8 B per score: 32 x 8192^2 x 8 = 16 GiB, plus the additive causal mask
    # B x N x N x 2 = 128 MiB (MHA: no repeat_kv copies)
    assert f.naive_extra_bytes == 16 * GIB + 8192**2 * 2
    assert f.naive.bytes_per_score == 8


def test_eager_gqa_counts_repeat_kv_copies() -> None:
    f = footprint(naive="eager", kv_heads=8)
    # + K and V expanded to 32 heads: 2 x 32 x 8192 x 128 x 2 = 128 MiB
    assert f.naive_extra_bytes == 16 * GIB + 8192**2 * 2 + 2 * 32 * 8192 * 128 * 2


def test_torch_math_upcasts_to_fp32_and_safe_softmax_holds_9_bytes_per_score() -> None:
    f = footprint(naive="torch-math")
    scores = 32 * 8192**2 * 9  # S and softmax(S) in fp32 + bool (S == -inf); the zeroing reuses softmax(S)
    rows = 32 * 8192  # one bool per (head, query) row: is the whole row masked?
    copies = 4 * 32 * 8192 * 128 * 4  # fp32 Q, K, V and the scaled Q
    mask = 8192**2 * 4  # is_causal's N x N mask converted to fp32
    assert f.naive_extra_bytes == scores + rows + copies + mask == 20_132_921_344
    # an H100 with torch 2.11 measured 20,132,921,856 B (docs/validation.md): 512 B more, the allocator's
    # smallest block for the two scalar tensors
    assert f.naive.phase == "safe_softmax"


def test_inputs_share_kv_across_gqa_groups() -> None:
    inputs = am.input_bytes(am.AttentionShape(seq_len=1000, heads=32, head_dim=128, kv_heads=8))
    assert inputs == {"Q": 32 * 1000 * 128 * 2, "K": 8 * 1000 * 128 * 2, "V": 8 * 1000 * 128 * 2}


# --- HBM traffic ------------------------------------------------------------------------------------------


def test_standard_traffic_counts_every_read_and_write() -> None:
    f = footprint(causal=False)
    # per head: read Q, K (2 N d), read V, write O (2 N d), write S, read S, write P, read P (4 N^2); x 2 B x 32
    per_head = 2 * 8192 * 128 + 2 * 8192 * 128 + 4 * 8192**2
    assert f.naive_hbm_bytes == 32 * 2 * per_head == 17_448_304_640


def test_flash_traffic_algorithm_1_on_h100() -> None:
    f = footprint(causal=False, sram_per_sm_bytes=H100_SRAM)
    # M = 233,472 / 2 = 116,736 elements; B_c = ceil(116,736 / 512) = 228; B_r = min(228, 128) = 128;
    # T_c = ceil(8192 / 228) = 36 K/V blocks
    assert f.flash_blocks == am.FlashBlocks(sram_elements=116_736, block_cols=228, block_rows=128, kv_blocks=36)
    init = 8192 * (128 * 2 + 8)  # O zeros (bf16) + l, m (fp32) written once
    kv = 8192 * 256 * 2  # K and V read once
    passes = 36 * 8192 * (2 * (128 + 2 * 128) + 16)  # per block: read Q, O; write O; l, m read + write
    assert f.flash_hbm_bytes == 32 * (init + kv + passes) == 7_602_176_000


def test_flash_traffic_is_theta_n2_d2_over_m() -> None:
    # Theorem 2: passes ~ 12 N^2 d^2 b / M per head: doubling N quadruples it, doubling M halves it.
    def traffic(n: int, sram: int) -> int:
        return footprint(n, heads=1, causal=False, sram_per_sm_bytes=sram).flash_hbm_bytes or 0

    n = 1 << 16
    assert traffic(2 * n, H100_SRAM) / traffic(n, H100_SRAM) == pytest.approx(4, rel=0.02)
    assert traffic(n, H100_SRAM) / traffic(n, 2 * H100_SRAM) == pytest.approx(2, rel=0.02)
    # exact count / asymptote: T_c = ceil(65536 / 228) = 288 vs 287.4, and 784 B per row vs 3 d b = 768 (the
    # +16 B of l and m): 1.026
    assert traffic(n, H100_SRAM) == pytest.approx(12 * n**2 * 128**2 * 2 / (H100_SRAM // 2), rel=0.03)


def test_causal_flash_skips_blocks_above_the_diagonal() -> None:
    full = footprint(causal=False, sram_per_sm_bytes=H100_SRAM).flash_hbm_bytes or 0
    causal = footprint(causal=True, sram_per_sm_bytes=H100_SRAM).flash_hbm_bytes or 0
    assert 0.5 < causal / full < 0.56


# --- FLOPs, windows, chunks ---------------------------------------------------------------------------------


def test_flops_4_n2_d_heads_halved_when_causal() -> None:
    assert footprint(causal=False).flops == 4 * 8192**2 * 128 * 32 == 1_099_511_627_776
    assert footprint(causal=True).flops == 4 * 8192**2 * 128 * 32 / 2


def test_sliding_window_caps_keys() -> None:
    shape = am.AttentionShape(seq_len=8192, heads=32, head_dim=128, window=1024)
    assert shape.band == 1024
    assert am.attended_pairs(shape) == 8192 * 1024 - 1024**2 / 2 == 7_864_320
    f = footprint(window=1024)
    assert f.naive.tensors["S"] == 32 * 8192 * 1024 * 2  # N x window scores per head
    assert footprint(n=512, window=1024).naive_extra_bytes == footprint(n=512).naive_extra_bytes


def test_chunked_pairs() -> None:
    # N = 10 in chunks of 4: two whole chunks (4^2 / 2 each, causal) + a chunk of 2 (2^2 / 2) = 8 + 8 + 2
    shape = am.AttentionShape(seq_len=10, heads=1, head_dim=8, chunk=4)
    assert am.attended_pairs(shape) == 18


# --- properties ---------------------------------------------------------------------------------------------

shapes = st.fixed_dictionaries({
    "n": st.integers(1, 4096), "heads": st.sampled_from([1, 8, 32]), "d": st.sampled_from([64, 128, 256]),
    "batch": st.integers(1, 4), "dtype": st.sampled_from(["bf16", "fp32", "fp8"]),
})


@settings(max_examples=40, deadline=None)
@given(shapes)
def test_flash_memory_linear_naive_quadratic(s: dict) -> None:
    kw = dict(batch=s["batch"], dtype=s["dtype"], causal=False)
    one = footprint(s["n"], s["heads"], s["d"], **kw)
    two = footprint(2 * s["n"], s["heads"], s["d"], **kw)
    assert two.flash_extra_bytes == 2 * one.flash_extra_bytes
    textbook = am.TextbookAttention()
    assert textbook.phases(two.shape)[0].tensors["S"] == 4 * textbook.phases(one.shape)[0].tensors["S"]


@settings(max_examples=40, deadline=None)
@given(shapes, st.sampled_from(["textbook", "eager", "torch-math"]))
def test_naive_never_below_its_scores_and_monotone(s: dict, impl: str) -> None:
    f = footprint(s["n"], s["heads"], s["d"], batch=s["batch"], dtype=s["dtype"], naive=impl)
    g = footprint(s["n"] + 1, s["heads"], s["d"], batch=s["batch"], dtype=s["dtype"], naive=impl)
    scores = s["batch"] * s["heads"] * s["n"] ** 2
    assert f.naive_extra_bytes >= scores * f.naive.bytes_per_score
    assert g.naive_extra_bytes > f.naive_extra_bytes
    assert f.naive_by_implementation["eager"] >= f.naive_by_implementation["textbook"]


def test_bad_shapes_are_input_errors() -> None:
    with pytest.raises(InputError, match="divide"):
        am.AttentionShape(seq_len=8, heads=32, head_dim=64, kv_heads=5)
    with pytest.raises(InputError, match="positive"):
        am.AttentionShape(seq_len=0, heads=32, head_dim=64)
    with pytest.raises(InputError, match="unknown naive"):
        footprint(naive="flashy")


def test_longest_fitting() -> None:
    assert am.longest_fitting(lambda n: n * n, 100) == 10
    assert am.longest_fitting(lambda n: n * n, 99) == 9
    assert am.longest_fitting(lambda n: 5, 4) == 0
    assert am.longest_fitting(lambda n: 0, 4) is None


# --- reports: bare shape and models --------------------------------------------------------------------------


def test_bare_shape_longest_naive_sequence_on_h100() -> None:
    gpu = find_gpu("h100")
    r = attention_report(gpu, 8192, heads=32, head_dim=128)
    # need(N) = Q + K + V (3 x 32 x N x 128 x 2 = 24,576 N) + S + P (2 x 32 x N^2 x 2 = 128 N^2) <= usable
    usable = gpu.usable_memory_bytes
    n = (math.isqrt(24_576**2 + 4 * 128 * usable) - 24_576) // 256
    assert 128 * n**2 + 24_576 * n <= usable < 128 * (n + 1) ** 2 + 24_576 * (n + 1)
    assert r.budget.naive_max_seq_len == n
    assert r.budget.naive_fits is True and r.budget.bytes == usable


def test_llama_8b_budget_is_plan_free_memory_and_kv_counts() -> None:
    r = attention_report(find_gpu("h100"), 32768, model=load_model("llama-3.1-8b"))
    row = r.layers[0]
    assert (row.kind, row.layers, row.heads, row.kv_heads, row.head_dim) == ("full", 32, 32, 8, 128)
    # KV per token: 32 layers x 2 x 8 heads x 128 x 2 B = 131,072 B; at 32,768 tokens: 4 GiB
    assert r.budget.kv_cache_bytes == 131_072 * 32_768 == 4 * GIB
    # need(N) = 131,072 N (KV) + Q (32 x N x 128 x 2 = 8,192 N) + S + P (128 N^2)
    n, budget = r.budget.naive_max_seq_len, r.budget.bytes
    assert n is not None
    need = lambda m: 128 * m * m + (131_072 + 8_192) * m  # noqa: E731
    assert need(n) <= budget < need(n + 1)
    assert r.budget.naive_fits is False and r.budget.flash_fits is True
    assert r.flops == 32 * 4 * 32768**2 * 128 * 32 / 2


def test_gpt_oss_sliding_layers_cap_at_window() -> None:
    r = attention_report(find_gpu("h100"), 32768, model=load_model("gpt-oss-20b"))
    by_kind = {row.kind: row for row in r.layers}
    assert by_kind["sliding(128)"].keys_per_query == 128 and by_kind["full"].keys_per_query == 32768
    assert by_kind["sliding(128)"].layers == by_kind["full"].layers == 12
    # whole-model memory peak is the largest layer's (layers run one at a time); traffic adds up
    assert r.naive_extra_bytes == by_kind["full"].naive_extra_bytes == 2 * 64 * 32768**2 * 2
    assert r.naive_hbm_bytes == 12 * (by_kind["full"].naive_hbm_bytes + by_kind["sliding(128)"].naive_hbm_bytes)


def test_mla_prefill_per_head_on_a_tp_rank() -> None:
    r = attention_report(find_gpu("h200"), 4096, model=load_model("deepseek-v3"), tp=8)
    row = r.layers[0]
    # 128 heads / 8 ranks; K = qk_nope 128 + qk_rope 64, V = 128, decompressed per head
    assert (row.kind, row.layers, row.heads, row.kv_heads, row.head_dim, row.v_head_dim) == \
        ("mla", 61, 16, 16, 192, 128)
    assert row.flops == 2 * (192 + 128) * 16 * 4096**2 / 2


def test_weights_that_do_not_fit_are_an_input_error() -> None:
    with pytest.raises(InputError, match="larger --tp"):
        attention_report(find_gpu("h100"), 4096, model=load_model("deepseek-v3"))


def test_times_from_the_flash_tile_model() -> None:
    r = attention_report(find_gpu("h100"), 8192, heads=32, head_dim=128, causal=False)
    fa2, fa3, _ = r.timings
    # Not causal, N = 8192, 32 heads: every CTA costs the same, so the 132 SMs run ceil(CTAs / 132) waves.
    # FA2: 128 x 64 tiles: 32 x 64 = 2048 CTAs -> 16 waves of 8192 / 64 + 2.3 = 130.3 iterations;
    # one iteration on one SM: 2 x 128 x 64 x 256 FLOP x 132 SMs / (989.4e12 x 0.392).
    fa2_iteration = 2 * 128 * 64 * 256 * 132 / (989.4e12 * 0.392)
    assert fa2.time_s == pytest.approx(16 * 130.3 * fa2_iteration)  # 2.976 ms
    # FA3: 128 x 128 tiles: 2048 CTAs -> 16 waves of 64 + 2.0 iterations at 0.715 of the peak.
    fa3_iteration = 2 * 128 * 128 * 256 * 132 / (989.4e12 * 0.715)
    assert fa3.time_s == pytest.approx(16 * 66.0 * fa3_iteration)  # 1.653 ms
    assert fa2.rate_flops == pytest.approx(4 * 8192**2 * 128 * 32 / fa2.time_s)


def test_fa3_only_on_hopper_and_fa2_at_the_ampere_fraction() -> None:
    r = attention_report(find_gpu("a100-80gb"), 8192, heads=32, head_dim=128, causal=False)
    assert [t.kernel for t in r.timings][:1] == ["FlashAttention-2"] and len(r.timings) == 2
    assert any("FlashAttention-3 does not run" in n for n in r.notes)
    # A100: 108 SMs, 312e12 bf16, FA2 at 0.73: 2048 CTAs -> ceil(2048 / 108) = 19 waves of 130.3 iterations
    assert r.timings[0].time_s == pytest.approx(19 * 130.3 * 2 * 128 * 64 * 256 * 108 / (312e12 * 0.73))


def test_cli_json_contract_and_no_gpu_path() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    code = ("import sys, runpy; sys.argv = ['kvcalc', 'attention', '--heads', '64', '--head-dim', '128', "
            "'--kv-heads', '8', '--seq', '32K', '--json']\n"
            "try:\n    runpy.run_module('kvcalc', run_name='__main__')\n"
            "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    for key in ("naive_extra_bytes", "flash_extra_bytes", "naive_hbm_bytes", "flash_hbm_bytes"):
        assert isinstance(doc[key], int)
    assert doc["seq_len"] == 32768 and "explain" not in doc
    assert doc["naive_extra_bytes"] == 2 * 64 * 32768**2 * 2
    from pydantic import TypeAdapter

    from kvcalc.report.attention import AttentionReport

    TypeAdapter(AttentionReport).validate_python(doc)  # the document matches `kvcalc schema attention`


def test_cli_bad_input_exit_2() -> None:
    from typer.testing import CliRunner

    from kvcalc.cli.app import build_app

    result = CliRunner().invoke(build_app(["attention"]), ["attention", "--seq", "8K"])
    assert result.exit_code != 0
    r = subprocess.run([sys.executable, "-m", "kvcalc", "attention", "llama-3.1-8b", "--seq", "8K", "--heads", "8"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == "" and "not both" in r.stderr
