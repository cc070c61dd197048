"""`kvcalc attention-variants`: one model's KV cache as MHA, GQA, MQA and MLA (report records, builder, renderer).

Each row is the model with its attention layers' KV heads (or cache layout) changed and everything else
kept: layer count, head sizes, sliding/chunked windows, recurrent states. Formulas and sources are in
`kvcalc.calc.variants`; bytes are summed by `kvcalc.calc.kv`. Bytes per token and savings are the whole
model's (tp = 1); the tokens that fit are one tensor-parallel rank's: its bytes per token at the plan's tp
against its own KV pool, the arithmetic `kvcalc fit` does (so the model's own row is fit's figure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvcalc.calc import kv as kvcalc_kv
from kvcalc.calc import variants as calc
from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.engines.settings import AnySettings
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.errors import InputError, KvcalcError
from kvcalc.report.explain import Derivation
from kvcalc.report.inspect import layer_pattern
from kvcalc.spec.base import record
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.dtypes import StorageType, storage_type
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.layers import FullAttention, MLAAttention, kv_heads_per_rank
from kvcalc.spec.model import ModelSpec
from kvcalc.units import fmt_bytes

_SOURCES = "Shazeer 2019 arXiv:1911.02150 (MQA); Ainslie et al. 2023 arXiv:2305.13245 (GQA)"
_MLA_SOURCE = "DeepSeek-V2 arXiv:2405.04434 s2.1; vLLM MLAAttentionSpec"


@record
class MemoryBudget:
    """The KV memory of one tensor-parallel rank: `--memory` (the whole model on one GPU, tp = 1), or the KV pool
    of one GPU of the deployment `kvcalc fit` plans for the same GPU, engine and settings (the least
    tensor-parallel degree whose GPUs hold the weights, unless --tp).

    With a plan: bytes = the binding GPU's KV pool bytes, which holds each token's max(1, n_kv / tp) KV heads of
    every layer; every GPU of the group holds the same tokens, so the model's own row is what `kvcalc fit`
    reports (`fit_kv_cache_tokens`) for layers that keep every token (the engine's own grouping of windowed and
    recurrent layers can differ).
    """

    bytes: int
    source: str
    gpu: str | None = None
    gpu_count: int | None = None
    usable_bytes_per_gpu: int | None = None
    weights_bytes: int | None = None
    engine: str | None = None
    tp: int | None = None
    block_size: int | None = None
    fit_kv_cache_tokens: int | None = None


@record
class VariantRow:
    """One attention layout of the model.

    `kv_bytes_per_token` counts one token in every attention layer (windowed ones included) of the whole model
    (tp = 1): the sum over layers of 2 x n_kv x head_dim x bytes (or the MLA latent), the basis of
    `savings_vs_mha` (= n_heads / n_kv when the layers are uniform) and `savings_vs_model`.
    `bytes_per_token` and `fixed_bytes_per_sequence` are one rank's at the report's `tp` (`kvcalc inspect`'s at
    tp = 1): what each token adds past every window with max(1, n_kv / tp) KV heads per layer (an MLA latent
    whole), and what windowed layers and recurrent states hold per sequence. `max_tokens` is the longest single
    sequence that one rank's memory holds (None: any length fits); `sequences_at_context` how many
    `context`-token sequences it holds (None without `--context`). Every rank holds the same tokens.
    """

    name: str
    scheme: str
    kv_heads: int | None
    queries_per_kv_head: float | None
    model_own: bool
    hypothetical: bool
    kv_bytes_per_token: int
    bytes_per_token: int
    fixed_bytes_per_sequence: int
    savings_vs_mha: float
    savings_vs_model: float
    max_tokens: int | None
    sequences_at_context: int | None


@record
class VariantsReport:
    model: str
    model_type: str
    num_layers: int
    attention_layers: int
    layer_pattern: str
    layer_kinds: dict[str, int]
    num_heads: int
    model_kv_heads: int | None
    mla: bool
    kv_dtype: str
    context: int | None
    memory: MemoryBudget
    tp: int
    variants: tuple[VariantRow, ...]
    notes: tuple[str, ...]
    explain: tuple[Derivation, ...]


def _bytes_text(kv: StorageType) -> str:
    return str(kv.block_bytes) if kv.block_elements == 1 else f"{kv.block_bytes}/{kv.block_elements}"


def _kv_terms(model: ModelSpec, kv: StorageType, tp: int = 1) -> str:
    """`80 x 2 x 8 x 128 x 2` per group of identical attention layers, joined by ` + `: KV heads per rank
    max(1, n_kv / tp), the MLA latent whole."""
    groups: dict[str, tuple[int, Any]] = {}
    for layer in calc.attention_layers(model):
        key = repr(layer.mixer)
        count, mixer = groups.get(key, (0, layer.mixer))
        groups[key] = (count + 1, mixer)
    b = _bytes_text(kv)
    terms = []
    for count, mixer in groups.values():
        if isinstance(mixer, MLAAttention):
            term = f"{count} x ({mixer.kv_lora_rank} + {mixer.qk_rope_head_dim}) x {b}"
        elif isinstance(mixer, FullAttention) and mixer.value_dim == mixer.head_dim:
            term = f"{count} x 2 x {kv_heads_per_rank(mixer.num_kv_heads, tp)} x {mixer.head_dim} x {b}"
        else:
            term = (f"{count} x {kv_heads_per_rank(mixer.num_kv_heads, tp)} x ({mixer.head_dim} + "
                    f"{mixer.value_dim}) x {b}")
        if mixer.window is not None:
            term += f" [{mixer.kind}, {mixer.window:,}-token window]"
        terms.append(term)
    return " + ".join(terms)


def variants_plan(model: ModelSpec, gpu: GpuSpec, engine: EngineSettings | AnySettings,
                  tp: int | None = None) -> DeploymentPlan:
    """The deployment `kvcalc fit` plans on `gpu` with `engine`: at `tp`, else the least valid TP whose GPUs
    leave memory for a KV cache."""
    from kvcalc.calc.parallel import valid_tp

    if tp is not None:
        return plan_deployment(model, gpu, Parallel(tp=tp), engine)
    plan = None
    for degree in valid_tp(model):
        try:
            plan = plan_deployment(model, gpu, Parallel(tp=degree), engine)
        except KvcalcError:
            continue
        if plan.binding_device.kv_cache_bytes > 0:
            return plan
    if plan is None:
        raise InputError(f"no tensor-parallel layout of {model.id} plans on {gpu.name}")
    return plan


def memory_budget(model: ModelSpec, plan: DeploymentPlan | None, memory_bytes: int | None) -> MemoryBudget:
    """`--memory` as given, else the KV pool of one GPU of `plan` (see MemoryBudget)."""
    if memory_bytes is not None:
        return MemoryBudget(bytes=memory_bytes, source="--memory")
    if plan is None:
        raise InputError("attention-variants needs --gpu or --memory")
    p = plan.parallel
    if p.pp != 1:
        raise InputError(f"attention-variants counts one tensor-parallel group's tokens; pp={p.pp} is not supported")
    return MemoryBudget(
        bytes=plan.binding_device.kv_cache_bytes,
        source=f"the KV pool of one GPU {plan.engine} {plan.engine_version} plans at tp={p.tp} (as kvcalc fit)",
        gpu=plan.gpu.name,
        gpu_count=p.tp * p.pp,
        usable_bytes_per_gpu=plan.gpu.usable_memory_bytes,
        weights_bytes=plan.binding_device.weights_bytes,
        engine=plan.engine,
        tp=p.tp,
        block_size=plan.kv_pool.block_size if plan.kv_pool.unit == "blocks" else None,
        fit_kv_cache_tokens=plan.kv_cache_tokens,
    )


def variants_report(
    model: ModelSpec,
    *,
    kv_dtype: str | None = None,
    gpu: GpuSpec | None = None,
    memory_bytes: int | None = None,
    context: int | None = None,
    plan: DeploymentPlan | None = None,
) -> VariantsReport:
    """Every attention variant of `model` with its KV bytes, savings and the tokens the memory holds: `--memory`,
    else the KV pool of `plan` (default: `variants_plan` on `gpu` with vLLM's defaults, as `kvcalc fit`)."""
    variants = calc.attention_variants(model)
    if not variants:
        raise InputError(f"{model.id} has no attention layers (nothing caches keys and values per token)")
    if memory_bytes is None and plan is None and gpu is not None:
        plan = variants_plan(model, gpu, EngineSettings(kv_cache_dtype=kv_dtype))
    dtype = kv_dtype or (plan.kv_dtype if plan is not None else model.dtype)
    kv = storage_type(dtype)
    budget = memory_budget(model, plan, memory_bytes)
    base = _Baseline(kv=kv, budget=budget, n_heads=calc.query_heads(model), mla=calc.has_mla(model),
                     mha_bytes=calc.cached_token_bytes(next(v.model for v in variants if v.scheme == "MHA"), kv),
                     own_bytes=calc.cached_token_bytes(model, kv), context=context, tp=budget.tp or 1)
    explain: list[Derivation] = _budget_derivation(plan, budget) if budget.gpu is not None and plan else []
    rows: list[VariantRow] = []
    for v in variants:
        row = _variant_row(v, base)
        rows.append(row)
        explain += _variant_derivations(v, row, base)
    kinds: dict[str, int] = {}
    for layer in model.layers:
        kinds[layer.kind] = kinds.get(layer.kind, 0) + 1
    return VariantsReport(
        model=model.id, model_type=model.model_type, num_layers=model.num_layers,
        attention_layers=len(calc.attention_layers(model)), layer_pattern=layer_pattern(model), layer_kinds=kinds,
        num_heads=base.n_heads, model_kv_heads=calc.own_kv_heads(model), mla=base.mla, kv_dtype=dtype,
        context=context, memory=budget, tp=base.tp, variants=tuple(rows),
        notes=tuple(_notes(model, budget, variants, base.mla)),
        explain=tuple(explain),
    )


@dataclass(frozen=True)
class _Baseline:
    """What every variant row is measured against: the KV dtype, the memory, the model's query heads, the MHA
    and the model's own bytes per token, and the context whose sequences are counted."""

    kv: StorageType
    budget: MemoryBudget
    n_heads: int
    mla: bool
    mha_bytes: int
    own_bytes: int
    context: int | None
    tp: int = 1


def _variant_row(v: Any, base: _Baseline) -> VariantRow:
    """One variant's bytes per token, savings and the tokens (whole blocks) one rank's memory holds."""
    kv, budget, tp = base.kv, base.budget, base.tp
    total = calc.cached_token_bytes(v.model, kv)
    tokens = calc.max_tokens(v.model, kv, budget.bytes, tp)
    if tokens is not None and budget.block_size:
        tokens = tokens // budget.block_size * budget.block_size  # the engine allocates whole blocks
    return VariantRow(
        name=v.name, scheme=v.scheme, kv_heads=v.kv_heads,
        queries_per_kv_head=round(base.n_heads / v.kv_heads, 4) if v.kv_heads else None,
        model_own=v.model_own, hypothetical=v.hypothetical, kv_bytes_per_token=total,
        bytes_per_token=kvcalc_kv.kv_bytes_per_token(v.model, kv, tp),
        fixed_bytes_per_sequence=kvcalc_kv.fixed_bytes_per_sequence(v.model, kv, tp),
        savings_vs_mha=round(calc.savings(base.mha_bytes, total), 4),
        savings_vs_model=round(calc.savings(base.own_bytes, total), 4), max_tokens=tokens,
        sequences_at_context=(calc.sequences_at_context(v.model, kv, budget.bytes, base.context, tp)
                              if base.context else None),
    )


def _budget_derivation(plan: DeploymentPlan, budget: MemoryBudget) -> list[Derivation]:
    return [Derivation(
        figure="KV memory per GPU",
        formula="the KV pool of one GPU (the plan's budget); each of the tp GPUs holds every token's "
                "max(1, n_kv / tp) KV heads, so one GPU's tokens are the group's",
        substituted=f"tp={budget.tp}: {plan.binding_device.kv_cache_bytes:,} B per GPU",
        value=f"{budget.bytes:,} B ({fmt_bytes(budget.bytes)}); kvcalc fit reports "
        f"{budget.fit_kv_cache_tokens:,} tokens",
        source=f"calc/engines/{budget.engine}.py plan (see kvcalc fit --explain)",
    )]


def _bytes_formula(v: Any, mla: bool) -> str:
    if v.scheme == "MLA":
        formula = "layers x (kv_lora_rank + qk_rope_head_dim) x bytes(dtype)"
        if any(isinstance(layer.mixer, FullAttention) for layer in v.model.layers):
            formula += " + windowed layers x 2 x n_kv x head_dim x bytes(dtype)"
        return formula
    if mla:
        return "layers x n_kv x (qk_nope + qk_rope + v_head_dim) x bytes(dtype)"
    return "layers x 2 x n_kv x head_dim x bytes(dtype)"


def _variant_derivations(v: Any, row: VariantRow, base: _Baseline) -> list[Derivation]:
    """A variant's bytes per token (whole model; one rank's when tp > 1) and, with a memory, the tokens one
    rank holds."""
    total, tp = row.kv_bytes_per_token, base.tp
    ratio = f"; vs MHA {base.mha_bytes:,} / {total:,} = {calc.savings(base.mha_bytes, total):.2f}x"
    if v.kv_heads:
        ratio += f" (= n_heads / n_kv = {base.n_heads} / {v.kv_heads})"
    source = _MLA_SOURCE if v.scheme == "MLA" else _SOURCES
    out = [Derivation(figure=f"{v.name}: KV bytes per token, every attention layer, whole model",
                      formula=_bytes_formula(v, base.mla), substituted=_kv_terms(v.model, base.kv),
                      value=f"{total:,} B{ratio}", source=source)]
    if tp > 1:
        rank = calc.cached_token_bytes(v.model, base.kv, tp)
        out.append(Derivation(
            figure=f"{v.name}: KV bytes per token on one GPU of tp={tp}",
            formula=_bytes_formula(v, base.mla).replace("n_kv", "max(1, n_kv / tp)"),
            substituted=_kv_terms(v.model, base.kv, tp), value=f"{rank:,} B",
            source=f"{source}; KV heads per rank: vLLM ModelConfig.get_num_kv_heads (an MLA latent on every rank)"))
    if row.max_tokens is not None:
        out.append(_tokens_derivation(v.name, row, base))
    return out


def _tokens_derivation(name: str, row: VariantRow, base: _Baseline) -> Derivation:
    """The longest sequence one rank's memory holds, in whole blocks of the engine."""
    memory, per_token, fixed, tokens = base.budget.bytes, row.bytes_per_token, row.fixed_bytes_per_sequence, \
        row.max_tokens
    block = base.budget.block_size
    where = f"{fmt_bytes(memory)}" + (" per GPU" if base.budget.gpu is not None else "")
    rounding = f", in whole blocks of {block}" if block else ""
    if per_token and not fixed:
        formula = "floor(memory / bytes_per_token)" + (" rounded down to whole blocks" if block else "")
        substituted = (f"floor(floor({memory:,} / {per_token:,}) / {block}) x {block}" if block
                       else f"floor({memory:,} / {per_token:,})")
    else:
        formula = ("largest L with bytes_per_token x L + fixed_bytes_per_sequence <= memory (windows counted "
                   "exactly below their length)" + rounding)
        substituted = f"{per_token:,} x L + {fixed:,} <= {memory:,}"
    return Derivation(figure=f"{name}: max tokens in {where}", formula=formula, substituted=substituted,
                      value=f"{tokens:,} tokens", source="kvcalc.calc.variants.max_tokens; "
                      "kvcalc.calc.kv.bytes_per_sequence (one tensor-parallel rank)")


def _notes(model: ModelSpec, budget: MemoryBudget, variants: Any, mla: bool) -> list[str]:
    """What the rows assume: one rank, the budget's GPUs, windows and states kept, hypothetical layouts."""
    tp = budget.tp or 1
    notes = [
        "KV B/token and the savings are the whole model's (tp=1); max tokens are one GPU's: each variant's "
        f"bytes per token on one rank of tp={tp} (max(1, n_kv / tp) KV heads per layer, an MLA latent whole) "
        "against that GPU's KV memory; every GPU of the group holds the same tokens",
    ]
    if budget.gpu is not None and budget.gpu_count and budget.gpu_count > 1:
        notes.append(
            f"the weights need {budget.gpu_count} x {budget.gpu} (tp={budget.tp}); memory is one GPU's KV pool, and "
            "with n_kv < tp heads are replicated, so MQA/GQA save less per GPU (pass --tp or --memory for another "
            "budget)"
        )
    if budget.gpu is not None and any(layer.mixer is not None and (layer.mixer.window is not None or layer.kind in
                                                                   ("linear", "mamba")) for layer in model.layers):
        notes.append(
            f"kvcalc fit's {budget.fit_kv_cache_tokens:,} tokens is {budget.engine}'s own figure, which pages "
            "windowed and recurrent layers in its KV-cache groups; max tokens here is the longest sequence whose "
            "bytes fit, windows counted exactly"
        )
    if any(layer.mixer is not None and layer.mixer.window is not None for layer in model.layers):
        notes.append("sliding/chunked layers keep their windows in every variant (their K/V heads change too)")
    if any(layer.kind in ("linear", "mamba") for layer in model.layers):
        notes.append("recurrent layers (linear attention, Mamba) keep their fixed state in every variant")
    if mla:
        notes.append(
            "MHA/GQA/MQA rows of an MLA model are hypothetical per-head caches with K head = qk_nope + qk_rope "
            "and V head = v_head_dim; MHA is the naive per-head cache, MLA the latent engines store"
        )
    elif any(v.scheme == "MLA" for v in variants):
        notes.append(
            f"the MLA row is hypothetical: full-attention layers caching a DeepSeek-V3-size latent "
            f"({calc.DEEPSEEK_V3_KV_LORA_RANK} + {calc.DEEPSEEK_V3_QK_ROPE_HEAD_DIM} values per token and "
            "layer); windowed layers keep their K/V; the model would need retraining (or conversion) for it"
        )
    return notes


def _factor(value: float) -> str:
    return f"{value:,.2f}x"


def _variant_name(r: VariantRow) -> str:
    """The row's label: the model's own layout in bold with "(own)", a hypothetical one with "*"."""
    from rich.markup import escape

    text = escape(r.name + (" (own)" if r.model_own else "") + (" *" if r.hypothetical else ""))
    return f"[bold]{text}[/bold]" if r.model_own else text


def _table(title: str, columns: list[str]) -> Any:
    """A table with a left "variant" column and right-aligned `columns`."""
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("variant", no_wrap=True)
    for col in columns:
        t.add_column(col, justify="right")
    return t


def _print_heading(console: Any, report: VariantsReport) -> None:
    """The model line (layers caching K/V, query heads, KV dtype) and the KV memory with where it comes from."""
    from rich.markup import escape

    m = report.memory
    gpus = f"each of {m.gpu_count} x {m.gpu}" if (m.gpu_count or 1) > 1 else f"one {m.gpu}"
    where = (f"KV pool of {gpus}, {m.engine} tp={m.tp}; fit reports {m.fit_kv_cache_tokens:,} tokens"
             if m.gpu is not None else "--memory, one GPU")
    pattern = report.layer_pattern
    if len(pattern) > 60:
        pattern = ", ".join(f"{kind} x{n}" for kind, n in report.layer_kinds.items())
    console.print(
        f"[bold]{escape(report.model)}[/bold] ({escape(report.model_type)}): {report.attention_layers} of "
        f"{report.num_layers} layers cache K/V ({escape(pattern)}); {report.num_heads} query heads; "
        f"KV dtype {escape(report.kv_dtype)}"
    )
    console.print(f"KV memory per GPU: {m.bytes:,} B = {fmt_bytes(m.bytes)} ({where})", markup=False)


def _tables(report: VariantsReport, *, windowed: bool, sharded: bool) -> list[Any]:
    """One table of bytes and capacity, or, when windowed or recurrent layers add two more columns, a table
    each."""
    per_token = ["n_kv", "KV B/token", "vs MHA", "vs own"]
    capacity = ["B/token past windows", "fixed B/seq"] if windowed else (["B/token per GPU"] if sharded else [])
    capacity.append("max tokens")
    if report.context:
        capacity.append(f"seqs @ {report.context:,}")
    on = f"one GPU of tp={report.tp}" if sharded else "one GPU"
    if not windowed:
        return [_table(f"Attention variants (KV B/token: whole model; max tokens: {on})", per_token + capacity)]
    return [
        _table("KV cache per token, every attention layer (whole model, unsharded)", per_token),
        _table(f"Capacity in {fmt_bytes(report.memory.bytes)} of {on}" + (" (bytes per GPU)" if sharded else ""),
               capacity),
    ]


def _capacity_cells(r: VariantRow, *, windowed: bool, sharded: bool, context: int | None) -> list[str]:
    """Bytes per token past windows and fixed bytes (windowed), or per GPU (sharded); max tokens; sequences."""
    cells = ([f"{r.bytes_per_token:,}", fmt_bytes(r.fixed_bytes_per_sequence)] if windowed
             else [f"{r.bytes_per_token:,}"] if sharded else [])
    cells.append(f"{r.max_tokens:,}" if r.max_tokens is not None else "any")
    if context:
        cells.append(f"{r.sequences_at_context:,}" if r.sequences_at_context is not None else "-")
    return cells


def render_variants(console: Any, report: VariantsReport) -> None:
    """One Rich table: a row per variant (the model's own in bold), then the notes."""
    _print_heading(console, report)
    windowed = any(r.fixed_bytes_per_sequence for r in report.variants)  # windows and recurrent states
    sharded = report.tp > 1
    tables = _tables(report, windowed=windowed, sharded=sharded)
    for r in report.variants:
        bytes_cells = [
            str(r.kv_heads) if r.kv_heads else "-",
            f"{r.kv_bytes_per_token:,}",
            _factor(r.savings_vs_mha),
            _factor(r.savings_vs_model),
        ]
        capacity_cells = _capacity_cells(r, windowed=windowed, sharded=sharded, context=report.context)
        if windowed:
            tables[0].add_row(_variant_name(r), *bytes_cells)
            tables[1].add_row(_variant_name(r), *capacity_cells)
        else:
            tables[0].add_row(_variant_name(r), *bytes_cells, *capacity_cells)
    for t in tables:
        console.print(t)
    console.print(
        "vs MHA = n_heads / n_kv for uniform layers; (own) the model's layout; * hypothetical: a layout this "
        "model does not have",
        markup=False,
    )
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
