"""Default PerfCoefficients for a card and an engine, each value with its source.

Card terms (how close kernels come to the datasheet):
- weight_bw_eff: streaming weights through GEMV/skinny GEMMs. The hardware file's measured `hbm_copy`
  where there is one (H100: 0.902), else GENERIC_BW_EFF.
- kv_bw_eff: paged decode attention reads scattered blocks, slower than a stream (FlashInfer, Ye et al.
  2025, arXiv:2501.01005, Fig. 7: decode attention at 70-85 % of H100 bandwidth at batch >= 16).
- gemm_eff[bf16]: the hardware file's measured `bf16_gemm` (H100: 0.716), else GENERIC_GEMM_EFF; fp8/int8/
  fp4 are the 16-bit figure x LOW_PRECISION_GEMM_SCALE (cuBLASLt FP8 reaches ~1,300-1,400 of 1,979 dense
  TFLOP/s on H100, ~0.66-0.7 of peak vs ~0.75 for bf16: NVIDIA Transformer Engine / cuBLAS 12 notes).
- attention_eff: FlashAttention forward as a fraction of the 16-bit peak: FA3 bf16 hdim 128 causal ~616 of
  989 TFLOP/s at 16k tokens, lower at short sequences (Shah et al. 2024, arXiv:2407.08608, Fig. 5);
  FA2 50-73 % of peak on A100 (Dao 2023, arXiv:2307.08691).
- comm_latency_s: one small all-reduce inside a CUDA graph: ~6 us for 2 H100s over NVLink (NVIDIA/nccl
  issue #1259, nccl-tests with graphs); more ranks and PCIe cost more.

Engine terms (what each engine spends around the kernels), `ENGINE_OVERHEADS`: per step (scheduler,
sampler, input preparation, the Python the CUDA graphs do not remove), per layer (kernel launches and gaps
left inside a CUDA graph; eager mode pays a launch per kernel), per request in a step, and the front end's
fixed latency per request. They are engine-level constants, each with the measurement it comes from
(docs/accuracy-perf.md lists the rows); a calibration file replaces every one of them.
"""

from __future__ import annotations

from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.spec.base import record
from kvcalc.spec.gpu import GpuSpec

GENERIC_BW_EFF = 0.85
GENERIC_BW_SOURCE = ("0.85 of datasheet bandwidth for cards without a measurement: STREAM-like copies reach "
                     "0.85-0.92 on HBM and GDDR cards (H100 measured 0.902, hardware/h100-sxm.yaml; llama.cpp "
                     "tg128 F16 on RTX 4090 streams 0.82, llama.cpp PR #4766)")
KV_BW_EFF = 0.75
KV_BW_SOURCE = "paged decode attention at 70-85 % of bandwidth (FlashInfer, arXiv:2501.01005, Fig. 7)"
GENERIC_GEMM_EFF = 0.70
GENERIC_GEMM_SOURCE = ("0.70 of the dense 16-bit peak for cards without a measurement (H100 measured 0.716 on "
                       "8192^3 bf16, hardware/h100-sxm.yaml; cuBLAS large GEMMs 0.7-0.8 of peak)")
LOW_PRECISION_GEMM_SCALE = 0.8
LOW_PRECISION_SOURCE = ("16-bit efficiency x 0.8: FP8/INT8/FP4 GEMMs reach a lower share of their 2x/4x peaks "
                        "(scales, smaller tiles: cuBLASLt FP8 1,000-1,300 of 1,979 TFLOP/s on H100 at inference "
                        "shapes; DeepGEMM up to 1,550 on H800 for the largest)")
ATTENTION_EFF = 0.40
ATTENTION_SOURCE = ("FlashAttention forward share of the 16-bit peak: FA3 0.62 at 16k, less below 2k "
                    "(arXiv:2407.08608 Fig. 5); FA2 0.5-0.73 on A100 (arXiv:2307.08691)")
NVLINK_LATENCY_S = 8e-6
PCIE_LATENCY_S = 25e-6
COMM_LATENCY_SOURCE = ("small all-reduce in a CUDA graph: ~6 us on 2 H100 NVLink (NVIDIA/nccl#1259), 8 us "
                       "assumed for NVLink; 25 us assumed over PCIe (no P2P fabric)")
COMM_BW_EFF = 0.8
COMM_BW_SOURCE = "NCCL ring all-reduce bus bandwidth ~0.8 of the NVLink per-direction rate (nccl-tests busbw)"


@record
class EngineOverheads:
    """Fixed costs of one engine (seconds) and where each figure comes from."""

    step_s: float
    layer_s: float
    layer_eager_s: float
    request_s: float
    frontend_s: float
    source: str


#: Per-engine fixed costs. See the module docstring and docs/accuracy-perf.md.
ENGINE_OVERHEADS: dict[str, EngineOverheads] = {
    "vllm": EngineOverheads(
        step_s=0.9e-3, layer_s=35e-6, layer_eager_s=90e-6, request_s=10e-6, frontend_s=30e-3,
        source="vLLM V1 (0.10+): step and front-end costs from single-stream serving runs on H100 "
               "(gpustack performance-lab Qwen3-8B BS=1: TPOT 7.28 ms, TTFT 59 ms for ~233 tokens)",
    ),
    "sglang": EngineOverheads(
        step_s=0.7e-3, layer_s=35e-6, layer_eager_s=90e-6, request_s=10e-6, frontend_s=15e-3,
        source="SGLang 0.5: gpustack performance-lab Qwen3-8B c=4 on H100 (TPOT 7.19 ms, TTFT 27.7 ms)",
    ),
    "trtllm": EngineOverheads(
        step_s=1.0e-3, layer_s=35e-6, layer_eager_s=35e-6, request_s=10e-6, frontend_s=25e-3,
        source="TensorRT-LLM 1.x PyTorch backend: gpustack performance-lab Qwen3-8B c=4 on H100 "
               "(TPOT 7.67 ms, TTFT 51.6 ms)",
    ),
    "llamacpp": EngineOverheads(
        step_s=0.3e-3, layer_s=20e-6, layer_eager_s=20e-6, request_s=20e-6, frontend_s=5e-3,
        source="llama.cpp CUDA: per-token host overhead of llama-bench tg128 (graphs since b3xxx, "
               "llama.cpp PR #6766)",
    ),
}


def _measured(gpu: GpuSpec, quantity: str) -> float | None:
    for m in gpu.measured:
        if m.quantity == quantity:
            return m.value
    return None


def _card_terms(gpu: GpuSpec) -> tuple[dict[str, float], dict[str, str]]:
    """The card's efficiencies (module docstring) and a source for each."""
    sources: dict[str, str] = {}
    bw = _measured(gpu, "hbm_copy")
    if bw is not None:
        sources["weight_bw_eff"] = f"measured hbm_copy on {gpu.name} (hardware/{gpu.key}.yaml)"
    else:
        bw, sources["weight_bw_eff"] = GENERIC_BW_EFF, GENERIC_BW_SOURCE
    gemm = _measured(gpu, "bf16_gemm")
    if gemm is not None:
        sources["gemm_eff"] = f"measured bf16_gemm on {gpu.name} (hardware/{gpu.key}.yaml); {LOW_PRECISION_SOURCE}"
    else:
        gemm, sources["gemm_eff"] = GENERIC_GEMM_EFF, f"{GENERIC_GEMM_SOURCE}; {LOW_PRECISION_SOURCE}"
    sources["kv_bw_eff"] = KV_BW_SOURCE
    sources["attention_eff"] = ATTENTION_SOURCE
    sources["comm_latency_s"] = COMM_LATENCY_SOURCE
    sources["comm_bw_eff"] = COMM_BW_SOURCE
    nvlink = gpu.interconnect is not None and (
        gpu.interconnect.bytes_per_s_per_direction > gpu.interconnect.pcie_bytes_per_s_per_direction)
    return {"bw": bw, "gemm": gemm, "latency": NVLINK_LATENCY_S if nvlink else PCIE_LATENCY_S}, sources


def default_coefficients(gpu: GpuSpec, engine: str = "vllm", *, cuda_graphs: bool = True,
                         online: bool = True) -> PerfCoefficients:
    """The default coefficients for `engine` on `gpu`, each with its source in `sources`.

    `cuda_graphs=False` (vLLM `--enforce-eager`) charges a kernel launch per kernel (layer_eager_s per layer);
    `online=False` (offline `LLM.generate`, `vllm bench latency`) drops the front end's latency."""
    card, sources = _card_terms(gpu)
    over = ENGINE_OVERHEADS.get(engine, ENGINE_OVERHEADS["vllm"])
    gemm = card["gemm"]
    low = gemm * LOW_PRECISION_GEMM_SCALE
    for name in ("step_overhead_s", "layer_overhead_s", "request_overhead_s", "frontend_latency_s"):
        sources[name] = over.source
    return PerfCoefficients(
        weight_bw_eff=card["bw"],
        kv_bw_eff=KV_BW_EFF,
        gemm_eff={"bf16": gemm, "fp16": gemm, "fp8": low, "int8": low, "fp4": low},
        attention_eff=ATTENTION_EFF,
        layer_overhead_s=over.layer_s if cuda_graphs else over.layer_eager_s,
        step_overhead_s=over.step_s,
        request_overhead_s=over.request_s,
        comm_latency_s=card["latency"],
        comm_bw_eff=COMM_BW_EFF,
        frontend_latency_s=over.frontend_s if online else 0.0,
        source=f"kvcalc defaults for {engine} on {gpu.name}",
        sources=sources,
    )
