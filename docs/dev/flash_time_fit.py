"""Fit FlashAttention's per-CTA setup s and asymptotic peak fraction f (`kvcalc.calc.attention_time`) to
published H100 runs, and print predicted vs measured.

    PYTHONPATH=. python docs/dev/flash_time_fit.py > docs/accuracy-attention.md

Measured: the FlashAttention-3 paper's forward benchmark (Shah et al. 2024, arXiv:2407.08608, Fig. 5:
H100 80GB SXM5, bf16, head dim 128, 16 heads, batch x seqlen = 16k) for FlashAttention-2 and -3, causal
and not, at N = 512 ... 16k. TFLOP/s there counts 4 N^2 d h (halved when causal), kvcalc's convention.
For each kernel a grid over s (0.1 steps) with f the geometric mean of measured / modelled rates; the
s kept minimises the worst error. The rounded s, f go into `FLASH_KERNELS` by hand.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from kvcalc.calc.attention_memory import AttentionShape, attention_flops
from kvcalc.calc.attention_time import FA2, FA3, FlashKernel, flash_time
from kvcalc.sources.hardware import find_gpu
from kvcalc.spec.base import replace

LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)
#: TFLOP/s read off Fig. 5 (head dim 128): (kernel, causal) -> one figure per length.
PUBLISHED = {
    ("FlashAttention-2", False): (309, 350, 362, 368, 370, 370),
    ("FlashAttention-2", True): (191, 260, 298, 319, 333, 335),
    ("FlashAttention-3", False): (467, 565, 625, 638, 646, 648),
    ("FlashAttention-3", True): (292, 423, 521, 579, 602, 616),
}
HEADS, HEAD_DIM, TOKENS = 16, 128, 16384
#: Held out (informed no constant): FlashAttention-3 forward TFLOP/s at the same shapes, not causal, from the test
#: plan of pytorch/benchmark PR #2391 (https://github.com/pytorch/benchmark/pull/2391, `run_benchmark.py triton
#: --op flash_attention --only flash_v3 --metrics tflops --d-head 128`, 2024-07; an H100, variant not stated).
HELD_OUT_FA3_NONCAUSAL = (430.32, 517.099, 565.544, 590.233, 614.234, 620.73)
#: What kvcalc used before the tile model: one fraction of the 989.4 TFLOP/s peak at every N.
FLAT_FRACTION = {"FlashAttention-2": 0.35, "FlashAttention-3": 661.0 / 989.4}


def _rows(kernel: FlashKernel, setup: float, fraction: float) -> list[tuple[bool, int, float, float]]:
    """(causal, N, measured TFLOP/s, predicted TFLOP/s) of every published point."""
    gpu = find_gpu("h100-sxm")
    trial = replace(kernel, setup_iterations=setup, fraction_of_peak={"hopper": fraction})
    out = []
    for causal in (False, True):
        for n, measured in zip(LENGTHS, PUBLISHED[(kernel.name, causal)], strict=True):
            shape = AttentionShape(seq_len=n, heads=HEADS, head_dim=HEAD_DIM, batch=TOKENS // n, causal=causal)
            seconds = flash_time(shape, trial, gpu.flops("bf16"), fraction, gpu.sm_count, gpu.cuda_capability).time_s
            out.append((causal, n, float(measured), attention_flops(shape) / seconds / 1e12))
    return out


def fit(kernel: FlashKernel) -> tuple[float, float]:
    """(s, f) minimising the worst |predicted / measured - 1| over the kernel's twelve points."""
    best: tuple[float, float, float] | None = None
    for tenth in range(0, 41):
        setup = tenth / 10
        ratios = [m / p for _, _, m, p in _rows(kernel, setup, 1.0)]
        fraction = math.exp(statistics.fmean(math.log(r) for r in ratios))
        worst = max(abs(fraction / r - 1) for r in ratios)
        if best is None or worst < best[0]:
            best = (worst, setup, fraction)
    assert best is not None
    return best[1], best[2]


def _held_out() -> list[float]:
    """Print the held-out FA3 figures against the shipped kernel and return their errors (%)."""
    gpu = find_gpu("h100-sxm")
    print("## Held out: FlashAttention-3 in pytorch/benchmark\n")
    print("FlashAttention-3 at the paper's shapes, not causal, as pytorch/benchmark PR #2391 measured it "
          "(https://github.com/pytorch/benchmark/pull/2391, test plan; an H100 whose variant the PR does not "
          "state). These figures informed no constant.\n")
    print("| N | measured TFLOP/s | kvcalc TFLOP/s | error |")
    print("|---:|---:|---:|---:|")
    errors = []
    for n, measured in zip(LENGTHS, HELD_OUT_FA3_NONCAUSAL, strict=True):
        shape = AttentionShape(seq_len=n, heads=HEADS, head_dim=HEAD_DIM, batch=TOKENS // n, causal=False)
        seconds = flash_time(shape, FA3, gpu.flops("bf16"), FA3.fraction(gpu), gpu.sm_count,
                             gpu.cuda_capability).time_s
        predicted = attention_flops(shape) / seconds / 1e12
        errors.append(100 * (predicted / measured - 1))
        print(f"| {n:,} | {measured:.0f} | {predicted:.0f} | {errors[-1]:+.1f} % |")
    print(f"\nMedian |error| {statistics.median(abs(e) for e in errors):.1f} %, worst {max(errors, key=abs):+.1f} %. "
          "kvcalc is high at every N by a near-constant 6-9 %: these runs sit 4-9 % below the FA3 paper's own "
          "figures for the same kernel and shapes (430 vs 467 TFLOP/s at 512, 621 vs 648 at 16k), a card or clock "
          "difference the tile model cannot see, not a shape the model misses.\n")
    return errors


#: Our own H100 run (held out): torch's flash SDPA backend (FlashAttention-2), 32 heads x 128, batch 1, causal,
#: timed as CUDA-graph replays (`kvcalc.bench.attention.measure_attention`, 2026-12-07, docs/validation.md).
OWN_RUN = Path(__file__).resolve().parents[1] / "validation-h100-graph-attention.json"


def _own_run() -> list[float]:
    """Print our graph-timed H100 FlashAttention-2 records against the shipped kernel; return the errors (%)."""
    gpu = find_gpu("h100-sxm")
    rows = [r for r in json.loads(OWN_RUN.read_text())["rows"] if r["backend"] == "flash" and r.get("graph")]
    print("## Held out: torch's FlashAttention-2 on our H100 (CUDA-graph replays)\n")
    print("`scaled_dot_product_attention` with the flash backend (FlashAttention-2), bf16, causal, batch 1, 32 heads "
          "of 128, median of 20 CUDA-graph replays with fresh q, k, v (H100 80GB HBM3, driver 580.159.04, torch "
          "2.11.0, 2026-12-07; `docs/validation-h100-graph-attention.json`). These records informed no constant.\n")
    print("| N | measured ms | kvcalc ms | error |")
    print("|---:|---:|---:|---:|")
    errors = []
    for row in rows:
        shape = AttentionShape(seq_len=row["tokens"], heads=row["heads"], head_dim=row["head_dim"])
        seconds = flash_time(shape, FA2, gpu.flops("bf16"), FA2.fraction(gpu, "bf16"), gpu.sm_count,
                             gpu.cuda_capability).time_s
        errors.append(100 * (seconds / row["median_s"] - 1))
        print(f"| {row['tokens']:,} | {row['median_s'] * 1e3:.3f} | {seconds * 1e3:.3f} | {errors[-1]:+.1f} % |")
    print(f"\nMedian |error| {statistics.median(abs(e) for e in errors):.1f} %, worst {max(errors, key=abs):+.1f} %. "
          "kvcalc is low at every N, most below 4,096 tokens, where a call lasts well under a millisecond: "
          "probably the kernel's fixed prologue and epilogue weigh more there than the 2.3 setup iterations "
          "fitted to the FA3 paper's batch-x-N = 16k runs carry.\n")
    return errors


def main() -> None:
    print("# Accuracy: FlashAttention time (`kvcalc attention`, `kvcalc verify`)\n")
    print("Regenerate with `PYTHONPATH=. python docs/dev/flash_time_fit.py > docs/accuracy-attention.md`.\n")
    print("kvcalc times a FlashAttention forward with a tile model (`kvcalc/calc/attention_time.py`). Each CTA "
          "visits the KV tiles its mask allows plus s iterations of setup, and the SMs take CTAs in launch order. "
          "One iteration runs at f of the dense peak per SM. Measured here: the FlashAttention-3 paper's forward "
          "benchmark (Shah et al. 2024, arXiv:2407.08608, Fig. 5: H100 80GB SXM5, bf16, head dim 128, 16 heads, "
          "batch x N = 16k), FlashAttention-2 and -3, causal and not. Its TFLOP/s count 4 N^2 d h, halved when "
          "causal, which is kvcalc's convention. Each kernel's s and f are fitted to its own twelve figures (s on "
          "a 0.1 grid minimising the worst error, f the geometric mean of measured over modelled rates), so this "
          "page is a dev set. Our own H100 records are in validation.md and did not inform the fit.\n")
    errors_all: list[float] = []
    flat_all: list[float] = []
    for kernel in (FA2, FA3):
        setup, fraction = fit(kernel)
        print(f"## {kernel.name}\n")
        print(f"Fitted s = {setup:.1f}, f = {fraction:.3f}; shipped s = {kernel.setup_iterations}, "
              f"f = {kernel.fraction_of_peak['hopper']}.\n")
        print("| causal | N | measured TFLOP/s | kvcalc TFLOP/s | error |")
        print("|---|---:|---:|---:|---:|")
        errors = []
        for causal, n, measured, predicted in _rows(kernel, kernel.setup_iterations, kernel.fraction_of_peak["hopper"]):
            errors.append(100 * (predicted / measured - 1))
            print(f"| {'yes' if causal else 'no'} | {n:,} | {measured:.0f} | {predicted:.0f} | {errors[-1]:+.1f} % |")
        median = statistics.median(abs(e) for e in errors)
        print(f"\nMedian |error| {median:.1f} %, worst {max(errors, key=abs):+.1f} %.\n")
        errors_all += errors
        flat = FLAT_FRACTION[kernel.name] * 989.4
        flat_all += [100 * (flat / m - 1) for causal in (False, True) for m in PUBLISHED[(kernel.name, causal)]]
    held_out = _held_out()
    own = _own_run()
    print("## Summary\n")
    print("| set | rows | median | worst |\n|---|---|---|---|")
    for name, errs in (("tile model", errors_all), ("flat rates it replaced", flat_all),
                       ("held out: pytorch/benchmark FA3", held_out), ("held out: our H100, FA2 graph-timed", own)):
        print(f"| {name} | {len(errs)} | {statistics.median(abs(e) for e in errs):.1f} % | "
              f"{max(abs(e) for e in errs):.1f} % |")
    print("\nThe flat rates (FA2 at 35 % and FA3 at 66.8 % of the peak at every N, the figures of the FA3 paper's "
          "abstract and s4.3) miss the short sequences most. Not modelled: the host's launch "
          "of the call (tens of microseconds; engines replay CUDA graphs) and FA3's tile sizes other than 128 x 128. "
          "FA2's tiles follow the card and the mask as its launch template picks them (64 x 64 for causal head "
          "dims 96-128 on sm_86/89, 128 x 64 at head dim 256 on the A100); no published figure here checks them "
          "off Hopper.")


if __name__ == "__main__":
    main()
