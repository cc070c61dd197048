"""Vision tower bytes on one GPU, as vLLM builds a multimodal model.

    bytes per rank = served dtype bytes x [embeddings + whole projector parts
                                           + (layers run x layer + mergers) / tower tp + projector linears / tp]

vLLM (v0.19-v0.33, `model_executor/models/{siglip,clip,pixtral,moonvit,intern_vit,qwen2_vl,qwen2_5_vl,qwen3_vl,
mllama4,gemma3_mm,gemma4_mm,mistral3,kimi_vl,llava,llava_next,internvl,phi3v}.py`):
- dtype: the served one (built under `set_default_torch_dtype(model_config.dtype)`, `model_loader/base_loader.py`:
  an fp32 checkpoint is served, and its tower built, in 16 bits);
- split: with the default `mm_encoder_tp_mode="weights"` the encoder's QKV, MLP and merger linears and the
  LLaVA/Mistral 3/Qwen/Llama 4 projector linears are tensor-parallel (1/tp per rank); patch convolutions,
  position tables, norms, Gemma 3's projection parameter, Mistral 3's patch merger and the Kimi-VL, InternVL and
  Phi-3-vision projectors are whole on every rank (per-layer norms and row biases too: under 0.1 % of a tower,
  counted as split); Gemma 4's tower is whole (`WHOLE_TOWER`), and InternViT's attention when its heads do not
  divide the TP degree (`ATTENTION_FALLBACK`);
- `--mm-encoder-tp-mode data`: the wrappers that declare `supports_encoder_tp_data` (`ENCODER_DATA_PARALLEL`,
  `models/vision.py::is_vit_use_data_parallel`) build the tower's linears whole; their projector stays split;
- layers: LLaVA, Mistral 3, Phi-3-vision and InternVL build only the layers up to `vision_feature_layer` /
  `select_layer` (`num_hidden_layers_override`); SigLIP's pooling head is never built;
- `--language-model-only` (or every `--limit-mm-per-prompt` modality at 0): the tower is built on the meta device
  and takes no memory (`models/interfaces.py::_mark_tower_model`, PR #22299 and #32605);
- pipeline: every stage builds the tower until v0.33, which skips it on non-first stages under Model Runner V2.
SGLang and TensorRT-LLM plans use the same rules (SGLang builds every LLaVA layer and splits Gemma 4: not modelled).
"""

from __future__ import annotations

from kvcalc.calc.plan import Assumption
from kvcalc.spec.base import record
from kvcalc.spec.vision import VisionCount

#: Wrappers whose vLLM model declares `supports_encoder_tp_data` (v0.19-v0.33; Qwen3.5's classes inherit Qwen3-VL's).
ENCODER_DATA_PARALLEL = frozenset({"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe",
                                   "kimi_vl", "llama4"})
#: Wrappers whose tower vLLM builds from transformers' own module, every linear replicated: whole on every rank
#: (gemma4_mm.py: `AutoModel.from_config(config.vision_config)`; v0.33 `recursive_replace_linear` -> ReplicatedLinear).
WHOLE_TOWER = frozenset({"gemma4"})
#: Towers whose attention vLLM builds unsplit when its heads do not divide the TP degree (the MLP stays split):
#: InternViT (intern_vit.py InternVisionEncoderLayer._init_attn falls back to InternSdpaAttention, plain
#: nn.Linear); other towers' parallel linears refuse such a TP degree at load.
ATTENTION_FALLBACK = frozenset({"intern-vit"})


def encoder_tp(vision: VisionCount | None, tp: int, mode: str = "weights") -> int:
    """The TP degree the tower's linears are split over: 1 for a replicated tower, or in "data" mode where
    the wrapper supports it; else the deployment's."""
    if vision is None:
        return tp
    if vision.wrapper in WHOLE_TOWER or (mode == "data" and vision.wrapper in ENCODER_DATA_PARALLEL):
        return 1
    return tp


@record
class TowerPlacement:
    """How an engine holds a multimodal tower: loaded or not, the TP degree its linears split over (None:
    `encoder_tp` in "weights" mode), its element size (None: the model dtype, fp32 checkpoints served in 16 bits),
    and whether every pipeline stage builds it (vLLM before v0.33, and v0.33 under Model Runner V1)."""

    loaded: bool = True
    tower_tp: int | None = None
    element_bytes: int | None = None
    every_stage: bool = False


def tower_bytes_on_stage(vision: VisionCount | None, placement: TowerPlacement, *, tp: int, stage: int,
                         model_element_bytes: int) -> int:
    """The tower's bytes on one GPU of pipeline stage `stage` under `placement`."""
    if vision is None or not placement.loaded or (stage > 0 and not placement.every_stage):
        return 0
    element = placement.element_bytes or min(model_element_bytes, 2)
    return vision_weight_bytes(vision, tp=tp, tower_tp=placement.tower_tp, dtype_bytes=element)


def vision_weight_bytes(vision: VisionCount | None, *, tp: int, dtype_bytes: int, tower_tp: int | None = None) -> int:
    """Bytes of the vision tower and projector on one TP rank (module docstring): the tower's layers and mergers
    split over `tower_tp` (`encoder_tp`), the projector's linears over `tp`."""
    if vision is None:
        return 0
    tower = vision.tower
    tower_split = encoder_tp(vision, tp) if tower_tp is None else tower_tp
    layer_whole = tower.attention_params if (tower.kind in ATTENTION_FALLBACK and tower.heads
                                             and tower.heads % tower_split) else 0
    split_tower = vision.layers_run * (tower.layer_params - layer_whole) + tower.merger_params
    whole = tower.embed_params + vision.projector_other_params + vision.layers_run * layer_whole
    return dtype_bytes * (whole + split_tower // max(1, tower_split) + vision.projector_linear_params // max(1, tp))


def deepstack_buffer_bytes(vision: VisionCount | None, *, tokens: int, text_hidden: int, dtype_bytes: int) -> int:
    """Qwen3-VL's deepstack input buffers, allocated with the model on every rank and counted in vLLM's "Model
    loading took": levels x max_num_batched_tokens x text hidden x dtype bytes (vLLM `qwen3_vl.py`
    Qwen3VLForConditionalGeneration.__init__, `deepstack_input_embeds`, whole per rank; from v0.28 not allocated
    in language-model-only mode)."""
    if vision is None:
        return 0
    return vision.tower.deepstack_levels * tokens * text_hidden * dtype_bytes


def vision_assumption(vision: VisionCount, placement: TowerPlacement, *, tp: int,
                      model_element_bytes: int) -> Assumption:
    """The tower's bytes on a first-stage GPU as a plan assumption (0 when the engine serves the text model
    only), as `tower_bytes_on_stage` counts them."""
    value = tower_bytes_on_stage(vision, placement, tp=tp, stage=0, model_element_bytes=model_element_bytes)
    tower_tp = encoder_tp(vision, tp) if placement.tower_tp is None else placement.tower_tp
    split = f"linears / {tower_tp}" if tower_tp > 1 else "every linear whole"
    what = (f"{vision.tower.kind} tower ({vision.layers_run} of {vision.tower.layers} layers run, {split}) + "
            "projector, served dtype, embeddings and norms whole; vLLM model_executor/models (calc/vision.py)")
    return Assumption(value=value, unit="B", source=what if placement.loaded else "--language-model-only: not loaded")
