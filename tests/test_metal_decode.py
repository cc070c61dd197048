"""llama.cpp decode on Apple GPUs: matrix-vector products (no 16-row MMA), Metal's per-layer cost and the
fitted streaming efficiency (calc/perf/defaults.py, docs/dev/metal_fit.py)."""

from __future__ import annotations

import pytest

import kvcalc
from kvcalc.calc.perf import shape
from kvcalc.calc.perf.defaults import default_coefficients
from kvcalc.sources.hardware import find_gpu


def test_matrix_vector_rows_pay_for_no_padding() -> None:
    # s(M) = M / (max(M, M_min) + 64 M / (M + 64)): one row is 1 / (1 + 64/65) as a GEMV, 1 / (16 + 64/65) as an MMA
    assert shape.row_efficiency(1, 64.0, 1) == pytest.approx(1 / (1 + 64 / 65))
    assert shape.row_efficiency(1, 64.0) == pytest.approx(1 / (16 + 64 / 65))
    assert shape.row_efficiency(8, 64.0, 1) == pytest.approx(8 / (8 + 64 * 8 / 72))


@pytest.mark.parametrize(("gpu", "engine", "layer_s", "rows_min"), [
    ("m2-ultra", "llamacpp", 199e-6, 1), ("m4-pro", "llamacpp", 199e-6, 1),  # Metal backend
    ("m2-ultra", "vllm", 35e-6, 1),  # the Metal cost is llama.cpp's, not every engine's
    ("rtx-4090", "llamacpp", 20e-6, 16), ("h100", "vllm", 35e-6, 16),  # CUDA: tensor-core MMAs
])
def test_apple_terms(gpu: str, engine: str, layer_s: float, rows_min: int) -> None:
    c = default_coefficients(find_gpu(gpu), engine)
    assert c.layer_overhead_s == pytest.approx(layer_s)
    assert c.gemm_rows_min == rows_min
    if find_gpu(gpu).vendor == "Apple":
        assert c.weight_bw_eff == 0.907  # one figure for one- and two-die chips


def test_m2_ultra_decode_by_hand() -> None:
    r = kvcalc.perf("llama-2-7b", gpu="m2-ultra", engine="llamacpp", quant="F16", batch=1, input_tokens=1,
                    output_tokens=2)
    # Weights read per token: every tensor but the token embedding. Per layer q, k, v, o 4 x 4096^2 and the MLP
    # 3 x 4096 x 11008, in F16; two norms of 4096 in F32; the output 32000 x 4096 in F16 and the final norm.
    matrices = 32 * (4 * 4096**2 + 3 * 4096 * 11008) + 32000 * 4096
    norms = 32 * 2 * 4096 + 4096
    weights = 2 * matrices + 4 * norms
    assert r.decode.weight_bytes == weights == 13_215_219_712
    assert r.decode.bound == "memory"  # with a 16-row MMA minimum it would be compute-bound (1.25 TFLOP/s)
    # t = step 0.3 ms + request 20 us + 32 layers x 199 us + weights / (800 GB/s x 0.907) + KV / (800 GB/s x 0.75)
    step = 0.3e-3 + 20e-6 + 32 * 199e-6 + weights / (800e9 * 0.907) + r.decode.kv_bytes / (800e9 * 0.75)
    assert r.tpot_s == pytest.approx(step, rel=1e-4)  # the run's step sees one token less of KV (2.6 us in all)
    # XiongjieDai/GPU-Benchmarks-on-LLM-Inference (Dec 2023): 40.68 tokens/s on an M2 Ultra, a row the fit never saw
    assert 1 / r.tpot_s == pytest.approx(40.68, rel=0.03)
