"""KV-cache and recurrent-state bytes of a model, per token and per sequence.

Per layer (see each mixer class in `spec/layers.py` for its formula and source):
    bytes(layer, L) = kv_bytes_per_token(layer) * cached_tokens(layer, L) + state_bytes(layer)
Summed over layers:
    bytes_per_token          = sum of kv_bytes_per_token over layers that keep every token (full, MLA):
                               what each extra token adds once the context is past every window;
    fixed_bytes_per_sequence = sum over window-capped layers of kv_bytes_per_token * window, plus every
                               recurrent state: what a sequence holds at long context besides that.
So at a context L longer than every window, bytes(L) = bytes_per_token * L + fixed_bytes_per_sequence.
"""

from __future__ import annotations

from collections import defaultdict

from kvcalc.spec.base import record
from kvcalc.spec.dtypes import StorageType, storage_type
from kvcalc.spec.layers import LayerSpec, MLAAttention
from kvcalc.spec.model import ModelSpec


@record
class KvKindTotals:
    """KV totals of all layers of one kind (full, sliding, chunked, mla, linear, mamba)."""

    layers: int
    bytes_per_token: int
    window_tokens: int | None
    fixed_bytes_per_sequence: int


def state_storage(model: ModelSpec) -> StorageType:
    """dtype of recurrent states: the config's `mamba_ssm_dtype` if set, else the model dtype
    (vLLM `mamba_ssm_cache_dtype="auto"` follows the model dtype)."""
    return storage_type(model.ssm_state_dtype or model.dtype)


def layer_kv_bytes_per_token(layer: LayerSpec, kv: StorageType, tp: int = 1, mla_naive: bool = False) -> int:
    """One cached token in one layer on one TP rank (0 for recurrent or MLP-only layers)."""
    if layer.mixer is None:
        return 0
    if mla_naive and isinstance(layer.mixer, MLAAttention):
        return layer.mixer.naive_kv_bytes_per_token(kv, tp)
    return layer.mixer.kv_bytes_per_token(kv, tp)


def layer_bytes_for_context(
    layer: LayerSpec,
    context: int,
    kv: StorageType,
    state: StorageType,
    conv: StorageType,
    tp: int = 1,
    mla_naive: bool = False,
) -> int:
    """bytes(layer, L) = kv_bytes_per_token * cached_tokens(L) + state_bytes."""
    if layer.mixer is None:
        return 0
    per_token = layer_kv_bytes_per_token(layer, kv, tp, mla_naive)
    return per_token * layer.mixer.cached_tokens(context) + layer.mixer.state_bytes(state, tp, conv)


def kv_bytes_per_token(
    model: ModelSpec, kv: StorageType, tp: int = 1, mla_naive: bool = False, layers: range | None = None
) -> int:
    """Bytes each extra token adds past every window: sum over full-context layers (full, MLA), of the
    whole model or of `layers` (one pipeline stage)."""
    return sum(
        layer_kv_bytes_per_token(layer, kv, tp, mla_naive)
        for layer in _layers(model, layers)
        if layer.mixer is not None and layer.mixer.window is None
    )


def _layers(model: ModelSpec, layers: range | None) -> tuple[LayerSpec, ...]:
    return model.layers if layers is None else tuple(model.layers[i] for i in layers)


def fixed_bytes_per_sequence(
    model: ModelSpec, kv: StorageType, tp: int = 1, state: StorageType | None = None, layers: range | None = None
) -> int:
    """Window-capped layers at their full window plus recurrent states: constant per sequence at long context
    (whole model, or the `layers` of one pipeline stage)."""
    state = state or state_storage(model)
    conv = storage_type(model.dtype)
    total = 0
    for layer in _layers(model, layers):
        if layer.mixer is None:
            continue
        window = layer.mixer.window
        if window is not None:
            total += layer_kv_bytes_per_token(layer, kv, tp) * window
        elif layer.kind in ("linear", "mamba"):
            total += layer.mixer.state_bytes(state, tp, conv)
    return total


def bytes_per_sequence(
    model: ModelSpec,
    context: int,
    kv: StorageType,
    tp: int = 1,
    mla_naive: bool = False,
    state: StorageType | None = None,
) -> int:
    """Cache bytes one sequence of `context` tokens holds on one TP rank: sum of bytes(layer, L)."""
    state = state or state_storage(model)
    conv = storage_type(model.dtype)
    return sum(
        layer_bytes_for_context(layer, context, kv, state, conv, tp, mla_naive) for layer in model.layers
    )


def kv_by_kind(model: ModelSpec, kv: StorageType, tp: int = 1) -> dict[str, KvKindTotals]:
    """Per layer kind: layer count, bytes per token, window, and fixed bytes per sequence."""
    state = state_storage(model)
    conv = storage_type(model.dtype)
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    windows: dict[str, int | None] = {}
    for layer in model.layers:
        if layer.mixer is None:
            continue
        kind = layer.kind
        per_token = layer_kv_bytes_per_token(layer, kv, tp)
        window = layer.mixer.window
        windows[kind] = window
        acc[kind][0] += 1
        if kind in ("linear", "mamba"):
            acc[kind][2] += layer.mixer.state_bytes(state, tp, conv)
        elif window is None:
            acc[kind][1] += per_token
        else:
            acc[kind][2] += per_token * window
    return {
        kind: KvKindTotals(
            layers=n, bytes_per_token=per_tok, window_tokens=windows[kind], fixed_bytes_per_sequence=fixed
        )
        for kind, (n, per_tok, fixed) in acc.items()
    }
