"""Multimodal projectors: the few layers between a vision tower's output (width Hv) and the text model
(width D), one function per wrapper, as transformers builds them (`modeling_<wrapper>.py`). Each returns
(params in linears vLLM shards over TP, params it keeps whole on every rank: raw parameters, norms, the
Mistral 3 patch merger and the Kimi-VL, Phi-3-vision and InternVL projectors, which vLLM builds replicated).
Each takes the wrapper's config, the vision config, the tower's width Hv and the text model's D.
"""

from __future__ import annotations

from kvcalc.sources.families._build import Cfg


def gemma3(wrapper: Cfg, vision: Cfg, hv: int, d: int) -> tuple[int, int]:
    """Gemma3MultiModalProjector: mm_input_projection_weight [Hv, D] and mm_soft_emb_norm (RMSNorm Hv):
    Hv D + Hv (the 4 x 4 average pool has no weights)."""
    return 0, hv * d + hv


def mistral3(wrapper: Cfg, vision: Cfg, hv: int, d: int) -> tuple[int, int]:
    """Mistral3MultiModalProjector: RMSNorm Hv, patch_merger [s^2 Hv -> Hv] without bias, linear_1
    [Hv n -> D] and linear_2 [D -> D], biased when `multimodal_projector_bias` (n: feature layers used)."""
    merge = wrapper.int("spatial_merge_size", 2)
    bias = wrapper.bool("multimodal_projector_bias", False)
    return _mlp(hv * _feature_layers(wrapper), d, bias=bias), hv + merge * merge * hv * hv


def llava(wrapper: Cfg, vision: Cfg, hv: int, d: int) -> tuple[int, int]:
    """LlavaMultiModalProjector: linear_1 [Hv n -> D] and linear_2 [D -> D], biased unless
    `multimodal_projector_bias` is false (n: the feature layers concatenated)."""
    return _mlp(hv * _feature_layers(wrapper), d, bias=wrapper.bool("multimodal_projector_bias", True)), 0


def llava_next(wrapper: Cfg, vision: Cfg, hv: int, d: int) -> tuple[int, int]:
    """LLaVA's projector plus `image_newline` [D] (LlavaNextForConditionalGeneration)."""
    return llava(wrapper, vision, hv, d)[0], d


def kimi_vl(wrapper: Cfg, vision: Cfg, hv: int, d: int) -> tuple[int, int]:
    """KimiVLMultiModalProjector: pre_norm LayerNorm 2Hv, linear_1 [k Hv -> k Hv] and linear_2 [k Hv -> D], biased
    (k: the vision_config's merge_kernel_size, default 2 x 2; vLLM kimi_vl.py)."""
    kernel = vision.get("merge_kernel_size", [2, 2])
    ok = isinstance(kernel, list) and len(kernel) == 2 and all(isinstance(k, int) and k > 0 for k in kernel)
    merged = (kernel[0] * kernel[1] if ok else 4) * hv
    return 0, 2 * hv + merged * merged + merged + d * merged + d


def llama4(wrapper: Cfg, vision: Cfg, hv: int, d: int) -> tuple[int, int]:
    """Llama4MultiModalProjector.linear_1 [vision_output_dim -> D], no bias (default 7680: Llama4VisionConfig)."""
    return d * vision.int("vision_output_dim", 7680), 0


def phi3_v(wrapper: Cfg, vision: Cfg, hv: int, d: int) -> tuple[int, int]:
    """Phi-3-vision's glb_GN and sub_GN [4Hv] and img_projection [4Hv -> D] + [D -> D], biased; vLLM builds them
    with plain nn.Linear / nn.Parameter, whole on every GPU (phi3v.py Phi3HDImageEmbedding)."""
    return 0, 2 * 4 * hv + _mlp(4 * hv, d, bias=True)


def internvl(wrapper: Cfg, vision: Cfg, hv: int, d: int) -> tuple[int, int]:
    """InternVL's mlp1: LayerNorm over the pixel-shuffled features (Hv / downsample_ratio^2 wide), then
    [-> D] and [D -> D], biased; vLLM builds it with plain nn.Linear, whole on every GPU (internvl.py)."""
    ratio = wrapper.get("downsample_ratio", 0.5)
    scale = round(1 / ratio) if isinstance(ratio, (int, float)) and 0 < ratio <= 1 else 2
    return 0, 2 * hv * scale * scale + _mlp(hv * scale * scale, d, bias=True)


def none(wrapper: Cfg, vision: Cfg, hv: int, d: int) -> tuple[int, int]:
    """Wrappers whose tower ends in its own merger (Qwen-VL, Llama 4, Gemma 4): no separate projector."""
    return 0, 0


def layers_run(wrapper: Cfg, layers: int, default: int) -> int:
    """Encoder layers LLaVA, Mistral 3, Phi-3-vision and InternVL run to reach `vision_feature_layer` (InternVL:
    `select_layer`; hidden_states[f]: f layers; negative f counts from the end, N + f + 1; a list: its deepest;
    vLLM `models/utils.py::get_layer_index` and `init_vision_tower_for_llava`, which build only those)."""
    chosen = wrapper.get("vision_feature_layer", wrapper.get("select_layer", default))
    picks = chosen if isinstance(chosen, list) else [chosen]
    needed = [layers + f + 1 if f < 0 else f for f in picks if isinstance(f, int) and not isinstance(f, bool)]
    return max(1, min(layers, max(needed))) if needed else layers


def _mlp(width: int, d: int, *, bias: bool) -> int:
    """Two linears, [width -> D] then [D -> D], with biases when `bias`."""
    return width * d + d * d + (2 * d if bias else 0)


def _feature_layers(wrapper: Cfg) -> int:
    """How many encoder layers' outputs the projector concatenates (`vision_feature_layer` a list: that many)."""
    layers = wrapper.get("vision_feature_layer")
    return len(layers) if isinstance(layers, list) and layers else 1
