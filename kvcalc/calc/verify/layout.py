"""Pure helpers shared by the measurements and the report (no torch): layer signatures and extrapolation.

A model's layers fall into a few *signatures* (same mixer kind and window, same MLP, same tensor shapes):
Llama has one, gpt-oss two (sliding and full), DeepSeek-V2-Lite two (its dense first layer and the MoE rest).
Measuring K layers of each signature and scaling by how many layers share it gives the whole model:

    whole = sum over signatures s of count(s) x measured(stack of k_s layers of s) / k_s  (+ the global part)

which is exact for bytes (every layer of a signature has the same tensors) and, for time, assumes that a
layer's time does not depend on its neighbours (true for a CUDA-graph replay of a stack much larger than L2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from kvcalc.spec.layers import LayerSpec
from kvcalc.spec.model import ModelSpec


def layer_signature(layer: LayerSpec) -> str:
    """A short name for the layer's kind, e.g. `full/dense`, `sliding128/moe`, `mla/moe`, plus a shape
    digest when two layers of one kind differ in tensors."""
    mixer = layer.kind
    window = getattr(layer.mixer, "window", None) if layer.mixer is not None else None
    if window is not None:
        mixer = f"{mixer}{window}"
    mlp = layer.mlp.kind if layer.mlp is not None else "none"
    shapes = repr(tuple((t.name.split(".", 2)[-1], tuple(t.shape)) for t in layer.tensors))
    return f"{mixer}/{mlp}#{hashlib.sha1(shapes.encode()).hexdigest()[:6]}"


def signature_groups(model: ModelSpec) -> dict[str, list[int]]:
    """Signature -> the indices of the layers that have it, in the order signatures first appear."""
    groups: dict[str, list[int]] = {}
    for layer in model.layers:
        groups.setdefault(layer_signature(layer), []).append(layer.index)
    return groups


def extrapolate(per_layer: Mapping[str, float], counts: Mapping[str, int], global_part: float = 0.0) -> float:
    """sum over signatures of count x per-layer value, plus the global part (embeddings and head)."""
    missing = set(counts) - set(per_layer)
    if missing:
        raise KeyError(f"no measurement for layer signature(s) {', '.join(sorted(missing))}")
    return global_part + sum(counts[s] * per_layer[s] for s in counts)


def per_layer(stacks: Iterable[tuple[str, float, int]]) -> dict[str, float]:
    """(signature, value measured over a stack, layers in the stack) -> value per layer."""
    return {signature: value / layers for signature, value, layers in stacks}
