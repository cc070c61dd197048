"""The model as kvcalc sees it: global tensors plus a list of per-layer specs."""

from __future__ import annotations

from typing import Any, Literal

from kvcalc.spec.base import record
from kvcalc.spec.layers import LayerSpec, TensorSpec
from kvcalc.spec.vision import VisionCount


@record
class RopeScaling:
    """RoPE scaling as the config states it (linear, dynamic, yarn, llama3, longrope ...)."""
    rope_type: str
    factor: float | None = None
    original_max_position_embeddings: int | None = None


@record
class ModelSpec:
    """An architecture, layer by layer, with every weight tensor it holds.

    `tensors` of the layers plus `global_tensors` are the text model (what the causal-LM class holds);
    `mtp_tensors` are extra next-token-prediction layers shipped in the checkpoint but not run by the
    base model; `vision` is a multimodal checkpoint's encoder and projector, counted separately.
    """
    id: str
    hf_repo: str | None = None
    model_type: str
    architecture: str | None = None
    dtype: str = "bf16"
    hidden_size: int
    vocab_size: int
    max_position_embeddings: int | None = None
    tie_word_embeddings: bool = False
    layers: tuple[LayerSpec, ...]
    global_tensors: tuple[TensorSpec, ...]
    mtp_tensors: tuple[TensorSpec, ...] = ()
    vision: VisionCount | None = None
    rope_scaling: RopeScaling | None = None
    rotary_dim: int = 0
    ssm_state_dtype: str | None = None
    quantization_config: dict[str, Any] | None = None
    params_source: Literal["derived", "exact"] = "derived"
    exact_params_total: int | None = None
    exact_weights_bytes: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def vision_params(self) -> int:
        """Parameters of the vision tower and projector a multimodal checkpoint stores (0 for text models)."""
        return self.vision.params if self.vision is not None else 0

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def all_tensors(self) -> list[TensorSpec]:
        """Global tensors then every layer's tensors (the text model; MTP and vision excluded)."""
        out = list(self.global_tensors)
        for layer in self.layers:
            out.extend(layer.tensors)
        return out

    @property
    def num_attention_heads(self) -> int:
        """Query heads of the first softmax or MLA attention layer (what TP divisibility is checked against;
        recurrent mixers' heads are checked separately)."""
        for layer in self.layers:
            if layer.kind in ("full", "sliding", "chunked", "mla"):
                return int(getattr(layer.mixer, "num_heads", 0))
        return 0

    @property
    def num_kv_heads(self) -> int:
        """KV heads of the first softmax-attention layer (0 for MLA-only or attention-free models)."""
        for layer in self.layers:
            heads = getattr(layer.mixer, "num_kv_heads", None)
            if heads:
                return int(heads)
        return 0
