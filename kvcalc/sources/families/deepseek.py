"""DeepSeek-V2 / V3 / R1 and Kimi K2: multi-head latent attention (MLA) plus DeepSeekMoE, with MTP layers.

Follows transformers `models/deepseek_v3/modeling_deepseek_v3.py` (and `deepseek_v2/modeling_deepseek_v2.py`;
Kimi K2 ships `model_type: kimi_k2` with the DeepSeek-V3 architecture, which transformers loads as
`deepseek_v3`) and vLLM `vllm/model_executor/models/deepseek_v2.py` / `deepseek_mtp.py`:

- attention (`DeepseekV3Attention`): with `q_lora_rank` set, q_a_proj [q_lora_rank, H] -> q_a_layernorm
  [q_lora_rank] -> q_b_proj [n_h * (qk_nope + qk_rope), q_lora_rank]; without it (V2-Lite) one q_proj
  [n_h * (qk_nope + qk_rope), H]. kv_a_proj_with_mqa [kv_lora_rank + qk_rope, H], kv_a_layernorm
  [kv_lora_rank], kv_b_proj [n_h * (qk_nope + v), kv_lora_rank], o_proj [H, n_h * v]. `attention_bias` adds
  biases to q_a_proj, kv_a_proj_with_mqa and o_proj, as transformers does.
- MLP: the first `first_k_dense_replace` layers are dense (`intermediate_size`); after that a layer is MoE
  when `layer_idx % moe_layer_freq == 0` (vLLM / the original remote code; transformers makes every later
  layer MoE, the same for every released config, all with moe_layer_freq = 1). MoE = router [E, H] (+
  `e_score_correction_bias` [E] for `topk_method: noaux_tc`, V3 / R1 / K2: a checkpoint tensor, a Parameter in
  vLLM and a persistent buffer in transformers), `n_routed_experts` experts of `moe_intermediate_size`, and
  one shared MLP of `n_shared_experts * moe_intermediate_size`.
- MTP (`num_nextn_predict_layers`, DeepSeek-V3 README "MTP modules", vLLM `DeepSeekMultiTokenPredictorLayer`):
  each MTP layer is a full decoder layer (index num_hidden_layers + k, so MoE) plus enorm [H], hnorm [H],
  eh_proj [H, 2H] and shared_head.norm [H]. Its embedding and head are the main model's (the checkpoint
  stores copies, `model.layers.61.embed_tokens` / `shared_head.head`, which vLLM loads but which are the
  same weights); they are not counted. MTP tensors go to `Parts.mtp_tensors`, outside the total.
"""

from __future__ import annotations

from kvcalc.sources.families._build import Cfg, Parts, embeddings, experts, linear, mlp, norm, routed, tensor
from kvcalc.spec.layers import DenseMLP, LayerSpec, MLAAttention, MoEMLP, TensorSpec


def mla_attention(
    layer: int,
    hidden: int,
    num_heads: int,
    *,
    q_lora_rank: int | None,
    kv_lora_rank: int,
    qk_nope_head_dim: int,
    qk_rope_head_dim: int,
    v_head_dim: int,
    bias: bool = False,
) -> list[TensorSpec]:
    """MLA projections (DeepSeek-V2 paper arXiv:2405.04434 section 2.1; `DeepseekV3Attention.__init__`)."""
    qk_head_dim = qk_nope_head_dim + qk_rope_head_dim
    if q_lora_rank:
        out = linear("attn_q_a", q_lora_rank, hidden, layer, bias=bias)
        out += norm("attn_q_a_norm", q_lora_rank, layer)
        out += linear("attn_q_b", num_heads * qk_head_dim, q_lora_rank, layer)
    else:
        out = linear("attn_q", num_heads * qk_head_dim, hidden, layer)
    out += linear("attn_kv_a_mqa", kv_lora_rank + qk_rope_head_dim, hidden, layer, bias=bias)
    out += norm("attn_kv_a_norm", kv_lora_rank, layer)
    out += linear("attn_kv_b", num_heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank, layer)
    out += linear("attn_output", hidden, num_heads * v_head_dim, layer, bias=bias)
    return out


def _ffn(
    cfg: Cfg, i: int, hidden: int, num_experts: int, *, moe: bool, score_bias: bool, mlp_bias: bool
) -> tuple[list[TensorSpec], DenseMLP | MoEMLP]:
    """DeepSeekMoE when `moe`: router [E, H] (+ correction bias [E] with `score_bias`), E routed experts of
    `moe_intermediate_size` and one shared MLP of n_shared_experts x that; else a gated MLP."""
    if moe:
        expert_inter = cfg.int("moe_intermediate_size")
        shared_inter = cfg.int("n_shared_experts", 0, minimum=0) * expert_inter
        tensors = experts(i, hidden, num_experts, expert_inter)
        if score_bias:
            tensors.append(tensor("exp_probs_b.bias", (num_experts,), "ffn_gate_inp", i))
        if shared_inter:
            tensors += mlp(i, hidden, shared_inter, bias=mlp_bias, suffix="_shexp")
        return tensors, routed(cfg, num_experts, expert_inter, shared_inter)
    inter = cfg.int("intermediate_size")
    return mlp(i, hidden, inter, bias=mlp_bias), DenseMLP(intermediate_size=inter)


def _attention_and_norms(i: int, hidden: int, mixer: MLAAttention, *, bias: bool) -> list[TensorSpec]:
    """The MLA projections of `mixer`'s sizes, then the layer's input and post-attention norms [H]."""
    tensors = mla_attention(
        i,
        hidden,
        mixer.num_heads,
        q_lora_rank=mixer.q_lora_rank,
        kv_lora_rank=mixer.kv_lora_rank,
        qk_nope_head_dim=mixer.qk_nope_head_dim,
        qk_rope_head_dim=mixer.qk_rope_head_dim,
        v_head_dim=mixer.v_head_dim,
        bias=bias,
    )
    return tensors + norm("attn_norm", hidden, i) + norm("ffn_norm", hidden, i)


def _mtp_extras(i: int, hidden: int) -> list[TensorSpec]:
    """What an MTP layer adds to its decoder layer: enorm, hnorm [H], eh_proj [H, 2H], shared_head.norm [H]."""
    tensors = norm("nextn.enorm", hidden, i) + norm("nextn.hnorm", hidden, i)
    tensors += linear("nextn.eh_proj", hidden, 2 * hidden, i)
    return tensors + norm("nextn.shared_head_norm", hidden, i)


def build(cfg: Cfg, model_type: str) -> Parts:
    hidden = cfg.int("hidden_size")
    num_layers = cfg.int("num_hidden_layers")
    heads = cfg.int("num_attention_heads")
    vocab = cfg.int("vocab_size")
    q_lora_rank = cfg.get("q_lora_rank")
    q_lora = cfg.int("q_lora_rank") if q_lora_rank else None
    kv_lora_rank = cfg.int("kv_lora_rank")
    qk_nope = cfg.int("qk_nope_head_dim")
    qk_rope = cfg.int("qk_rope_head_dim", minimum=0)
    v_head_dim = cfg.int("v_head_dim")
    attn_bias = cfg.bool("attention_bias", False)
    mlp_bias = cfg.bool("mlp_bias", False)  # DeepseekV2MLP only; V3 has no such switch (always False)

    first_dense = cfg.int("first_k_dense_replace", 0, minimum=0)
    freq = cfg.int("moe_layer_freq", 1)
    num_experts = cfg.int("n_routed_experts", 0, minimum=0)
    topk_method = str(cfg.get("topk_method", "greedy" if model_type == "deepseek_v2" else "noaux_tc"))
    score_bias = topk_method == "noaux_tc"

    mixer = MLAAttention(
        num_heads=heads,
        kv_lora_rank=kv_lora_rank,
        qk_rope_head_dim=qk_rope,
        qk_nope_head_dim=qk_nope,
        v_head_dim=v_head_dim,
        q_lora_rank=q_lora,
    )

    def decoder_layer(i: int) -> tuple[list[TensorSpec], DenseMLP | MoEMLP]:
        moe = bool(num_experts) and i >= first_dense and i % freq == 0
        ffn_tensors, ffn = _ffn(
            cfg, i, hidden, num_experts, moe=moe, score_bias=score_bias, mlp_bias=mlp_bias
        )
        return _attention_and_norms(i, hidden, mixer, bias=attn_bias) + ffn_tensors, ffn

    layers = []
    for i in range(num_layers):
        tensors, ffn = decoder_layer(i)
        layers.append(LayerSpec(index=i, mixer=mixer, mlp=ffn, tensors=tuple(tensors)))

    mtp: list[TensorSpec] = []
    num_mtp = cfg.int("num_nextn_predict_layers", 0, minimum=0)
    for k in range(num_mtp):
        tensors, _ = decoder_layer(num_layers + k)
        mtp += tensors + _mtp_extras(num_layers + k, hidden)
    notes = []
    if num_mtp:
        notes.append(
            f"{num_mtp} MTP layer(s) counted apart from the total; each checkpoint MTP layer also stores a "
            f"copy of the embedding and head ({vocab * hidden:,} params each), shared with the main model "
            "and not counted"
        )
    tied = cfg.bool("tie_word_embeddings", False)
    return Parts(
        layers=layers, global_tensors=embeddings(vocab, hidden, tied=tied), mtp_tensors=mtp, notes=notes
    )
