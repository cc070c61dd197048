"""Kernels a decoder layer launches per step, counted from its structure, to scale the fixed cost per layer.

Every kernel costs a few microseconds beyond its bytes and FLOPs (launch, ramp-up and tail: inside a CUDA
graph launches are cheap but a kernel still cannot finish faster than its fixed latency), so a layer's
fixed cost is proportional to how many kernels it runs. `layer_overhead_s` is the cost of a plain dense
layer (DENSE_LAYER_KERNELS kernels); other layers pay in proportion:

    mixer  softmax attention (full, sliding, chunked): norm, QKV GEMM, rotary + cache write, attention,
           output GEMM = 5 (vLLM `LlamaDecoderLayer` / `LlamaAttention.forward`)
           MLA: norm, q_a, q_a norm, q_b, kv_a, kv norm, rotary, W_UK absorb, attention, W_UV, output = 11
           (vLLM `deepseek_v2.py` / `MLACommonImpl._forward_decode`)
           linear attention / Mamba: norm, in-proj, conv, scan, gated norm, out-proj = 6 (vLLM
           `mamba_mixer2.py`, `qwen3_next.py` Gated DeltaNet)
    MLP    dense gated: norm, gate_up GEMM, activation, down GEMM = 4
           MoE: norm, router GEMM, top-k, align/sort, expert GEMM 1, activation, expert GEMM 2, combine = 8
           (vLLM `fused_moe`), + 3 for shared experts (gate_up, activation, down)
A Llama layer is 5 + 4 = 9 kernels; a DeepSeek-V3 MoE layer 11 + 8 + 3 = 22, so 22/9 = 2.44 layer units.
Collectives are not counted here: their latency is `comm_latency_s` per collective (comm.py).
"""

from __future__ import annotations

from kvcalc.spec.layers import LayerSpec, MoEMLP

DENSE_LAYER_KERNELS = 9

_MIXER_KERNELS = {"full": 5, "sliding": 5, "chunked": 5, "mla": 11, "linear": 6, "mamba": 6}


def layer_kernels(layer: LayerSpec) -> int:
    """Kernels one decode step of `layer` launches (module docstring)."""
    mixer = _MIXER_KERNELS.get(layer.kind, 0)
    mlp = layer.mlp
    if mlp is None:
        return mixer
    if isinstance(mlp, MoEMLP):
        return mixer + 8 + (3 if mlp.shared_intermediate_size else 0)
    return mixer + 4


def layer_units(layers: list[LayerSpec]) -> float:
    """Sum of kernels / DENSE_LAYER_KERNELS: how many plain dense layers' fixed cost these layers pay."""
    return sum(layer_kernels(layer) for layer in layers) / DENSE_LAYER_KERNELS
