"""Default PerfCoefficients for a card and an engine, each value with its source.

Card terms (how close kernels come to the datasheet):
- weight_bw_eff: streaming weights through GEMV/skinny GEMMs. The hardware file's measured `hbm_copy`
  where there is one (H100: 0.902), else the vendor's figure (`VENDOR_BW_EFF`: AMD Instinct 0.81 from
  BabelStream, Apple 0.907 fitted to llama.cpp decode with its Metal per-layer cost), else GENERIC_BW_EFF.
- kv_bw_eff: paged decode attention gathers scattered blocks, slower than a stream: 0.75, an assumption
  until `kvcalc verify` measures it on the card.
- gemm_eff[bf16]: the hardware file's measured `bf16_gemm` (H100: 0.716), else GENERIC_GEMM_EFF, both
  measured on large GEMMs (8192^3) and divided by that shape's row and depth efficiencies (shape.py:
  s(8192) d(8192) = 0.912) to give the large-shape asymptote; fp8/int8/fp4 are the 16-bit figure x
  LOW_PRECISION_GEMM_SCALE.
- gemm_rows_half, gemm_rows_min, gemm_depth_half, moe_gemm_eff, overlap_loss: how a GEMM's shape sets its
  efficiency (calc/perf/shape.py, each with its source); gemm_rows_min is 16 (a tensor-core MMA) except on
  Apple GPUs, which multiply a few rows as matrix-vector products (1).
- attention_eff: FlashAttention forward as a fraction of the 16-bit peak: FA3 bf16 hdim 128 causal ~616 of
  989 TFLOP/s at 16k tokens, lower at short sequences, FA2 35 % on H100 (Shah et al. 2024, arXiv:2407.08608);
  engines' paged, chunked kernels run below these benchmarks: 0.40.
- comm_latency_s + comm_hop_latency_s: a small ring all-reduce over n GPUs costs comm_latency_s +
  2 (n - 1) x comm_hop_latency_s (comm.py). Over NVLink the two published points, 6 us on 2 H100s (NVIDIA/nccl
  issue #1259, nccl-tests inside CUDA graphs) and 12.5 us on 8 NVLink4 GPUs (all_reduce_perf 4-16 B, 8 x H20,
  deepseek-ai/DeepEP issue #303), give 4.9 us + 2 (n - 1) x 0.54 us; over PCIe 20 us + 2 (n - 1) x 2.5 us,
  assumed.

Shipped calibration (`GpuSpec.calibration`, from `hardware/calibration/<key>.yaml`, fitted by `kvcalc verify`
to its torch harness): the defaults take the terms that measure the card rather than the harness's kernels,
CALIBRATED_CARD_TERMS:
- kv_bw_eff: the rate at which decode reads KV laid out as the engine lays it out (a bytes term: H100 0.935,
  against the 0.75 assumed above).
The file's other terms stay at the values above, each being a property of torch's kernels (docs/validation.md):
- weight_bw_eff (H100 0.769) was fitted jointly with the harness's per-kernel cost of unfused torch modules and
  averages dense models' matrices (0.84-0.89 fitted alone) with MoE experts' (0.70-0.78); engines fuse QKV and
  gate/up, and the engine overheads below were fitted against TPOT at the copy rate, so 0.769 would count the
  per-layer cost twice (dev-set H100 TPOT median error 3.2 % -> 8.1 %, docs/accuracy-perf.md);
- gemm_eff (H100 bf16 0.687, the large-shape asymptote with the GEMM shape terms of calc/perf/shape.py) and
  moe_gemm_eff (0.964, torch's grouped GEMM) are torch's kernels (the clean 8192^3 ceiling is the hardware
  file's 0.716, asymptote 0.785); engines' MoE kernels run at MOE_GEMM_EFF (shape.py);
- attention_eff (H100 0.425) is torch SDPA's flash backend (FlashAttention-2); engines run FA3 or FlashInfer.
`--calibration FILE` (a user's, or the shipped file itself) applies every coefficient the file holds.

Engine terms (what each engine spends around the kernels), `ENGINE_OVERHEADS`: per step (scheduler,
sampler, input preparation, the Python the CUDA graphs do not remove), per layer (kernel launches and gaps
left inside a CUDA graph; eager mode pays a launch per kernel), per request in a step, and the front end's
fixed latency per request. They are engine-level constants, each with the measurement it comes from
(docs/accuracy-perf.md lists the rows); a calibration file replaces every one of them. llama.cpp on an Apple GPU
runs its Metal backend, which pays METAL_LAYER_S per layer instead of the CUDA backend's 20 us
(`engine_overheads`).
"""

from __future__ import annotations

from kvcalc.calc.perf import shape
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.spec.base import record, replace
from kvcalc.spec.gpu import GpuSpec

GENERIC_BW_EFF = 0.85
GENERIC_BW_SOURCE = ("0.85 of datasheet bandwidth for cards without a measurement: STREAM-like copies reach "
                     "0.85-0.92 on HBM and GDDR cards (H100 measured 0.902, hardware/h100-sxm.yaml; llama.cpp "
                     "tg128 F16 on RTX 4090 streams 0.82, llama.cpp PR #4766)")
KV_BW_EFF = 0.75
KV_BW_SOURCE = ("0.75, assumed: paged decode attention gathers KV in scattered blocks of 16 tokens, below a "
                "contiguous copy (0.902 on H100, hardware/h100-sxm.yaml); kvcalc verify measures it")
GENERIC_GEMM_EFF = 0.70
GENERIC_GEMM_SOURCE = ("0.70 of the dense 16-bit peak for cards without a measurement (H100 measured 0.716 on "
                       "8192^3 bf16, hardware/h100-sxm.yaml; cuBLAS large GEMMs 0.7-0.8 of peak)")
LOW_PRECISION_GEMM_SCALE = 0.8
LOW_PRECISION_SOURCE = ("16-bit efficiency x 0.8 (assumed): FP8/INT8/FP4 GEMMs reach a lower share of their "
                        "2x/4x peaks (scaling, smaller tiles; DeepGEMM's best FP8 shapes reach 1,550 of 1,979 "
                        "TFLOP/s on H800, inference shapes less)")
ATTENTION_EFF = 0.40
ATTENTION_SOURCE = ("0.40 of the 16-bit peak: FlashAttention-2 reaches 35 % on H100 and FA3 0.62 at 16k tokens, "
                    "less at short ones (Shah et al. 2024, arXiv:2407.08608, abstract and Fig. 5); serving engines "
                    "run paged, chunked variable-length kernels below those benchmarks")
#: Ring all-reduce latency a + 2 (n - 1) h over NVLink, solved from a + 2h = 6 us (2 GPUs) and a + 14h = 12.5 us
#: (8 GPUs): h = 6.5 / 12 us, a = 6 - 2h us (module docstring).
NVLINK_HOP_LATENCY_S = 6.5e-6 / 12
NVLINK_LATENCY_S = 6e-6 - 2 * NVLINK_HOP_LATENCY_S
PCIE_LATENCY_S = 20e-6
PCIE_HOP_LATENCY_S = 2.5e-6
COMM_LATENCY_SOURCE = ("ring all-reduce: latency + 2 (n - 1) hops; NVLink 4.9 us + 0.54 us per hop from 6 us on 2 "
                       "H100s (NVIDIA/nccl#1259, CUDA graphs) and 12.5 us on 8 NVLink4 GPUs (nccl-tests "
                       "all_reduce_perf 4-16 B, deepseek-ai/DeepEP#303); PCIe 20 us + 2.5 us per hop, assumed")

#: Streaming efficiencies by vendor for cards without a measurement of their own: (value, source).
#: Apple: fitted with METAL_LAYER_S to llama.cpp decode on an M2 Ultra and an M3 Max (docs/dev/metal_fit.py);
#: apart, the two-die M2 Ultra streams at 0.888 and the one-die M3 Max at 0.922, so one figure serves both.
VENDOR_BW_EFF: dict[str, tuple[float, str]] = {
    "AMD": (0.81, "0.81: BabelStream on MI300X reaches 81 % of its 5.3 TB/s (Ambati et al., 'AMD MI300X GPU "
                  "Performance Analysis', arXiv, 2025-10-31); applied to AMD Instinct cards without a measurement"),
    "Apple": (0.907, "0.907, fitted with llama.cpp's Metal per-layer cost (199 us) to llama-bench tg512 of Llama-3 "
                     "8B and 70B, Q4_K_M and F16, on an M2 Ultra and an M3 Max (XiongjieDai/GPU-Benchmarks-on-LLM-"
                     "Inference, May 2024; docs/dev/metal_fit.py): 7 rows within 8 %, 13 held-out rows median 5.5 %"),
}
#: llama.cpp's Metal backend: a fixed cost per layer of decode (kernel encoding and dispatch per op), fitted with
#: VENDOR_BW_EFF["Apple"] (docs/dev/metal_fit.py): t = 0.3 ms + layers x 199 us + bytes / (B x 0.907).
METAL_LAYER_S = 199e-6
COMM_BW_EFF = 0.8
COMM_BW_SOURCE = ("0.8, assumed: nccl-tests all-reduce bus bandwidth stays below the NVLink per-direction "
                  "rate; kvcalc verify measures it")


@record
class EngineOverheads:
    """Fixed costs of one engine (seconds) and where each figure comes from."""

    step_s: float
    layer_s: float
    layer_eager_s: float
    request_s: float
    frontend_s: float
    source: str


METAL_SOURCE = ("llama.cpp Metal: 199 us per layer (kernel encoding and dispatch), fitted with the Apple streaming "
                "efficiency 0.907 to llama-bench tg512 on an M2 Ultra and an M3 Max (docs/dev/metal_fit.py); step "
                "and request costs as llama.cpp CUDA's (row r064)")

#: Per-engine fixed costs. See the module docstring and docs/accuracy-perf.md.
ENGINE_OVERHEADS: dict[str, EngineOverheads] = {
    "vllm": EngineOverheads(
        step_s=0.9e-3, layer_s=35e-6, layer_eager_s=90e-6, request_s=10e-6, frontend_s=30e-3,
        source="vLLM V1 (0.10+): per-layer cost from the TPOT of a 36-layer and an 80-layer model at small "
               "batch on H100 (gpustack Qwen3-8B BS=1 7.28 ms; InferenceX Llama-3.1-70B FP8 TP2 c=4 "
               "17.41 ms), step and front-end cost from the first (TTFT 59 ms for ~233 tokens): "
               "docs/accuracy-perf.md rows r042, r043, r073",
    ),
    "sglang": EngineOverheads(
        step_s=0.7e-3, layer_s=35e-6, layer_eager_s=90e-6, request_s=10e-6, frontend_s=15e-3,
        source="SGLang 0.5: step and front-end cost from gpustack Qwen3-8B c=4 on H100 (TPOT 7.19 ms, "
               "TTFT 27.7 ms; rows r046, r047); per-layer cost as vLLM's (the same kernels)",
    ),
    "trtllm": EngineOverheads(
        step_s=1.0e-3, layer_s=35e-6, layer_eager_s=35e-6, request_s=10e-6, frontend_s=25e-3,
        source="TensorRT-LLM 1.x PyTorch backend: step and front-end cost from gpustack Qwen3-8B c=4 on "
               "H100 (TPOT 7.67 ms, TTFT 51.6 ms; rows r048, r049); per-layer cost as vLLM's",
    ),
    "llamacpp": EngineOverheads(
        step_s=0.3e-3, layer_s=20e-6, layer_eager_s=20e-6, request_s=20e-6, frontend_s=5e-3,
        source="llama.cpp CUDA: the non-bandwidth part of llama-bench tg128 for a 7B F16 on an RTX 4090 "
               "(61.03 tokens/s, llama.cpp PR #4766; row r064)",
    ),
}


#: The shipped calibration's terms the defaults use (module docstring: what measures the card, not torch's kernels).
CALIBRATED_CARD_TERMS = ("kv_bw_eff",)


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
    elif gpu.vendor in VENDOR_BW_EFF:
        bw, sources["weight_bw_eff"] = VENDOR_BW_EFF[gpu.vendor]
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
    sources["comm_hop_latency_s"] = COMM_LATENCY_SOURCE
    return {"bw": bw, "gemm": gemm, "latency": NVLINK_LATENCY_S if nvlink else PCIE_LATENCY_S,
            "hop": NVLINK_HOP_LATENCY_S if nvlink else PCIE_HOP_LATENCY_S}, sources


def engine_overheads(engine: str, gpu: GpuSpec) -> EngineOverheads:
    """ENGINE_OVERHEADS of `engine` (vLLM's for an unknown one); llama.cpp on an Apple GPU runs its Metal backend,
    whose per-layer cost is METAL_LAYER_S (10x its CUDA graphs' 20 us)."""
    over = ENGINE_OVERHEADS.get(engine, ENGINE_OVERHEADS["vllm"])
    if engine == "llamacpp" and gpu.vendor == "Apple":
        return replace(over, layer_s=METAL_LAYER_S, layer_eager_s=METAL_LAYER_S, source=METAL_SOURCE)
    return over


def _rows_min(gpu: GpuSpec) -> tuple[float, str]:
    """The fewest rows a GEMM pays for: a tensor-core MMA's 16, or 1 on Apple GPUs (matrix-vector kernels)."""
    if gpu.vendor == "Apple":
        return shape.GEMV_ROWS_MIN, shape.GEMV_ROWS_MIN_SOURCE
    return shape.GEMM_ROWS_MIN, shape.GEMM_ROWS_MIN_SOURCE


def default_coefficients(gpu: GpuSpec, engine: str = "vllm", *, cuda_graphs: bool = True,
                         online: bool = True) -> PerfCoefficients:
    """The default coefficients for `engine` on `gpu`, each with its source in `sources`.

    `cuda_graphs=False` (vLLM `--enforce-eager`) charges a kernel launch per kernel (layer_eager_s per layer);
    `online=False` (offline `LLM.generate`, `vllm bench latency`) drops the front end's latency."""
    card, sources = _card_terms(gpu)
    over = engine_overheads(engine, gpu)
    gemm = card["gemm"] / shape.measured_gemm_shape(shape.GEMM_ROWS_HALF, shape.GEMM_DEPTH_HALF)
    low = gemm * LOW_PRECISION_GEMM_SCALE
    for name in ("step_overhead_s", "layer_overhead_s", "request_overhead_s", "frontend_latency_s"):
        sources[name] = over.source
    rows_min, sources["gemm_rows_min"] = _rows_min(gpu)
    sources.update(gemm_rows_half=shape.GEMM_ROWS_SOURCE, gemm_depth_half=shape.GEMM_DEPTH_SOURCE,
                   moe_gemm_eff=shape.MOE_GEMM_SOURCE, overlap_loss=shape.OVERLAP_SOURCE)
    kv_bw, gemm_eff = _calibrated(gpu, KV_BW_EFF, {"bf16": gemm, "fp16": gemm, "fp8": low, "int8": low, "fp4": low},
                                  sources)
    return PerfCoefficients(
        weight_bw_eff=card["bw"],
        kv_bw_eff=kv_bw,
        gemm_eff=gemm_eff,
        attention_eff=ATTENTION_EFF,
        layer_overhead_s=over.layer_s if cuda_graphs else over.layer_eager_s,
        step_overhead_s=over.step_s,
        request_overhead_s=over.request_s,
        comm_latency_s=card["latency"],
        comm_hop_latency_s=card["hop"],
        comm_bw_eff=COMM_BW_EFF,
        frontend_latency_s=over.frontend_s if online else 0.0,
        source=f"kvcalc defaults for {engine} on {gpu.name}" + (
            f" ({', '.join(CALIBRATED_CARD_TERMS)} from {gpu.calibration.source})" if gpu.calibration else ""),
        sources=sources,
        gemm_rows_half=shape.GEMM_ROWS_HALF,
        gemm_rows_min=rows_min,
        gemm_depth_half=shape.GEMM_DEPTH_HALF,
        moe_gemm_eff=shape.MOE_GEMM_EFF,
        overlap_loss=shape.OVERLAP_LOSS,
    )


def _calibrated(gpu: GpuSpec, kv_bw: float, gemm: dict[str, float],
                sources: dict[str, str]) -> tuple[float, dict[str, float]]:
    """kv_bw_eff and gemm_eff with the shipped calibration's CALIBRATED_CARD_TERMS in place (sources updated)."""
    cal = gpu.calibration
    if cal is None:
        return kv_bw, gemm
    if "kv_bw_eff" in CALIBRATED_CARD_TERMS and cal.kv_bw_eff is not None:
        kv_bw = cal.kv_bw_eff
        sources["kv_bw_eff"] = f"measured KV read of the engine's block layout: {cal.source}"
    if "gemm_eff" in CALIBRATED_CARD_TERMS and cal.gemm_eff:
        gemm = {**gemm, **{str(k): v for k, v in cal.gemm_eff.items()}}
        sources["gemm_eff"] = f"{'/'.join(sorted(cal.gemm_eff))} from {cal.source}; other dtypes: {sources['gemm_eff']}"
    return kv_bw, gemm
