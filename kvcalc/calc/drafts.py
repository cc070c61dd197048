"""Draft methods for speculative decoding: their default per-position acceptance (with its source) and the
draft network each runs, as a ModelSpec the perf model can cost and whose weights and KV count against memory.

- `draft`: a separate, smaller model of the same tokenizer (Leviathan et al. 2023, arXiv:2211.17192).
- `eagle`: EAGLE / EAGLE-2 (Li et al. 2024, arXiv:2401.15077 and arXiv:2406.16858): one decoder layer shaped
  like the target's plus an FC layer fusing the token embedding with the target's top feature (2h -> h); it
  reuses the target's embedding and LM head. Published heads: 0.24B for Vicuna-7B, 0.99B for LLaMA2-Chat 70B
  (SafeAILab/EAGLE README), which this shape reproduces.
- `eagle3`: EAGLE-3 (Li et al. 2025, arXiv:2503.01840): an FC fusing low, middle and high features (3h -> h),
  one decoder layer whose q/k/v read the embedding and the fused feature (2h), and its own LM head over a
  reduced draft vocabulary (`draft_vocab_size` 32,000 in the released heads, e.g. EAGLE3-LLaMA3.1-Instruct-8B).
- `mtp`: DeepSeek-V3's multi-token-prediction module(s) shipped in the checkpoint (`ModelSpec.mtp_tensors`;
  DeepSeek-V3 report arXiv:2412.19437 s2.2), reusing the embedding and LM head; engines run the first module
  gamma times (vLLM `DeepSeekMTP`, TensorRT-LLM "MTP Eagle").
- `ngram`: prompt lookup (Saxena 2023, github.com/apoorvumang/prompt-lookup-decoding; vLLM `ngram`): drafts
  by matching the last n tokens against the prompt on the CPU, no network: drafting is free.

Acceptance is given per draft position as conditional rates a_i (`kvcalc.calc.speculative`): measured in a
serving engine where there is a measurement, since a research prototype's drafts (trees, its own chat
template) accept more than an engine's chains (EAGLE-3 reports tau 6.13 on MT-bench with a tree in its own
code; vLLM's chain of 7 accepts 3.54 with the same head, vllm-project/vllm#20780).
"""

from __future__ import annotations

from kvcalc.errors import InputError
from kvcalc.spec.base import record
from kvcalc.spec.layers import DenseMLP, FullAttention, LayerSpec, MLAAttention, TensorSpec
from kvcalc.spec.model import ModelSpec

#: EAGLE-3's released heads predict over the 32,000 most frequent target tokens (`draft_vocab_size`).
EAGLE3_DRAFT_VOCAB = 32_000

_VLLM_20780 = ("vllm-project/vllm#20780 (Llama-3.1-8B-Instruct on H100, MT-bench, temperature 0, batch 1): "
               "mean acceptance length at K = 2..7")


@record
class DraftMethod:
    """A drafting method, its default conditional per-position acceptance rates (the last repeats beyond the
    list) and where they come from, and the share of sequences that draft in a step (`proposal_rate`)."""

    name: str
    rates: tuple[float, ...]
    rates_source: str
    paper: str
    proposal_rate: float = 1.0


METHODS: dict[str, DraftMethod] = {
    "draft": DraftMethod(
        name="draft", rates=(0.7,), paper="Leviathan et al. 2023 arXiv:2211.17192",
        rates_source="assumed constant 0.7: acceptance depends on the (target, draft, task) triple "
                     "(Leviathan et al. 2023 s4 measure it per pair); pass --acceptance-length measured for yours",
    ),
    # AL(K) = 1 + r_1 + ... + r_K with unconditional r_i, so r_K = AL(K) - AL(K-1): EAGLE-1 AL 2.10, 2.29,
    # 2.39, 2.43, 2.45, 2.47 give r_3..r_6 = 0.19, 0.10, 0.04, 0.02; r_1 + r_2 = 1.10 split with a_2 = a_3
    # ((1.10 - r_1)^2 = 0.19 r_1: r_1 = 0.728); a_i = r_i / r_(i-1).
    "eagle": DraftMethod(
        name="eagle", rates=(0.73, 0.51, 0.51, 0.53, 0.40, 0.50),
        paper="Li et al. 2024 arXiv:2401.15077 (EAGLE), arXiv:2406.16858 (EAGLE-2)",
        rates_source=f"{_VLLM_20780}, EAGLE-1 head: 2.10, 2.29, 2.39, 2.43, 2.45, 2.47 -> conditional rates "
                     "(first two split assuming a_2 = a_3)",
    ),
    # EAGLE-3 AL 2.36, 2.79, 3.08, 3.32, 3.46, 3.54: r_3..r_7 = 0.43, 0.29, 0.24, 0.14, 0.08; r_1 + r_2 =
    # 1.36 with a_2 = a_3: r_1 = 0.781.
    "eagle3": DraftMethod(
        name="eagle3", rates=(0.78, 0.74, 0.74, 0.67, 0.83, 0.58, 0.57),
        paper="Li et al. 2025 arXiv:2503.01840 (EAGLE-3)",
        rates_source=f"{_VLLM_20780}, EAGLE-3 head: 2.36, 2.79, 3.08, 3.32, 3.46, 3.54 -> conditional rates "
                     "(first two split assuming a_2 = a_3)",
    ),
    # DeepSeek-V3 s5.4.3: the second token is accepted 85-90 % of the time (its one MTP module). Deeper
    # positions reuse that module; GLM-4.5-Air's single MTP head in vLLM accepts 0.92, 0.68, 0.38 per position
    # (unconditional, GPQA; SpecDecode-Bench, arXiv:2601.11580): conditional 0.92, 0.74, 0.56, i.e. 0.80 and
    # 0.61 of the first; applied to 0.85: 0.68, 0.52.
    "mtp": DraftMethod(
        name="mtp", rates=(0.85, 0.68, 0.52), paper="DeepSeek-AI 2024 arXiv:2412.19437 (DeepSeek-V3) s2.2, s5.4.3",
        rates_source="arXiv:2412.19437 s5.4.3: 'the acceptance rate of the second token prediction ranges "
                     "between 85% and 90%' (0.85); deeper positions decay as GLM-4.5-Air's reused MTP head "
                     "in vLLM (0.92, 0.68, 0.38 per position; specdecode-bench.github.io)",
    ),
    # SpecDecode-Bench's released acceptance data (Llama-3.1-8B, vLLM ngram, ShareGPT, k = 5): unconditional
    # 0.132, 0.101, 0.083, 0.072, 0.063 -> conditional 0.13, 0.77, 0.82, 0.87, 0.88. Bursty: most steps find
    # no match, a match usually continues.
    # vLLM's n-gram proposer drafts nothing for a request whose last 3..7 tokens match nowhere earlier
    # (`_find_longest_matched_ngram_and_propose_tokens` returns an empty array, vllm/v1/spec_decode/
    # ngram_proposer.py): only a share of the batch verifies gamma + 1 tokens. Running that rule over the same
    # released ShareGPT requests finds a match at 30 % of the steps (GSM8K 21 %, CNN/DM 28 %, InstructCoder 59 %).
    "ngram": DraftMethod(
        name="ngram", rates=(0.13, 0.77, 0.82, 0.87, 0.88), proposal_rate=0.30,
        paper="Saxena 2023, prompt lookup decoding (github.com/apoorvumang/prompt-lookup-decoding)",
        rates_source="SpecDecode-Bench acceptance data (github.com/SpecDecode-Bench/simulator, Llama-3.1-8B, "
                     "vLLM ngram, ShareGPT chat): conditional 0.13, 0.77, 0.82, 0.87, 0.88, a match at 30 % of "
                     "the steps; code editing accepts far more (InstructCoder: 0.31, 0.90, 0.90, 0.95, 0.94, "
                     "matches at 59 %)",
    ),
}


def draft_method(name: str) -> DraftMethod:
    if name not in METHODS:
        raise InputError(f"unknown --method '{name}'; use {', '.join(m for m in METHODS if m != 'draft')}")
    return METHODS[name]


@record
class DraftNetwork:
    """What a speculative step runs gamma times: `model` (for its step cost; includes shared tensors such as
    the target's LM head) and `extra_tensors`, the weights it adds to GPU memory (`own_format`: stored in the
    model dtype rather than the target checkpoint's format, as EAGLE heads are)."""

    model: ModelSpec
    extra_tensors: tuple[TensorSpec, ...]
    own_format: bool
    description: str

    @property
    def extra_params(self) -> int:
        return sum(t.numel for t in self.extra_tensors)


def _t(name: str, shape: tuple[int, ...], role: str) -> TensorSpec:
    return TensorSpec(name=f"blk.0.{name}", shape=shape, role=role, layer=0)


def _head(target: ModelSpec) -> TensorSpec:
    return TensorSpec(name="output.weight", shape=(target.vocab_size, target.hidden_size), role="output")


def _draft_spec(target: ModelSpec, suffix: str, layer: LayerSpec, head: TensorSpec) -> ModelSpec:
    return ModelSpec(
        id=f"{target.id}-{suffix}", model_type=target.model_type, dtype=target.dtype,
        hidden_size=target.hidden_size, vocab_size=head.shape[0],
        max_position_embeddings=target.max_position_embeddings, layers=(layer,), global_tensors=(head,),
    )


def _first_attention_layer(target: ModelSpec) -> LayerSpec:
    for layer in target.layers:
        if isinstance(layer.mixer, (FullAttention, MLAAttention)):
            return layer
    raise InputError(f"{target.id} has no softmax attention layer to shape an EAGLE head on")


def eagle_head(target: ModelSpec) -> DraftNetwork:
    """EAGLE / EAGLE-2: the target's first attention layer (re-indexed 0) + FC [h, 2h]; shared embedding and
    LM head (counted in the step, not in memory)."""
    base = _first_attention_layer(target)
    h = target.hidden_size
    tensors = tuple(TensorSpec(name=t.name, shape=t.shape, role=t.role, layer=0) for t in base.tensors)
    fc = _t("eagle_fc.weight", (h, 2 * h), "eagle_fc")
    layer = LayerSpec(index=0, mixer=base.mixer, mlp=base.mlp, tensors=(*tensors, fc))
    spec = _draft_spec(target, "eagle", layer, _head(target))
    return DraftNetwork(model=spec, extra_tensors=layer.tensors, own_format=True,
                        description="EAGLE head: one target-shaped decoder layer + FC 2h -> h")


def eagle3_head(target: ModelSpec) -> DraftNetwork:
    """EAGLE-3: FC [h, 3h]; one dense decoder layer with q/k/v over 2h inputs, shaped like the target's
    first attention layer (MoE targets: a dense MLP of the expert width x top_k); own head [32,000, h]."""
    base = _first_attention_layer(target)
    mixer = base.mixer
    if not isinstance(mixer, FullAttention):
        raise InputError(f"EAGLE-3 heads are Llama-style layers; {target.id}'s {base.kind} attention has none "
                         "published here: use --cost-ratio")
    h, d, dv = target.hidden_size, mixer.head_dim, mixer.value_dim
    inter = _dense_width(base)
    layer_tensors = (
        _t("attn_q.weight", (mixer.num_heads * d, 2 * h), "attn_q"),
        _t("attn_k.weight", (mixer.num_kv_heads * d, 2 * h), "attn_k"),
        _t("attn_v.weight", (mixer.num_kv_heads * dv, 2 * h), "attn_v"),
        _t("attn_output.weight", (h, mixer.num_heads * dv), "attn_output"),
        _t("ffn_gate.weight", (inter, h), "ffn_gate"), _t("ffn_up.weight", (inter, h), "ffn_up"),
        _t("ffn_down.weight", (h, inter), "ffn_down"),
        _t("attn_norm.weight", (2 * h,), "norm"), _t("ffn_norm.weight", (h,), "norm"),
        _t("eagle_fc.weight", (h, 3 * h), "eagle_fc"),
    )
    attention = FullAttention(num_heads=mixer.num_heads, num_kv_heads=mixer.num_kv_heads, head_dim=d,
                              v_head_dim=mixer.v_head_dim)
    layer = LayerSpec(index=0, mixer=attention, mlp=DenseMLP(intermediate_size=inter), tensors=layer_tensors)
    head = TensorSpec(name="output.weight", shape=(EAGLE3_DRAFT_VOCAB, h), role="output")
    spec = _draft_spec(target, "eagle3", layer, head)
    return DraftNetwork(model=spec, extra_tensors=(*layer_tensors, head), own_format=True,
                        description=f"EAGLE-3 head: FC 3h -> h, one decoder layer (q/k/v over 2h), own "
                                    f"{EAGLE3_DRAFT_VOCAB:,}-token head")


def _dense_width(layer: LayerSpec) -> int:
    mlp = layer.mlp
    if isinstance(mlp, DenseMLP):
        return mlp.intermediate_size
    if mlp is not None:
        return mlp.expert_intermediate_size * mlp.top_k + mlp.shared_intermediate_size
    raise InputError("the target's first attention layer has no MLP to shape an EAGLE-3 head on")


def mtp_module(target: ModelSpec) -> DraftNetwork:
    """The checkpoint's first MTP module as one layer shaped like the target's last (MoE) layer; every MTP
    module's weights count in memory. Embedding and head are the target's."""
    if not target.mtp_tensors:
        raise InputError(f"{target.id} ships no MTP layers (num_nextn_predict_layers = 0); use --method eagle, "
                         "--draft MODEL or --cost-ratio")
    first = min(t.layer for t in target.mtp_tensors if t.layer is not None)
    tensors = tuple(TensorSpec(name=t.name, shape=t.shape, role=t.role, layer=0)
                    for t in target.mtp_tensors if t.layer == first)
    last = target.layers[-1]
    layer = LayerSpec(index=0, mixer=last.mixer, mlp=last.mlp, tensors=tensors)
    spec = _draft_spec(target, "mtp", layer, _head(target))
    modules = len({t.layer for t in target.mtp_tensors})
    return DraftNetwork(model=spec, extra_tensors=target.mtp_tensors, own_format=False,
                        description=f"{modules} MTP module(s) from the checkpoint; the first runs gamma times")


def separate_draft(draft: ModelSpec) -> DraftNetwork:
    """A whole smaller model: all its weights count (its own embedding and head)."""
    return DraftNetwork(model=draft, extra_tensors=tuple(draft.all_tensors()), own_format=True,
                        description=f"draft model {draft.id}")


def draft_network(method: str, target: ModelSpec, draft: ModelSpec | None = None) -> DraftNetwork | None:
    """The network `method` runs per draft token (None for n-gram lookup: no network)."""
    if method == "draft":
        if draft is None:
            raise InputError("--draft needs a model")
        return separate_draft(draft)
    builders = {"eagle": eagle_head, "eagle3": eagle3_head, "mtp": mtp_module}
    if method == "ngram":
        return None
    draft_method(method)
    return builders[method](target)

