"""Falcon (tiiuae/falcon-7b, -40b, -180b, RW): fused query_key_value, LayerNorms, plain GELU MLP.

Follows transformers `models/falcon/modeling_falcon.py` / `configuration_falcon.py` (vLLM
`vllm/model_executor/models/falcon.py` builds the same weights):

- `FalconAttention.query_key_value` [q + k + v, H]: with `new_decoder_architecture` (40b/180b) the heads are
  grouped, (n_h + 2 * num_kv_heads) * d rows; else with `multi_query` (7b) one shared K/V head, H + 2d rows;
  else full MHA, 3H rows. `dense` [H, H]. Both biased only when `bias` is set. head_dim = H / n_h.
- `FalconMLP`: dense_h_to_4h [F, H], dense_4h_to_h [H, F], F = `ffn_hidden_size` or 4H, biased with `bias`.
- `FalconDecoderLayer` norms (LayerNorm, weight and bias): not `parallel_attn` -> input_layernorm +
  post_attention_layernorm; `parallel_attn` with `num_ln_in_parallel_attn` == 2 (unset, it defaults to 2 for
  new_decoder_architecture) -> ln_attn + ln_mlp; otherwise one input_layernorm shared by attention and MLP.
- `FalconModel`: word_embeddings [V, H], ln_f; `FalconForCausalLM.lm_head` tied to the embedding unless
  `tie_word_embeddings` is false (FalconConfig default True, which the released configs do not override).
- positions are RoPE or ALiBi (`alibi`), neither with weights.

Keys are read as transformers 5.x `FalconConfig` reads them (no `n_head` / `n_layer` / `n_head_kv` aliases;
the old RefinedWeb configs that used those have their own model_type, not mapped here).
"""

from __future__ import annotations

from kvcalc.sources.families._build import Cfg, Parts, attention, embeddings, mlp, norm
from kvcalc.spec.layers import DenseMLP, FullAttention, LayerSpec


def build(cfg: Cfg, model_type: str) -> Parts:
    hidden = cfg.int("hidden_size")
    num_layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    vocab = cfg.int("vocab_size")
    head_dim = hidden // heads
    new_arch = cfg.bool("new_decoder_architecture", False)
    multi_query = cfg.bool("multi_query", True)
    parallel = cfg.bool("parallel_attn", True)
    bias = cfg.bool("bias", False)
    ffn = cfg.int("ffn_hidden_size", 4 * hidden)
    if new_arch:
        kv_heads = cfg.int("num_kv_heads", heads)
    elif multi_query:
        kv_heads = 1
    else:
        kv_heads = heads
    ln_parallel = cfg.int("num_ln_in_parallel_attn", 2 if new_arch else 1)

    norm_names: tuple[str, ...]
    if not parallel:
        norm_names = ("attn_norm", "ffn_norm")
    elif ln_parallel == 2:
        norm_names = ("attn_norm", "attn_norm_2")
    else:
        norm_names = ("attn_norm",)

    layers = []
    for i in range(num_layers):
        tensors = attention(i, hidden, heads, kv_heads, head_dim, qkv_bias=bias, o_bias=bias, fused_qkv=True)
        for name in norm_names:
            tensors += norm(name, hidden, i, bias=True)
        tensors += mlp(i, hidden, ffn, gated=False, bias=bias)
        layers.append(
            LayerSpec(
                index=i,
                mixer=FullAttention(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim),
                mlp=DenseMLP(intermediate_size=ffn, gated=False),
                tensors=tuple(tensors),
            )
        )
    tied = cfg.bool("tie_word_embeddings", True)
    return Parts(layers=layers, global_tensors=embeddings(vocab, hidden, tied=tied, final_norm_bias=True))
