"""`kvcalc verify` for people: each measurement beside its prediction, then the calibration (Rich)."""

from __future__ import annotations

from typing import Any

from kvcalc.report.verify import VerifyReport


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1e3:,.3f} ms"
    if unit in ("B", "params"):
        return f"{value:,.0f}" + (" B" if unit == "B" else "")
    if unit == "B/s":
        return f"{value / 1e12:,.3f} TB/s" if value >= 1e11 else f"{value / 1e9:,.2f} GB/s"
    if unit == "FLOP/s":
        return f"{value / 1e12:,.1f} TFLOP/s"
    return f"{value:,.1f} {unit}"


def _coefficient(name: str, value: Any) -> str:
    """A fitted coefficient for people: efficiencies to 3 decimals (per dtype for GEMMs), times in us."""
    if isinstance(value, dict):
        return ", ".join(f"{dtype} {v:.3f}" for dtype, v in value.items())
    if isinstance(value, float) and name.endswith("_s"):
        return f"{value * 1e6:.2f} us"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def render_verify(console: Any, report: VerifyReport) -> None:
    """Rich tables: each measurement beside its prediction, then the calibration."""
    from rich.table import Table

    console.print(f"[bold]{report.model}[/bold] on {report.card} (hardware file {report.gpu}), driver "
                  f"{report.driver}, torch {report.torch}, {report.date}; {report.dtype} weights, "
                  f"{report.kv_dtype} KV, {report.engine} layout")
    table = Table(show_lines=False)
    for column in ("quantity", "settings", "predicted", "measured", "error"):
        table.add_column(column, justify="left" if column in ("quantity", "settings") else "right")
    for r in report.records:
        settings = " ".join(f"{k}={v}" for k, v in r.settings.items())
        error = "-" if r.error_pct is None else f"{r.error_pct:+.2f} %"
        table.add_row(r.quantity, settings, _fmt(r.predicted, r.unit), _fmt(r.measured, r.unit), error)
    console.print(table)
    cal = report.calibration
    if cal is None:
        return
    console.print(f"\n[bold]Calibration[/bold] (fitted: {', '.join(cal.fitted) or 'nothing'}); residuals: median "
                  f"{cal.median_abs_error_pct:.1f} %, worst {cal.max_abs_error_pct:.1f} %")
    for name, value in cal.coefficients.items():
        mark = " (written)" if name in cal.written and cal.file else ""
        console.print(f"  {name} = {_coefficient(name, value)}{mark}", markup=False)
    for note in cal.notes:
        console.print(f"  {note}")
    if cal.file:
        console.print(f"written to {cal.file}")
