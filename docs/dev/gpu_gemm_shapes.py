"""GEMM efficiency against shape on one GPU (dev script; run on a CUDA machine, not in CI).

Dense bf16 (and FP8 through torch._scaled_mm where available) products of an M x K activation with a K x N
weight, M from 1 to 16,384, and grouped MoE products (torch._grouped_mm) with M_e rows per expert for every
expert, on MLP shapes of real models. Times are medians of CUDA-event timings over 20 runs after warm-up, on
random data; weights are rotated over enough copies to exceed L2 so small-M products read HBM.
Prints JSON lines: {"kind", "m", "k", "n", "experts", "median_s", "tflops", "tb_per_s"}.

Usage: python docs/dev/gpu_gemm_shapes.py > gemm_shapes.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys


def _time(fn, runs: int = 20) -> float:  # type: ignore[no-untyped-def]
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) / 1000)
    return statistics.median(out)


def dense(m: int, k: int, n: int, fp8: bool) -> dict[str, float | int | str]:
    import torch

    copies = max(1, (200 * 2**20) // (k * n * 2) + 1)
    ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    state = {"i": 0}
    if fp8:
        ws8 = [w.to(torch.float8_e4m3fn) for w in ws]
        x8 = x.to(torch.float8_e4m3fn)
        one = torch.ones((), device="cuda", dtype=torch.float32)

        def run() -> None:
            state["i"] = (state["i"] + 1) % copies
            torch._scaled_mm(x8, ws8[state["i"]].t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        wbytes = 1
    else:
        def run() -> None:
            state["i"] = (state["i"] + 1) % copies
            torch.matmul(x, ws[state["i"]].t())
        wbytes = 2
    t = _time(run)
    moved = k * n * wbytes + m * k * wbytes + m * n * 2
    return {"kind": "fp8" if fp8 else "bf16", "m": m, "k": k, "n": n, "experts": 1, "median_s": t,
            "tflops": 2 * m * k * n / t / 1e12, "tb_per_s": moved / t / 1e12}


def grouped(m_e: int, experts: int, k: int, n: int) -> dict[str, float | int | str]:
    import torch

    w = torch.randn(experts, n, k, device="cuda", dtype=torch.bfloat16).transpose(1, 2)  # as vLLM stores them
    x = torch.randn(m_e * experts, k, device="cuda", dtype=torch.bfloat16)
    offs = torch.arange(1, experts + 1, device="cuda", dtype=torch.int32) * m_e
    t = _time(lambda: torch._grouped_mm(x, w, offs=offs))
    moved = experts * k * n * 2 + m_e * experts * (k + n) * 2
    return {"kind": "grouped_bf16", "m": m_e, "k": k, "n": n, "experts": experts, "median_s": t,
            "tflops": 2 * m_e * experts * k * n / t / 1e12, "tb_per_s": moved / t / 1e12}


def main() -> None:
    import torch

    print(json.dumps({"kind": "card", "name": torch.cuda.get_device_name(), "torch": torch.__version__}))
    ms = [1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
    for k, n in ((4096, 28672), (8192, 8192), (4096, 4096)):  # Llama-3.1-8B gate_up, 70B/TP8-ish, o_proj
        for m in ms:
            for fp8 in (False, True):
                try:
                    print(json.dumps(dense(m, k, n, fp8)), flush=True)
                except Exception as err:
                    print(json.dumps({"kind": "error", "what": f"dense m={m} fp8={fp8}", "err": str(err)[:200]}))
    # Qwen3-30B-A3B experts (128 x 2048 -> 1536 gate_up), gpt-oss-20b (32 x 2880 -> 5760), Mixtral (8 x 4096 -> 28672)
    for experts, k, n in ((128, 2048, 1536), (32, 2880, 5760), (8, 4096, 28672)):
        for m_e in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048):
            if m_e * experts > 65536:
                continue
            try:
                print(json.dumps(grouped(m_e, experts, k, n)), flush=True)
            except Exception as err:
                print(json.dumps({"kind": "error", "what": f"grouped E={experts} m_e={m_e}", "err": str(err)[:200]}))
                break
    torch.cuda.synchronize()


if __name__ == "__main__":
    sys.exit(main())
