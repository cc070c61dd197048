"""Vision tower bytes on one GPU, as vLLM builds a multimodal model (the other engines shard towers the same
way: their own copies of these wrappers use the same parallel linears).

    bytes per rank = dtype bytes x [embed + projector_other + (layers_run x layer + mergers + projector_linear) / tp]

vLLM (v0.19-v0.33, `model_executor/models/{siglip,clip,pixtral,moonvit,qwen2_5_vl,qwen3_vl,mllama4,gemma3_mm,
mistral3,kimi_vl,llava,llava_next}.py`): the tower loads in the model dtype (built under
`set_default_torch_dtype`, `model_loader/base_loader.py`); with the default `mm_encoder_tp_mode="weights"` its
QKV, MLP and merger linears and the LLaVA/Mistral 3/Qwen/Llama 4 projector linears are tensor-parallel (1/tp
per rank), while patch convolutions, position tables, norms, Gemma 3's projection parameter, Mistral 3's patch
merger and Kimi-VL's projector are whole on every rank (per-layer norms and row biases are whole too: under
0.1 % of a tower, counted as split); LLaVA and Mistral 3 build only the layers up to `vision_feature_layer`
(`init_vision_tower_for_llava`, `num_hidden_layers_override`); SigLIP's pooling head is never built; with
`--language-model-only` (or every `--limit-mm-per-prompt` modality at 0) the tower is built on the meta device
and takes no memory (`models/interfaces.py::_mark_tower_model`, PR #22299 and #32605). With
`--mm-encoder-tp-mode data` the wrappers that declare `supports_encoder_tp_data` (Qwen2.5-VL, Qwen3-VL, Kimi-VL,
Llama 4) build every tower linear whole on each rank (`models/vision.py::is_vit_use_data_parallel`); the others
fall back to "weights". The tower sits with the embeddings on the first pipeline stage (vLLM up to v0.32 builds
it on every stage: not modelled).
"""

from __future__ import annotations

from kvcalc.calc.plan import Assumption
from kvcalc.spec.vision import VisionCount

#: Wrappers whose vLLM model declares `supports_encoder_tp_data` (v0.19-v0.33).
ENCODER_DATA_PARALLEL = frozenset({"qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "kimi_vl", "llama4"})


def encoder_tp(vision: VisionCount | None, tp: int, mode: str) -> int:
    """The TP degree the tower's linears are split over: 1 in "data" mode where the wrapper supports it."""
    return 1 if vision is not None and mode == "data" and vision.wrapper in ENCODER_DATA_PARALLEL else tp


def vision_weight_bytes(vision: VisionCount | None, *, tp: int, dtype_bytes: int) -> int:
    """Bytes of the vision tower and projector on one TP rank (module docstring)."""
    if vision is None:
        return 0
    tower = vision.tower
    split = vision.layers_run * tower.layer_params + tower.merger_params + vision.projector_linear_params
    whole = tower.embed_params + vision.projector_other_params
    return dtype_bytes * (whole + split // max(1, tp))


def deepstack_buffer_bytes(vision: VisionCount | None, *, tokens: int, text_hidden: int, dtype_bytes: int) -> int:
    """Qwen3-VL's deepstack input buffers, allocated with the model on every rank and counted in vLLM's "Model
    loading took": levels x max_num_batched_tokens x text hidden x dtype bytes (vLLM `qwen3_vl.py`
    Qwen3VLForConditionalGeneration.__init__, `deepstack_input_embeds`, whole per rank; none in
    language-model-only mode)."""
    if vision is None:
        return 0
    return vision.tower.deepstack_levels * tokens * text_hidden * dtype_bytes


def vision_assumption(vision: VisionCount, *, tp: int, dtype_bytes: int, loaded: bool) -> Assumption:
    """The tower's bytes per GPU as a plan assumption (0 when the engine serves the text model only)."""
    value = vision_weight_bytes(vision, tp=tp, dtype_bytes=dtype_bytes) if loaded else 0
    what = (f"{vision.tower.kind} tower ({vision.layers_run} of {vision.tower.layers} layers run) + projector, "
            "model dtype, linears / tp, embeddings and norms whole; vLLM model_executor/models (calc/vision.py)")
    return Assumption(value=value, unit="B", source=what if loaded else "--language-model-only: not loaded")
