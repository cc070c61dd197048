"""The card's two ceilings, measured (METHOD.md "two numbers first"): device-to-device copy bandwidth on
buffers far larger than L2 (bytes read + bytes written over the time), dense GEMM FLOP/s in bf16 and, where the
card has it, FP8 (torch._scaled_mm) at a large square shape and at the model's decode shapes (M = batch rows
against one of its weight matrices, several copies of the weight rotated so each product reads it from
memory, not L2). Their ratio is the measured ridge point.
"""

from __future__ import annotations

from typing import Any

import torch

from kvcalc.bench.memory import release
from kvcalc.bench.timing import time_graph_or_eager, time_runs

LARGE = 8192


def copy_bandwidth(device: str, size_bytes: int, runs: int = 20) -> dict[str, Any]:
    """y.copy_(x) of `size_bytes`: 2 x size bytes moved per copy (read x, write y)."""
    n = size_bytes // 2
    x = torch.randn(n, dtype=torch.bfloat16, device=device)
    y = torch.empty_like(x)
    timing = time_runs(lambda: y.copy_(x), device=device, warmup=3, runs=runs)
    moved = 2 * n * 2
    return {"bytes_moved": moved, **timing.as_dict(), "bytes_per_s": moved / timing.median_s}


def _fp8_supported(device: str) -> bool:
    if device != "cuda" or not hasattr(torch, "_scaled_mm"):
        return False
    major, minor = torch.cuda.get_device_capability()
    return (major, minor) >= (8, 9)


def _operands(m: int, n: int, k: int, dtype: str, copies: int, device: str) -> tuple[list[Any], list[Any]]:
    """`copies` (A, B) pairs; FP8 as e4m3 with B column-major, as _scaled_mm wants."""
    pairs_a, pairs_b = [], []
    for _ in range(copies):
        a = torch.randn(m, k, dtype=torch.bfloat16, device=device)
        b = torch.randn(n, k, dtype=torch.bfloat16, device=device)
        if dtype == "fp8":
            a, b = a.to(torch.float8_e4m3fn), b.to(torch.float8_e4m3fn)
        pairs_a.append(a)
        pairs_b.append(b.t())
    return pairs_a, pairs_b


def gemm_rate(m: int, n: int, k: int, dtype: str, device: str, *, l2_bytes: int = 0,
              runs: int = 20) -> dict[str, Any]:
    """FLOP/s of an (m x k) @ (k x n) product in bf16 or fp8 (2mnk FLOPs). The products run over enough operand
    copies that together they exceed 3 x L2, one after another in a CUDA graph (as an engine's decode step runs
    them: a product of a few microseconds launched eagerly would time the CPU's launch, not the GPU); the
    replay over `runs`, divided by the copies, is one product's time (median_s, min_s, max_s are per product)."""
    element = 1 if dtype == "fp8" else 2
    operand_bytes = (m * k + n * k) * element
    copies = max(1, min(16, -(-3 * l2_bytes // max(1, operand_bytes))))
    a_list, b_list = _operands(m, n, k, dtype, copies, device)
    one = torch.ones((), dtype=torch.float32, device=device)

    def products() -> None:
        for a, b in zip(a_list, b_list, strict=True):
            if dtype == "fp8":
                torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
            else:
                torch.matmul(a, b)

    timing, graph = time_graph_or_eager(products, refresh=None, device=device, warmup=3, runs=runs)
    per_product = {key: value / copies for key, value in timing.as_dict().items() if key.endswith("_s")}
    return {"dtype": dtype, "m": m, "n": n, "k": k, "copies": copies, "runs": timing.runs, "graph": graph,
            **per_product, "flops_per_s": 2 * m * n * k / per_product["median_s"],
            "bytes": operand_bytes + m * n * 2}


def kernel_overhead(device: str, kernels: int = 256, runs: int = 20) -> dict[str, Any]:
    """Seconds per kernel of a CUDA graph of `kernels` tiny dependent kernels (an add on 128 values): the fixed
    cost every kernel pays inside a graph, whatever its work (eager launches elsewhere)."""
    from kvcalc.bench.timing import time_step

    x = torch.randn(128, device=device)

    def chain() -> None:
        for _ in range(kernels):
            x.add_(1.0)

    timing = time_step(chain, refresh=None, device=device, warmup=3, runs=runs)
    return {"kernels": kernels, **timing.as_dict(), "per_kernel_s": timing.median_s / kernels}


def measure_ceilings(device: str, *, decode_shape: tuple[int, int], batches: list[int], l2_bytes: int,
                     quick: bool) -> dict[str, Any]:
    """Copy bandwidth, large-shape GEMM rates (bf16, fp8 where supported) and decode-shape GEMM rates."""
    size = 2 * 2**30 if device == "cuda" else 64 * 2**20
    large = LARGE if device == "cuda" else 256
    runs = 10 if quick else 20
    out: dict[str, Any] = {"copy": copy_bandwidth(device, size, runs=runs), "gemm": [],
                           "kernel": kernel_overhead(device)}
    dtypes = ["bf16"] + (["fp8"] if _fp8_supported(device) else [])
    for dtype in dtypes:
        out["gemm"].append({"shape": "large", **gemm_rate(large, large, large, dtype, device, runs=runs)})
    n, k = decode_shape
    for batch in batches:
        for dtype in dtypes:
            m = batch if dtype == "bf16" else max(16, -(-batch // 16) * 16)  # _scaled_mm wants M % 16 == 0
            out["gemm"].append({"shape": "decode", "batch": batch,
                                **gemm_rate(m, n, k, dtype, device, l2_bytes=l2_bytes, runs=runs)})
    release(device)
    return out
