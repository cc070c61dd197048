"""How a GEMM's shape sets its efficiency: rows per GEMM, rows per expert, depth, and the roofline near its ridge.

A tensor-core GEMM computes its output in tiles of BM rows x BN columns, so a GEMM of M rows pays for the rows
of whole tiles. Kernels pick the tile by M: a 16-row MMA is the smallest (mma.sync m16n8k16; Marlin's and
vLLM's Triton fused_moe small-batch configs, BLOCK_SIZE_M = 16), 64 rows per warpgroup on Hopper (wgmma), and
128-row tiles of two consumer warpgroups for large GEMMs (CUTLASS's and DeepGEMM's SM90 kernels; DeepGEMM pads
every expert's rows to a 128-row block, `get_m_alignment_for_contiguous_layout`). Averaged over M, a large
GEMM wastes half a tile, M_half = 64 rows; a small one wastes in proportion to its smaller tile. kvcalc charges

    rows paid P(M) = max(M, M_min) + M_half x M / (M + M_half)       (M_min = 16, M_half = 64)
    s(M) = M / P(M)

s(1) = 0.06 (a 16-row MMA for one row), s(16) = 0.56, s(64) = 0.67, s(128) = 0.75, s(256) = 0.83,
s(2048) = 0.97, s(8192) = 0.99; s never exceeds 1, rises with M, and tends to 1 - 64/M (the large-GEMM
efficiency `gemm_eff` is measured at M = 8192). Published evidence (DeepGEMM README, first release, H800 FP8):
grouped GEMMs of 4 x 256 / 2 x 512 / 1 x 1024 rows run at 932 / 1040 / 1233 TFLOP/s against 1304 for one
4096-row GEMM of the same N = 4096, K = 7168 (0.71 / 0.80 / 0.95; s gives 0.85 / 0.91 / 0.96 of s(4096)),
and 815 / 916 / 925 against 1025 at N = 7168, K = 2048 (0.80 / 0.89 / 0.90). kvcalc's torch harness on an
H100 (docs/validation-h100.json `ceilings`): the 14336 x 4096 bf16 GEMM takes 44-47 us at M = 1-64 (weight
streaming) and 51 us at M = 256, where 2 x 256 x 14336 x 4096 = 30.1 GFLOP at 989.4 TFLOP/s x 0.884 (the
measured 0.807 at 8192^3 over s(8192) d(8192)) x s(256) 0.833 x d(4096) 0.850 takes 48.4 us.

Each tile also loops over the GEMM's depth K: its fixed prologue and epilogue cost about as much as K0 more
steps of that loop, so a GEMM of depth K runs at

    d(K) = K / (K + K0)                      (K0 = 720)

of its large-K rate. K0 is fitted to DeepGEMM's published dense FP8 GEMMs on H800 at M = 4096 (README,
first release): 590 / 990 / 1025 / 1304 / 1358 TFLOP/s at K = 512 / 1536 / 2048 / 7168 / 16384 are
0.719 x d(K) of the 1,979 TFLOP/s peak within 2.7 % (the N = 2112 shape, 17 column tiles over 132 SMs, is left
out: a tail wave). It matters where K is small: TP-split down projections (K = intermediate / tp) and fine-
grained experts (Qwen3-30B-A3B's down projection K = 768: d = 0.52; DeepSeek-V3's at TP 8, K = 256: d = 0.26).
The large-GEMM efficiency a card measures at 8192^3 is gemm_eff x s(8192) x d(8192) (defaults.py divides
those out).

Mixture of experts: a grouped GEMM runs one GEMM per expert, each over the rows routed to it. Under uniform
routing B routed tokens touch E_t(B) experts (moe.experts_touched) and each touched expert gets

    M_e = B x k / E_t(B)                     (>= 1: an expert is touched by at least one row)

rows, so the expert GEMMs run at s(M_e), far below the dense GEMMs' s(B) (a 2,048-token prefill of
Qwen3-30B-A3B, 128 experts top-8: M_e = 128, s = 0.75, while its attention projections see M = 2,048).
On top of that the grouped kernel itself (rows gathered by index, per-expert scheduling) runs below a dense
GEMM of the same shape: `moe_gemm_eff`.

Near the ridge point a kernel neither streams at full bandwidth nor computes at full rate: with `overlap_loss`
c, a roofline term is

    t = max(t_mem, t_compute) + c x min(t_mem, t_compute)

which is the sharp roofline for c = 0 and far from the ridge (min << max) for any c. kvcalc's default is c = 0:
the medium-batch over-prediction the sharp max was blamed for is the row efficiency s(M) (SpecDecode-Bench n-gram
speedups at batch 64-128: worst 24 % -> 13 % with s(M) alone, the same with c = 0.1), and the harness's GEMM at
M = 256 is modelled within 5 % at c = 0. A calibration file may set c.
Wave quantization (tiles over the SM count) is not charged: cuBLAS and CUTLASS SM90 kernels are persistent
with stream-K or split-K schedules (Osama et al., "Stream-K", PPoPP 2023) and DeepGEMM picks unaligned
block sizes to fill the SMs (its README: M = 256, N = 7168 uses BN = 112 for 128 of 132 SMs), so the tail
wave costs little; what remains of it sits in the fitted efficiencies.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from kvcalc.calc.perf.moe import experts_touched

#: Half a 128-row tile: the rows a large GEMM wastes on average to tile padding (module docstring).
GEMM_ROWS_HALF = 64.0
#: The smallest tensor-core MMA's rows (mma.sync m16n8k16): what a GEMM of fewer rows pays for.
GEMM_ROWS_MIN = 16
#: Cards without matrix units multiply a few rows as matrix-vector products: nothing is padded.
GEMV_ROWS_MIN = 1
GEMM_ROWS_MIN_SOURCE = ("16 rows: the smallest tensor-core MMA (mma.sync m16n8k16), what a GEMM of fewer rows pays "
                        "for; calc/perf/shape.py")
GEMV_ROWS_MIN_SOURCE = ("1 row: Apple GPUs have no tensor cores, and llama.cpp's Metal backend multiplies a batch of "
                        "up to 8 rows as matrix-vector products, one SIMD group per weight row (ggml-metal "
                        "kernel_mul_mv_*), padding nothing; the 16-row MMA minimum would make a 70B model's batch-1 "
                        "decode compute-bound on an M2 Ultra")
GEMM_ROWS_SOURCE = ("s(M) = M / (max(M, 16) + 64 M / (M + 64)): 16-row MMAs for small M, half a 128-row Hopper "
                    "tile (CUTLASS SM90, DeepGEMM) wasted for large M; DeepGEMM README grouped vs dense TFLOP/s "
                    "and the torch harness's decode-shape GEMMs (docs/validation-h100.json); calc/perf/shape.py")
#: K0 of d(K) = K / (K + K0) (module docstring).
GEMM_DEPTH_HALF = 720.0
GEMM_DEPTH_SOURCE = ("d(K) = K / (K + 720): each tile's fixed prologue/epilogue against its K loop, fitted to "
                     "DeepGEMM's dense FP8 TFLOP/s at K = 512-16384 (README, H800) within 2.7 %; "
                     "calc/perf/shape.py")
#: The GEMM a card's `bf16_gemm` measurement runs (hardware files: 8192 x 8192 x 8192).
MEASURED_GEMM_ROWS = 8192
MEASURED_GEMM_DEPTH = 8192
#: Grouped expert GEMMs against dense GEMMs of the same shape, as vLLM's Triton fused_moe runs them (below).
MOE_GEMM_EFF = 0.65
MOE_GEMM_SOURCE = ("0.65: vLLM's Triton fused_moe on an H100 NVL (vLLM PR #54742, Qwen3-30B-A3B bf16, `vllm bench "
                   "throughput` 4096 in / 8 out x 256: 9.11-9.21 requests/s, fused_moe_kernel 53-59 % of device "
                   "time); kvcalc reproduces the throughput at 0.55 and the kernel share (56 %) at 0.75 (at 1: "
                   "12.7 requests/s, 49 %); DeepGEMM's grouped GEMMs run at ~1 (README: 1297 vs 1304 TFLOP/s "
                   "dense); kvcalc verify fits it on the card")
#: overlap_loss of R(a, b) (module docstring): the evidence does not ask for one (OVERLAP_SOURCE).
OVERLAP_LOSS = 0.0
OVERLAP_SOURCE = ("0, the sharp roofline: once s(M) and d(K) are charged, the torch harness's 14336 x 4096 GEMM "
                  "at M = 1-256 (docs/validation-h100.json ceilings: 51 us measured at M = 256, 48.4 us modelled) "
                  "and the SpecDecode-Bench n-gram rows at batch 64-128 (worst 24 % -> 13 %) fit as well at 0 as "
                  "at 0.1; a calibration file may set it")


def row_efficiency(rows: float, half: float, minimum: float = GEMM_ROWS_MIN) -> float:
    """s(M) = M / (max(M, M_min) + M_half x M / (M + M_half)): a GEMM of `rows` rows against a large one
    (module docstring; M_min = `minimum`, 16 for tensor-core MMAs and 1 where matrix-vector kernels run; 1 when
    M_half = 0, the plain roofline; 0 for no rows)."""
    if rows <= 0:
        return 0.0
    if half <= 0:
        return 1.0
    return rows / (max(rows, minimum) + half * rows / (rows + half))


def depth_efficiency(depth: float, half: float) -> float:
    """d(K) = K / (K + K0) (1 when K0 = 0)."""
    if half <= 0:
        return 1.0
    return depth / (depth + half) if depth > 0 else 0.0


def depth_scale(depths: tuple[tuple[str, int, float], ...], half: float) -> dict[str, float]:
    """Per dtype: (sum of FLOPs / d(K)) / (sum of FLOPs) over GEMMs given as (dtype, K, FLOPs): what the
    depths add to the dtype's GEMM time (1 when K0 = 0)."""
    return _depth_scale(depths, float(half))


@lru_cache(maxsize=512)
def _depth_scale(depths: tuple[tuple[str, int, float], ...], half: float) -> dict[str, float]:
    flops: dict[str, float] = {}
    work: dict[str, float] = {}
    for dtype, depth, f in depths:
        flops[dtype] = flops.get(dtype, 0.0) + f
        work[dtype] = work.get(dtype, 0.0) + f / depth_efficiency(depth, half)
    return {d: work[d] / flops[d] for d in flops if flops[d] > 0}


def measured_gemm_shape(rows_half: float, depth_half: float) -> float:
    """s(8192) x d(8192): the share of gemm_eff a card's 8192^3 GEMM measurement sees (gemm_eff is the
    large-shape asymptote: measured / this)."""
    return row_efficiency(MEASURED_GEMM_ROWS, rows_half) * depth_efficiency(MEASURED_GEMM_DEPTH, depth_half)


def rows_per_expert(tokens: float, num_experts: int, top_k: int) -> float:
    """M_e = B x k / E_t(B): rows each touched expert's GEMM gets from B routed tokens (module docstring)."""
    touched = experts_touched(num_experts, top_k, tokens)
    if touched <= 0:
        return 0.0
    return max(1.0, tokens * min(top_k, num_experts) / touched)


def maximum(a: Any, b: Any) -> Any:
    """max(a, b) elementwise: Python's max for two floats (a numpy call costs a microsecond), else numpy's."""
    if isinstance(a, float) and isinstance(b, float):
        return max(a, b)
    import numpy as np

    return np.maximum(a, b)


def roofline(t_mem: Any, t_compute: Any, overlap_loss: float = 0.0) -> Any:
    """max(t_mem, t_compute) + c x min(t_mem, t_compute) (scalars or numpy arrays)."""
    high = maximum(t_mem, t_compute)
    if not overlap_loss:
        return high
    low = -maximum(-t_mem, -t_compute)  # min(t_mem, t_compute)
    return high + overlap_loss * low
