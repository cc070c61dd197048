"""Hybrid families (Qwen3-Next / Qwen3.5, Jamba, Nemotron-H, Gemma 4): hand-worked counts on tiny configs.

Every expected number is worked out in the comments from the literal config dict next to it.
"""

from __future__ import annotations

from typing import Any

from kvcalc.calc.kv import bytes_per_sequence, fixed_bytes_per_sequence, kv_bytes_per_token
from kvcalc.calc.params import params_mtp, params_total
from kvcalc.sources.hf_config import model_from_config
from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.layers import (
    DenseMLP,
    FullAttention,
    LinearAttention,
    MambaMixer,
    MoEMLP,
    SlidingWindowAttention,
)
from kvcalc.spec.model import ModelSpec
from tests.conftest import JAMBA

BF16 = storage_type("bf16")
FP32 = storage_type("fp32")


def _model(config: dict[str, Any]) -> ModelSpec:
    return model_from_config(config, model_id="test")


def _ssm_params(model: ModelSpec, index: int) -> int:
    return sum(t.numel for t in model.layers[index].tensors if t.role.startswith("ssm"))


# --- Nemotron-H: one Mamba-2 block -------------------------------------------------------------------------

NEMOTRON: dict[str, Any] = {
    "model_type": "nemotron_h",
    "hidden_size": 64,
    "vocab_size": 100,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 128,
    "hybrid_override_pattern": "M*-E",
    "mamba_num_heads": 4,
    "mamba_head_dim": 16,
    "n_groups": 2,
    "ssm_state_size": 8,
    "conv_kernel": 4,
    "use_conv_bias": True,
    "use_bias": False,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 32,
    "moe_shared_expert_intermediate_size": 48,
}


def test_nemotron_blocks_are_layers() -> None:
    m = _model(NEMOTRON)
    # "M*-E": four blocks, each its own LayerSpec.
    assert m.num_layers == 4
    assert [layer.kind for layer in m.layers] == ["mamba", "full", "mlp-only", "mlp-only"]
    assert isinstance(m.layers[2].mlp, DenseMLP) and not m.layers[2].mlp.gated
    assert isinstance(m.layers[3].mlp, MoEMLP) and m.layers[0].mlp is None
    assert any("blocks" in note for note in m.notes)


def test_mamba2_block_params() -> None:
    m = _model(NEMOTRON)
    # d_inner = 4 heads * 16 = 64; conv_dim = 64 + 2 * 2 groups * 8 = 96
    # in_proj [64 + 96 + 4, 64] = 164 * 64          = 10496
    # conv1d weight [96, 1, 4] = 384, bias [96]      =   480
    # dt_bias, A_log, D: 3 * 4 heads                 =    12
    # gated norm [64]                                =    64
    # out_proj [64, 64]                              =  4096
    # mixer total                                    = 15148
    assert _ssm_params(m, 0) == 15148
    # plus the block's own RMSNorm [64]: 15212
    assert m.layers[0].params == 15212


def test_nemotron_moe_block_params() -> None:
    m = _model(NEMOTRON)
    # router [4, 64] = 256 + correction bias [4] = 260
    # experts up [4, 32, 64] = 8192, down [4, 64, 32] = 8192 -> 16384
    # shared expert up [48, 64] + down [64, 48] = 6144
    # block norm [64] -> 260 + 16384 + 6144 + 64 = 22852
    assert m.layers[3].params == 22852


def test_mamba2_state_bytes() -> None:
    mixer = _model(NEMOTRON).layers[0].mixer
    assert isinstance(mixer, MambaMixer)
    # conv: (4 - 1) * 96 channels = 288 values; SSM: 4 heads * 16 head_dim * 8 d_state = 512 values
    assert mixer.conv_state_elements() == 288
    assert mixer.ssm_state_elements() == 512
    # bf16 conv 288 * 2 = 576 B + fp32 SSM 512 * 4 = 2048 B = 2624 B
    assert mixer.state_bytes(FP32, tp=1, conv=BF16) == 2624
    # tp=2 (2 groups split evenly): conv 288 / 2 = 144 -> 288 B; SSM 2 heads * 16 * 8 = 256 -> 1024 B; 1312 B
    assert mixer.state_bytes(FP32, tp=2, conv=BF16) == 1312


def test_mamba2_single_group_replicated_across_tp() -> None:
    # vLLM extra_groups_for_head_shards: n_groups=1 on tp=2 is replicated to 2 groups,
    # conv channels = 64 + 2 * 2 * 8 = 96 -> (4 - 1) * 96 / 2 = 144 values per rank (not 3 * 80 / 2 = 120).
    mixer = MambaMixer(version=2, d_inner=64, d_state=8, conv_kernel=4, n_groups=1, num_heads=4, head_dim=16)
    assert mixer.conv_state_elements(tp=1) == 3 * (64 + 2 * 8)  # 240
    assert mixer.conv_state_elements(tp=2) == 144


# --- Qwen3-Next / Qwen3.5: one Gated-DeltaNet layer --------------------------------------------------------

QWEN3_NEXT: dict[str, Any] = {
    "model_type": "qwen3_next",
    "hidden_size": 64,
    "vocab_size": 100,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 96,
    "num_experts": 0,
    "full_attention_interval": 4,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 8,
    "linear_value_head_dim": 32,
    "linear_conv_kernel_dim": 4,
    "num_nextn_predict_layers": 0,
}


def test_qwen3_next_layer_pattern() -> None:
    m = _model(QWEN3_NEXT)
    # full_attention_interval 4: layers 0-2 linear, layer 3 full
    assert [layer.kind for layer in m.layers] == ["linear", "linear", "linear", "full"]
    assert isinstance(m.layers[0].mlp, DenseMLP)


def test_gated_deltanet_params() -> None:
    m = _model(QWEN3_NEXT)
    # key_dim = 2 * 8 = 16, value_dim = 4 * 32 = 128, conv_dim = 2 * 16 + 128 = 160
    # in_proj_qkvz [2*16 + 2*128, 64] = 288 * 64 = 18432
    # in_proj_ba [2 * 4, 64]                      =   512
    # conv1d [160, 1, 4], no bias                 =   640
    # dt_bias [4] + A_log [4]                     =     8
    # gated norm [32]                             =    32
    # out_proj [64, 128]                          =  8192
    # total                                       = 27816
    assert _ssm_params(m, 0) == 27816
    # Qwen3.5 splits the in-projections: qkv [160, 64] 10240 + z [128, 64] 8192 + b, a [4, 64] 256 + 256
    # = 18944 = 18432 + 512: same total.
    split = _model({**QWEN3_NEXT, "model_type": "qwen3_5_text", "mtp_num_hidden_layers": 0})
    assert _ssm_params(split, 0) == 27816
    assert {t.name for t in split.layers[0].tensors} >= {"blk.0.ssm_in_qkv.weight", "blk.0.ssm_in_z.weight"}
    # whole layer: + dense MLP 3 * 64 * 96 = 18432 + two norms 128 = 46376
    assert m.layers[0].params == 27816 + 18432 + 128


def test_gated_deltanet_state_bytes() -> None:
    mixer = _model(QWEN3_NEXT).layers[0].mixer
    assert isinstance(mixer, LinearAttention)
    # conv: (4 - 1) * 160 = 480 values; recurrent: 4 value heads * 8 * 32 = 1024 values
    assert mixer.conv_state_elements() == 480
    assert mixer.ssm_state_elements() == 1024
    # bf16 conv 960 B + fp32 state 4096 B = 5056 B; all bf16: 960 + 2048 = 3008 B
    assert mixer.state_bytes(FP32, tp=1, conv=BF16) == 5056
    assert mixer.state_bytes(BF16) == 3008


def test_qwen3_next_gated_attention_and_mtp() -> None:
    m = _model({**QWEN3_NEXT, "num_nextn_predict_layers": 1})
    full = m.layers[3]
    assert isinstance(full.mixer, FullAttention)
    q = next(t for t in full.tensors if t.name == "blk.3.attn_q.weight")
    # q_proj emits query + output gate: 2 * 4 heads * 16 = 128 rows
    assert q.shape == (128, 64)
    # MTP layer: fc [64, 128] 8192 + 2 pre-fc norms 128 + full-attention layer (q 128*64 8192, k/v 32*64 2048
    # each, o 64*64 4096, q/k norms 32) = 16416 + MLP 18432 + 2 norms 128 + final norm 64 = 43360
    assert params_mtp(m) == 43360
    assert params_total(m) == params_total(_model(QWEN3_NEXT))  # MTP not in the total


# --- Jamba (JAMBA is in conftest.py) ---------------------------------------------------------------------


def test_jamba_layer_pattern() -> None:
    m = _model(JAMBA)
    # attention where i % 4 == 1: layers 1 and 5; MoE where i % 2 == 1: layers 1, 3, 5, 7
    assert [layer.kind for layer in m.layers] == ["mamba", "full", "mamba", "mamba"] * 2
    assert [isinstance(layer.mlp, MoEMLP) for layer in m.layers] == [False, True] * 4


def test_mamba1_params_and_state() -> None:
    m = _model(JAMBA)
    # d_inner = 2 * 32 = 64, dt_rank = ceil(32 / 16) = 2, d_state 4, kernel 4
    # in_proj [128, 32] 4096; conv1d [64, 1, 4] 256 + bias 64; x_proj [2 + 8, 64] 640;
    # dt_proj [64, 2] 128 + bias 64; A_log [64, 4] 256; D [64] 64; out_proj [32, 64] 2048;
    # dt/B/C norms 2 + 4 + 4 = 10  ->  7626
    assert _ssm_params(m, 0) == 7626
    mixer = m.layers[0].mixer
    assert isinstance(mixer, MambaMixer)
    # conv (4 - 1) * 64 = 192 values, SSM 64 * 4 = 256 values; bf16: (192 + 256) * 2 = 896 B
    assert mixer.state_bytes(BF16) == 896
    # six Mamba layers hold 6 * 896 = 5376 B per sequence, whatever the context
    assert fixed_bytes_per_sequence(m, BF16) == 5376


# --- Gemma 4 ----------------------------------------------------------------------------------------------

GEMMA4: dict[str, Any] = {
    "model_type": "gemma4_text",
    "hidden_size": 64,
    "vocab_size": 100,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "global_head_dim": 64,
    "num_global_key_value_heads": 1,
    "attention_k_eq_v": True,
    "sliding_window": 128,
    "intermediate_size": 96,
    "hidden_size_per_layer_input": 0,
    "enable_moe_block": True,
    "num_experts": 4,
    "top_k_experts": 2,
    "moe_intermediate_size": 16,
}


def test_gemma4_kv_split() -> None:
    m = _model(GEMMA4)
    # default pattern: every 6th layer global -> layers 0-4 sliding, layer 5 global
    assert [layer.kind for layer in m.layers] == ["sliding"] * 5 + ["full"]
    sliding, glob = m.layers[0].mixer, m.layers[5].mixer
    assert isinstance(sliding, SlidingWindowAttention) and isinstance(glob, FullAttention)
    # sliding: K and V of 2 heads * 16 = 2 * 32 * 2 B = 128 B per token
    assert sliding.kv_bytes_per_token(BF16) == 128
    # global: 1 KV head of global_head_dim 64; k_eq_v makes V = K, but vLLM caches both: 2 * 64 * 2 B = 256 B
    assert glob.kv_bytes_per_token(BF16) == 256
    assert kv_bytes_per_token(m, BF16) == 256
    # 5 sliding layers * 128 B * 128-token window = 81920 B fixed per sequence
    assert fixed_bytes_per_sequence(m, BF16) == 81920
    # at 1000 tokens: 256 * 1000 + 81920 = 337920 B
    assert bytes_per_sequence(m, 1000, BF16) == 337920


def test_gemma4_layer_params() -> None:
    m = _model(GEMMA4)
    names = {t.name for t in m.layers[5].tensors}
    assert "blk.5.attn_v.weight" not in names and "blk.0.attn_v.weight" in {
        t.name for t in m.layers[0].tensors
    }
    # global layer 5:
    # q [4*64, 64] 16384 + q_norm 64 + k [64, 64] 4096 + k_norm 64 + o [64, 256] 16384 = 36992
    # 4 norms 256 + layer_scalar 1 + MLP 3 * 64 * 96 18432 = 18689
    # MoE: router proj [4, 64] 256 + scale 64 + per_expert_scale 4 + gate/up [4, 16, 64] 2 * 4096
    #      + down [4, 64, 16] 4096 + 3 norms 192 = 12804
    # total 36992 + 18689 + 12804 = 68485
    assert m.layers[5].params == 68485
    assert m.tie_word_embeddings
