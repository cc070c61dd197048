"""Per-layer specs: what each layer's token mixer caches and what its MLP holds.

Modelled on vLLM's `vllm/v1/kv_cache_interface.py` (FullAttentionSpec, SlidingWindowSpec,
ChunkedLocalAttentionSpec, MLAAttentionSpec, MambaSpec): one small class per layer kind, all answering the
same questions, so a new kind is a new class and not a new branch in a long function:

- `kv_bytes_per_token(kv, tp)`: bytes one cached token takes in this layer on one tensor-parallel rank;
- `cached_tokens(context)`: how many tokens of a `context`-token sequence the layer keeps;
- `state_bytes(state_dtype, tp)`: the fixed recurrent state one sequence holds (linear attention, Mamba).

A sequence of L tokens therefore holds `kv_bytes_per_token * cached_tokens(L) + state_bytes` in a layer.
"""

from __future__ import annotations

from typing import Literal

from kvcalc.spec.base import record
from kvcalc.spec.dtypes import StorageType


def kv_heads_per_rank(num_kv_heads: int, tp: int) -> int:
    """KV heads one TP rank holds: max(1, n_kv / tp); with tp > n_kv each head is replicated tp / n_kv times.

    Source: vLLM `ModelConfig.get_num_kv_heads` (`max(1, total_num_kv_heads // tensor_parallel_size)`).
    """
    return max(1, num_kv_heads // tp)


@record
class FullAttention:
    """Softmax attention over the whole context (MHA: n_kv = n_heads, MQA: n_kv = 1, GQA in between).

    KV bytes per token and layer = (head_dim + v_head_dim) * n_kv_per_rank * bytes(kv_dtype)
    = 2 * n_kv * head_dim * bytes when K and V share a head size (vLLM `AttentionSpec.page_size_bytes`
    divided by block_size).
    """

    kind: Literal["full"] = "full"
    num_heads: int
    num_kv_heads: int
    head_dim: int
    v_head_dim: int | None = None

    @property
    def value_dim(self) -> int:
        return self.v_head_dim if self.v_head_dim is not None else self.head_dim

    def kv_bytes_per_token(self, kv: StorageType, tp: int = 1) -> int:
        heads = kv_heads_per_rank(self.num_kv_heads, tp)
        return kv.bytes_for(heads * self.head_dim) + kv.bytes_for(heads * self.value_dim)

    def cached_tokens(self, context: int) -> int:
        return context

    def state_bytes(self, state: StorageType, tp: int = 1, conv: StorageType | None = None) -> int:
        return 0

    @property
    def window(self) -> int | None:
        return None


@record
class SlidingWindowAttention(FullAttention):
    """Attention over the last `window` tokens (Mistral v0.1, Gemma 2/3, Phi-3, gpt-oss alternating layers).

    Holds min(context, window) tokens once the engine frees blocks that slid out of the window (vLLM's
    hybrid allocator, `SlidingWindowSpec`); engines without it keep the whole context.
    """

    kind: Literal["sliding"] = "sliding"  # type: ignore[assignment]
    sliding_window: int

    def cached_tokens(self, context: int) -> int:
        return min(context, self.sliding_window)

    @property
    def window(self) -> int | None:
        return self.sliding_window


@record
class ChunkedAttention(FullAttention):
    """Attention within fixed chunks of `chunk` tokens (Llama 4's local layers, `attention_chunk_size`).

    Holds at most `chunk` tokens: min(context, chunk) (vLLM `ChunkedLocalAttentionSpec`).
    """

    kind: Literal["chunked"] = "chunked"  # type: ignore[assignment]
    chunk: int

    def cached_tokens(self, context: int) -> int:
        return min(context, self.chunk)

    @property
    def window(self) -> int | None:
        return self.chunk


@record
class MLAAttention:
    """Multi-head latent attention (DeepSeek-V2/V3, Kimi K2).

    As vLLM and SGLang store it: one compressed latent per token and layer, no per-head K/V:
    bytes per token = (kv_lora_rank + qk_rope_head_dim) * bytes(kv_dtype), the same on every TP rank
    (DeepSeek-V2 paper, arXiv:2405.04434 section 2.1.3; vLLM `MLAAttentionSpec`, 576 values for V3).
    A naive cache stores full K and V per head: n_heads * (qk_nope + qk_rope + v) values (older transformers
    releases did; transformers 5.17 caches the latent too: measured in docs/validation.md).
    """

    kind: Literal["mla"] = "mla"
    num_heads: int
    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None = None

    @property
    def latent_dim(self) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim

    def kv_bytes_per_token(self, kv: StorageType, tp: int = 1) -> int:
        return kv.bytes_for(self.latent_dim)

    def naive_kv_bytes_per_token(self, kv: StorageType, tp: int = 1) -> int:
        """Full per-head K (nope + rope) and V, as HF's eager cache keeps it."""
        heads = max(1, self.num_heads // tp)
        return kv.bytes_for(heads * (self.qk_nope_head_dim + self.qk_rope_head_dim)) + kv.bytes_for(
            heads * self.v_head_dim
        )

    def cached_tokens(self, context: int) -> int:
        return context

    def state_bytes(self, state: StorageType, tp: int = 1, conv: StorageType | None = None) -> int:
        return 0

    @property
    def window(self) -> int | None:
        return None


@record
class LinearAttention:
    """Gated DeltaNet linear attention (Qwen3-Next, Qwen3.5): a fixed state per sequence, no per-token cache.

    State per sequence and layer (vLLM `MambaStateShapeCalculator.gated_delta_net_state_shape`):
    conv state (conv_kernel - 1) * (2 * n_k * d_k + n_v * d_v) / tp values in the model dtype, plus the
    recurrent state n_v * d_k * d_v / tp values in the SSM-state dtype.
    """

    kind: Literal["linear"] = "linear"
    num_key_heads: int
    num_value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int

    def kv_bytes_per_token(self, kv: StorageType, tp: int = 1) -> int:
        return 0

    def cached_tokens(self, context: int) -> int:
        return 0

    def conv_state_elements(self, tp: int = 1) -> int:
        conv_dim = 2 * self.num_key_heads * self.key_head_dim + self.num_value_heads * self.value_head_dim
        return (self.conv_kernel - 1) * conv_dim // tp

    def ssm_state_elements(self, tp: int = 1) -> int:
        return self.num_value_heads // tp * self.key_head_dim * self.value_head_dim

    def state_bytes(self, state: StorageType, tp: int = 1, conv: StorageType | None = None) -> int:
        return (conv or state).bytes_for(self.conv_state_elements(tp)) + state.bytes_for(
            self.ssm_state_elements(tp)
        )

    @property
    def window(self) -> int | None:
        return None


@record
class MambaMixer:
    """Mamba selective state-space mixer: a fixed state per sequence, no per-token cache.

    Mamba-2 (Nemotron-H; vLLM `mamba2_state_shape`): conv (conv_kernel - 1) * (d_inner + 2 * G * d_state)
    / tp values, SSM n_heads / tp * head_dim * d_state values, where G = n_groups, or tp when tp does not
    divide n_groups (vLLM `extra_groups_for_head_shards` replicates the groups so each rank holds those its
    heads use: G = n_groups + tp - n_groups). Mamba-1 (Jamba; `mamba1_state_shape`): conv
    (conv_kernel - 1) * d_inner / tp, SSM d_inner / tp * d_state.
    """

    kind: Literal["mamba"] = "mamba"
    version: Literal[1, 2]
    d_inner: int
    d_state: int
    conv_kernel: int
    n_groups: int = 1
    num_heads: int = 0
    head_dim: int = 0

    def kv_bytes_per_token(self, kv: StorageType, tp: int = 1) -> int:
        return 0

    def cached_tokens(self, context: int) -> int:
        return 0

    def conv_state_elements(self, tp: int = 1) -> int:
        channels = self.d_inner
        if self.version == 2:
            groups = self.n_groups + (0 if self.n_groups % tp == 0 else tp - self.n_groups)
            channels += 2 * groups * self.d_state
        return (self.conv_kernel - 1) * channels // tp

    def ssm_state_elements(self, tp: int = 1) -> int:
        if self.version == 2:
            return self.num_heads // tp * self.head_dim * self.d_state
        return self.d_inner // tp * self.d_state

    def state_bytes(self, state: StorageType, tp: int = 1, conv: StorageType | None = None) -> int:
        return (conv or state).bytes_for(self.conv_state_elements(tp)) + state.bytes_for(
            self.ssm_state_elements(tp)
        )

    @property
    def window(self) -> int | None:
        return None


Mixer = FullAttention | SlidingWindowAttention | ChunkedAttention | MLAAttention | LinearAttention | MambaMixer


@record
class DenseMLP:
    """A dense feed-forward block: gated (SwiGLU/GeGLU, 3 matrices h*i) or plain (2 matrices)."""

    kind: Literal["dense"] = "dense"
    intermediate_size: int
    gated: bool = True


@record
class MoEMLP:
    """A mixture-of-experts block: `num_experts` experts, `top_k` routed per token, plus shared experts.

    Memory holds every expert; a token's compute touches top_k routed experts plus the shared ones.
    """

    kind: Literal["moe"] = "moe"
    num_experts: int
    top_k: int
    expert_intermediate_size: int
    shared_intermediate_size: int = 0
    gated: bool = True


MLP = DenseMLP | MoEMLP


@record
class TensorSpec:
    """One weight tensor: GGUF-style name (`blk.3.attn_q.weight`), shape, and its role.

    Roles drive quantization recipes (which tensors stay 16-bit, which get more bits) and tensor-parallel
    sharding (column/row parallel vs replicated). `experts` > 1 means the first dimension is the expert index.
    """

    name: str
    shape: tuple[int, ...]
    role: str
    layer: int | None = None

    @property
    def numel(self) -> int:
        n = 1
        for dim in self.shape:
            n *= dim
        return n


@record
class LayerSpec:
    """One decoder layer: its token mixer (attention kind or recurrent), its MLP, and its tensors."""

    index: int
    mixer: Mixer | None = None
    mlp: MLP | None = None
    tensors: tuple[TensorSpec, ...] = ()

    @property
    def params(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def kind(self) -> str:
        """Mixer kind (`full`, `sliding`, `chunked`, `mla`, `linear`, `mamba`, or `mlp-only`)."""
        return self.mixer.kind if self.mixer is not None else "mlp-only"
