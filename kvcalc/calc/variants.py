"""Attention variants of one model: the same layers with MHA, GQA, MQA or MLA key/value caches.

The KV cache of a softmax-attention layer holds one key and one value vector per KV head and token:

    KV bytes per token per layer = 2 x n_kv x head_dim x bytes(kv_dtype)
                                 (= (head_dim + v_head_dim) x n_kv x bytes when K and V differ in size)

- MHA, multi-head attention: n_kv = n_heads (every query head has its own K and V).
- MQA, multi-query attention: n_kv = 1, all query heads share one K and one V
  (Shazeer 2019, "Fast Transformer Decoding: One Write-Head is All You Need", arXiv:1911.02150).
- GQA, grouped-query attention: n_kv groups of n_heads / n_kv query heads each share a K and a V;
  1 < n_kv < n_heads interpolates between MQA and MHA (Ainslie et al. 2023, "GQA: Training Generalized
  Multi-Query Transformer Models from Multi-Head Checkpoints", arXiv:2305.13245).
- MLA, multi-head latent attention: one compressed latent of kv_lora_rank + qk_rope_head_dim values per token
  and layer, shared by all heads, instead of per-head K and V (DeepSeek-AI 2024, "DeepSeek-V2",
  arXiv:2405.04434 section 2.1): bytes per token per layer = (kv_lora_rank + qk_rope_head_dim) x bytes;
  DeepSeek-V3: (512 + 64) x 2 = 1,152 B in bf16. Naively cached as per-head K and V it would take
  n_heads x (qk_nope + qk_rope + v_head_dim) x bytes = 128 x (128 + 64 + 128) x 2 = 81,920 B per layer.

Since the per-layer bytes are linear in n_kv, the saving of a variant with n_kv KV heads is

    savings vs MHA = bytes(MHA) / bytes(variant) = n_heads / n_kv

(exactly so when every attention layer has the same head sizes; kvcalc computes the byte ratio, which is
that quotient for uniform models). Savings vs the model's own layout = bytes(own) / bytes(variant).

A variant changes only the attention layers' KV heads (or the cache layout, for MLA): sliding-window and
chunked layers keep their windows, recurrent layers (linear attention, Mamba) keep their fixed state, and
the sums over layers are the ones of `kvcalc.calc.kv`.

Capacity is counted on one tensor-parallel rank: a rank holds max(1, n_kv / tp) KV heads of every layer
(vLLM `ModelConfig.get_num_kv_heads`; with tp > n_kv heads are replicated) and the whole MLA latent (every
rank caches it), so its bytes per token are `kv_bytes_per_token(tp)` summed over layers, and the tokens that
fit are the ones its own KV memory holds. Every rank of a tensor-parallel group holds the same tokens, so one
rank's count is the group's: whole-model bytes against the pool of all its GPUs would be the same only when
n_kv divides by tp, and overcount when heads or a latent are replicated (MQA at tp = 2 by 2x, an MLA latent
at tp = 16 by 16x). Savings factors compare whole-model bytes (tp = 1), where n_heads / n_kv holds.
"""

from __future__ import annotations

from collections.abc import Callable
from math import gcd
from typing import Literal

from kvcalc.calc import kv as kvcalc_kv
from kvcalc.spec.base import record, replace
from kvcalc.spec.dtypes import StorageType
from kvcalc.spec.layers import FullAttention, LayerSpec, MLAAttention
from kvcalc.spec.model import ModelSpec

#: DeepSeek-V3's MLA latent (config.json of deepseek-ai/DeepSeek-V3): kv_lora_rank 512, qk_rope_head_dim 64,
#: qk_nope_head_dim 128, v_head_dim 128; used for the hypothetical MLA variant of a non-MLA model.
DEEPSEEK_V3_KV_LORA_RANK = 512
DEEPSEEK_V3_QK_ROPE_HEAD_DIM = 64
DEEPSEEK_V3_QK_NOPE_HEAD_DIM = 128
DEEPSEEK_V3_V_HEAD_DIM = 128

Scheme = Literal["MHA", "GQA", "MQA", "MLA"]


@record
class AttentionVariant:
    """One way to cache the model's attention: a scheme, its KV-head count, and the modified model.

    `kv_heads` is n_kv of the attention layers (None for MLA, which caches a latent instead of heads);
    `model_own` marks the model's own layout; `hypothetical` one the model does not have (any variant but the
    own one, named so for MLA and for per-head variants of an MLA model, which also change the attention).
    """

    name: str
    scheme: Scheme
    kv_heads: int | None
    model_own: bool
    hypothetical: bool
    model: ModelSpec


def has_mla(model: ModelSpec) -> bool:
    """True when any layer caches an MLA latent (DeepSeek-V2/V3, Kimi K2)."""
    return any(isinstance(layer.mixer, MLAAttention) for layer in model.layers)


def attention_layers(model: ModelSpec) -> list[LayerSpec]:
    """The layers that cache per-token keys and values (softmax attention or MLA; not recurrent)."""
    return [layer for layer in model.layers if isinstance(layer.mixer, (FullAttention, MLAAttention))]


def query_heads(model: ModelSpec) -> int:
    """n_heads: query heads of the first attention layer (0 when the model has none; Mamba heads not counted)."""
    for layer in model.layers:
        if isinstance(layer.mixer, (FullAttention, MLAAttention)):
            return layer.mixer.num_heads
    return 0


def own_kv_heads(model: ModelSpec) -> int | None:
    """The model's n_kv when every softmax-attention layer has the same one; None for MLA or mixed counts."""
    counts = {layer.mixer.num_kv_heads for layer in model.layers if isinstance(layer.mixer, FullAttention)}
    if has_mla(model) or len(counts) != 1:
        return None
    return counts.pop()


def group_counts(n_heads: int) -> list[int]:
    """Every divisor of n_heads, largest first: the KV-head counts a GQA layout can have (n_heads / n_kv
    query heads per group must be whole). 64 -> [64, 32, 16, 8, 4, 2, 1]."""
    return [k for k in range(n_heads, 0, -1) if n_heads % k == 0]


def _layer_kv_heads(kv_heads: int, layer_heads: int) -> int:
    """n_kv for a layer with `layer_heads` query heads: `kv_heads` if it divides them, else the largest
    common divisor (only differs in models whose layers have different head counts)."""
    return gcd(min(kv_heads, layer_heads), layer_heads)


def per_head_mixer(mla: MLAAttention, kv_heads: int) -> FullAttention:
    """An MLA layer's attention with per-head K and V caches and `kv_heads` KV heads.

    K head = qk_nope_head_dim + qk_rope_head_dim, V head = v_head_dim (DeepSeek-V3: 192 and 128), so
    kv_heads = n_heads is the naive cache: n_heads x (qk_nope + qk_rope + v) values per token and layer
    (what `MLAAttention.naive_kv_bytes_per_token` gives).
    """
    return FullAttention(
        num_heads=mla.num_heads,
        num_kv_heads=_layer_kv_heads(kv_heads, mla.num_heads),
        head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim,
        v_head_dim=mla.v_head_dim,
    )


def with_kv_heads(model: ModelSpec, kv_heads: int | Callable[[int], int]) -> ModelSpec:
    """The model with every attention layer given `kv_heads` KV heads (an int, or a function of the layer's
    query-head count, e.g. `lambda h: h` for MHA); window, chunk and head sizes kept, other layers unchanged.

    Softmax layers: `replace(mixer, num_kv_heads=k)` (a sliding layer stays sliding with its window).
    MLA layers become per-head K/V attention (`per_head_mixer`).
    """
    layers = []
    for layer in model.layers:
        mixer = layer.mixer
        if isinstance(mixer, (FullAttention, MLAAttention)):
            wanted = kv_heads(mixer.num_heads) if callable(kv_heads) else kv_heads
            if isinstance(mixer, MLAAttention):
                layer = replace(layer, mixer=per_head_mixer(mixer, wanted))
            else:
                layer = replace(
                    layer, mixer=replace(mixer, num_kv_heads=_layer_kv_heads(wanted, mixer.num_heads))
                )
        layers.append(layer)
    return replace(model, layers=tuple(layers))


def with_mla_latent(
    model: ModelSpec,
    kv_lora_rank: int = DEEPSEEK_V3_KV_LORA_RANK,
    qk_rope_head_dim: int = DEEPSEEK_V3_QK_ROPE_HEAD_DIM,
) -> ModelSpec:
    """The model with its full-context softmax layers caching an MLA latent of kv_lora_rank + qk_rope values
    per token (DeepSeek-V3's size by default: 512 + 64 = 576). Sliding and chunked layers keep their own
    K/V cache and window (an MLA layer in kvcalc has no window), recurrent layers their state."""
    layers = []
    for layer in model.layers:
        mixer = layer.mixer
        if isinstance(mixer, FullAttention) and mixer.window is None:
            latent = MLAAttention(
                num_heads=mixer.num_heads,
                kv_lora_rank=kv_lora_rank,
                qk_rope_head_dim=qk_rope_head_dim,
                qk_nope_head_dim=DEEPSEEK_V3_QK_NOPE_HEAD_DIM,
                v_head_dim=DEEPSEEK_V3_V_HEAD_DIM,
            )
            layer = replace(layer, mixer=latent)
        layers.append(layer)
    return replace(model, layers=tuple(layers))


def attention_variants(model: ModelSpec) -> list[AttentionVariant]:
    """MHA, GQA for every divisor of n_heads, MQA, and MLA (the model's own, or a hypothetical DeepSeek-V3-size
    latent), largest cache first; the model's own layout is marked (added as its own row when its layers
    have different KV-head counts, so no uniform variant matches it)."""
    n_heads = query_heads(model)
    if n_heads == 0 or not attention_layers(model):
        return []
    mla = has_mla(model)
    own = own_kv_heads(model)
    out = [_grouped_variant(model, k, n_heads, own, mla) for k in group_counts(n_heads)]
    if mla:
        first = next(layer.mixer for layer in model.layers if isinstance(layer.mixer, MLAAttention))
        out.append(
            AttentionVariant(
                name=f"MLA {first.kv_lora_rank}+{first.qk_rope_head_dim}",
                scheme="MLA",
                kv_heads=None,
                model_own=True,
                hypothetical=False,
                model=model,
            )
        )
        return out
    if not any(v.model_own for v in out):  # mixed KV-head counts, or a count that does not divide n_heads
        out.insert(
            0,
            AttentionVariant(
                name="model's layout" if own is None else f"GQA-{own}",
                scheme="GQA",
                kv_heads=own,
                model_own=True,
                hypothetical=False,
                model=model,
            ),
        )
    if any(isinstance(layer.mixer, FullAttention) and layer.mixer.window is None for layer in model.layers):
        out.append(_hypothetical_mla_variant(model))
    return out


def _grouped_variant(model: ModelSpec, k: int, n_heads: int, own: int | None, mla: bool) -> AttentionVariant:
    """`model` with k KV heads per attention layer: MHA (k = n_heads), MQA (k = 1) or GQA-k; the model itself
    when k is its own count."""
    if k == n_heads:
        scheme: Scheme = "MHA"
        name = "MHA (naive K/V)" if mla else "MHA"
    elif k == 1:
        scheme, name = "MQA", "MQA"
    else:
        scheme, name = "GQA", f"GQA-{k}"
    is_own = own == k
    variant_model = model if is_own else with_kv_heads(model, (lambda h: h) if k == n_heads else k)
    return AttentionVariant(
        name=name, scheme=scheme, kv_heads=k, model_own=is_own, hypothetical=not is_own, model=variant_model
    )


def _hypothetical_mla_variant(model: ModelSpec) -> AttentionVariant:
    """The full-attention layers caching a DeepSeek-V3-size latent instead of K and V."""
    return AttentionVariant(
        name=f"MLA {DEEPSEEK_V3_KV_LORA_RANK}+{DEEPSEEK_V3_QK_ROPE_HEAD_DIM}",
        scheme="MLA",
        kv_heads=None,
        model_own=False,
        hypothetical=True,
        model=with_mla_latent(model),
    )


def cached_token_bytes(model: ModelSpec, kv: StorageType, tp: int = 1) -> int:
    """Bytes one cached token takes summed over every attention layer, windowed ones included, on one rank:
    sum over layers of 2 x max(1, n_kv / tp) x head_dim x bytes (or the whole MLA latent). At tp = 1 (the whole
    model), the basis of the savings factors."""
    return sum(kvcalc_kv.layer_kv_bytes_per_token(layer, kv, tp) for layer in attention_layers(model))


def savings(base_bytes: int, variant_bytes: int) -> float:
    """base / variant, the factor by which the variant's cache is smaller (n_heads / n_kv vs MHA)."""
    return base_bytes / variant_bytes if variant_bytes else float("inf")


def max_tokens(model: ModelSpec, kv: StorageType, memory_bytes: int, tp: int = 1) -> int | None:
    """The longest single sequence whose cache fits in `memory_bytes` of one tensor-parallel rank: the largest
    L with `kvcalc.calc.kv.bytes_per_sequence(L, tp) <= memory`. For a model of full-context layers only this
    is floor(memory / bytes_per_token(tp)); windows and recurrent states are counted exactly. None when the
    cache stops growing (every layer windowed or recurrent) and its whole size fits: any length fits."""
    per_token = kvcalc_kv.kv_bytes_per_token(model, kv, tp)
    windows = [layer.mixer.window or 0 for layer in model.layers if layer.mixer is not None]
    longest_window = max(windows, default=0)

    def fits(length: int) -> bool:
        return kvcalc_kv.bytes_per_sequence(model, length, kv, tp) <= memory_bytes

    if per_token == 0:
        if fits(longest_window + 1):
            return None
        hi = longest_window + 1
    else:
        hi = memory_bytes // per_token + 1  # the full-context layers alone exceed memory at this length
    if not fits(0):
        return 0
    lo = 0  # invariant: fits(lo), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def sequences_at_context(model: ModelSpec, kv: StorageType, memory_bytes: int, context: int, tp: int = 1) -> int:
    """How many sequences of `context` tokens fit one rank's memory: floor(memory / bytes_per_sequence(context,
    tp))."""
    per_sequence = kvcalc_kv.bytes_per_sequence(model, context, kv, tp)
    return memory_bytes // per_sequence if per_sequence else 0


def gpus_for_weights(usable_bytes_per_gpu: int, weights_bytes: int) -> int:
    """The fewest GPUs whose usable memory exceeds the weights: floor(weights / usable) + 1 (at least 1)."""
    return weights_bytes // usable_bytes_per_gpu + 1
