"""A multimodal checkpoint's vision side: its tower and projector, parameters as the checkpoint stores them
(built from `vision_config` by `kvcalc.sources.vision`), split the way engines shard them: the encoder
layers' and mergers' linears (tensor-parallel in vLLM), the embeddings and norms outside the layers (whole on
every rank), and parts the wrapper never runs."""

from __future__ import annotations

from kvcalc.spec.base import record


@record
class VisionTower:
    """A vision encoder's parameters as its checkpoint stores them."""

    kind: str
    layers: int
    layer_params: int  # one encoder layer (its linears, norms and biases)
    embed_params: int  # patch and position embeddings, class token, norms outside the layers
    merger_params: int = 0  # patch mergers / adapters built of linears (Qwen-VL, Llama 4)
    unused_params: int = 0  # stored, never run by any wrapper (SigLIP's pooling head, CLIP's final norm)
    hidden_size: int = 0
    deepstack_levels: int = 0  # Qwen3-VL: encoder layers whose features are added to the first text layers
    heads: int = 0  # attention heads per layer (0: not recorded)
    attention_params: int = 0  # one layer's attention (its share of layer_params)

    @property
    def params(self) -> int:
        """Every parameter the checkpoint stores for the tower."""
        return self.embed_params + self.layers * self.layer_params + self.merger_params + self.unused_params


@record
class VisionCount:
    """A multimodal checkpoint's vision tower and projector (parameters as stored), and how many encoder
    layers the wrapper runs (LLaVA and Mistral 3 read `vision_feature_layer`: layers after it are never run)."""

    tower: VisionTower
    wrapper: str  # the checkpoint's model_type (gemma3, qwen2_5_vl ...)
    projector_linear_params: int  # projector linears (tensor-parallel in vLLM)
    projector_other_params: int = 0  # raw parameters, norms and linears an engine keeps whole
    layers_run: int = 0

    @property
    def projector_params(self) -> int:
        return self.projector_linear_params + self.projector_other_params

    @property
    def params(self) -> int:
        return self.tower.params + self.projector_params
