"""GPT-2 (openai-community/gpt2 and its medium/large/xl sizes): learned positions, LayerNorms, plain GELU MLP.

Follows transformers `models/gpt2/modeling_gpt2.py` (vLLM `vllm/model_executor/models/gpt2.py`):

- `GPT2Model`: wte [V, H], wpe [n_positions, H] (role `pos_embd`, GGUF `position_embd`), ln_f LayerNorm
  (weight and bias); `GPT2LMHeadModel.lm_head` is tied to wte (`tie_word_embeddings`, default True).
- `GPT2Block`: ln_1 and ln_2 LayerNorms with bias; `GPT2Attention` c_attn fused q/k/v [3H, H] + bias [3H]
  and c_proj [H, H] + bias (MHA, head_dim H / n_head); `GPT2MLP` c_fc [I, H] + bias, c_proj [H, I] + bias with
  I = n_inner or 4H.

GPT-2's `Conv1D` stores its weight as [in, out]; kvcalc writes every matrix as [out, in] like nn.Linear (same
element count). Config keys are GPT-2's own (n_embd, n_layer, n_head, n_positions, n_inner).
"""

from __future__ import annotations

from kvcalc.sources.families._build import Cfg, Parts, attention, embeddings, mlp, norm, tensor
from kvcalc.spec.layers import DenseMLP, FullAttention, LayerSpec


def build(cfg: Cfg, model_type: str) -> Parts:
    hidden = cfg.first_int(("n_embd", "hidden_size"))
    num_layers = cfg.first_int(("n_layer", "num_hidden_layers"))
    heads = cfg.first_int(("n_head", "num_attention_heads"))
    positions = cfg.first_int(("n_positions", "max_position_embeddings"))
    vocab = cfg.int("vocab_size")
    inner = cfg.get("n_inner")
    inter = cfg.int("n_inner") if inner is not None else 4 * hidden
    head_dim = hidden // heads

    layers = []
    for i in range(num_layers):
        tensors = norm("attn_norm", hidden, i, bias=True)
        tensors += attention(i, hidden, heads, heads, head_dim, qkv_bias=True, o_bias=True, fused_qkv=True)
        tensors += norm("ffn_norm", hidden, i, bias=True)
        tensors += mlp(i, hidden, inter, gated=False, bias=True)
        layers.append(
            LayerSpec(
                index=i,
                mixer=FullAttention(num_heads=heads, num_kv_heads=heads, head_dim=head_dim),
                mlp=DenseMLP(intermediate_size=inter, gated=False),
                tensors=tuple(tensors),
            )
        )
    tied = cfg.bool("tie_word_embeddings", True)
    global_tensors = embeddings(vocab, hidden, tied=tied, final_norm_bias=True)
    global_tensors.insert(1, tensor("position_embd.weight", (positions, hidden), "pos_embd"))
    return Parts(layers=layers, global_tensors=global_tensors)
