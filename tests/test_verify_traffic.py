"""The harness's routed-row traffic (kvcalc/calc/verify/traffic.py) and that `kvcalc verify` charges it, not an
engine's, when it compares the perf model with the harness's timings."""

from __future__ import annotations

import pytest

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.perf.model import perf_model
from kvcalc.calc.perf.moe import activation_bytes_per_token
from kvcalc.calc.verify.traffic import (
    harness_activation_bytes_per_token,
    harness_perf_model,
    routed_row_bytes,
)
from kvcalc.calc.weights import PlainFormat
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.deployment import EngineSettings, Parallel


def test_routed_row_bytes_by_hand():
    # Qwen3-30B-A3B: h 2048, I 768, k 8, no biases. Per row, 2-byte values:
    # gather 2 x 2048 + silu 2 x 768 + silu*u 3 x 768 + router weight 2 x 2048 + index_add 3 x 2048
    # + zeros 2048 / 8 = 3840 + 14336 + 256 = 18432 values = 36864 bytes
    assert routed_row_bytes(2048, 768, 8) == 36864
    # gpt-oss-20b: h = I = 2880, k 4, gate/up and down biases: 5 x 2880 + 7 x 2880 + 720 = 35280 values,
    # + gate/up bias (gathered 2I written, 2I + 2I read, 2I written) 8 x 2880 = 23040, + down bias 4 x 2880 = 11520
    # = 69840 values = 139680 bytes
    assert routed_row_bytes(2880, 2880, 4, gate_up_bias=True, down_bias=True) == 139680
    assert routed_row_bytes(2880, 2880, 4, gate_up_bias=True) == 139680 - 2 * 11520
    # an engine's fused MoE moves 2 x (3 I + h (1 + 1/k)) = 2 x (2304 + 2048 + 256) = 9216 bytes per row:
    # the harness 4 x that for Qwen3-30B-A3B
    assert activation_bytes_per_token(2048, 768, 8) / 8 == 9216


def test_per_token_sums_the_moe_layers():
    gpt_oss = load_model("gpt-oss-20b")  # 24 MoE layers, 32 experts top-4, biased experts
    assert harness_activation_bytes_per_token(gpt_oss, 32, 4) == 24 * 4 * 139680
    assert harness_activation_bytes_per_token(gpt_oss, 64, 4) == 0  # no layer with that (E, k)
    # DeepSeek-V2-Lite: 26 of 27 layers routed (the first is dense), h 2048, I 1408, k 6, no biases:
    # 2 x (5 x 1408 + 7 x 2048 + 2048 / 6) = 2 x (7040 + 14336 + 341.33) = 43434.67 bytes per row
    lite = load_model("deepseek-v2-lite")
    assert harness_activation_bytes_per_token(lite, 64, 6) == pytest.approx(26 * 6 * 43434.667, rel=1e-6)


def test_verify_compares_the_harness_with_its_own_traffic():
    plan = plan_deployment(load_model("qwen3-30b-a3b"), find_gpu("h100"), Parallel(), EngineSettings(name="vllm"),
                           weight_format=PlainFormat("bf16"))
    engine = perf_model(plan)
    harness = harness_perf_model(engine)
    (g_engine,), (g_harness,) = engine.stages[0].experts, harness.stages[0].experts
    # 48 layers x 8 rows x 9216 bytes (engine) and x 36864 bytes (harness)
    assert g_engine.activation_bytes_per_token == 48 * 8 * 9216
    assert g_harness.activation_bytes_per_token == 48 * 8 * 36864
    assert (g_harness.bytes_on_gpu, g_harness.flops_per_token) == (g_engine.bytes_on_gpu, g_engine.flops_per_token)


def test_time_records_charge_the_harness_traffic():
    from kvcalc.calc.perf.defaults import default_coefficients
    from kvcalc.calc.verify.layout import signature_groups
    from kvcalc.report.verify import time_records

    plan = plan_deployment(load_model("qwen3-30b-a3b"), find_gpu("h100"), Parallel(), EngineSettings(name="vllm"),
                           weight_format=PlainFormat("bf16"))
    stack = [{"signature": s, "tokens": 1024, "layers": [i[0]], "median_s": 1e-3}
             for s, i in signature_groups(plan.model).items()]
    raw = {"prefill": {"stack": stack, "head": [{"tokens": 1024, "median_s": 1e-3}]}}
    _, (point,), _ = time_records(raw, plan, default_coefficients(plan.gpu))
    # 1,024 prompt tokens x 48 layers x 8 rows x 36,864 bytes (the harness's rows, not an engine's 9,216)
    assert point.expert_activation_bytes == 1024 * 48 * 8 * 36864


def test_sliding_prefill_pairs_as_the_harness_computes_them():
    from kvcalc.calc.perf.attention import AttentionGroup
    from kvcalc.calc.verify.traffic import HarnessLocalAttention

    engine = AttentionGroup(kind="sliding", layers=32, window=4096, flops_per_pair=1.0)
    harness = HarnessLocalAttention(kind="sliding", layers=32, window=4096, flops_per_pair=1.0)
    # Mistral-7B, W = 4096, a 16,384-token prompt: 4 blocks of 4,096 queries x 8,192 keys = 134,217,728 pairs;
    # an engine: the first 4,096 tokens causal, 4096 x 4097 / 2 = 8,390,656, then 12,288 x 4,096 = 50,331,648
    assert harness.keys(0, 16384) == 4 * 4096 * 8192 == 134_217_728
    assert engine.keys(0, 16384) == 4096 * 4097 // 2 + 12288 * 4096 == 58_722_304
    # Phi-3-mini, W = 2047, 4,096 tokens: ceil(4096 / 2047) = 3 blocks, 3 x 2047 x 4094 = 25,141,254 pairs
    phi = HarnessLocalAttention(kind="sliding", layers=32, window=2047, flops_per_pair=1.0)
    assert phi.keys(0, 4096) == 25_141_254
    # within the window the harness runs causal flash attention: the same pairs as an engine
    assert harness.keys(0, 4096) == engine.keys(0, 4096) == 4096 * 4097 // 2


def test_verify_swaps_only_sliding_groups():
    plan = plan_deployment(load_model("gpt-oss-20b"), find_gpu("h100"), Parallel(), EngineSettings(name="vllm"),
                           weight_format=PlainFormat("bf16"))
    from kvcalc.calc.verify.traffic import HarnessLocalAttention

    kinds = {(g.window, type(g).__name__) for g in harness_perf_model(perf_model(plan)).stages[0].attention}
    assert kinds == {(128, HarnessLocalAttention.__name__), (None, "AttentionGroup")}


def test_chunked_layers_are_block_local_in_the_harness_too():
    from kvcalc.calc.perf.attention import AttentionGroup
    from kvcalc.calc.verify.traffic import HarnessLocalAttention

    # Llama 4's chunked layers, c = 8192, a 16,384-token prompt: the harness's 2 blocks x 8,192 x 16,384 =
    # 268,435,456 pairs; an engine's two full chunks 2 x 8192 x 8193 / 2 = 67,117,056
    engine = AttentionGroup(kind="chunked", layers=36, chunk=8192, flops_per_pair=1.0)
    harness = HarnessLocalAttention(kind="chunked", layers=36, chunk=8192, flops_per_pair=1.0)
    assert engine.keys(0, 16384) == 2 * 8192 * 8193 // 2 == 67_117_056
    assert harness.keys(0, 16384) == 2 * 8192 * 16384 == 268_435_456


def test_the_harness_model_is_one_gpu_only():
    plan = plan_deployment(load_model("qwen3-30b-a3b"), find_gpu("h100"), Parallel(tp=2), EngineSettings(name="vllm"),
                           weight_format=PlainFormat("bf16"))
    with pytest.raises(ValueError, match="one GPU"):
        harness_perf_model(perf_model(plan))


def test_mla_decode_reads_the_latent_twice_and_materialises_the_scores():
    from kvcalc.calc.verify.traffic import mla_decode_bytes_per_token

    # DeepSeek-V2-Lite: r 512, rho 64, 16 heads. Scores read the 576-wide latent (1,152 B) and write 16 bf16
    # scores (32 B); scale 64 B; float cast 96 B, softmax 128 B, back to bf16 96 B; values read 16 probs (32 B)
    # and the 512-wide latent (1,024 B): 1,152 + 32 + 64 + 96 + 128 + 96 + 32 + 1,024 = 2,624 B
    assert mla_decode_bytes_per_token(512, 64, 16) == 2624
    plan = plan_deployment(load_model("deepseek-v2-lite"), find_gpu("h100"), Parallel(),
                           EngineSettings(name="vllm"), weight_format=PlainFormat("bf16"))
    (engine,) = perf_model(plan).stages[0].attention
    (harness,) = harness_perf_model(perf_model(plan)).stages[0].attention
    assert (engine.kind, engine.kv_bytes_per_token, harness.kv_bytes_per_token) == ("mla", 1152, 2624)
