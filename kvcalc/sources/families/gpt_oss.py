"""gpt-oss (openai/gpt-oss-20b, -120b): GQA attention with biases and per-head sinks, MoE with biased experts.

Follows transformers `models/gpt_oss/modeling_gpt_oss.py` (vLLM `vllm/model_executor/models/gpt_oss.py` holds
the same weights):

- `GptOssAttention`: q [n_h*d, H], k/v [n_kv*d, H], o [H, n_h*d], all with bias (`attention_bias`, default
  True); `sinks` [n_h], one learned attention-sink logit per head (role `attn_sinks`).
- `GptOssTopKRouter`: weight [E, H] and bias [E].
- `GptOssExperts`: gate and up fused, `gate_up_proj` [E, H, 2I] + `gate_up_proj_bias` [E, 2I], `down_proj`
  [E, I, H] + `down_proj_bias` [E, H]. Stored here as `ffn_gate_up_exps` [E, 2I, H] and `ffn_down_exps`
  [E, H, I] (out, in as everywhere in kvcalc; same element counts).
- `layer_types` from the config, else sliding on even layers and full on odd ones (`GptOssConfig`), sliding
  layers over the last `sliding_window` (128) tokens.
- two RMSNorms per layer, final norm, untied head.
"""

from __future__ import annotations

from kvcalc.sources.families._build import (
    Cfg,
    Parts,
    attention,
    embeddings,
    experts,
    layer_types,
    norm,
    tensor,
)
from kvcalc.spec.layers import FullAttention, LayerSpec, MoEMLP, SlidingWindowAttention


def build(cfg: Cfg, model_type: str) -> Parts:
    hidden = cfg.int("hidden_size")
    num_layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    kv_heads = cfg.int("num_key_value_heads", heads)
    head_dim = cfg.int("head_dim", hidden // heads)
    vocab = cfg.int("vocab_size")
    bias = cfg.bool("attention_bias", True)
    num_experts = cfg.int("num_local_experts", 128)
    top_k = cfg.first_int(("num_experts_per_tok", "experts_per_token"), 4)
    expert_inter = cfg.int("intermediate_size")
    window = cfg.int("sliding_window", 128)
    types = layer_types(cfg, num_layers) or [
        "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(num_layers)
    ]

    layers = []
    for i in range(num_layers):
        tensors = attention(i, hidden, heads, kv_heads, head_dim, qkv_bias=bias, o_bias=bias)
        tensors.append(tensor("attn_sinks.weight", (heads,), "attn_sinks", i))
        tensors += norm("attn_norm", hidden, i) + norm("ffn_norm", hidden, i)
        tensors += experts(
            i, hidden, num_experts, expert_inter, bias=True, router_bias=True, fused_gate_up=True
        )
        mixer: FullAttention
        if types[i] == "sliding_attention":
            mixer = SlidingWindowAttention(
                num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, sliding_window=window
            )
        else:
            mixer = FullAttention(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim)
        ffn = MoEMLP(num_experts=num_experts, top_k=top_k, expert_intermediate_size=expert_inter)
        layers.append(LayerSpec(index=i, mixer=mixer, mlp=ffn, tensors=tuple(tensors)))
    tied = cfg.bool("tie_word_embeddings", False)
    return Parts(layers=layers, global_tensors=embeddings(vocab, hidden, tied=tied))
