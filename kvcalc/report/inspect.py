"""`kvcalc inspect`: the model as layers, its parameters, and its KV cache (report models + builder)."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from kvcalc.calc import kv as kvcalc_kv
from kvcalc.calc.params import (
    params_active,
    params_active_per_token,
    params_breakdown,
    params_mtp,
    params_total,
)
from kvcalc.calc.weights import WeightFormat
from kvcalc.report.explain import Derivation
from kvcalc.spec.base import record, to_jsonable
from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.layers import FullAttention, MLAAttention, kv_heads_per_rank
from kvcalc.spec.model import ModelSpec
from kvcalc.units import fmt_bytes

DEFAULT_CONTEXTS = (4096, 32768, 131072)


@record
class ModelReport:
    """The model's identity and sizes (the `model` object of every command's JSON).

    `params_total` is the text model's parameter count from the config, tensor by tensor (checked equal
    to transformers' count for every shipped profile). `params_active` is what one token multiplies by: routed
    experts it does not use and the input embedding lookup excluded (see `params_active_definition`);
    `params_active_with_embedding` adds the embedding table back, as some model cards count. `weight_format`
    is the format the weights are sized in (the checkpoint's quantization_config, --quant, or the dtype).
    `params_source` is `exact` when checkpoint headers were read: then `weights_bytes` is the headers' tensor
    bytes and `checkpoint_params` their element count (which also holds MTP layers, and packed elements for
    quantized checkpoints); else `derived`.
    """

    id: str
    hf_repo: str | None
    model_type: str
    architecture: str | None
    dtype: str
    params_total: int
    params_active: int
    params_active_with_embedding: int
    params_active_definition: str
    params_source: str
    checkpoint_params: int | None
    params_breakdown: dict[str, int]
    params_mtp: int
    params_vision: int
    vision_tower: str | None
    weights_bytes: int
    weight_format: str
    weight_format_source: str
    bits_per_weight: float
    num_layers: int
    layer_kinds: dict[str, int]
    layer_pattern: str
    hidden_size: int
    vocab_size: int
    num_attention_heads: int
    num_kv_heads: int
    max_position_embeddings: int | None
    rope_scaling: dict[str, object] | None
    notes: list[str]


@record
class SequenceBytes:
    context: int
    bytes: int


@record
class KvCacheReport:
    """KV cache and recurrent state of one sequence, on one rank (tp=1) unless stated."""

    dtype: str
    layout: str
    bytes_per_token: int
    fixed_bytes_per_sequence: int
    by_kind: dict[str, kvcalc_kv.KvKindTotals]
    per_sequence: list[SequenceBytes]


@record
class InspectReport:
    model: ModelReport
    kv_cache: KvCacheReport
    explain: list[Derivation]


def layer_pattern(model: ModelSpec) -> str:
    """Run-length layer pattern, e.g. `sliding x5, full x1 (x10)` or `full x80`."""
    runs = [(kind, len(list(group))) for kind, group in groupby(layer.kind for layer in model.layers)]
    text = ", ".join(f"{kind} x{n}" for kind, n in runs)
    for period in range(1, len(runs) // 2 + 1):
        if len(runs) % period == 0 and runs == runs[:period] * (len(runs) // period):
            unit = ", ".join(f"{kind} x{n}" for kind, n in runs[:period])
            return f"({unit}) x{len(runs) // period}" if len(runs) // period > 1 else unit
    return text


#: What `params_active` counts, stated in every report.
ACTIVE_DEFINITION = ("parameters one token multiplies by: every dense and shared weight, the top_k routed experts "
                     "it is sent to, the output head; the input embedding table excluded (a lookup reads one row), "
                     "as the gpt-oss, DeepSeek and NVIDIA model cards count; B = billions of parameters")


def weight_format_of(model: ModelSpec, fmt: WeightFormat | None) -> tuple[str, str]:
    """(format name, where it comes from) of the weights a report sizes."""
    if fmt is not None:
        return getattr(fmt, "name", "?"), "as requested (--quant) or as the engine serves it"
    if model.quantization_config is not None:
        from kvcalc.calc.quant import format_from_quantization_config

        stored = format_from_quantization_config(model)
        if stored is not None:
            return stored.name, f"checkpoint quantization_config ({model.quantization_config.get('quant_method')})"
    if model.exact_weights_bytes is not None:
        return model.dtype, "checkpoint headers (tensor bytes as stored)"
    return model.dtype, "checkpoint dtype (config.json torch_dtype)"


def model_weights_bytes(model: ModelSpec, fmt: WeightFormat | None = None) -> int:
    """Weight bytes of the whole model: in `fmt` when given; else exact from checkpoint headers when read;
    else as the checkpoint's `quantization_config` stores it; else params_total x bytes(dtype)."""
    if fmt is None:
        if model.exact_weights_bytes is not None:
            return model.exact_weights_bytes
        if model.quantization_config is not None:
            from kvcalc.calc.quant import format_from_quantization_config

            fmt = format_from_quantization_config(model)
    if fmt is not None:
        return sum(fmt.tensor_bytes(t, t.numel) for t in model.all_tensors())
    return params_total(model) * storage_type(model.dtype).block_bytes


def model_report(model: ModelSpec, fmt: WeightFormat | None = None) -> ModelReport:
    """The `model` object of every report; weights sized in `fmt` (see model_weights_bytes)."""
    total = params_total(model)
    weights = model_weights_bytes(model, fmt)
    format_name, format_source = weight_format_of(model, fmt)
    kinds: dict[str, int] = {}
    for layer in model.layers:
        kinds[layer.kind] = kinds.get(layer.kind, 0) + 1
    return ModelReport(
        id=model.id,
        hf_repo=model.hf_repo,
        model_type=model.model_type,
        architecture=model.architecture,
        dtype=model.dtype,
        params_total=total,
        params_active=params_active_per_token(model),
        params_active_with_embedding=params_active(model),
        params_active_definition=ACTIVE_DEFINITION,
        params_source=model.params_source,
        checkpoint_params=model.exact_params_total,
        params_breakdown=params_breakdown(model),
        params_mtp=params_mtp(model),
        params_vision=model.vision_params,
        vision_tower=_vision_tower(model),
        weights_bytes=weights,
        weight_format=format_name,
        weight_format_source=format_source,
        bits_per_weight=round(8 * weights / total, 4) if total else 0.0,
        num_layers=model.num_layers,
        layer_kinds=kinds,
        layer_pattern=layer_pattern(model),
        hidden_size=model.hidden_size,
        vocab_size=model.vocab_size,
        num_attention_heads=model.num_attention_heads,
        num_kv_heads=model.num_kv_heads,
        max_position_embeddings=model.max_position_embeddings,
        rope_scaling=to_jsonable(model.rope_scaling) if model.rope_scaling else None,
        notes=list(model.notes),
    )


def _vision_tower(model: ModelSpec) -> str | None:
    """The vision tower in a line: kind, layers (and how many the wrapper runs), tower and projector params."""
    vision = model.vision
    if vision is None:
        return None
    t = vision.tower
    run = f", {vision.layers_run} run" if vision.layers_run != t.layers else ""
    unused = f", {t.unused_params:,} stored unused" if t.unused_params else ""
    return (f"{t.kind}: {t.layers} layers{run}, {t.params:,} parameters{unused}; projector "
            f"{vision.projector_params:,}")


def kv_derivations(model: ModelSpec, kv_dtype: str, tp: int = 1, mla_naive: bool = False,
                   engine: str = "vllm") -> list[Derivation]:
    """One line per group of identical layers: count x per-layer bytes per token (or state per sequence)."""
    kv = storage_type(kv_dtype)
    per_element = f"{kv.block_bytes}/{kv.block_elements}" if kv.block_elements > 1 else f"{kv.block_bytes}"
    state = kvcalc_kv.state_storage(model)
    conv = storage_type(model.dtype)
    groups: dict[str, list[Any]] = {}
    for layer in model.layers:
        if layer.mixer is not None:
            groups.setdefault(repr(layer.mixer), []).append(layer.mixer)
    out: list[Derivation] = []
    for mixers in groups.values():
        mixer, count = mixers[0], len(mixers)
        if isinstance(mixer, FullAttention):
            heads = kv_heads_per_rank(mixer.num_kv_heads, tp)
            where = "every token" if mixer.window is None else f"the last {mixer.window} tokens"
            out.append(Derivation(
                figure=f"KV bytes/token, {count} {mixer.kind} layers (keep {where})",
                formula="layers x (head_dim + v_head_dim) x kv_heads_per_rank x bytes(dtype)",
                substituted=f"{count} x ({mixer.head_dim} + {mixer.value_dim}) x {heads} x {per_element}",
                value=f"{count * mixer.kv_bytes_per_token(kv, tp):,} B",
                source="llama.cpp src/llama-kv-cache.cpp (K and V rows per cell)" if engine == "llamacpp" else
                "vLLM kv_cache_interface.AttentionSpec.page_size_bytes / block_size",
            ))
        elif isinstance(mixer, MLAAttention) and mla_naive:
            heads = max(1, mixer.num_heads // tp)
            out.append(Derivation(
                figure=f"KV bytes/token, {count} MLA layers (naive per-head K/V)",
                formula="layers x heads x ((qk_nope + qk_rope) + v_head_dim) x bytes(dtype)",
                substituted=f"{count} x {heads} x (({mixer.qk_nope_head_dim} + {mixer.qk_rope_head_dim}) + "
                f"{mixer.v_head_dim}) x {per_element}",
                value=f"{count * mixer.naive_kv_bytes_per_token(kv, tp):,} B",
                source="per-head K/V after kv_b_proj (DeepSeek-V2 paper s2.1.2)",
            ))
        elif isinstance(mixer, MLAAttention):
            out.append(Derivation(
                figure=f"KV bytes/token, {count} MLA layers (latent cache)",
                formula="layers x (kv_lora_rank + qk_rope_head_dim) x bytes(dtype)",
                substituted=f"{count} x ({mixer.kv_lora_rank} + {mixer.qk_rope_head_dim}) x {per_element}",
                value=f"{count * mixer.kv_bytes_per_token(kv, tp):,} B",
                source="DeepSeek-V2 arXiv:2405.04434 s2.1.3; vLLM MLAAttentionSpec",
            ))
        else:
            out.append(Derivation(
                figure=f"State bytes/sequence, {count} {mixer.kind} layers",
                formula="layers x (conv state x bytes(model dtype) + SSM state x bytes(state dtype))",
                substituted=f"{count} x ({mixer.conv_state_elements(tp):,} x {conv.block_bytes} + "
                f"{mixer.ssm_state_elements(tp):,} x {state.block_bytes})",
                value=f"{count * mixer.state_bytes(state, tp, conv):,} B",
                source="vLLM MambaStateShapeCalculator",
            ))
    return out


def inspect_model(
    model: ModelSpec,
    kv_dtype: str | None = None,
    contexts: tuple[int, ...] = DEFAULT_CONTEXTS,
    mla_naive: bool = False,
) -> InspectReport:
    """Build the inspect report: model summary, parameters, KV per token and per sequence."""
    dtype = kv_dtype or model.dtype
    kv = storage_type(dtype)
    per_token = kvcalc_kv.kv_bytes_per_token(model, kv, mla_naive=mla_naive)
    fixed = kvcalc_kv.fixed_bytes_per_sequence(model, kv)
    per_seq = [
        SequenceBytes(context=c, bytes=kvcalc_kv.bytes_per_sequence(model, c, kv, mla_naive=mla_naive))
        for c in contexts
    ]
    explain = kv_derivations(model, dtype, mla_naive=mla_naive)
    explain.append(
        Derivation(
            figure="KV bytes/sequence at L tokens (L past every window)",
            formula="bytes_per_token x L + fixed_bytes_per_sequence",
            substituted=f"{per_token:,} x L + {fixed:,}",
            value=", ".join(f"L={s.context:,}: {fmt_bytes(s.bytes)}" for s in per_seq),
            source="kvcalc.calc.kv",
        )
    )
    return InspectReport(
        model=model_report(model),
        kv_cache=KvCacheReport(
            dtype=dtype,
            layout="naive per-head K/V" if mla_naive else "engine (vLLM/SGLang): MLA as one latent per token",
            bytes_per_token=per_token,
            fixed_bytes_per_sequence=fixed,
            by_kind=kvcalc_kv.kv_by_kind(model, kv),
            per_sequence=per_seq,
        ),
        explain=explain,
    )
