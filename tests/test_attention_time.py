"""The FlashAttention tile model (`kvcalc.calc.attention_time`): tiles, the SM schedule, published H100 runs."""

from __future__ import annotations

import pytest

from kvcalc.calc.attention_memory import AttentionShape, attention_flops
from kvcalc.calc.attention_time import (
    FA2,
    FA3,
    flash_time,
    kv_tiles_per_query_tile,
    list_schedule_makespan,
)
from kvcalc.sources.hardware import find_gpu


def test_kv_tiles_causal_window_chunk_and_full() -> None:
    # causal, 128-query tiles over 64-key tiles: tile i sees keys [0, 128 (i + 1)) = 2 (i + 1) tiles
    assert kv_tiles_per_query_tile(AttentionShape(seq_len=1024, heads=1, head_dim=64), 128, 64) == \
        [2, 4, 6, 8, 10, 12, 14, 16]
    # not causal: every tile sees all 1024 / 64 = 16
    assert kv_tiles_per_query_tile(AttentionShape(seq_len=1024, heads=1, head_dim=64, causal=False), 128, 64) == \
        [16] * 8
    # window 256: tile 3 sees keys [384 - 255, 512) = [129, 512): tiles 2..7 -> 6
    assert kv_tiles_per_query_tile(AttentionShape(seq_len=1024, heads=1, head_dim=64, window=256), 128, 64) == \
        [2, 4, 6, 6, 6, 6, 6, 6]
    # chunks of 256: tile 2 starts a chunk at 256 and sees keys [256, 384): tiles 4, 5 -> 2
    assert kv_tiles_per_query_tile(AttentionShape(seq_len=1024, heads=1, head_dim=64, chunk=256), 128, 64) == \
        [2, 4, 2, 4, 2, 4, 2, 4]
    # a ragged end: N = 200 -> tiles [0, 128) and [128, 200): 2 and ceil(200 / 64) = 4
    assert kv_tiles_per_query_tile(AttentionShape(seq_len=200, heads=1, head_dim=64), 128, 64) == [2, 4]


def test_list_schedule_by_hand() -> None:
    # 3 SMs, costs 1, 2, 1, 2, 1, 2 in launch order: SM finish times 1 | 2 | 1, then 1 -> 3, 1 -> 2, 2 -> 4
    assert list_schedule_makespan([1.0, 2.0], rows=3, sms=3) == 4.0
    # fewer CTAs than SMs: the longest; equal costs: whole waves (7 CTAs on 3 SMs: 3 waves of 5)
    assert list_schedule_makespan([1.0, 2.0], rows=1, sms=3) == 2.0
    assert list_schedule_makespan([5.0], rows=7, sms=3) == 15.0


def test_no_sm_count_is_the_ideal_schedule() -> None:
    shape = AttentionShape(seq_len=1024, heads=2, head_dim=128)
    t = flash_time(shape, FA2, 1e15, 0.5, None)
    # W = 2 heads x sum(2, 4, ..., 16) + 8 x 2.3 = 2 x (72 + 18.4); 2 x 128 x 64 x 256 FLOP per iteration at 5e14
    assert t.time_s == pytest.approx(2 * (72 + 8 * 2.3) * 2 * 128 * 64 * 256 / 5e14)
    assert t.ctas == 16


def test_kernel_runs_on_and_fraction() -> None:
    h100, a100, mi300 = find_gpu("h100"), find_gpu("a100-80gb"), find_gpu("mi300x")
    assert FA3.runs_on(h100) and not FA3.runs_on(a100) and not FA3.runs_on(mi300)
    assert FA2.runs_on(a100) and FA2.fraction(a100) == 0.73 and FA2.fraction(h100) == 0.392
    # FA2 needs sm_80 (a T4 is sm_75) and has a ROCm port; nothing runs on Apple's GPUs here
    assert FA2.runs_on(mi300) and not FA2.runs_on(find_gpu("t4")) and not FA2.runs_on(find_gpu("m4-max-128"))


# Shah et al. 2024 (arXiv:2407.08608) Fig. 5, H100 SXM5, bf16, head dim 128, 16 heads, batch x N = 16k:
# (kernel, causal, N, measured TFLOP/s). The short and long ends of each curve.
PUBLISHED = [
    (FA2, True, 512, 191), (FA2, True, 16384, 335), (FA2, False, 512, 309), (FA2, False, 16384, 370),
    (FA3, True, 512, 292), (FA3, True, 16384, 616), (FA3, False, 512, 467), (FA3, False, 16384, 648),
]


@pytest.mark.parametrize(("kernel", "causal", "n", "measured"), PUBLISHED)
def test_published_h100_rates_within_seven_percent(kernel, causal, n, measured) -> None:  # type: ignore[no-untyped-def]
    gpu = find_gpu("h100-sxm")
    shape = AttentionShape(seq_len=n, heads=16, head_dim=128, batch=16384 // n, causal=causal)
    seconds = flash_time(shape, kernel, gpu.flops("bf16"), kernel.fraction(gpu), gpu.sm_count).time_s
    assert attention_flops(shape) / seconds / 1e12 == pytest.approx(measured, rel=0.07)


def test_short_causal_sequences_pay_setup_and_the_last_wave() -> None:
    # FA2, 512 causal tokens, 16 x 32 = 512 rows: per row tiles 2, 4, 6, 8 (+ 2.3 each) = 29.2 iterations;
    # the ideal rate would need only (512^2 / 2) / (128 x 64) = 16 iterations of FLOPs per row.
    gpu = find_gpu("h100-sxm")
    shape = AttentionShape(seq_len=512, heads=16, head_dim=128, batch=32)
    t = flash_time(shape, FA2, gpu.flops("bf16"), 0.392, gpu.sm_count)
    ideal = attention_flops(shape) / (gpu.flops("bf16") * 0.392)
    assert t.time_s / ideal >= 29.2 / 16


def test_fa2_tile_follows_the_head_dim() -> None:
    # flash_fwd_launch_template.h: hdim 64 -> 128 x 128, hdim 128 -> 128 x 64, hdim 256 -> 64 x 64 (H100);
    # MLA prefill (d 192, d_v 128) takes the 192 row: 128 x 64
    def tile(d: int, dv: int | None = None) -> tuple[int, int]:
        return FA2.tile(AttentionShape(seq_len=64, heads=1, head_dim=d, v_head_dim=dv))

    assert (tile(64), tile(128), tile(256), tile(192, 128)) == ((128, 128), (128, 64), (64, 64), (128, 64))
    assert FA3.tile(AttentionShape(seq_len=64, heads=1, head_dim=64)) == (128, 128)
