"""Long context: the RoPE scaling a model declares, and whether a context is inside what it was trained or
scaled for. One check (`rope_context_check`) for every command that takes a context.

RoPE scaling types as config.json declares them (transformers `modeling_rope_utils.ROPE_INIT_FUNCTIONS`):
- linear (position interpolation, Chen et al. 2023, arXiv:2306.15595): positions divided by `factor`;
- dynamic (dynamic NTK, transformers `_compute_dynamic_ntk_parameters`): the base grows with the length past
  max_position_embeddings: it extrapolates without fine-tuning, with quality falling as the length grows;
- yarn (Peng et al. 2023, arXiv:2309.00071) and longrope: `factor` x original_max_position_embeddings;
- llama3 (Llama 3.1: factor 8 from 8,192 to 131,072): frequency-dependent interpolation.
The scaled context is original_max_position_embeddings x factor where both are declared, else
max_position_embeddings; a context beyond max(max_position_embeddings, scaled context) is outside what the
model was trained or scaled for (engines refuse it unless told to override: vLLM max_model_len check).
"""

from __future__ import annotations

from kvcalc.spec.base import record
from kvcalc.spec.model import ModelSpec


@record
class RopeCheck:
    """What context the model's positions cover, and a warning when `context` is beyond it."""

    context: int
    rope_type: str | None
    factor: float | None
    trained_context: int | None
    supported_context: int | None
    note: str
    warning: str | None = None


def supported_context(model: ModelSpec) -> tuple[int | None, int | None]:
    """(trained, supported): the pre-scaling context and the longest the scaling declares."""
    scaling = model.rope_scaling
    max_pos = model.max_position_embeddings
    if scaling is None:
        return max_pos, max_pos
    original = scaling.original_max_position_embeddings
    scaled = int(original * scaling.factor) if original and scaling.factor else None
    trained = original or max_pos
    candidates = [c for c in (max_pos, scaled) if c]
    return trained, max(candidates) if candidates else None


def rope_context_check(model: ModelSpec, context: int) -> RopeCheck:
    """Is `context` inside what `model` was trained or RoPE-scaled for (module docstring)?"""
    trained, supported = supported_context(model)
    scaling = model.rope_scaling
    kind = scaling.rope_type if scaling else None
    factor = scaling.factor if scaling else None
    if scaling is None:
        note = f"no RoPE scaling; trained context {trained:,}" if trained else "no RoPE scaling declared"
    else:
        note = f"RoPE {kind}" + (f" x{factor:g}" if factor else "") + (
            f" from {trained:,} to {supported:,} tokens" if trained and supported else "")
    warning = None
    if supported and context > supported:
        extra = (" (dynamic NTK extrapolates, with quality falling past it)" if kind == "dynamic" else "")
        warning = (f"context {context:,} exceeds the {supported:,} tokens {model.id} was trained or scaled for"
                   f"{extra}; {note}")
    elif trained and context > trained and kind:
        note += f"; {context:,} tokens rely on the scaling (past the {trained:,} trained)"
    return RopeCheck(context=context, rope_type=kind, factor=factor, trained_context=trained,
                     supported_context=supported, note=note, warning=warning)
