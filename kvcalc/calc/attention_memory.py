"""One attention call's memory, HBM traffic and FLOPs: naive (materialized scores) vs FlashAttention.

A call is `batch` sequences x `heads` query heads, N = `seq_len` queries each attending the keys its mask
allows (`AttentionShape`). Element sizes: b = bytes of the input dtype (bf16: 2), fp32 = 4.

Memory (bytes allocated during the call beyond its inputs Q, K, V; what `torch.cuda.max_memory_allocated`
minus the inputs shows):
- naive: the N x N scores S = QK^T and probabilities P = softmax(S) of every (sequence, head), at the
  implementation's peak (`NaiveImplementation`: the textbook algorithm, HF eager, torch's SDPA math backend);
- FlashAttention (Dao et al. 2022, arXiv:2205.14135, Theorem 1): O(N) beyond the output; FlashAttention-2
  keeps one log-sum-exp per query row (fp32) for the backward pass. Extra = O (B H N d_v b) + LSE (B H N 4).

HBM traffic (Dao et al. 2022, Theorem 2: standard Theta(N d + N^2), Flash Theta(N^2 d^2 / M)); each count is
written out term by term in `standard_hbm_bytes` and `flash_hbm_bytes`.

FLOPs: QK^T and PV, 2 FLOPs per multiply-add: 2 (d_qk + d_v) x heads x batch x pairs, pairs = N^2
(non-causal) or N^2 / 2 (causal): 4 N^2 d h, halved for causal, the convention of the FlashAttention-3
paper's TFLOP/s (Shah et al. 2024, arXiv:2407.08608 s4.1), so times from its achieved rates are consistent.
Softmax exponentials are not counted (same convention).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Literal

from kvcalc.errors import InputError
from kvcalc.spec.base import record
from kvcalc.spec.dtypes import storage_type
from kvcalc.units import ceil_div

FP32 = 4

NaiveName = Literal["textbook", "eager", "torch-math"]


@record
class AttentionShape:
    """One attention call. `kv_heads` (default `heads`) < heads is GQA/MQA; `v_head_dim` defaults to
    `head_dim`; `window` (sliding) or `chunk` (Llama 4 local) restrict the keys each query sees."""

    seq_len: int
    heads: int
    head_dim: int
    kv_heads: int | None = None
    v_head_dim: int | None = None
    batch: int = 1
    dtype: str = "bf16"
    causal: bool = True
    window: int | None = None
    chunk: int | None = None

    def __post_init__(self) -> None:
        for name in ("seq_len", "heads", "head_dim", "batch"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_kv <= 0 or self.heads % self.n_kv:
            raise InputError(f"kv_heads {self.n_kv} must divide heads {self.heads} (GQA groups)")
        for name in ("window", "chunk", "v_head_dim"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InputError(f"{name} must be positive, got {value}")
        if self.window is not None and self.chunk is not None:
            raise InputError("give a sliding window or a chunk, not both")
        if storage_type(self.dtype).block_elements != 1:
            raise InputError(f"attention dtype must be a plain float type (bf16, fp16, fp32, fp8), not {self.dtype}")

    @property
    def n_kv(self) -> int:
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def d_v(self) -> int:
        return self.v_head_dim if self.v_head_dim is not None else self.head_dim

    @property
    def b(self) -> int:
        """Bytes per element of the input dtype."""
        return storage_type(self.dtype).block_bytes

    @property
    def rows(self) -> int:
        """(sequence, query head) pairs: batch x heads; each holds its own N x keys score matrix."""
        return self.batch * self.heads

    @property
    def band(self) -> int:
        """Keys per query a masked kernel stores: min(N, window or chunk) (N x band scores per head)."""
        limit = self.window or self.chunk
        return min(self.seq_len, limit) if limit else self.seq_len


def attended_pairs(shape: AttentionShape) -> float:
    """(query, key) pairs one head computes. Full: N^2, causal N^2 / 2 (FA3's convention). Sliding window
    w (causal): N k - k^2 / 2 with k = min(N, w). Chunks of c: whole chunks c^2 (causal c^2 / 2) plus the
    remainder r = N mod c."""
    n = shape.seq_len
    half = 0.5 if shape.causal else 1.0
    if shape.chunk:
        whole, rest = divmod(n, shape.chunk)
        return half * (whole * shape.chunk**2 + rest**2)
    k = shape.band
    return n * k - k * k / 2 if shape.causal else float(n * k)


def attention_flops(shape: AttentionShape) -> float:
    """QK^T and PV: 2 x (d_qk + d_v) x heads x batch x pairs (= 4 N^2 d h, halved when causal)."""
    return 2.0 * (shape.head_dim + shape.d_v) * shape.rows * attended_pairs(shape)


def input_bytes(shape: AttentionShape) -> dict[str, int]:
    """Q (B H N d), K (B H_kv N d), V (B H_kv N d_v) in the input dtype: GQA shares K/V across a group."""
    n, b = shape.seq_len, shape.b
    return {
        "Q": shape.rows * n * shape.head_dim * b,
        "K": shape.batch * shape.n_kv * n * shape.head_dim * b,
        "V": shape.batch * shape.n_kv * n * shape.d_v * b,
    }


def output_bytes(shape: AttentionShape, element_bytes: int | None = None) -> int:
    """O: B x H x N x d_v elements."""
    return shape.rows * shape.seq_len * shape.d_v * (element_bytes or shape.b)


def flash_extra(shape: AttentionShape) -> dict[str, int]:
    """FlashAttention-2's allocations: the output O and the fp32 log-sum-exp of every query row
    (`softmax_lse`, B x H x N; Dao 2023 arXiv:2307.08691 Algorithm 1 line 13; torch
    `_scaled_dot_product_flash_attention` returns it)."""
    return {"O": output_bytes(shape), "LSE (fp32)": shape.rows * shape.seq_len * FP32}


# --- naive implementations: the tensors live in each phase -------------------------------------------------


@record
class Phase:
    """Tensors (name -> bytes) live at one point of a naive forward."""

    name: str
    tensors: dict[str, int] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(self.tensors.values())


@record
class NaivePeak:
    """The phase of a naive implementation that holds the most memory, and what it holds."""

    implementation: str
    phase: str
    bytes: int
    bytes_per_score: int
    tensors: dict[str, int]


def _scores(shape: AttentionShape, element_bytes: int, keys: int) -> int:
    return shape.rows * shape.seq_len * keys * element_bytes


def _repeated_kv(shape: AttentionShape, element_bytes: int) -> dict[str, int]:
    """K and V expanded to every query head (GQA/MQA only): B H N d each."""
    if shape.n_kv == shape.heads:
        return {}
    n = shape.seq_len
    return {
        "K repeated to all heads": shape.rows * n * shape.head_dim * element_bytes,
        "V repeated to all heads": shape.rows * n * shape.d_v * element_bytes,
    }


@record
class TextbookAttention:
    """Standard attention as Dao et al. 2022 write it (Algorithm 0): S = QK^T written to HBM, P = softmax(S)
    written to HBM, O = PV, all in the input dtype. A banded kernel stores N x min(N, window) scores."""

    name: str = "textbook"
    source: str = "Dao et al. 2022 arXiv:2205.14135 Algorithm 0"

    def bytes_per_score(self, shape: AttentionShape) -> int:
        """S and P in the dtype: 2 b."""
        return 2 * shape.b

    def phases(self, shape: AttentionShape) -> tuple[Phase, ...]:
        s = _scores(shape, shape.b, shape.band)
        return (
            Phase(name="scores", tensors={"S": s}),
            Phase(name="softmax", tensors={"S": s, "P": s}),
            Phase(name="output", tensors={"P": s, "O": output_bytes(shape)}),
        )


@record
class EagerAttention:
    """transformers' `eager_attention_forward` (models/llama/modeling_llama.py): K/V expanded by `repeat_kv`,
    `matmul(q, k^T) * scaling` (two N x N tensors in the dtype while the product is scaled), the additive
    4-D mask (B x 1 x N x N in the dtype, built once per forward), `softmax(..., dtype=float32)` then
    `.to(dtype)`: S (b) + fp32 softmax (4) + P (b) live together. Windows are masked, not skipped: N x N."""

    name: str = "eager"
    source: str = "transformers modeling_llama.py eager_attention_forward"

    def bytes_per_score(self, shape: AttentionShape) -> int:
        """S (b) + fp32 softmax (4) + P (b) at the softmax's cast back."""
        return 2 * shape.b + FP32

    def phases(self, shape: AttentionShape) -> tuple[Phase, ...]:
        n, b = shape.seq_len, shape.b
        common = _repeated_kv(shape, b)
        if shape.causal or shape.window or shape.chunk:
            common["additive mask (B x N x N)"] = shape.batch * n * n * b
        s = _scores(shape, b, n)
        return (
            Phase(name="scores", tensors={**common, "QK^T": s, "QK^T x scale": s}),
            Phase(name="softmax", tensors={**common, "S": s, "softmax (fp32)": _scores(shape, FP32, n), "P": s}),
            Phase(name="output", tensors={**common, "P": s, "O": output_bytes(shape)}),
        )


@record
class TorchMathAttention:
    """torch's SDPA math backend, `_scaled_dot_product_attention_math` (aten/src/ATen/native/transformers/
    attention.cpp, torch 2.5 and later; the in-place zeroing below from after 2.6): fp16/bf16 Q, K, V are
    copied to fp32 ("Keep query, key, value in high precision"), Q is scaled into another fp32 tensor, GQA
    K/V are `repeat_interleave`d, `is_causal` builds an N x N mask converted to fp32, S = QK^T is fp32, and
    `_safe_softmax` holds S, softmax(S) and the bool `S.isneginf()` at once, 4 + 4 + 1 = 9 bytes per score,
    plus one bool per row for the fully masked rows; it writes the zeroed rows into softmax(S)'s own storage
    (`at::where_out(out, ...)`, the fix for pytorch#139612). Measured on an H100 with torch 2.11
    (docs/validation.md): 32 heads x 128, causal, N = 1,024 to 8,192, every peak within 512 B of this.
    Torch 2.5-2.6, before that fix, allocated `where(...)`'s result as a fourth N x N fp32 tensor (13 bytes
    per score). Windows come as an explicit bool mask (N x N, 1 B) converted to the input dtype (b)."""

    name: str = "torch-math"
    source: str = "pytorch aten/src/ATen/native/transformers/attention.cpp _scaled_dot_product_attention_math"

    def bytes_per_score(self, shape: AttentionShape) -> int:
        """_safe_softmax: S and softmax(S) in fp32 plus the bool -inf mask: 4 + 4 + 1."""
        return 2 * FP32 + 1

    def phases(self, shape: AttentionShape) -> tuple[Phase, ...]:
        n, b = shape.seq_len, shape.b
        common: dict[str, int] = {}
        if b < FP32:
            common.update({f"{k} (fp32 copy)": v * FP32 // b for k, v in input_bytes(shape).items()})
        common["Q x scale (fp32)"] = input_bytes(shape)["Q"] * FP32 // b
        common.update(_repeated_kv(shape, FP32))
        if shape.window or shape.chunk:
            common["window mask (bool + additive)"] = n * n * (1 + b)
        elif shape.causal:
            common["causal mask (fp32)"] = n * n * FP32
        s32 = _scores(shape, FP32, n)
        k_scaled = shape.rows * n * shape.head_dim * FP32
        return (
            Phase(name="scores", tensors={**common, "K^T x scale (fp32)": k_scaled, "S (fp32)": s32}),
            Phase(name="safe_softmax", tensors={
                **common, "S (fp32)": s32, "softmax (fp32), rows zeroed in place": s32,
                "S == -inf (bool)": _scores(shape, 1, n), "fully masked rows (bool)": shape.rows * n,
            }),
            Phase(name="output", tensors={
                **common, "P (fp32)": s32, "O (fp32)": output_bytes(shape, FP32), "O": output_bytes(shape),
                "P returned in dtype": _scores(shape, b, n),
            }),
        )


NaiveImplementation = TextbookAttention | EagerAttention | TorchMathAttention
NAIVE_IMPLEMENTATIONS: dict[str, NaiveImplementation] = {
    "textbook": TextbookAttention(),
    "eager": EagerAttention(),
    "torch-math": TorchMathAttention(),
}


def naive_implementation(name: str) -> NaiveImplementation:
    if name not in NAIVE_IMPLEMENTATIONS:
        raise InputError(f"unknown naive attention '{name}'; use {', '.join(NAIVE_IMPLEMENTATIONS)}")
    return NAIVE_IMPLEMENTATIONS[name]


def naive_peak(shape: AttentionShape, implementation: str = "textbook") -> NaivePeak:
    """The largest phase of `implementation`: peak = max over phases of the bytes live in it."""
    impl = naive_implementation(implementation)
    top = max(impl.phases(shape), key=lambda p: p.bytes)
    return NaivePeak(implementation=impl.name, phase=top.name, bytes=top.bytes,
                     bytes_per_score=impl.bytes_per_score(shape), tensors=dict(top.tensors))


# --- HBM traffic ---------------------------------------------------------------------------------------------


def standard_hbm_bytes(shape: AttentionShape) -> int:
    """Standard attention (Dao et al. 2022 Algorithm 0), per (sequence, query head), with k = band:
    read Q (N d) and K (N d), write S (N k), read S, write P (N k), read P, read V (N d_v), write O (N d_v):
    b x (2 N d + 2 N d_v + 4 N k), i.e. Theta(N d + N^2) (Theorem 2). GQA: each head's matmul reads its K/V."""
    n, k = shape.seq_len, shape.band
    per_head = 2 * n * shape.head_dim + 2 * n * shape.d_v + 4 * n * k
    return shape.rows * per_head * shape.b


@record
class FlashBlocks:
    """Algorithm 1's tiling for on-chip SRAM of M elements: B_c = ceil(M / 4d), B_r = min(B_c, d)."""

    sram_elements: int
    block_cols: int
    block_rows: int
    kv_blocks: int


def flash_blocks(shape: AttentionShape, sram_bytes: int) -> FlashBlocks:
    """B_c = ceil(M / (4 d)), B_r = min(B_c, d), T_c = ceil(N / B_c) with M = SRAM bytes / b elements and
    d = max(d_qk, d_v) (Dao et al. 2022 Algorithm 1 line 1)."""
    d = max(shape.head_dim, shape.d_v)
    m = sram_bytes // shape.b
    cols = ceil_div(m, 4 * d)
    return FlashBlocks(sram_elements=m, block_cols=cols, block_rows=min(cols, d),
                       kv_blocks=ceil_div(shape.seq_len, cols))


def _query_rows(shape: AttentionShape, blocks: FlashBlocks, j: int) -> int:
    """Query rows (whole B_r blocks) that attend some key of K/V block j: all N without a causal mask; from
    the block holding query j B_c (causal); up to the last query whose window or chunk reaches the block."""
    n, cols, rows = shape.seq_len, blocks.block_cols, blocks.block_rows
    if not shape.causal:
        return n
    lo = (j * cols) // rows * rows
    last_key = min(n, (j + 1) * cols) - 1
    if shape.window:
        last_query = last_key + shape.window - 1
    elif shape.chunk:
        last_query = (last_key // shape.chunk + 1) * shape.chunk - 1
    else:
        last_query = n - 1
    hi = min(n, (min(n - 1, last_query) // rows + 1) * rows)
    return max(0, hi - lo)


def flash_hbm_bytes(shape: AttentionShape, sram_bytes: int) -> int:
    """FlashAttention (Dao et al. 2022 Algorithm 1), per (sequence, query head):
    initialise O, l, m in HBM: N (d_v b + 2 x 4); load K and V once: N (d + d_v) b; for each of the T_c K/V
    blocks j, every query row that attends it loads Q_i, O_i, l_i, m_i and writes O_i, l_i, m_i:
    rows_j x (b (d + 2 d_v) + 4 x 4). Without a mask rows_j = N, so the passes cost
    T_c N (3 d b + 16) ~ 12 N^2 d^2 b / M: Theta(N^2 d^2 / M) (Theorem 2). l and m are fp32.
    Causal and windowed masks skip blocks no query attends. L2-cache reuse is not modelled."""
    blocks = flash_blocks(shape, sram_bytes)
    n, b, d, dv = shape.seq_len, shape.b, shape.head_dim, shape.d_v
    row_bytes = b * (d + 2 * dv) + 4 * FP32
    passes = sum(_query_rows(shape, blocks, j) for j in range(blocks.kv_blocks)) * row_bytes
    per_head = n * (dv * b + 2 * FP32) + n * (d + dv) * b + passes
    return shape.rows * per_head


# --- the public summary --------------------------------------------------------------------------------------


@record
class AttentionFootprint:
    """Everything about one attention call (see the module docstring): memory beyond the inputs for the
    chosen naive implementation and for FlashAttention, every implementation's peak, HBM traffic
    (`flash_hbm_bytes` None without an SRAM size) and FLOPs."""

    shape: AttentionShape
    input_bytes: int
    naive: NaivePeak
    naive_extra_bytes: int
    naive_by_implementation: dict[str, int]
    flash_extra_bytes: int
    flash_tensors: dict[str, int]
    naive_hbm_bytes: int
    flash_hbm_bytes: int | None
    flash_blocks: FlashBlocks | None
    flops: float


def attention_footprint(
    seq_len: int,
    heads: int,
    head_dim: int,
    *,
    batch: int = 1,
    dtype: str = "bf16",
    kv_heads: int | None = None,
    v_head_dim: int | None = None,
    causal: bool = True,
    window: int | None = None,
    chunk: int | None = None,
    sram_per_sm_bytes: int | None = None,
    naive: str = "textbook",
) -> AttentionFootprint:
    """Memory, HBM traffic and FLOPs of one attention forward of `batch` x `heads` heads over `seq_len`
    tokens in `dtype` (a `torch.nn.functional.scaled_dot_product_attention` call with is_causal=`causal`).

    `naive_extra_bytes`: peak bytes the naive implementation allocates beyond Q, K, V (`naive`: "textbook"
    S and P in the dtype; "eager" transformers' eager attention; "torch-math" SDPA's math backend);
    `flash_extra_bytes`: the output plus the fp32 log-sum-exp (SDPA's flash backend);
    `naive_hbm_bytes` / `flash_hbm_bytes`: DRAM traffic of Algorithm 0 / Algorithm 1 of Dao et al. 2022 with
    `sram_per_sm_bytes` of on-chip memory; `flops`: 4 N^2 d heads batch, halved when causal.

    >>> f = attention_footprint(8192, 32, 128)        # 32 heads x 8192^2 scores x 2 B = 4 GiB each of S, P
    >>> f.naive_extra_bytes == 2 * 32 * 8192**2 * 2
    True
    """
    shape = AttentionShape(seq_len=seq_len, heads=heads, head_dim=head_dim, kv_heads=kv_heads,
                           v_head_dim=v_head_dim, batch=batch, dtype=dtype, causal=causal, window=window,
                           chunk=chunk)
    peak = naive_peak(shape, naive)
    flash = flash_extra(shape)
    return AttentionFootprint(
        shape=shape,
        input_bytes=sum(input_bytes(shape).values()),
        naive=peak,
        naive_extra_bytes=peak.bytes,
        naive_by_implementation={name: naive_peak(shape, name).bytes for name in NAIVE_IMPLEMENTATIONS},
        flash_extra_bytes=sum(flash.values()),
        flash_tensors=flash,
        naive_hbm_bytes=standard_hbm_bytes(shape),
        flash_hbm_bytes=flash_hbm_bytes(shape, sram_per_sm_bytes) if sram_per_sm_bytes else None,
        flash_blocks=flash_blocks(shape, sram_per_sm_bytes) if sram_per_sm_bytes else None,
        flops=attention_flops(shape),
    )


def longest_fitting(need: Callable[[int], int], budget: int, limit: int = 1 << 24) -> int | None:
    """Largest N in [1, limit] with need(N) <= budget (need non-decreasing in N); 0 when N = 1 does not fit,
    None when even `limit` fits. Doubling, then bisection."""
    if need(1) > budget:
        return 0
    if need(limit) <= budget:
        return None
    lo, hi = 1, limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if need(mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo
