"""`kvcalc attention`: naive attention's materialized scores vs FlashAttention, for one shape or a model.

Every formula lives in `kvcalc.calc.attention_memory`; this module picks the shapes (one per kind of
attention layer of a model, on one tensor-parallel rank), the memory budget (the DeploymentPlan's device
after weights, or the card's usable memory) and sums per-layer figures into whole-model ones: memory at the
peak of the largest layer (layers run one at a time and free their intermediates), traffic, FLOPs and time
summed over layers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvcalc.calc import attention_memory as am
from kvcalc.calc.attention_time import FLASH_KERNELS, FlashKernel, flash_time
from kvcalc.calc.engines import Assumption
from kvcalc.errors import InputError
from kvcalc.report.explain import Derivation
from kvcalc.spec.base import record
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec
from kvcalc.units import fmt_bytes

_DAO = "Dao et al. 2022 arXiv:2205.14135"
_FA3 = "Shah et al. 2024 arXiv:2407.08608"


@record
class AttentionLayerRow:
    """One kind of attention layer (per layer, on one TP rank) and how many layers share it."""

    kind: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    v_head_dim: int
    keys_per_query: int
    naive_extra_bytes: int
    naive_phase: str
    flash_extra_bytes: int
    naive_hbm_bytes: int
    flash_hbm_bytes: int | None
    flops: float


@record
class AttentionTiming:
    """A forward time for the whole call (model: every attention layer) at a stated rate."""

    kernel: str
    time_s: float
    rate_flops: float
    basis: str


@record
class AttentionBudget:
    """Memory the attention call may use and the longest sequence each kernel fits in it.

    need(N) = batch x KV cache of every layer at N (a model) or Q + K + V (a bare shape) + the largest
    layer's Q and intermediates (naive peak, or FlashAttention's output + LSE). `*_max_seq_len`: the
    largest N with need(N) <= bytes (None: fits up to 2^24 tokens)."""

    bytes: int
    source: str
    kv_cache_bytes: int
    naive_need_bytes: int
    flash_need_bytes: int
    naive_fits: bool
    flash_fits: bool
    naive_max_seq_len: int | None
    flash_max_seq_len: int | None


@record
class AttentionReport:
    model: str | None
    gpu: str
    seq_len: int
    batch: int
    dtype: str
    causal: bool
    naive_implementation: str
    tp: int
    layers: tuple[AttentionLayerRow, ...]
    naive_extra_bytes: int
    flash_extra_bytes: int
    naive_hbm_bytes: int
    flash_hbm_bytes: int | None
    flops: float
    naive_by_implementation: dict[str, int]
    memory_saving: float
    timings: tuple[AttentionTiming, ...]
    budget: AttentionBudget
    assumptions: dict[str, Assumption]
    notes: tuple[str, ...]
    explain: tuple[Derivation, ...] = ()


@record
class _Group:
    kind: str
    layers: int
    make: Callable[[int], am.AttentionShape]


def _mixer_group(mixer: Any, tp: int, batch: int, dtype: str, causal: bool) -> tuple[str, Callable[[int], Any]]:
    """(kind label, N -> AttentionShape on one TP rank) of a softmax-attention mixer."""
    from kvcalc.spec.layers import MLAAttention, kv_heads_per_rank

    heads = mixer.num_heads // tp
    extra: dict[str, int] = {}
    if isinstance(mixer, MLAAttention):  # prefill decompresses per-head K (nope + rope) and V (vLLM MLA prefill)
        d, dv, kv, label = mixer.qk_nope_head_dim + mixer.qk_rope_head_dim, mixer.v_head_dim, heads, "mla"
    else:
        d, dv, kv = mixer.head_dim, mixer.value_dim, kv_heads_per_rank(mixer.num_kv_heads, tp)
        label = mixer.kind
        if mixer.kind == "sliding":
            label, extra = f"sliding({mixer.window:,})", {"window": mixer.window}
        elif mixer.kind == "chunked":
            label, extra = f"chunked({mixer.window:,})", {"chunk": mixer.window}

    def make(n: int) -> am.AttentionShape:
        return am.AttentionShape(seq_len=n, heads=heads, head_dim=d, kv_heads=kv, v_head_dim=dv, batch=batch,
                                 dtype=dtype, causal=causal, **extra)

    return label, make


def model_groups(model: ModelSpec, tp: int, batch: int, dtype: str, causal: bool) -> list[_Group]:
    """One group per distinct softmax/MLA attention layer shape (recurrent layers have no attention)."""
    groups: dict[str, _Group] = {}
    for layer in model.layers:
        if layer.kind not in ("full", "sliding", "chunked", "mla"):
            continue
        key = repr(layer.mixer)
        if key in groups:
            g = groups[key]
            groups[key] = _Group(kind=g.kind, layers=g.layers + 1, make=g.make)
        else:
            label, make = _mixer_group(layer.mixer, tp, batch, dtype, causal)
            groups[key] = _Group(kind=label, layers=1, make=make)
    if not groups:
        raise InputError(f"{model.id} has no softmax attention layers (recurrent mixers only)")
    return list(groups.values())


def _row(group: _Group, n: int, sram: int | None, naive: str) -> AttentionLayerRow:
    shape = group.make(n)
    f = am.attention_footprint(
        n, shape.heads, shape.head_dim, batch=shape.batch, dtype=shape.dtype, kv_heads=shape.n_kv,
        v_head_dim=shape.d_v, causal=shape.causal, window=shape.window, chunk=shape.chunk,
        sram_per_sm_bytes=sram, naive=naive,
    )
    return AttentionLayerRow(
        kind=group.kind, layers=group.layers, heads=shape.heads, kv_heads=shape.n_kv, head_dim=shape.head_dim,
        v_head_dim=shape.d_v, keys_per_query=shape.band, naive_extra_bytes=f.naive_extra_bytes,
        naive_phase=f.naive.phase, flash_extra_bytes=f.flash_extra_bytes, naive_hbm_bytes=f.naive_hbm_bytes,
        flash_hbm_bytes=f.flash_hbm_bytes, flops=f.flops,
    )


def _need(groups: list[_Group], naive: str | None, kv_bytes: Callable[[int], int] | None) -> Callable[[int], int]:
    """need(N): resident bytes (KV cache, or Q K V of a bare call) + the largest layer's Q and intermediates."""

    def need(n: int) -> int:
        worst = 0
        for g in groups:
            shape = g.make(n)
            inputs = am.input_bytes(shape)
            resident = inputs["Q"] if kv_bytes is not None else sum(inputs.values())
            extra = am.naive_peak(shape, naive).bytes if naive else sum(am.flash_extra(shape).values())
            worst = max(worst, resident + extra)
        return worst + (kv_bytes(n) if kv_bytes is not None else 0)

    return need


def _budget(groups: list[_Group], n: int, naive: str, budget: int, source: str,
            kv_bytes: Callable[[int], int] | None) -> AttentionBudget:
    naive_need, flash_need = _need(groups, naive, kv_bytes), _need(groups, None, kv_bytes)
    return AttentionBudget(
        bytes=budget, source=source, kv_cache_bytes=kv_bytes(n) if kv_bytes else 0,
        naive_need_bytes=naive_need(n), flash_need_bytes=flash_need(n), naive_fits=naive_need(n) <= budget,
        flash_fits=flash_need(n) <= budget, naive_max_seq_len=am.longest_fitting(naive_need, budget),
        flash_max_seq_len=am.longest_fitting(flash_need, budget),
    )


def _flash_timing(kernel: FlashKernel, groups: list[_Group], rows: list[AttentionLayerRow], n: int, gpu: GpuSpec,
                  peak: float, dtype: str, flops: float) -> AttentionTiming:
    """One FlashAttention kernel over every attention layer: the tile model's time per layer kind x layers."""
    fraction = kernel.fraction(gpu, dtype)
    times = [flash_time(g.make(n), kernel, peak, fraction, gpu.sm_count, gpu.cuda_capability) for g in groups]
    time_s = sum(t.time_s * r.layers for t, r in zip(times, rows, strict=True))
    tiles = " / ".join(sorted({f"{t.block_q} x {t.block_kv}" for t in times}))
    sms = f"{gpu.sm_count} SMs taking CTAs in launch order" if gpu.sm_count else \
        "an ideal schedule (no SM count listed)"
    return AttentionTiming(kernel=kernel.name, time_s=time_s, rate_flops=flops / time_s if time_s else 0.0,
                           basis=f"{tiles} tiles, {kernel.setup_iterations} setup iterations per CTA, "
                                 f"{fraction:.1%} of the dense {dtype} peak, {sms}; {kernel.source}")


def _timings(rows: list[AttentionLayerRow], groups: list[_Group], n: int, gpu: GpuSpec,
             naive_hbm: int, notes: list[str]) -> tuple[AttentionTiming, ...]:
    """FlashAttention-2 and -3 (where the card runs it) from the tile model; naive at its roofline floor."""
    from kvcalc.spec.gpu import normalize_dtype

    dtype = normalize_dtype(groups[0].make(n).dtype)
    try:
        peak = gpu.flops(dtype)
    except InputError:
        notes.append(f"{gpu.name} lists no dense {dtype} peak: no attention times")
        return ()
    flops = sum(r.flops * r.layers for r in rows)
    # The naive kernel computes every stored score, masked or not: 2 (d + d_v) x rows x N x band.
    naive_flops = sum(2.0 * (r.head_dim + r.v_head_dim) * g.make(n).rows * n * r.keys_per_query * r.layers
                      for r, g in zip(rows, groups, strict=True))
    naive_floor = max(naive_flops / peak, naive_hbm / gpu.memory_bandwidth_bytes_per_s)
    flash = []
    for kernel in FLASH_KERNELS:
        why = next((w for g in groups if (w := kernel.unsupported(gpu, g.make(n)))), None)
        if why is None:
            flash.append(_flash_timing(kernel, groups, rows, n, gpu, peak, dtype, flops))
        else:
            notes.append(f"{kernel.name} does not run here ({why}): no time for it")
    return (
        *flash,
        AttentionTiming(kernel="naive (Algorithm 0) roofline floor", time_s=naive_floor,
                        rate_flops=naive_flops / naive_floor if naive_floor else 0.0,
                        basis="max(every stored score's FLOPs / peak, Algorithm 0 traffic / bandwidth): a lower "
                              "bound"),
    )


def _model_setup(model: ModelSpec, gpu: GpuSpec, tp: int, dtype: str | None) -> tuple[str, int, str, Any]:
    """(dtype, budget bytes, budget source, N -> KV bytes of one sequence) from the model's DeploymentPlan."""
    from kvcalc.calc import kv as kvmod
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.spec.deployment import EngineSettings, Parallel
    from kvcalc.spec.dtypes import storage_type

    plan = plan_deployment(model, gpu, Parallel(tp=tp), EngineSettings())
    dev = plan.binding_device
    budget = dev.total_bytes - dev.weights_bytes - dev.non_torch_bytes
    if budget <= 0:
        raise InputError(f"{model.id}'s weights ({fmt_bytes(dev.weights_bytes)} per GPU at tp={tp}) leave nothing "
                         f"on {gpu.name} ({fmt_bytes(dev.total_bytes)}); pass a larger --tp")
    source = (f"{gpu.name} usable {fmt_bytes(dev.total_bytes)} - weights {fmt_bytes(dev.weights_bytes)} - "
              f"non-torch {fmt_bytes(dev.non_torch_bytes)} (DeploymentPlan, {plan.engine} {plan.engine_version})")
    chosen = dtype or plan.serving_dtype
    kv = storage_type(chosen)
    return chosen, budget, source, lambda n: kvmod.bytes_per_sequence(model, n, kv, tp)


def _shape_group(seq_len: int, heads: int, head_dim: int, kv_heads: int | None, batch: int, dtype: str,
                 causal: bool) -> _Group:
    """One full-attention layer of the given shape (without MODEL), checked now at `seq_len` so a bad shape
    fails with a clear message."""

    def make(n: int) -> am.AttentionShape:
        return am.AttentionShape(seq_len=n, heads=heads, head_dim=head_dim, kv_heads=kv_heads, batch=batch,
                                 dtype=dtype, causal=causal)

    make(seq_len)
    return _Group(kind="full", layers=1, make=make)


def attention_report(
    gpu: GpuSpec,
    seq_len: int,
    *,
    model: ModelSpec | None = None,
    heads: int | None = None,
    head_dim: int | None = None,
    kv_heads: int | None = None,
    batch: int = 1,
    dtype: str | None = None,
    causal: bool = True,
    naive: str = "textbook",
    tp: int = 1,
    explain: bool = False,
) -> AttentionReport:
    """Naive vs FlashAttention memory, traffic, FLOPs and time for `model` (every attention layer kind, on
    one of `tp` ranks) or for one shape (`heads`, `head_dim`, `kv_heads`), on `gpu`."""
    am.naive_implementation(naive)
    if batch <= 0 or tp <= 0:
        raise InputError("--batch and --tp must be positive")
    notes: list[str] = []
    if model is not None:
        dtype, budget, source, per_seq = _model_setup(model, gpu, tp, dtype)
        groups = model_groups(model, tp, batch, dtype, causal)
        kv_bytes: Callable[[int], int] | None = lambda n: batch * per_seq(n)  # noqa: E731
        _model_notes(model, groups, notes)
    else:
        if heads is None or head_dim is None:
            raise InputError("give a MODEL, or --heads and --head-dim")
        dtype = dtype or "bf16"
        groups = [_shape_group(seq_len, heads, head_dim, kv_heads, batch, dtype, causal)]
        budget, source, kv_bytes = gpu.usable_memory_bytes, f"{gpu.name} usable memory", None
    sram = gpu.sram_per_sm_bytes
    if sram is None:
        notes.append(f"{gpu.name} publishes no on-chip SRAM per SM: FlashAttention's HBM traffic not computed")
    rows = [_row(g, seq_len, sram, naive) for g in groups]
    naive_hbm = sum(r.naive_hbm_bytes * r.layers for r in rows)
    flash_hbm = None if sram is None else sum((r.flash_hbm_bytes or 0) * r.layers for r in rows)
    by_impl = {name: max(am.naive_peak(g.make(seq_len), name).bytes for g in groups)
               for name in am.NAIVE_IMPLEMENTATIONS}
    naive_extra = max(r.naive_extra_bytes for r in rows)
    flash_extra = max(r.flash_extra_bytes for r in rows)
    report = AttentionReport(
        model=model.id if model else None, gpu=gpu.name, seq_len=seq_len, batch=batch, dtype=dtype,
        causal=causal, naive_implementation=naive, tp=tp, layers=tuple(rows), naive_extra_bytes=naive_extra,
        flash_extra_bytes=flash_extra, naive_hbm_bytes=naive_hbm, flash_hbm_bytes=flash_hbm,
        flops=sum(r.flops * r.layers for r in rows), naive_by_implementation=by_impl,
        memory_saving=round(naive_extra / flash_extra, 2),
        timings=_timings(rows, groups, seq_len, gpu, naive_hbm, notes),
        budget=_budget(groups, seq_len, naive, budget, source, kv_bytes),
        assumptions=_assumptions(naive, sram, gpu, groups[0].make(seq_len)), notes=tuple(notes),
    )
    if explain:
        from kvcalc.spec.base import replace

        report = replace(report, explain=_explain(report, groups, gpu))
    return report


def _model_notes(model: ModelSpec, groups: list[_Group], notes: list[str]) -> None:
    kinds = {layer.kind for layer in model.layers}
    if kinds & {"linear", "mamba"}:
        notes.append("recurrent layers (linear attention, Mamba) hold a fixed state and have no N x N scores")
    if kinds & {"sliding", "chunked"}:
        notes.append("sliding/chunked layers: the textbook kernel and FlashAttention compute only the band "
                     "(N x min(N, window) scores); HF eager and torch's math backend mask a full N x N")
    if "mla" in kinds:
        notes.append("MLA as prefill computes it: per-head K (qk_nope + qk_rope) and V decompressed from the "
                     "latent (vLLM/SGLang MLA prefill); decode attends the latent instead")
    if any(g.make(1).n_kv < g.make(1).heads for g in groups):
        notes.append("GQA: K/V are stored once per KV head; naive implementations that expand them "
                     "(repeat_kv, enable_gqa) count the copies")


def _kernel_assumptions(gpu: GpuSpec, shape: am.AttentionShape) -> dict[str, Assumption]:
    """Each FlashAttention kernel's tile, setup and peak fraction on this card (the tile model's constants)."""
    out = {}
    for k in FLASH_KERNELS:
        if k.unsupported(gpu, shape) is None:
            out[f"{k.key}_tiles"] = Assumption(value="; ".join(rule.describe() for rule in k.tiles),
                                               source=k.source)
            out[f"{k.key}_setup_iterations"] = Assumption(value=k.setup_iterations, source=k.source)
            out[f"{k.key}_fraction_of_peak"] = Assumption(value=k.fraction(gpu, shape.dtype), source=k.source)
    return out


def _assumptions(naive: str, sram: int | None, gpu: GpuSpec, shape: am.AttentionShape) -> dict[str, Assumption]:
    impl = am.naive_implementation(naive)
    out = {
        "naive_implementation": Assumption(value=naive, source=impl.source),
        **_kernel_assumptions(gpu, shape),
        "flops_convention": Assumption(value="4 N^2 d heads, causal halves", source=f"{_FA3} s4.1"),
    }
    if sram is not None:
        out["sram_per_sm_bytes"] = Assumption(value=sram, unit="B", source="hardware/*.yaml (M of Theorem 2)")
    return out


def _explain(report: AttentionReport, groups: list[_Group], gpu: GpuSpec) -> tuple[Derivation, ...]:
    """Each figure of the largest layer with its numbers, then the model totals and the fit search."""
    i = max(range(len(report.layers)), key=lambda k: report.layers[k].naive_extra_bytes)
    row, shape = report.layers[i], groups[i].make(report.seq_len)
    n, k, b, bh = shape.seq_len, shape.band, shape.b, f"{shape.batch} x {shape.heads}"
    peak = am.naive_peak(shape, report.naive_implementation)
    where = f" ({row.kind} layer)" if report.model else ""
    out = [
        Derivation(figure=f"naive scores S{where}", formula="batch x heads x N x keys x bytes(dtype)",
                   substituted=f"{bh} x {n:,} x {k:,} x {b}",
                   value=fmt_bytes(shape.rows * n * k * b), source=f"{_DAO} Algorithm 0"),
        Derivation(figure=f"naive peak ({peak.implementation}, phase {peak.phase})", formula=" + ".join(peak.tensors),
                   substituted=" + ".join(f"{v:,}" for v in peak.tensors.values()),
                   value=f"{peak.bytes:,} B ({fmt_bytes(peak.bytes)})",
                   source=am.naive_implementation(report.naive_implementation).source),
        Derivation(figure="FlashAttention extra", formula="O + LSE = B H N d_v b + B H N x 4 (fp32)",
                   substituted=f"{bh} x {n:,} x {shape.d_v} x {b} + {bh} x {n:,} x 4",
                   value=f"{row.flash_extra_bytes:,} B ({fmt_bytes(row.flash_extra_bytes)})",
                   source="Dao 2023 arXiv:2307.08691 Algorithm 1 (softmax_lse)"),
        Derivation(figure="standard HBM traffic", formula="B H b (2 N d + 2 N d_v + 4 N k): read Q, K, V, write O; "
                   "write S, read S, write P, read P",
                   substituted=f"{bh} x {b} x (2 x {n:,} x {shape.head_dim} + 2 x {n:,} x {shape.d_v} + "
                   f"4 x {n:,} x {k:,})", value=f"{row.naive_hbm_bytes:,} B", source=f"{_DAO} Theorem 2"),
    ]
    if row.flash_hbm_bytes is not None and gpu.sram_per_sm_bytes:
        blk = am.flash_blocks(shape, gpu.sram_per_sm_bytes)
        out.append(Derivation(
            figure="FlashAttention HBM traffic",
            formula="B H [N (d_v b + 8) + N (d + d_v) b + sum_j rows_j (b (d + 2 d_v) + 16)], "
                    "B_c = ceil(M / 4d), B_r = min(B_c, d), T_c = ceil(N / B_c)",
            substituted=f"M = {gpu.sram_per_sm_bytes:,} / {b} = {blk.sram_elements:,}; B_c = {blk.block_cols}, "
                        f"B_r = {blk.block_rows}, T_c = {blk.kv_blocks}",
            value=f"{row.flash_hbm_bytes:,} B ({row.naive_hbm_bytes / row.flash_hbm_bytes:.2f}x less)",
            source=f"{_DAO} Algorithm 1, Theorem 2"))
    pairs = am.attended_pairs(shape)
    out.append(Derivation(figure="attention FLOPs", formula="2 (d + d_v) x B x H x pairs (pairs N^2, causal / 2)",
                          substituted=f"2 x ({shape.head_dim} + {shape.d_v}) x {bh} x {pairs:,.0f}",
                          value=f"{row.flops:.4g} FLOP per layer", source=f"{_FA3} s4.1"))
    if report.model:
        out.append(Derivation(figure="model totals", formula="sum over layers (traffic, FLOPs); max (memory)",
                              substituted=", ".join(f"{r.layers} x {r.kind}" for r in report.layers),
                              value=f"{report.flops:.4g} FLOP, naive {report.naive_hbm_bytes:,} B, flash "
                                    f"{report.flash_hbm_bytes or 0:,} B", source="layers run one at a time"))
    out.extend(_time_derivation(t, report, groups, gpu) for t in report.timings)
    bud = report.budget
    out.append(Derivation(figure="longest N that fits naive / flash",
                          formula="largest N with resident(N) + layer peak(N) <= budget",
                          substituted=f"budget {bud.bytes:,} B = {bud.source}",
                          value=f"{bud.naive_max_seq_len} / {bud.flash_max_seq_len} tokens",
                          source="kvcalc.calc.attention_memory.longest_fitting"))
    return tuple(out)


def _time_derivation(t: AttentionTiming, report: AttentionReport, groups: list[_Group], gpu: GpuSpec
                     ) -> Derivation:
    """A FlashAttention time as layers x makespan x one iteration, per layer kind; the naive floor as FLOPs / rate."""
    kernel = next((k for k in FLASH_KERNELS if k.name == t.kernel), None)
    if kernel is None:
        return Derivation(figure=f"time, {t.kernel}", formula="FLOPs / rate", substituted=
                          f"{t.rate_flops * t.time_s:.4g} / {t.rate_flops:.4g}", value=f"{t.time_s * 1e3:.3f} ms",
                          source=t.basis)
    peak, fraction = gpu.flops(report.dtype), kernel.fraction(gpu, report.dtype)
    sms = "SMs" if gpu.sm_count else "1 (no SM count: the whole chip)"
    terms = [(r.layers, flash_time(g.make(report.seq_len), kernel, peak, fraction, gpu.sm_count, gpu.cuda_capability))
             for r, g in zip(report.layers, groups, strict=True)]
    return Derivation(
        figure=f"time, {t.kernel}",
        formula="sum over layer kinds of layers x M x t_iter; M: SMs taking CTAs (KV tiles visited + s) in launch "
                f"order; t_iter = 2 Br Bc (d + d_v) x {sms} / (peak x f)",
        substituted=" + ".join(f"{n} x {ft.makespan_iterations:,.1f} x {ft.iteration_s * 1e6:.4g} us "
                               f"({ft.ctas:,} CTAs)" for n, ft in terms),
        value=f"{t.time_s * 1e3:.3f} ms ({t.rate_flops / 1e12:,.0f} TFLOP/s)", source=t.basis)


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:,.3g}" if n < 2**30 else f"{n / 2**30:,.1f}"


def _tokens(n: int | None) -> str:
    return "> 16,777,216" if n is None else f"{n:,}"


def render_attention(console: Any, report: AttentionReport) -> None:
    """Per-layer table, the comparison, times and fit."""
    from rich.table import Table

    who = report.model or f"{report.layers[0].heads} heads x {report.layers[0].head_dim}"
    console.print(f"[bold]Attention at N = {report.seq_len:,}[/bold], batch {report.batch}, {report.dtype}, "
                  f"{'causal' if report.causal else 'non-causal'}: {who} on {report.gpu}"
                  + (f" (one of tp={report.tp} ranks)" if report.tp > 1 else ""), markup=True)
    t = Table(title=f"Per layer, one call (GiB; naive = {report.naive_implementation})", title_justify="left")
    t.add_column("layer", no_wrap=True)
    for col in ("n", "h/kv/d", "keys", "naive", "flash", "naive HBM", "flash HBM", "TFLOP"):
        t.add_column(col, justify="right", no_wrap=col in ("h/kv/d", "keys"))
    for r in report.layers:
        t.add_row(r.kind, str(r.layers), f"{r.heads}/{r.kv_heads}/{r.head_dim}", str(r.keys_per_query),
                  _gib(r.naive_extra_bytes), _gib(r.flash_extra_bytes), _gib(r.naive_hbm_bytes),
                  _gib(r.flash_hbm_bytes), f"{r.flops / 1e12:,.2f}")
    console.print(t)
    s = Table(title="Naive vs FlashAttention" + (" (whole model)" if report.model else ""), title_justify="left")
    s.add_column("")
    s.add_column("naive", justify="right")
    s.add_column("FlashAttention", justify="right")
    s.add_row("extra memory at the peak", fmt_bytes(report.naive_extra_bytes), fmt_bytes(report.flash_extra_bytes))
    s.add_row("HBM traffic", fmt_bytes(report.naive_hbm_bytes),
              fmt_bytes(report.flash_hbm_bytes) if report.flash_hbm_bytes is not None else "-")
    b = report.budget
    s.add_row(f"fits the budget at N = {report.seq_len:,}", "yes" if b.naive_fits else "NO",
              "yes" if b.flash_fits else "NO")
    s.add_row("longest N that fits", _tokens(b.naive_max_seq_len), _tokens(b.flash_max_seq_len))
    console.print(s)
    impl = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in report.naive_by_implementation.items())
    console.print(f"naive peak by implementation: {impl}", markup=False)
    for tm in report.timings:
        console.print(f"{tm.kernel}: {tm.time_s * 1e3:,.3f} ms ({tm.basis})", markup=False)
    kv = f"; KV cache at N: {fmt_bytes(b.kv_cache_bytes)}" if b.kv_cache_bytes else ""
    console.print(f"budget: {fmt_bytes(b.bytes)} = {b.source}{kv}", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
