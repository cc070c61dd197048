"""Core families (DeepSeek MLA/MoE/MTP, gpt-oss, GPT-2, Falcon, Llama 4): hand-worked parameter counts.

Each config is a literal dict here (the sizes of the published config.json, trimmed to the fields the mapper
reads); every expected number is worked out in the comments. The same totals match transformers 5.24 built
on the meta device (docs/dev/check_params.py).
"""

from __future__ import annotations

from typing import Any

from kvcalc.calc.params import component, params_breakdown, params_mtp, params_total
from kvcalc.sources.hf_config import model_from_config
from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.layers import (
    ChunkedAttention,
    DenseMLP,
    FullAttention,
    MLAAttention,
    MoEMLP,
    SlidingWindowAttention,
)
from kvcalc.spec.model import ModelSpec
from tests.conftest import DEEPSEEK_V3

BF16 = storage_type("bf16")


def _model(config: dict[str, Any]) -> ModelSpec:
    return model_from_config(config, model_id="test")


def _params(model: ModelSpec, index: int, prefix: str) -> int:
    """Params of the tensors of layer `index` whose role starts with `prefix`."""
    return sum(t.numel for t in model.layers[index].tensors if t.role.startswith(prefix))


def _names(model: ModelSpec, index: int) -> set[str]:
    return {t.name.removeprefix(f"blk.{index}.") for t in model.layers[index].tensors}


# --- GPT-2 (openai-community/gpt2) --------------------------------------------------------------------------

GPT2: dict[str, Any] = {
    "model_type": "gpt2",
    "n_embd": 768,
    "n_head": 12,
    "n_layer": 12,
    "n_positions": 1024,
    "vocab_size": 50257,
}


def test_gpt2_total() -> None:
    # wte 50257*768 = 38,597,376; wpe 1024*768 = 786,432.
    # per layer: ln_1 2*768 = 1,536; c_attn 768*2304 + 2304 = 1,771,776; c_proj 768*768 + 768 = 590,592;
    #            ln_2 1,536; c_fc 768*3072 + 3072 = 2,362,368; mlp c_proj 3072*768 + 768 = 2,360,064
    #            -> 7,087,872; 12 layers = 85,054,464.
    # ln_f 2*768 = 1,536; lm_head tied to wte.
    # total = 38,597,376 + 786,432 + 85,054,464 + 1,536 = 124,439,808
    m = _model(GPT2)
    assert params_total(m) == 124_439_808
    assert m.layers[0].params == 7_087_872
    assert m.tie_word_embeddings
    assert params_breakdown(m)["embeddings"] == 38_597_376 + 786_432  # wte + wpe (role pos_embd)
    assert {t.role for t in m.global_tensors} == {"token_embd", "pos_embd", "norm"}
    assert m.layers[0].mixer == FullAttention(num_heads=12, num_kv_heads=12, head_dim=64)
    assert m.layers[0].mlp == DenseMLP(intermediate_size=3072, gated=False)


def test_gpt2_n_inner_and_untied() -> None:
    # n_inner 1000 instead of 4H: c_fc 768*1000 + 1000 = 769,000; c_proj 1000*768 + 768 = 768,768;
    # layer = 1,536 + 1,771,776 + 590,592 + 1,536 + 769,000 + 768,768 = 3,903,208.
    # 1 layer + wte 38,597,376 + wpe 786,432 + ln_f 1,536 + untied head 38,597,376 = 81,885,928
    m = _model({**GPT2, "n_layer": 1, "n_inner": 1000, "tie_word_embeddings": False})
    assert m.layers[0].params == 3_903_208
    assert params_total(m) == 81_885_928


# --- DeepSeek-V3 / R1 (deepseek_v3) and V2-Lite (deepseek_v2); DEEPSEEK_V3 is in conftest.py ---------------


def test_deepseek_v3_mla_attention_per_layer() -> None:
    # H = 7168, n_h = 128, q_lora 1536, kv_lora 512, qk_nope 128, qk_rope 64 (q/k head 192), v 128:
    #   q_a_proj      1536 * 7168             =  11,010,048
    #   q_a_layernorm 1536                    =       1,536
    #   q_b_proj      128*192 * 1536          =  37,748,736
    #   kv_a_proj_with_mqa (512+64) * 7168    =   4,128,768
    #   kv_a_layernorm 512                    =         512
    #   kv_b_proj     128*(128+128) * 512     =  16,777,216
    #   o_proj        7168 * 128*128          = 117,440,512
    #   total                                 = 187,107,328
    m = _model(DEEPSEEK_V3)
    assert _params(m, 0, "attn") + _params(m, 0, "norm") - 2 * 7168 == 187_107_328  # minus the 2 H-norms
    names = _names(m, 0)
    assert {
        "attn_q_a.weight",
        "attn_q_a_norm.weight",
        "attn_q_b.weight",
        "attn_kv_a_mqa.weight",
        "attn_kv_a_norm.weight",
        "attn_kv_b.weight",
        "attn_output.weight",
    } <= names
    assert "attn_q.weight" not in names
    shapes = {t.name.removeprefix("blk.0."): t.shape for t in m.layers[0].tensors}
    assert shapes["attn_kv_a_mqa.weight"] == (576, 7168)
    assert shapes["attn_kv_b.weight"] == (32768, 512)
    assert shapes["attn_output.weight"] == (7168, 16384)


def test_deepseek_v3_mla_latent_is_576() -> None:
    # vLLM / SGLang cache one latent per token and layer: kv_lora_rank + qk_rope_head_dim = 512 + 64 = 576
    # values, 1,152 bytes in bf16, the same on every TP rank.
    m = _model(DEEPSEEK_V3)
    mixer = m.layers[0].mixer
    assert isinstance(mixer, MLAAttention)
    assert mixer.latent_dim == 576
    assert mixer.kv_bytes_per_token(BF16) == 1152
    assert mixer.kv_bytes_per_token(BF16, tp=8) == 1152
    assert all(layer.kind == "mla" for layer in m.layers)


def test_deepseek_v3_total_and_mtp() -> None:
    # embed 129280*7168 = 926,679,040; untied head the same; final norm 7,168.
    # dense layer (0..2): attention 187,107,328 + 2 norms 14,336 + MLP 3*7168*18432 = 396,361,728
    #   -> 583,483,392
    # MoE layer (3..60): attention 187,107,328 + norms 14,336 + router 256*7168 = 1,835,008
    #   + e_score_correction_bias 256 + experts 256*3*7168*2048 = 11,274,289,152
    #   + shared expert 3*7168*2048 = 44,040,192 -> 11,507,286,272
    # total = 2*926,679,040 + 7,168 + 3*583,483,392 + 58*11,507,286,272 = 671,026,419,200
    m = _model(DEEPSEEK_V3)
    assert params_total(m) == 671_026_419_200
    assert m.layers[2].params == 583_483_392
    assert m.layers[3].params == 11_507_286_272
    assert isinstance(m.layers[2].mlp, DenseMLP) and m.layers[2].mlp.intermediate_size == 18432
    assert m.layers[3].mlp == MoEMLP(
        num_experts=256, top_k=8, expert_intermediate_size=2048, shared_intermediate_size=2048
    )
    assert "exp_probs_b.bias" in _names(m, 3)  # e_score_correction_bias [256]
    assert {"ffn_gate_shexp.weight", "ffn_up_shexp.weight", "ffn_down_shexp.weight"} <= _names(m, 3)
    # MTP layer 61 = a MoE decoder layer 11,507,286,272 + enorm, hnorm, shared_head.norm 3*7168 = 21,504
    #   + eh_proj 7168 * 14336 = 102,760,448 -> 11,610,068,224 (embedding and head shared, not counted)
    assert params_mtp(m) == 11_610_068_224
    assert {t.layer for t in m.mtp_tensors} == {61}
    assert any(t.name == "blk.61.nextn.eh_proj.weight" and t.shape == (7168, 14336) for t in m.mtp_tensors)
    assert m.num_layers == 61


def test_kimi_k2_maps_like_v3() -> None:
    # Kimi K2: 64 heads, 384 experts, 1 dense layer, no MTP. MLA attention with 64 heads:
    #   q_a 11,010,048 + 1,536 + q_b 64*192*1536 = 18,874,368 + kv_a 4,128,768 + 512
    #   + kv_b 64*256*512 = 8,388,608 + o 7168*8192 = 58,720,256 -> 101,124,096
    k2 = {
        **DEEPSEEK_V3,
        "model_type": "kimi_k2",
        "num_attention_heads": 64,
        "num_key_value_heads": 64,
        "n_routed_experts": 384,
        "first_k_dense_replace": 1,
        "num_nextn_predict_layers": 0,
        "vocab_size": 163840,
    }
    m = _model(k2)
    assert _params(m, 0, "attn") + _params(m, 0, "norm") - 2 * 7168 == 101_124_096
    # total (matches transformers' DeepseekV3ForCausalLM): embed + head 2*163840*7168 = 2,348,810,240,
    # norm 7,168; dense layer 101,124,096 + 14,336 + 396,361,728 = 497,500,160;
    # MoE layer 101,124,096 + 14,336 + router 384*7168 = 2,752,512 + bias 384
    #   + experts 384*3*7168*2048 = 16,911,433,728 + shared 44,040,192 = 17,059,365,248;
    # 2,348,810,240 + 7,168 + 497,500,160 + 60*17,059,365,248 = 1,026,408,232,448
    assert params_total(m) == 1_026_408_232_448
    assert params_mtp(m) == 0


DEEPSEEK_V2_LITE: dict[str, Any] = {
    "model_type": "deepseek_v2",
    "hidden_size": 2048,
    "intermediate_size": 10944,
    "moe_intermediate_size": 1408,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "n_routed_experts": 64,
    "n_shared_experts": 2,
    "num_experts_per_tok": 6,
    "q_lora_rank": None,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "topk_method": "greedy",
    "vocab_size": 102400,
}


def test_deepseek_v2_lite_q_proj_path() -> None:
    # No q_lora_rank: one q_proj 16*192 * 2048 = 6,291,456; kv_a (512+64)*2048 = 1,179,648; kv_a_norm 512;
    # kv_b 16*256*512 = 2,097,152; o 2048*2048 = 4,194,304 -> attention 13,763,072.
    # dense layer 0: 13,763,072 + norms 4,096 + MLP 3*2048*10944 = 67,239,936 -> 81,007,104
    # MoE layer: 13,763,072 + 4,096 + router 64*2048 = 131,072 (greedy: no score bias)
    #   + experts 64*3*2048*1408 = 553,648,128 + shared (2*1408) 3*2048*2816 = 17,301,504 -> 584,847,872
    # total = embed + head 2*102400*2048 = 419,430,400 + norm 2,048 + 81,007,104 + 26*584,847,872
    #       = 15,706,484,224
    m = _model(DEEPSEEK_V2_LITE)
    assert "attn_q.weight" in _names(m, 0) and "attn_q_a.weight" not in _names(m, 0)
    assert _params(m, 0, "attn") + _params(m, 0, "norm") - 2 * 2048 == 13_763_072
    assert m.layers[1].params == 584_847_872
    assert "exp_probs_b.bias" not in _names(m, 1)
    assert params_total(m) == 15_706_484_224
    assert params_mtp(m) == 0


def test_deepseek_moe_layer_freq() -> None:
    # moe_layer_freq 2, first 1 dense: MoE where i >= 1 and i % 2 == 0 (vLLM DeepseekV2DecoderLayer).
    m = _model({**DEEPSEEK_V2_LITE, "num_hidden_layers": 6, "moe_layer_freq": 2})
    assert [isinstance(layer.mlp, MoEMLP) for layer in m.layers] == [False, False, True, False, True, False]


# --- gpt-oss-20b ------------------------------------------------------------------------------------------

GPT_OSS_20B: dict[str, Any] = {
    "model_type": "gpt_oss",
    "hidden_size": 2880,
    "intermediate_size": 2880,
    "head_dim": 64,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "num_hidden_layers": 24,
    "num_local_experts": 32,
    "num_experts_per_tok": 4,
    "sliding_window": 128,
    "attention_bias": True,
    "tie_word_embeddings": False,
    "vocab_size": 201088,
    "layer_types": ["sliding_attention", "full_attention"] * 12,
}


def test_gpt_oss_20b_total() -> None:
    # attention (all biased): q 4096*2880 + 4096 = 11,800,576; k, v 512*2880 + 512 = 1,475,072 each;
    #   o 2880*4096 + 2880 = 11,799,360; sinks 64 -> 26,550,144
    # norms 2*2880 = 5,760; router 32*2880 + 32 = 92,192
    # experts: gate_up 32*5760*2880 = 530,841,600 + bias 32*5760 = 184,320;
    #          down 32*2880*2880 = 265,420,800 + bias 32*2880 = 92,160 -> 796,538,880
    # layer = 26,550,144 + 5,760 + 92,192 + 796,538,880 = 823,186,976; 24 layers = 19,756,487,424
    # embed + head 2*201088*2880 = 1,158,266,880, final norm 2,880
    # total = 19,756,487,424 + 1,158,266,880 + 2,880 = 20,914,757,184
    m = _model(GPT_OSS_20B)
    assert _params(m, 0, "attn") == 26_550_144
    assert m.layers[0].params == 823_186_976
    assert params_total(m) == 20_914_757_184
    assert params_breakdown(m)["routed_experts"] == 24 * 796_538_880
    sinks = [t for t in m.layers[0].tensors if t.role == "attn_sinks"]
    assert len(sinks) == 1 and sinks[0].shape == (64,)
    gate_up = [t for t in m.layers[0].tensors if t.role == "ffn_gate_up_exps"]
    assert {t.shape for t in gate_up} == {(32, 5760, 2880), (32, 5760)}
    assert all(component(t) == "routed_experts" for t in gate_up)


def test_gpt_oss_alternating_layers() -> None:
    m = _model(GPT_OSS_20B)
    assert m.layers[0].mixer == SlidingWindowAttention(
        num_heads=64, num_kv_heads=8, head_dim=64, sliding_window=128
    )
    assert m.layers[1].mixer == FullAttention(num_heads=64, num_kv_heads=8, head_dim=64)
    assert [layer.kind for layer in m.layers] == ["sliding", "full"] * 12
    # without layer_types: GptOssConfig's default, sliding on even layers
    no_types = {k: v for k, v in GPT_OSS_20B.items() if k != "layer_types"}
    assert [layer.kind for layer in _model(no_types).layers] == ["sliding", "full"] * 12
    assert m.layers[0].mlp == MoEMLP(num_experts=32, top_k=4, expert_intermediate_size=2880)


# --- Falcon ------------------------------------------------------------------------------------------------

FALCON_7B: dict[str, Any] = {
    "model_type": "falcon",
    "hidden_size": 4544,
    "num_attention_heads": 71,
    "num_hidden_layers": 32,
    "multi_query": True,
    "new_decoder_architecture": False,
    "parallel_attn": True,
    "bias": False,
    "vocab_size": 65024,
}

FALCON_40B: dict[str, Any] = {
    "model_type": "falcon",
    "hidden_size": 8192,
    "num_attention_heads": 128,
    "num_kv_heads": 8,
    "num_hidden_layers": 60,
    "new_decoder_architecture": True,
    "parallel_attn": True,
    "bias": False,
    "vocab_size": 65024,
}


def test_falcon_7b_multi_query() -> None:
    # head_dim 4544/71 = 64; query_key_value [4544 + 2*64, 4544] = 4672*4544 = 21,229,568;
    # dense 4544*4544 = 20,647,936; one input_layernorm (LayerNorm) 2*4544 = 9,088;
    # MLP 4H: 2 * 4544*18176 = 165,183,488 -> layer 207,070,080; 32 layers = 6,626,242,560
    # word_embeddings 65024*4544 = 295,469,056 (head tied); ln_f 9,088
    # total = 6,626,242,560 + 295,469,056 + 9,088 = 6,921,720,704
    m = _model(FALCON_7B)
    assert m.layers[0].params == 207_070_080
    assert params_total(m) == 6_921_720_704
    assert m.tie_word_embeddings
    assert m.layers[0].mixer == FullAttention(num_heads=71, num_kv_heads=1, head_dim=64)
    assert _names(m, 0) == {
        "attn_qkv.weight",
        "attn_output.weight",
        "attn_norm.weight",
        "attn_norm.bias",
        "ffn_up.weight",
        "ffn_down.weight",
    }


def test_falcon_40b_new_decoder_architecture() -> None:
    # query_key_value [(128 + 2*8)*64, 8192] = 9216*8192 = 75,497,472; dense 67,108,864;
    # ln_attn + ln_mlp 4*8192 = 32,768; MLP 2*8192*32768 = 536,870,912 -> layer 679,510,016
    # 60 layers = 40,770,600,960; embed 65024*8192 = 532,676,608 (tied); ln_f 16,384
    # total = 41,303,293,952
    m = _model(FALCON_40B)
    assert m.layers[0].params == 679_510_016
    assert params_total(m) == 41_303_293_952
    assert m.layers[0].mixer == FullAttention(num_heads=128, num_kv_heads=8, head_dim=64)
    assert {"attn_norm.weight", "attn_norm_2.weight", "attn_norm_2.bias"} <= _names(m, 0)


def test_falcon_sequential_with_bias() -> None:
    # Falcon-RW style: no multi_query (MHA), not parallel (input + post-attention LayerNorm), biases on.
    # H 256, 4 heads: qkv 768*256 + 768 = 197,376; dense 256*256 + 256 = 65,792; 2 LayerNorms 1,024;
    # MLP 1024*256 + 1024 + 256*1024 + 256 = 525,568 -> layer 789,760
    cfg = {
        **FALCON_7B,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_hidden_layers": 1,
        "multi_query": False,
        "parallel_attn": False,
        "bias": True,
    }
    m = _model(cfg)
    assert m.layers[0].params == 789_760
    assert m.layers[0].mixer == FullAttention(num_heads=4, num_kv_heads=4, head_dim=64)
    assert {"attn_norm.weight", "ffn_norm.weight"} <= _names(m, 0)


# --- Llama 4 (text_config of Llama4ForConditionalGeneration) ---------------------------------------------

SCOUT_TEXT: dict[str, Any] = {
    "model_type": "llama4_text",
    "hidden_size": 5120,
    "head_dim": 128,
    "num_attention_heads": 40,
    "num_key_value_heads": 8,
    "num_hidden_layers": 48,
    "intermediate_size": 8192,
    "intermediate_size_mlp": 16384,
    "interleave_moe_layer_step": 1,
    "num_local_experts": 16,
    "num_experts_per_tok": 1,
    "attention_chunk_size": 8192,
    "vocab_size": 202048,
}

SCOUT_VISION: dict[str, Any] = {
    "hidden_size": 1408,
    "intermediate_size": 5632,
    "num_hidden_layers": 34,
    "num_attention_heads": 16,
    "num_channels": 3,
    "image_size": 336,
    "patch_size": 14,
    "pixel_shuffle_ratio": 0.5,
    "projector_input_dim": 4096,
    "projector_output_dim": 4096,
    "vision_output_dim": 4096,
}


def test_llama4_scout_total_and_chunked_layers() -> None:
    # attention: q 5120*5120 = 26,214,400; k, v 1024*5120 = 5,242,880 each; o 26,214,400 -> 62,914,560
    # norms 10,240; router 16*5120 = 81,920; experts 16*3*5120*8192 = 2,013,265,920;
    # shared expert 3*5120*8192 = 125,829,120 -> layer 2,202,101,760; 48 layers = 105,700,884,480
    # embed + head 2*202048*5120 = 2,068,971,520; norm 5,120 -> total 107,769,861,120
    m = _model({"model_type": "llama4", "text_config": SCOUT_TEXT})
    assert m.model_type == "llama4_text"
    assert m.layers[0].params == 2_202_101_760
    assert params_total(m) == 107_769_861_120
    # no_rope_layers default: every 4th layer (3, 7, ...) is NoPE and global; the RoPE layers are chunked
    for layer in m.layers:
        if layer.index % 4 == 3:
            assert layer.mixer == FullAttention(num_heads=40, num_kv_heads=8, head_dim=128)
        else:
            assert layer.mixer == ChunkedAttention(num_heads=40, num_kv_heads=8, head_dim=128, chunk=8192)
    # the trimmed config has no vision_config: vision not counted, and a note says so
    assert m.vision_params == 0
    assert any("vision" in note for note in m.notes)


def test_llama4_explicit_no_rope_layers() -> None:
    cfg = {**SCOUT_TEXT, "num_hidden_layers": 4, "no_rope_layers": [0, 1, 1, 0]}
    assert [layer.kind for layer in _model(cfg).layers] == ["full", "chunked", "chunked", "full"]


def test_llama4_maverick_interleaved_moe() -> None:
    # interleave_moe_layer_step 2: layers 1, 3, 5 ... MoE (128 experts), 0, 2, 4 ... dense of 16384.
    # dense layer: 62,914,560 + 10,240 + 3*5120*16384 = 251,658,240 -> 314,583,040
    # MoE layer: 62,914,560 + 10,240 + router 128*5120 = 655,360 + experts 128*3*5120*8192 = 16,106,127,360
    #   + shared 125,829,120 -> 16,295,536,640
    # total = 24*(314,583,040 + 16,295,536,640) + 2,068,971,520 + 5,120 = 400,711,848,960
    m = _model({**SCOUT_TEXT, "interleave_moe_layer_step": 2, "num_local_experts": 128})
    assert m.layers[0].mlp == DenseMLP(intermediate_size=16384)
    assert m.layers[1].mlp == MoEMLP(
        num_experts=128, top_k=1, expert_intermediate_size=8192, shared_intermediate_size=8192
    )
    assert m.layers[0].params == 314_583_040
    assert m.layers[1].params == 16_295_536_640
    assert params_total(m) == 400_711_848_960


def test_llama4_vision_params() -> None:
    # Llama4VisionModel, Hv 1408, Iv 5632, 34 layers, 336/14 = 24 patches a side:
    #   patch_embedding 1408*3*14*14 = 827,904; class_embedding 1,408; positional (24^2 + 1)*1408 = 812,416;
    #   layernorm_pre/post 4*1408 = 5,632;
    #   layer: q, k, v, o 4*(1408*1408 + 1408) = 7,935,488; fc1 1408*5632 + 5632 = 7,935,488;
    #          fc2 5632*1408 + 1408 = 7,931,264; 2 LayerNorms 5,632 -> 23,807,872; 34 layers = 809,467,648
    #   vision_adapter fc1 4096*5632 = 23,068,672, fc2 4096*4096 = 16,777,216
    # multi_modal_projector 5120*4096 = 20,971,520
    # total 871,932,416 (transformers 5.24 Llama4ForConditionalGeneration minus its language model)
    m = _model({"model_type": "llama4", "text_config": SCOUT_TEXT, "vision_config": SCOUT_VISION})
    assert m.vision_params == 871_932_416
    assert params_total(m) == 107_769_861_120  # vision stays out of the text total
