"""Time of one FlashAttention forward call: tiles, per-tile setup and the SMs' schedule.

A FlashAttention kernel gives each (sequence, query head, block of Br queries) one thread block (CTA). The
CTA loads its Q tile, visits the KV tiles of Bc keys its mask allows (one iteration each: S = Q K^T,
online softmax, O += P V), then rescales and writes O (Dao 2023, arXiv:2307.08691, Algorithm 1 and s3.2;
Shah et al. 2024, arXiv:2407.08608, s3). So:

- a CTA costs u = (KV tiles it visits) + s iterations, s the setup (Q load, pipeline fill, epilogue) in
  iteration-equivalents; a tile the causal diagonal cuts is computed whole;
- the SMs take CTAs in launch order as they free up (list scheduling); the makespan M is in iterations;
- one iteration on one SM takes t_iter = 2 Br Bc (d + d_v) / (peak x f / SMs), f the kernel's
  asymptotic fraction of the dense peak;
- time = M x t_iter.

Short sequences pay the setup on few iterations and leave SMs idle in the last wave; long ones approach
FLOPs / (peak x f). `FLASH_KERNELS` holds the fitted s and f; `docs/dev/flash_time_fit.py` fits them to the
FlashAttention-3 paper's H100 figures and prints the residuals.
"""

from __future__ import annotations

import heapq

from kvcalc.calc.attention_memory import AttentionShape
from kvcalc.spec.base import record
from kvcalc.spec.gpu import GpuSpec, normalize_dtype
from kvcalc.units import ceil_div

#: Past this many CTAs the schedule is M = W / SMs + u_max / 2 (within 0.5 % of the exact list schedule on
#: 132-304 SMs, since each SM then runs hundreds of CTAs); below it the list schedule is run exactly.
EXACT_SCHEDULE_CTAS = 1 << 16


@record
class TileRule:
    """A kernel's tile, Br x Bc (`block_q` x `block_kv`), for head dims up to `head_dim` on the cards whose
    compute capability lies in `capabilities` (an inclusive range; None: every card and platform), for causal
    calls, calls that are not, or both (`causal` None)."""

    head_dim: int
    block_q: int
    block_kv: int
    capabilities: tuple[tuple[int, int], tuple[int, int]] | None = None
    causal: bool | None = None

    def applies(self, head_dim: int, capability: tuple[int, int] | None, causal: bool) -> bool:
        """Whether this rule sets the tile of a call with this head dim, card and mask."""
        if head_dim > self.head_dim or (self.causal is not None and causal != self.causal):
            return False
        return self.capabilities is None or (capability is not None
                                             and self.capabilities[0] <= capability <= self.capabilities[1])

    def describe(self) -> str:
        """'d <= 128, sm_86-sm_89, causal: 64 x 64'."""
        where = [f"d <= {self.head_dim}"]
        if self.capabilities is not None:
            lo, hi = (f"sm_{a}{b}" for a, b in self.capabilities)
            where.append(lo if lo == hi else f"{lo}-{hi}")
        if self.causal is not None:
            where.append("causal" if self.causal else "not causal")
        return f"{', '.join(where)}: {self.block_q} x {self.block_kv}"


@record
class FlashKernel:
    """A FlashAttention forward kernel: its tiles (`tiles`, the first rule that applies to max(d, d_v), the card
    and the mask; none past the last rule's head dim), setup cost per CTA in iterations (`setup_iterations`),
    asymptotic fraction of the dense peak (`fraction_of_peak`, by architecture class and dtype, `fraction`),
    the CUDA capabilities it runs on (`min_capability` .. `max_capability`), the other platforms it has a
    port for (`platforms`), its input dtypes (`dtypes`), and whether it pads V to Q's head dim (`pads_v`)."""

    name: str
    key: str
    tiles: tuple[TileRule, ...]
    setup_iterations: float
    fraction_of_peak: dict[str, float]
    source: str
    min_capability: tuple[int, int]
    max_capability: tuple[int, int] | None = None
    platforms: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ("bf16", "fp16")
    pads_v: bool = False

    def unsupported(self, gpu: GpuSpec, shape: AttentionShape) -> str | None:
        """Why this kernel cannot run the call on `gpu` (None when it can): the card's architecture or
        platform, the dtype, a head dim past its largest tile."""
        cc = gpu.cuda_capability
        if cc is None and gpu.platform not in self.platforms:
            return f"no {gpu.platform} build"
        if cc is not None and not (cc >= self.min_capability and (self.max_capability is None
                                                                     or cc <= self.max_capability)):
            return f"not built for {gpu.architecture}"
        if normalize_dtype(shape.dtype) not in self.dtypes:
            return f"no {shape.dtype} kernel"
        if max(shape.head_dim, shape.d_v) > self.tiles[-1].head_dim:
            return f"head dim up to {self.tiles[-1].head_dim}"
        return None

    def tile(self, shape: AttentionShape, capability: tuple[int, int] | None = None) -> tuple[int, int]:
        """(Br, Bc) for the shape's head dims and mask on a card of this compute capability. A sliding window
        runs FlashAttention's local kernel, whose tiles are the non-causal ones (flash_api.cpp sets is_causal
        only when there is no left window)."""
        head_dim = max(shape.head_dim, shape.d_v)
        causal = shape.causal and shape.window is None
        rule = next((t for t in self.tiles if t.applies(head_dim, capability, causal)), self.tiles[-1])
        return rule.block_q, rule.block_kv

    def fraction(self, gpu: GpuSpec, dtype: str = "bf16") -> float:
        """f for `gpu`: "ampere" on cards whose dense peak is mma.sync's (compute capability 8.x and 12.x, the
        instruction FA2 uses), else "hopper" (9.x, 10.x: the peak needs wgmma/tcgen05; ROCm); "<class>-fp8"
        where listed for fp8 inputs."""
        cc = gpu.cuda_capability
        arch = "ampere" if cc is not None and cc[0] in (8, 12) and "ampere" in self.fraction_of_peak else "hopper"
        fp8 = f"{arch}-fp8"
        if normalize_dtype(dtype) == "fp8" and fp8 in self.fraction_of_peak:
            return self.fraction_of_peak[fp8]
        return self.fraction_of_peak[arch]


_FA3_PAPER = "Shah et al. 2024 arXiv:2407.08608 Fig. 5 (H100 SXM5, head dim 128, causal and not)"
#: sm_86 and sm_89 (GeForce and workstation Ampere/Ada: "cc_major == 8 && cc_minor > 0") and the A100's sm_80.
SM8X = ((8, 6), (8, 9))
SM80 = ((8, 0), (8, 0))
#: FlashAttention-2's forward tiles (flash-attention csrc/flash_attn/src/flash_fwd_launch_template.h,
#: run_mha_fwd_hdim32 ... hdim256): 128 x 128 up to d = 64; 128 x 64 up to 192, except that sm_86/89 take
#: 64 x 64 for causal d = 96/128 ("64 x 64 is the fastest for causal (because it's square)") and 128 x 32 for
#: non-causal d = 128 (two CTAs per SM); at 256, 128 x 64 where a block may use 128 KB of shared memory but an SM
#: holds less than 192 KB (the A100), else 64 x 64 (H100, sm_86/89, sm_12x). s = 2.3 and f = 0.392 on Hopper fit
#: the FA3 paper's twelve FA2 figures to within 6 %; where mma.sync reaches the dense peak (sm_8x, sm_12x)
#: f = 0.73, the FA2 paper's best forward fraction on A100 (Dao 2023, arXiv:2307.08691, abstract: "50-73% of the
#: theoretical maximum FLOPs/s"). sm_80 and later (Turing and Volta run other kernels) and ROCm's port
#: (ROCm/flash-attention, the generic tiles); fp16/bf16 only; one head dim for Q, K and V, so an MLA prefill's V
#: is padded to Q's (vLLM v1/attention/backends/mla/common.py `_pad_v`, except FA3 on sm_90).
FA2 = FlashKernel(name="FlashAttention-2", key="fa2",
                  tiles=(TileRule(head_dim=64, block_q=128, block_kv=128),
                         TileRule(head_dim=128, block_q=64, block_kv=64, capabilities=SM8X, causal=True),
                         TileRule(head_dim=96, block_q=128, block_kv=64),
                         TileRule(head_dim=128, block_q=128, block_kv=32, capabilities=SM8X, causal=False),
                         TileRule(head_dim=192, block_q=128, block_kv=64),
                         TileRule(head_dim=256, block_q=128, block_kv=64, capabilities=SM80),
                         TileRule(head_dim=256, block_q=64, block_kv=64)),
                  setup_iterations=2.3, fraction_of_peak={"hopper": 0.392, "ampere": 0.73},
                  source=f"tiles: flash-attention flash_fwd_launch_template.h; s, f: fit to {_FA3_PAPER}",
                  min_capability=(8, 0), platforms=("rocm",), pads_v=True)
#: FlashAttention-3 (Hopper only): its head-dim-128 tile, 128 x 128, at every head dim; s = 2.0 and f = 0.715 fit
#: the paper's twelve FA3 figures to within 5 %. FP8: f = 1.2 PFLOP/s of the 1,979 TFLOP/s fp8 peak ("FP8
#: reaching close to 1.2 PFLOPs/s", the paper's abstract).
FA3 = FlashKernel(name="FlashAttention-3", key="fa3", tiles=(TileRule(head_dim=256, block_q=128, block_kv=128),),
                  setup_iterations=2.0,
                  fraction_of_peak={"hopper": 0.715, "hopper-fp8": round(1200 / 1979, 3)},
                  source=f"s, f: fit to {_FA3_PAPER}", min_capability=(9, 0), max_capability=(9, 0),
                  dtypes=("bf16", "fp16", "fp8"))
FLASH_KERNELS = (FA2, FA3)


def kv_tiles_per_query_tile(shape: AttentionShape, block_q: int, block_kv: int) -> list[int]:
    """KV tiles each query tile (rows first..last) visits: the keys [lo, hi) its rows may see, rounded out to
    whole Bc tiles. Causal: keys up to the row, hi = last + 1; else hi = N. Sliding window w: causal,
    lo = first - w + 1; not causal, centred on each row: [first - (w - 1) // 2, last + w // 2 + 1). Chunk c:
    the rows' chunks, lo = first - first mod c (not causal: hi = the end of the last row's chunk)."""
    n, window, chunk = shape.seq_len, shape.window, shape.chunk
    tiles = []
    for first in range(0, n, block_q):
        last = min(n, first + block_q) - 1
        lo, hi = 0, last + 1 if shape.causal else n
        if window:
            lo = first - window + 1 if shape.causal else first - (window - 1) // 2
            hi = hi if shape.causal else last + window // 2 + 1
        elif chunk:
            lo = first - first % chunk
            hi = hi if shape.causal else (last // chunk + 1) * chunk
        lo, hi = max(0, lo), min(n, hi)
        tiles.append(ceil_div(hi, block_kv) - lo // block_kv)
    return tiles


def list_schedule_makespan(row_units: list[float], rows: int, sms: int) -> float:
    """Finish time of `rows` x len(row_units) CTAs (each row the same costs, rows in launch order) on `sms`
    SMs, each SM taking the next CTA when it frees up. Equal costs: ceil(CTAs / SMs) waves."""
    ctas = rows * len(row_units)
    if ctas <= sms:
        return max(row_units)
    if min(row_units) == max(row_units):
        return ceil_div(ctas, sms) * row_units[0]
    if ctas > EXACT_SCHEDULE_CTAS:
        return rows * sum(row_units) / sms + max(row_units) / 2
    free = [0.0] * sms
    for _ in range(rows):
        for u in row_units:
            heapq.heapreplace(free, free[0] + u)
    return max(free)


@record
class FlashTime:
    """One call's time: its tile (`block_q` x `block_kv`), `ctas` thread blocks, the schedule's makespan in
    iterations (per SM; with no SM count, the total over the chip), one iteration's seconds, their product."""

    block_q: int
    block_kv: int
    ctas: int
    makespan_iterations: float
    iteration_s: float
    time_s: float


def flash_time(shape: AttentionShape, kernel: FlashKernel, peak_flops: float, fraction: float,
               sm_count: int | None, capability: tuple[int, int] | None = None) -> FlashTime:
    """time = M x t_iter, t_iter = 2 Br Bc (d + d_v) x SMs / (peak x f) (module docstring; d_v padded to d for a
    kernel that `pads_v`). Without an SM count the schedule is ideal: M = W, the total CTA cost, on the whole
    chip: t_iter = 2 Br Bc (d + d_v) / (peak x f). `capability`: the card's, which picks the tile."""
    block_q, block_kv = kernel.tile(shape, capability)
    units = [t + kernel.setup_iterations for t in kv_tiles_per_query_tile(shape, block_q, block_kv)]
    d_v = max(shape.head_dim, shape.d_v) if kernel.pads_v else shape.d_v
    flops_per_iteration = 2.0 * block_q * block_kv * (shape.head_dim + d_v)
    rate = peak_flops * fraction
    if sm_count:
        makespan = list_schedule_makespan(units, shape.rows, sm_count)
        iteration_s = flops_per_iteration * sm_count / rate
    else:
        makespan, iteration_s = shape.rows * sum(units), flops_per_iteration / rate
    return FlashTime(block_q=block_q, block_kv=block_kv, ctas=shape.rows * len(units),
                     makespan_iterations=makespan, iteration_s=iteration_s, time_s=makespan * iteration_s)
