"""The vision side of a multimodal checkpoint: which tower and projector a wrapper `model_type` builds, and
their parameters from `vision_config` (data only; `towers.py`, `projectors.py`, one function per kind).

`vision_of(config, text_hidden, where)` -> (VisionCount or None, notes). A wrapper kvcalc does not know, or a
`vision_config` whose sizes cannot be read, is not counted and a note says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvcalc.errors import InputError
from kvcalc.sources.families._build import Cfg
from kvcalc.sources.vision import projectors, towers
from kvcalc.spec.vision import VisionCount, VisionTower

Tower = Callable[[Cfg, int], VisionTower]
Projector = Callable[[Cfg, Cfg, int, int], tuple[int, int]]

#: vision_config model_type -> tower, for wrappers that take any tower (LLaVA).
_BY_VISION_TYPE: dict[str, Tower] = {
    "siglip_vision_model": lambda v, d: towers.siglip(v),
    "clip_vision_model": lambda v, d: towers.clip(v),
    "pixtral": lambda v, d: towers.pixtral(v),
}

#: wrapper model_type -> (its tower, or None: by vision_config.model_type; its projector; the default
#: `vision_feature_layer` of wrappers that stop the encoder there, None: every layer runs).
_WRAPPERS: dict[str, tuple[Tower | None, Projector, int | None]] = {
    "gemma3": (lambda v, d: towers.siglip(v), projectors.gemma3, None),
    "mistral3": (lambda v, d: towers.pixtral(v), projectors.mistral3, -1),
    "llava": (None, projectors.llava, -2),
    "llava_next": (None, projectors.llava_next, -2),
    "llava_next_video": (None, projectors.llava_next, -2),  # LLaVA-NeXT plus a parameter-free pooling resampler
    "llava_onevision": (None, projectors.llava_next, -1),
    "kimi_vl": (lambda v, d: towers.moonvit(v), projectors.kimi_vl, None),
    "phi3_v": (lambda v, d: towers.clip(v), projectors.phi3_v, -2),
    "internvl_chat": (lambda v, d: towers.intern_vit(v), projectors.internvl, -1),
    "qwen2_vl": (towers.qwen2_vl, projectors.none, None),
    "qwen2_5_vl": (towers.qwen2_5_vl, projectors.none, None),
    **dict.fromkeys(("qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe"), (towers.qwen3_vl, projectors.none, None)),
    "llama4": (towers.llama4, projectors.llama4, None),
    "gemma4": (towers.gemma4, projectors.none, None),
}


#: Other encoders a config may carry, kvcalc does not size (a note says so): audio towers (Gemma 4 E2B/E4B),
#: Mistral's native vision_encoder, Qwen2.5-Omni's thinker, original LLaVA's mm_vision_tower.
_OTHER_TOWERS = ("audio_config", "vision_encoder", "thinker_config", "mm_vision_tower")

#: Towers a wrapper fixes in code instead of a vision_config: Phi-3-vision's CLIP ViT-L/14 at 336 px
#: (openai/clip-vit-large-patch14-336, named by its `img_processor`).
_IMPLIED_VISION: dict[str, dict[str, Any]] = {
    "phi3_v": {"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096,
               "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 336, "patch_size": 14},
}


def vision_of(config: dict[str, Any], text_hidden: int, where: str) -> tuple[VisionCount | None, list[str]]:
    """The tower and projector `config` (a whole config.json) builds around a text model of width
    `text_hidden`; (None, notes) when there is none or it cannot be counted."""
    wrapper = str(config.get("model_type") or "")
    vision = config.get("vision_config")
    if vision is None and wrapper in _IMPLIED_VISION and isinstance(config.get("img_processor"), dict):
        vision = _IMPLIED_VISION[wrapper]
    others = [f"{key} present: not counted" for key in _OTHER_TOWERS if config.get(key) is not None]
    if wrapper not in _WRAPPERS:
        unknown = [f"a vision tower ({wrapper[:40] or 'unknown wrapper'}) is present: not counted"]
        return None, [*(unknown if isinstance(vision, dict) else []), *others]
    if not isinstance(vision, dict):
        return None, [f"no vision_config in the {wrapper} config: its vision encoder is not counted", *others]
    build, projector, feature_default = _WRAPPERS[wrapper]
    v, w = Cfg(vision, f"{where}: vision_config"), Cfg(config, where)
    if build is None:
        kind = str(vision.get("model_type") or "clip_vision_model")
        if kind not in _BY_VISION_TYPE:
            return None, [f"a {kind[:40]} vision tower is present: not counted", *others]
        build = _BY_VISION_TYPE[kind]
    try:
        tower = build(v, text_hidden)
        linear, other = projector(w, v, tower.hidden_size, text_hidden)
    except InputError as exc:
        return None, [f"vision tower present but not computable ({str(exc).splitlines()[0][:120]}): not counted",
                      *others]
    run = tower.layers if feature_default is None else projectors.layers_run(w, tower.layers, feature_default)
    return VisionCount(tower=tower, wrapper=wrapper, projector_linear_params=linear, projector_other_params=other,
                       layers_run=run), others
