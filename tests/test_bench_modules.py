"""The benchmark's torch modules (CPU build of torch): shapes and parameter counts equal the ModelSpec's, the
forwards run, the benchmark's own kernels agree with plain references, and bytes are measured as predicted."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from kvcalc.bench.modules import (  # noqa: E402
    GROUPED,
    BenchHead,
    BenchLayer,
    expected_shapes,
    grouped_mm,
    rope_tables,
    suffix,
    unsupported_reason,
)
from kvcalc.sources.hf_config import model_from_config  # noqa: E402
from kvcalc.sources.resolve import load_model  # noqa: E402
from kvcalc.spec.model import ModelSpec  # noqa: E402

ARCHITECTURES = ("llama-3.1-8b", "qwen3-30b-a3b", "deepseek-v2-lite", "deepseek-v3", "gpt-oss-20b", "gemma-2-9b",
                 "phi-3-mini", "falcon-7b", "mixtral-8x7b", "llama-4-scout", "qwen2.5-7b", "gpt2")

# Small configs of four architectures (the families' real config keys, tiny sizes) for forwards on the CPU.
TINY: dict[str, dict[str, Any]] = {
    "llama": {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 256,
              "max_position_embeddings": 4096, "torch_dtype": "bfloat16"},
    "qwen3_moe": {"model_type": "qwen3_moe", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128, "moe_intermediate_size": 32,
                  "num_experts": 8, "num_experts_per_tok": 2, "decoder_sparse_step": 1, "vocab_size": 256,
                  "max_position_embeddings": 4096, "torch_dtype": "bfloat16"},
    "deepseek_v2": {"model_type": "deepseek_v2", "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
                    "num_key_value_heads": 4, "intermediate_size": 128, "moe_intermediate_size": 32,
                    "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2,
                    "first_k_dense_replace": 1, "moe_layer_freq": 1, "kv_lora_rank": 32, "q_lora_rank": None,
                    "qk_rope_head_dim": 8, "qk_nope_head_dim": 16, "v_head_dim": 16, "vocab_size": 256,
                    "max_position_embeddings": 4096, "torch_dtype": "bfloat16"},
    "gpt_oss": {"model_type": "gpt_oss", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 64, "num_local_experts": 4,
                "num_experts_per_tok": 2, "sliding_window": 8, "attention_bias": True,
                "layer_types": ["sliding_attention", "full_attention"], "vocab_size": 256,
                "max_position_embeddings": 4096, "torch_dtype": "bfloat16"},
}


def tiny(name: str) -> ModelSpec:
    return model_from_config(TINY[name], model_id=f"tiny-{name}")


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_shapes_from_structure_equal_the_spec(name: str) -> None:
    """Shapes derived from heads, head sizes, MLA ranks and MLP/expert sizes equal the family mapper's."""
    model = load_model(name)
    for layer in model.layers[:4] + model.layers[-1:]:
        shapes = expected_shapes(layer, model.hidden_size)
        assert {suffix(t.name, layer.index): t.shape for t in layer.tensors} == shapes, layer.index
        module = BenchLayer(layer, model.hidden_size, torch.bfloat16, "meta")
        assert sum(p.numel() for p in module.parameters()) == layer.params
    head = BenchHead(model, torch.bfloat16, "meta")
    assert sum(p.numel() for p in head.parameters()) == sum(t.numel for t in model.global_tensors)


def test_parameter_counts_worked_by_hand() -> None:
    llama = load_model("llama-3.1-8b").layers[0]
    # q 4096x4096 + k 1024x4096 + v 1024x4096 + o 4096x4096 + 2 norms of 4096 + gate/up/down 3 x 14336x4096
    hand = 4096 * 4096 + 2 * 1024 * 4096 + 4096 * 4096 + 2 * 4096 + 3 * 14336 * 4096
    assert hand == 218_112_000
    assert sum(p.numel() for p in BenchLayer(llama, 4096, torch.bfloat16, "meta").parameters()) == hand
    v2 = load_model("deepseek-v2-lite").layers[1]
    # MLA: q 3072x2048, kv_a 576x2048, kv_a norm 512, kv_b 4096x512, o 2048x2048; 2 norms of 2048;
    # router 64x2048; 64 experts x 3 x 1408x2048; shared 3 x 2816x2048
    hand = (3072 * 2048 + 576 * 2048 + 512 + 4096 * 512 + 2048 * 2048 + 2 * 2048 + 64 * 2048
            + 64 * 3 * 1408 * 2048 + 3 * 2816 * 2048)
    assert hand == 584_847_872
    assert sum(p.numel() for p in BenchLayer(v2, 2048, torch.bfloat16, "meta").parameters()) == hand


def test_fused_projections_are_views_of_one_buffer() -> None:
    layer = tiny("llama").layers[0]
    module = BenchLayer(layer, 64, torch.bfloat16, "cpu")
    qkv = module.w("attn_qkv.weight")
    q, k, v = (module.w(f"attn_{n}.weight") for n in "qkv")
    assert qkv is not None and q is not None and k is not None and v is not None
    assert qkv.shape == (64 + 32 + 32, 64)  # 4 heads x 16 + 2 x 2 KV heads x 16
    assert q.data_ptr() == qkv.data_ptr() and k.data_ptr() == qkv.data_ptr() + 64 * 64 * 2
    assert torch.equal(qkv[64:96], k)


def test_recurrent_layers_are_measured_but_not_timed() -> None:
    model = load_model("qwen3-next-80b-a3b")
    linear = next(layer for layer in model.layers if layer.kind == "linear")
    shapes = expected_shapes(linear, model.hidden_size)
    assert shapes["ssm_out.weight"] is None and shapes["ffn_gate_inp.weight"] == (512, 2048)
    assert "recurrent" in (unsupported_reason(linear) or "")
    module = BenchLayer(linear, model.hidden_size, torch.bfloat16, "meta")
    assert sum(p.numel() for p in module.parameters()) == linear.params


@pytest.mark.parametrize("name", sorted(TINY))
def test_forwards_run_on_the_cpu(name: str) -> None:
    model = tiny(name)
    for layer in model.layers:
        module = BenchLayer(layer, model.hidden_size, torch.bfloat16, "cpu")
        x = torch.randn(3, model.hidden_size, dtype=torch.bfloat16)
        cache = module.new_cache(3, 32)
        cos, sin = rope_tables(torch.tensor([31]), module.rope_dim(), torch.bfloat16)
        before = {k: v.clone() for k, v in cache.items()}
        out = module.decode(x, cache, cos, sin)
        assert out.shape == x.shape and torch.isfinite(out.float()).all()
        assert any(not torch.equal(before[k], cache[k]) for k in cache)  # the new token was written
        cos, sin = rope_tables(torch.arange(20), module.rope_dim(), torch.bfloat16)
        out = module.prefill(torch.randn(20, model.hidden_size, dtype=torch.bfloat16), cos, sin)
        assert out.shape == (20, model.hidden_size) and torch.isfinite(out.float()).all()


def test_kernels_agree_with_references() -> None:
    from kvcalc.bench.selfcheck import run_checks

    errors = run_checks([tiny("deepseek_v2"), tiny("gpt_oss")], "cpu")
    assert set(errors) == {"split_kv", "local_attention", "mla_decode", "moe"}
    assert all(e < 2e-2 for e in errors.values()), errors  # bf16 operands: 1e-3 .. 1e-2


def test_grouped_gemm_fallback_matches() -> None:
    xs = torch.randn(7, 16)
    weight = torch.randn(3, 8, 16)
    offs = torch.tensor([2, 2, 7], dtype=torch.int32)  # expert 0 rows 0-1, expert 1 none, expert 2 rows 2-6
    ref = torch.cat([xs[:2] @ weight[0].T, xs[2:] @ weight[2].T])
    saved = dict(GROUPED)
    try:
        assert torch.allclose(grouped_mm(xs, weight, offs), ref, atol=1e-5)
        GROUPED["ok"] = False
        assert torch.allclose(grouped_mm(xs, weight, offs), ref, atol=1e-5)
    finally:
        GROUPED.update(saved)


def test_kv_splits_fill_two_waves() -> None:
    from kvcalc.bench.steps import kv_splits

    # batch 1 x 8 KV heads on 132 SMs: splits double while the doubled CTA count stays <= 2 x 132 = 264:
    # 8 -> 16 -> 32 -> 64 -> 128 -> 256 CTAs, i.e. 32 splits of 8192 / 32 = 256 tokens (the smallest chunk)
    assert kv_splits(1, 8, 8192, 132, "cuda") == 32
    assert kv_splits(64, 8, 8192, 132, "cuda") == 1  # 512 CTAs already
    assert kv_splits(1, 8, 1024, 132, "cuda") == 4  # chunks stay >= 256 tokens
    assert kv_splits(1, 8, 8192, 132, "cpu") == 1


def test_bytes_measured_as_kvcalc_predicts() -> None:
    from kvcalc.bench.memory import measure_paged_kv, measure_weights
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.calc.weights import PlainFormat
    from kvcalc.sources.hardware import find_gpu
    from kvcalc.spec.deployment import EngineSettings, Parallel

    model = tiny("gpt_oss")
    weights = measure_weights(model, "bf16", "cpu", whole=True)
    fmt = PlainFormat("bf16")
    for row in weights["layers"]:
        assert row["bytes"] == sum(fmt.tensor_bytes(t, t.numel) for t in model.layers[row["index"]].tensors)
    plan = plan_deployment(model, find_gpu("h100"), Parallel(), EngineSettings(), weight_format=fmt, context=4096)
    kv = measure_paged_kv(plan, "cpu", max_bytes=2**20)
    # hybrid layout (one sliding, one full group): one shared tensor of page x blocks; page = 2 x 16 tokens x
    # 2 KV heads x 16 x 2 B = 2,048 B, so 1 MiB holds 512 blocks
    assert kv["layout"] == "hybrid" and kv["tensors"] == 1 and kv["blocks"] == 512
    assert kv["tensor_bytes"] == 512 * plan.kv_pool.block_bytes == 2**20
