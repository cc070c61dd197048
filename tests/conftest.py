"""Shared fixtures: small literal configs written from the models' published config.json facts."""

from __future__ import annotations

from typing import Any

import pytest

from kvcalc.sources.hf_config import model_from_config
from kvcalc.spec.model import ModelSpec

# Llama-3.1-70B (meta-llama/Llama-3.1-70B config.json): 80 layers, hidden 8192, 64 heads, 8 KV heads,
# intermediate 28672, vocab 128256, untied.
LLAMA_70B: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 8192,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "intermediate_size": 28672,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}

# CodeLlama-7b-hf: Llama-2-7B shape with vocab 32016, 16384 positions.
CODELLAMA_7B: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "intermediate_size": 11008,
    "vocab_size": 32016,
    "tie_word_embeddings": False,
    "max_position_embeddings": 16384,
    "torch_dtype": "bfloat16",
}

# gpt-oss-20b: 24 layers alternating sliding(128)/full, 64 heads x 64, 8 KV heads, 32 experts top-4.
GPT_OSS_20B: dict[str, Any] = {
    "model_type": "gpt_oss",
    "hidden_size": 2880,
    "num_hidden_layers": 24,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "intermediate_size": 2880,
    "vocab_size": 201088,
    "num_local_experts": 32,
    "num_experts_per_tok": 4,
    "sliding_window": 128,
    "attention_bias": True,
    "layer_types": ["sliding_attention", "full_attention"] * 12,
    "tie_word_embeddings": False,
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}

# Gemma-3-27B text model: 62 layers, every 6th global, window 1024, 32 heads x 128, 16 KV heads.
GEMMA3_27B: dict[str, Any] = {
    "model_type": "gemma3_text",
    "hidden_size": 5376,
    "num_hidden_layers": 62,
    "num_attention_heads": 32,
    "num_key_value_heads": 16,
    "head_dim": 128,
    "intermediate_size": 21504,
    "vocab_size": 262208,
    "sliding_window": 1024,
    "sliding_window_pattern": 6,
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}


# DeepSeek-V3 (deepseek-ai/DeepSeek-V3 config.json): 61 layers (3 dense, 58 MoE of 256 experts, top 8, one shared),
# MLA with q_lora_rank 1536, kv_lora_rank 512, rope 64, nope 128, v 128.
DEEPSEEK_V3: dict[str, Any] = {
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "first_k_dense_replace": 3,
    "moe_layer_freq": 1,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "num_nextn_predict_layers": 1,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "topk_method": "noaux_tc",
    "tie_word_embeddings": False,
    "vocab_size": 129280,
}

# A tiny Jamba: 8 layers, attention at i % 4 == 1, Mamba-1 elsewhere, MoE every other layer.
JAMBA: dict[str, Any] = {
    "model_type": "jamba",
    "hidden_size": 32,
    "vocab_size": 100,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 64,
    "attn_layer_period": 4,
    "attn_layer_offset": 1,
    "expert_layer_period": 2,
    "expert_layer_offset": 1,
    "num_experts": 4,
    "num_experts_per_tok": 2,
    "mamba_expand": 2,
    "mamba_d_state": 4,
    "mamba_d_conv": 4,
    "mamba_dt_rank": "auto",
    "mamba_conv_bias": True,
    "mamba_proj_bias": False,
}


def build(config: dict[str, Any], name: str = "test-model") -> ModelSpec:
    return model_from_config(dict(config), model_id=name)


@pytest.fixture
def llama70b() -> ModelSpec:
    return build(LLAMA_70B, "llama-70b")


@pytest.fixture
def codellama7b() -> ModelSpec:
    return build(CODELLAMA_7B, "codellama-7b")
