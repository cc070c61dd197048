"""The FlashAttention tile model (`kvcalc.calc.attention_time`): tiles, the SM schedule, published H100 runs."""

from __future__ import annotations

import pytest

from kvcalc.calc.attention_memory import AttentionShape, attention_flops
from kvcalc.calc.attention_time import (
    EXACT_SCHEDULE_CTAS,
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
    # not causal, window 256 centred on each row (127 keys before, 128 after): tile 3 (rows 384-511) sees keys
    # [257, 640): tiles 4..9 -> 6; tile 0 sees [0, 256): 4; tile 7 (rows 896-1023) sees [769, 1024): 12..15 -> 4
    assert kv_tiles_per_query_tile(AttentionShape(seq_len=1024, heads=1, head_dim=64, window=256, causal=False),
                                   128, 64) == [4, 6, 6, 6, 6, 6, 6, 4]
    # not causal, chunks of 256: each query tile sees its whole chunk: 4 tiles
    assert kv_tiles_per_query_tile(AttentionShape(seq_len=1024, heads=1, head_dim=64, chunk=256, causal=False),
                                   128, 64) == [4] * 8
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


def test_where_each_kernel_runs_and_its_fraction() -> None:
    h100, a100, mi300 = find_gpu("h100"), find_gpu("a100-80gb"), find_gpu("mi300x")
    bf16 = AttentionShape(seq_len=64, heads=1, head_dim=128)
    assert FA3.unsupported(h100, bf16) is None and FA2.unsupported(a100, bf16) is None
    assert FA3.unsupported(a100, bf16) == "not built for sm_80" and FA3.unsupported(mi300, bf16) == "no rocm build"
    # FA2 needs sm_80 (a T4 is sm_75) and has a ROCm port; nothing runs on Apple's GPUs
    assert FA2.unsupported(mi300, bf16) is None and FA2.unsupported(find_gpu("t4"), bf16) == "not built for sm_75"
    assert FA2.unsupported(find_gpu("m4-max-128"), bf16) == "no metal build"
    # fp16/bf16 only for FA2, fp8 too for FA3; head dims up to 256
    fp8, fp32 = (AttentionShape(seq_len=64, heads=1, head_dim=128, dtype=d) for d in ("fp8", "fp32"))
    assert FA2.unsupported(h100, fp8) == "no fp8 kernel" and FA3.unsupported(h100, fp8) is None
    assert FA2.unsupported(h100, fp32) == "no fp32 kernel"
    assert FA2.unsupported(h100, AttentionShape(seq_len=64, heads=1, head_dim=512)) == "head dim up to 256"
    # f: 0.73 where mma.sync reaches the peak (sm_80, sm_120), 0.392 where the peak needs wgmma/tcgen05
    assert (FA2.fraction(a100), FA2.fraction(find_gpu("rtx-5090")), FA2.fraction(h100),
            FA2.fraction(find_gpu("b200"))) == (0.73, 0.73, 0.392, 0.392)
    # FA3 fp8: 1.2 PFLOP/s of the 1,979 TFLOP/s fp8 peak
    assert FA3.fraction(h100, "fp8") == round(1200 / 1979, 3) and FA3.fraction(h100, "bf16") == 0.715


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


def test_time_of_a_small_causal_call_by_hand() -> None:
    # FA2, N = 256 causal, 2 heads, 2 SMs: each head's query tiles visit 2 and 4 KV tiles (+ 2.3 setup):
    # CTAs 4.3, 6.3, 4.3, 6.3 -> SM a 4.3 then 4.3 (8.6), SM b 6.3 then 6.3 (12.6): makespan 12.6 iterations
    shape = AttentionShape(seq_len=256, heads=2, head_dim=128)
    t = flash_time(shape, FA2, 1e15, 0.5, 2)
    assert t.makespan_iterations == pytest.approx(12.6) and t.ctas == 4
    assert t.time_s == pytest.approx(12.6 * 2 * 128 * 64 * 256 * 2 / 5e14)


def test_fa2_pads_an_mla_value_to_the_query_head_dim() -> None:
    # MLA prefill: d = 192, d_v = 128; FA2 computes P V at 192 wide (one head dim), FA3 at 128
    shape = AttentionShape(seq_len=128, heads=1, head_dim=192, v_head_dim=128, causal=False)
    fa2, fa3 = (flash_time(shape, k, 1e15, 1.0, None) for k in (FA2, FA3))
    # one CTA each: FA2 128 x 64 tiles, 2 KV tiles + 2.3; FA3 128 x 128, 1 + 2.0
    assert fa2.time_s == pytest.approx(4.3 * 2 * 128 * 64 * (192 + 192) / 1e15)
    assert fa3.time_s == pytest.approx(3.0 * 2 * 128 * 128 * (192 + 128) / 1e15)


def test_large_grids_use_the_closed_form_within_half_a_percent() -> None:
    # 40,000 rows of CTAs costing 1 and 3: 80,000 CTAs > EXACT_SCHEDULE_CTAS: W / SMs + u_max / 2
    assert EXACT_SCHEDULE_CTAS < 2 * 40_000
    closed = list_schedule_makespan([1.0, 3.0], rows=40_000, sms=100)
    assert closed == pytest.approx(40_000 * 4 / 100 + 3 / 2)
    finish = [0.0] * 100  # the exact list schedule, simulated here
    for _ in range(40_000):
        for cost in (1.0, 3.0):
            k = finish.index(min(finish))
            finish[k] += cost
    assert closed == pytest.approx(max(finish), rel=0.005)


def test_fa2_tile_follows_the_head_dim() -> None:
    # flash_fwd_launch_template.h: hdim 64 -> 128 x 128, hdim 128 -> 128 x 64, hdim 256 -> 64 x 64 (H100);
    # MLA prefill (d 192, d_v 128) takes the 192 row: 128 x 64
    def tile(d: int, dv: int | None = None) -> tuple[int, int]:
        return FA2.tile(AttentionShape(seq_len=64, heads=1, head_dim=d, v_head_dim=dv))

    assert (tile(64), tile(128), tile(256), tile(192, 128)) == ((128, 128), (128, 64), (64, 64), (128, 64))
    assert FA3.tile(AttentionShape(seq_len=64, heads=1, head_dim=64)) == (128, 128)


def test_fa2_tile_follows_the_card_and_the_mask() -> None:
    # flash_fwd_launch_template.h run_mha_fwd_hdim96/128/256: sm_86/89 ("cc_major == 8 && cc_minor > 0") take
    # 64 x 64 for causal d 96 and 128 (a head dim of 80 runs the 96 kernel) and 128 x 32 for d 128 not causal;
    # d 96 not causal stays 128 x 64. A sliding window runs the local kernel (is_causal false): non-causal tiles.
    # At d 256 the A100 (128 KB a block, < 192 KB an SM) takes 128 x 64; H100, sm_86/89 and sm_120 take 64 x 64.
    def tile(d: int, cc: tuple[int, int] | None, causal: bool = True, window: int | None = None) -> tuple[int, int]:
        return FA2.tile(AttentionShape(seq_len=64, heads=1, head_dim=d, causal=causal, window=window), cc)

    ada, ampere_geforce, a100, h100, blackwell_geforce = (8, 9), (8, 6), (8, 0), (9, 0), (12, 0)
    assert tile(128, ada) == tile(96, ada) == tile(80, ampere_geforce) == (64, 64)
    assert (tile(128, ada, causal=False), tile(96, ada, causal=False)) == ((128, 32), (128, 64))
    assert tile(128, ada, window=4096) == (128, 32)
    assert tile(128, a100) == tile(128, h100) == tile(128, blackwell_geforce) == tile(128, None) == (128, 64)
    assert tile(256, a100) == (128, 64)
    assert tile(256, h100) == tile(256, ada) == tile(256, blackwell_geforce) == tile(256, None) == (64, 64)
    assert tile(64, ada) == (128, 128)


def test_fa2_on_sm89_times_the_square_causal_tile() -> None:
    # RTX 4090 (sm_89, 128 SMs, 165.2 TFLOP/s bf16, f = 0.73): one head, 1,024 tokens, d 128, causal.
    # 64 x 64 tiles: query tile i (rows 64 i .. 64 i + 63) visits keys [0, 64 (i + 1)) = i + 1 KV tiles, 16 CTAs,
    # each on its own SM: M = 16 + 2.3 = 18.3 iterations; t_iter = 2 x 64 x 64 x (128 + 128) x 128 / (165.2e12 x
    # 0.73) = 268,435,456 / 1.20596e14 s = 2.22591 us; time = 18.3 x 2.22591 = 40.734 us. The 128 x 64 tile of
    # sm_80/sm_90 gives 8 CTAs, the last visiting 16 tiles, M = 18.3 at twice t_iter: 81.468 us.
    shape = AttentionShape(seq_len=1024, heads=1, head_dim=128)
    t = flash_time(shape, FA2, 165.2e12, 0.73, 128, (8, 9))
    assert (t.block_q, t.block_kv, t.ctas, t.makespan_iterations) == (64, 64, 16, pytest.approx(18.3))
    assert t.time_s == pytest.approx(40.734e-6, rel=1e-4)
    assert flash_time(shape, FA2, 165.2e12, 0.73, 128, (8, 0)).time_s == pytest.approx(81.468e-6, rel=1e-4)


def _allowed(q: int, k: int, causal: bool, window: int | None, chunk: int | None) -> bool:
    """The mask, written from its definition: causal k <= q; a causal window the last w keys; a window not
    causal w keys centred on q ((w - 1) // 2 before, w // 2 after); a chunk the keys of q's own chunk."""
    if causal and k > q:
        return False
    if window:
        return q - window < k if causal else q - (window - 1) // 2 <= k <= q + window // 2
    return not chunk or q // chunk == k // chunk


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("n", "window", "chunk"), [(200, None, None), (333, 100, None), (333, None, 96),
                                                     (256, 64, None), (300, None, 128), (130, 7, None)])
def test_tile_counts_equal_a_brute_force_count(causal: bool, n: int, window: int | None, chunk: int | None) -> None:
    br, bc = 64, 32
    shape = AttentionShape(seq_len=n, heads=1, head_dim=64, causal=causal, window=window, chunk=chunk)
    brute = [sum(1 for kv in range(0, n, bc)
                 if any(_allowed(q, k, causal, window, chunk)
                        for q in range(qt, min(n, qt + br)) for k in range(kv, min(n, kv + bc))))
             for qt in range(0, n, br)]
    assert kv_tiles_per_query_tile(shape, br, bc) == brute
