"""Rich renderers for people. Each takes (console, report) and prints tables; no arithmetic here."""

from __future__ import annotations

from typing import Any

from kvcalc.report.inspect import InspectReport, ModelReport
from kvcalc.units import fmt_bytes


def _table(title: str, *columns: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=bool(columns))
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i else "left")
    return table


def _params(n: int) -> str:
    return f"{n:,} ({n / 1e9:.2f} billion)"


def render_inspect(out: Any, report: InspectReport) -> None:
    m = report.model
    out.print(_summary_table(m))
    params = _table("Parameters by component", "component", "params", "share")
    for name, count in m.params_breakdown.items():
        params.add_row(name, f"{count:,}", f"{100 * count / m.params_total:.1f}%")
    out.print(params)
    out.print(_kv_kinds_table(report))
    seq = _table("KV cache per sequence", "context (tokens)", "bytes", "")
    for s in report.kv_cache.per_sequence:
        seq.add_row(f"{s.context:,}", f"{s.bytes:,}", fmt_bytes(s.bytes))
    out.print(seq)
    out.print(f"active parameters: {m.params_active_definition}", markup=False)
    for note in m.notes:
        out.print(f"note: {note}", markup=False)


def _summary_table(m: ModelReport) -> Any:
    """The model's headline figures: repo, parameters, weights, layers, sizes, heads, context, extras."""
    summary = _table(f"{m.id}  ({m.model_type}, {m.architecture or '?'})", "", "")
    summary.show_header = False
    rows = [
        ("Hub repo", m.hf_repo or "-"),
        ("Parameters, total", f"{_params(m.params_total)}  [{m.params_source}]"),
        ("Parameters, active per token", f"{_params(m.params_active)}; {_params(m.params_active_with_embedding)} "
         "counting the input embedding table"),
        ("Weights", f"{fmt_bytes(m.weights_bytes)} at {m.bits_per_weight:g} bits/weight ({m.weight_format}, "
         f"{m.weight_format_source})"),
        ("Layers", f"{m.num_layers}: {m.layer_pattern}"),
        ("Hidden / vocab", f"{m.hidden_size:,} / {m.vocab_size:,}"),
        ("Attention heads / KV heads", f"{m.num_attention_heads} / "
         + (f"{m.num_kv_heads}" if m.num_kv_heads else "none (MLA latent or no attention cache)")),
        ("Max position embeddings", f"{m.max_position_embeddings:,}" if m.max_position_embeddings else "-"),
    ]
    if m.checkpoint_params is not None:
        rows.append(("Checkpoint tensors (headers)", f"{m.checkpoint_params:,} elements"))
    if m.params_mtp:
        rows.append(("MTP layers (not in total)", _params(m.params_mtp)))
    if m.params_vision:
        rows.append(("Vision encoder (not in total)", _params(m.params_vision)))
    if m.vision_tower:
        rows.append(("Vision tower", m.vision_tower))
    if m.rope_scaling:
        rows.append(
            ("RoPE scaling", ", ".join(f"{k}={v}" for k, v in m.rope_scaling.items() if v is not None))
        )
    for key, value in rows:
        summary.add_row(key, value)
    return summary


def _kv_kinds_table(report: InspectReport) -> Any:
    """KV bytes per token, window and fixed bytes per sequence of each layer kind, and their total."""
    kv = report.kv_cache
    kinds = _table(
        f"KV cache ({kv.dtype}; {kv.layout}), one sequence, tp=1",
        "layer kind",
        "layers",
        "bytes/token",
        "window",
        "fixed bytes/seq",
    )
    for kind, t in kv.by_kind.items():
        kinds.add_row(
            kind,
            str(t.layers),
            f"{t.bytes_per_token:,}",
            f"{t.window_tokens:,}" if t.window_tokens else "-",
            fmt_bytes(t.fixed_bytes_per_sequence),
        )
    kinds.add_row(
        "total", str(report.model.num_layers), f"{kv.bytes_per_token:,}", "", fmt_bytes(kv.fixed_bytes_per_sequence)
    )
    return kinds


def _bar(parts: list[tuple[str, int, str]], total: int, width: int = 50) -> str:
    """A one-line memory bar: each part a run of its letter, proportional to its bytes."""
    text = ""
    for _label, size, char in parts:
        text += char * max(0, round(width * size / total)) if total else ""
    return (text + "." * width)[:width]


def render_fit(out: Any, report: Any) -> None:
    from kvcalc.report.fit import FitReport

    r: FitReport = report
    verdict = "[bold green]FITS[/bold green]" if r.fits else "[bold red]DOES NOT FIT[/bold red]"
    p = r.parallel
    out.print(
        f"{verdict}  {r.model.id} on {r.gpu.count} x {r.gpu.name}  (tp={p.tp} pp={p.pp} dp={p.dp} "
        f"ep={p.ep} cp={p.cp}; {r.engine.name} {r.engine.version} accounting)"
    )
    if r.reason:
        out.print(f"reason: {r.reason}", markup=False)
    w = r.weight_format
    out.print(f"weights: {w.name} ({w.source}; served as {w.serving_dtype}"
              + (f"; kernel {w.kernel}" if w.kernel else "") + ")", markup=False)
    _render_memory(out, r)
    out.print(_capacity_table(r))
    if len(r.stages) > 1:
        st = _table("Pipeline stages", "stage", "layers", "weights GiB", "KV GiB", "blocks")
        for s in r.stages:
            st.add_row(str(s["stage"]), str(s["layers"]), f"{s['weights_bytes'] / 2**30:.2f}",
                       f"{s['kv_cache_bytes'] / 2**30:.2f}", f"{s['num_blocks']:,}")
        out.print(st)
    if r.host is not None:
        h = r.host
        out.print(f"host RAM (llama.cpp offload, {h.layers} layers): weights {fmt_bytes(h.weights_bytes)}, KV "
                  f"{fmt_bytes(h.kv_cache_bytes)}, buffers {fmt_bytes(h.buffers_bytes)}", markup=False)
    if r.advice:
        adv = _table("What would make it fit (each checked)", "change", "max concurrency", "KV tokens", "note")
        for a in r.advice:
            adv.add_row(a.change, f"{a.max_concurrency:.2f}x", f"{a.kv_cache_tokens:,}", a.note or "")
        out.print(adv)


def _render_memory(out: Any, r: Any) -> None:
    """The fullest GPU's ledger as a table and a one-line bar."""
    g = r.per_gpu
    parts = [
        ("weights", g.weights_bytes, "W"),
        ("KV cache", g.kv_cache_bytes, "K"),
        ("activations", g.activation_bytes, "A"),
        ("non-torch", g.overhead_bytes, "N"),
        ("CUDA graphs", g.cuda_graph_bytes, "G"),
        ("free", max(0, g.free_bytes), "."),
    ]
    table = _table("Memory per GPU (fullest rank)", "part", "bytes", "GiB", "share")
    for label, size, _ in parts:
        table.add_row(label, f"{size:,}", f"{size / 2**30:.2f}", f"{100 * size / g.total_bytes:.1f}%")
    table.add_row("total (torch-visible)", f"{g.total_bytes:,}", f"{g.total_bytes / 2**30:.2f}", "100%")
    out.print(table)
    out.print(
        "[" + _bar(parts, g.total_bytes) + "]  W weights, K KV cache, A activations, N non-torch, G graphs",
        markup=False,
    )


def _capacity_table(r: Any) -> Any:
    """KV pool, concurrency, binding limit, replicas, longest context, bytes per token, communication."""
    c = r.capacity
    cap = _table("Capacity", "", "")
    cap.show_header = False
    cap.add_row("KV cache size (engine's report)", f"{c.kv_cache_tokens:,} tokens")
    if c.pool_unit == "blocks":
        cap.add_row("KV blocks", f"{c.num_blocks:,} x {c.block_size} tokens")
    else:
        cap.add_row("KV cells (one token each)", f"{c.num_blocks:,}")
    cap.add_row(f"Max concurrency at {c.context:,} tokens", f"{c.max_concurrency:.2f}x")
    if c.max_num_seqs is not None:
        cap_note = "" if c.binding == "max_num_seqs" else f"; max_num_seqs {c.max_num_seqs:,}"
        cap.add_row(f"Requests of {c.context:,} tokens running at once",
                    f"{c.requests_at_max_model_len:,} (binding limit: {c.binding}{cap_note})")
    if c.replicas > 1:
        cap.add_row(f"All {c.replicas} replicas (data parallel)",
                    f"{c.total_kv_cache_tokens:,} tokens, {c.total_max_concurrency:.2f}x")
    cap.add_row(f"Longest context for {c.concurrency} request(s)", f"{c.max_context_at_concurrency:,} tokens")
    cap.add_row("KV bytes per token (per GPU)", f"{c.kv_bytes_per_token:,}")
    cap.add_row("Weights, whole model", f"{fmt_bytes(r.model.weights_bytes)}")
    comm = r.communication_per_token
    if comm.tp_allreduce_bytes or comm.ep_alltoall_bytes or comm.pp_activation_bytes:
        cap.add_row(
            "Communication per token per GPU",
            f"TP {fmt_bytes(comm.tp_allreduce_bytes)}, EP {fmt_bytes(comm.ep_alltoall_bytes)}, "
            f"PP {fmt_bytes(comm.pp_activation_bytes)}",
        )
    return cap
