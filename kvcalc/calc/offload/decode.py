"""Decode speed of a llama.cpp placement: the bytes each device reads per token, plus llama.cpp's fixed costs.

    time per token = step_s + GPU layers x gpu_layer_s
                     + bytes read on the GPU / (B_gpu x e_gpu) + bytes read from RAM / (B_ram x e_ram)
    tokens/s       = 1 / time per token

The GPU terms are the perf model's for llama.cpp on that card (calc/perf/defaults.py): e_gpu its weight streaming
efficiency (measured copy, else the vendor's figure: Apple 0.907 fitted with Metal's per-layer cost, else 0.85),
gpu_layer_s its backend's cost per layer (CUDA 20 us, Metal 199 us) and step_s its cost per step (0.3 ms), so
`kvcalc local` and `kvcalc perf --engine llamacpp` give one figure for a model the GPU holds. Checks against
published tokens/s the terms were not fitted to: RTX 3090, Llama-3-8B Q4_0 (4.35e9 B read per token), 156.56 t/s
(llama.cpp PR #15802) -> 156.0; Mac mini M4 (120 GB/s), Llama-3.1-8B Q4_K_M (4.62e9 B) tg128 20.87 t/s
(brand-o/normiebench #3) -> 20.4.

Host layers run on the CPU backend: e_ram = RAM_DECODE_EFFICIENCY (an assumption, see its comment) and no
per-layer cost (not measured). The GPU<->CPU hand-over of one hidden vector per token is not modelled.
"""

from __future__ import annotations

from kvcalc.calc.offload.memory import RAM_DECODE_EFFICIENCY
from kvcalc.calc.perf.defaults import ENGINE_OVERHEADS, GENERIC_BW_EFF, default_coefficients, engine_overheads
from kvcalc.spec.base import record
from kvcalc.spec.gpu import GpuSpec


@record
class DecodeCosts:
    """The terms of the module docstring's time per token (efficiencies as fractions, costs in seconds)."""

    gpu_efficiency: float = GENERIC_BW_EFF
    ram_efficiency: float = RAM_DECODE_EFFICIENCY
    gpu_layer_s: float = ENGINE_OVERHEADS["llamacpp"].layer_s
    step_s: float = ENGINE_OVERHEADS["llamacpp"].step_s


def llamacpp_decode_costs(gpu: GpuSpec | None) -> DecodeCosts:
    """llama.cpp's decode terms on `gpu` (None: CPU only), from the perf model's defaults for the card."""
    if gpu is None:
        return DecodeCosts(gpu_layer_s=0.0)
    over = engine_overheads("llamacpp", gpu)
    return DecodeCosts(gpu_efficiency=default_coefficients(gpu, "llamacpp").weight_bw_eff,
                       gpu_layer_s=over.layer_s, step_s=over.step_s)


def decode_tokens_per_s(gpu_read: int, host_read: int, gpu_layers: int, gpu_bw: float, ram_bw: float,
                        costs: DecodeCosts) -> float:
    """tokens/s = 1 / (step_s + gpu_layers x gpu_layer_s + gpu_read / (gpu_bw x e_gpu) + host_read / (ram_bw x
    e_ram)); 0 when nothing is read."""
    if not gpu_read and not host_read:
        return 0.0
    seconds = costs.step_s + gpu_layers * costs.gpu_layer_s
    if gpu_read:
        seconds += gpu_read / (gpu_bw * costs.gpu_efficiency)
    if host_read:
        seconds += host_read / (ram_bw * costs.ram_efficiency)
    return 1.0 / seconds
