"""Rich renderers for people. Each takes (console, report) and prints tables; no arithmetic here."""

from __future__ import annotations

from typing import Any

from kvcalc.report.inspect import InspectReport
from kvcalc.units import fmt_bytes


def _table(title: str, *columns: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=bool(columns))
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i else "left")
    return table


def _params(n: int) -> str:
    return f"{n:,} ({n / 1e9:.2f} B)"


def render_inspect(out: Any, report: InspectReport) -> None:
    m = report.model
    summary = _table(f"{m.id}  ({m.model_type}, {m.architecture or '?'})", "", "")
    summary.show_header = False
    rows = [
        ("Hub repo", m.hf_repo or "-"),
        ("Parameters, total", f"{_params(m.params_total)}  [{m.params_source}]"),
        ("Parameters, active per token", _params(m.params_active)),
        ("Weights", f"{fmt_bytes(m.weights_bytes)} at {m.bits_per_weight:g} bits/weight ({m.dtype})"),
        ("Layers", f"{m.num_layers}: {m.layer_pattern}"),
        ("Hidden / vocab", f"{m.hidden_size:,} / {m.vocab_size:,}"),
        ("Attention heads / KV heads", f"{m.num_attention_heads} / {m.num_kv_heads}"),
        ("Max position embeddings", f"{m.max_position_embeddings:,}" if m.max_position_embeddings else "-"),
    ]
    if m.checkpoint_params is not None:
        rows.append(("Checkpoint tensors (headers)", f"{m.checkpoint_params:,} elements"))
    if m.params_mtp:
        rows.append(("MTP layers (not in total)", _params(m.params_mtp)))
    if m.params_vision:
        rows.append(("Vision encoder (not in total)", _params(m.params_vision)))
    if m.rope_scaling:
        rows.append(("RoPE scaling", ", ".join(f"{k}={v}" for k, v in m.rope_scaling.items() if v is not None)))
    for key, value in rows:
        summary.add_row(key, value)
    out.print(summary)

    params = _table("Parameters by component", "component", "params", "share")
    for name, count in m.params_breakdown.items():
        params.add_row(name, f"{count:,}", f"{100 * count / m.params_total:.1f}%")
    out.print(params)

    kv = report.kv_cache
    kinds = _table(f"KV cache ({kv.dtype}; {kv.layout}), one sequence, tp=1", "layer kind", "layers",
                   "bytes/token", "window", "fixed bytes/seq")
    for kind, t in kv.by_kind.items():
        kinds.add_row(kind, str(t.layers), f"{t.bytes_per_token:,}", f"{t.window_tokens:,}" if t.window_tokens else "-",
                      fmt_bytes(t.fixed_bytes_per_sequence))
    kinds.add_row("total", str(m.num_layers), f"{kv.bytes_per_token:,}", "", fmt_bytes(kv.fixed_bytes_per_sequence))
    out.print(kinds)
    seq = _table("KV cache per sequence", "context (tokens)", "bytes", "")
    for s in kv.per_sequence:
        seq.add_row(f"{s.context:,}", f"{s.bytes:,}", fmt_bytes(s.bytes))
    out.print(seq)
    for note in m.notes:
        out.print(f"note: {note}", markup=False)
