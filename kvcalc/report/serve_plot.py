"""An SVG of a day under autoscaling: request rate against the capacity of the replicas serving (a step line),
with the desired replicas. Plain SVG text, no plotting library."""

from __future__ import annotations

from html import escape

from kvcalc.report.serve import AutoscaleReport

W, H, PAD = 720, 320, 48


def _polyline(points: list[tuple[float, float]], color: str, dash: str = "") -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    style = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{color}" stroke-width="2"{style} points="{coords}"/>'


def _steps(values: list[float], sx: float, sy: float) -> list[tuple[float, float]]:
    pts: list[tuple[float, float]] = []
    for i, v in enumerate(values):
        y = H - PAD - v * sy
        pts += [(PAD + i * sx, y), (PAD + (i + 1) * sx, y)]
    return pts


def autoscale_svg(a: AutoscaleReport, per_replica_rps: float, title: str) -> str:
    """Demand (req/s) and serving capacity (replicas x per-replica req/s) per interval."""
    demand = [r.requests_per_s for r in a.intervals]
    capacity = [r.replicas * per_replica_rps for r in a.intervals]
    wanted = [r.desired * per_replica_rps for r in a.intervals]
    top = max(max(demand), max(capacity), max(wanted), 1e-9) * 1.1
    sx, sy = (W - 2 * PAD) / len(demand), (H - 2 * PAD) / top
    hours = len(demand) * a.interval_s / 3600
    ticks = "".join(
        f'<text x="{PAD - 6}" y="{H - PAD - f * top * sy + 4:.1f}" text-anchor="end">{f * top:.3g}</text>'
        for f in (0, 0.25, 0.5, 0.75, 1.0))
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
        f'font-size="11">',
        f'<text x="{PAD}" y="20" font-size="13">{escape(title)}</text>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#444"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#444"/>',
        ticks,
        f'<text x="{W / 2}" y="{H - 12}" text-anchor="middle">time ({hours:g} h, {len(demand)} intervals)</text>',
        _polyline(_steps(wanted, sx, sy), "#999", "4 3"),
        _polyline(_steps(capacity, sx, sy), "#2a7"),
        _polyline(_steps(demand, sx, sy), "#c33"),
        f'<text x="{W - PAD}" y="36" text-anchor="end" fill="#c33">demand, req/s</text>',
        f'<text x="{W - PAD}" y="50" text-anchor="end" fill="#2a7">capacity of serving replicas, req/s</text>',
        f'<text x="{W - PAD}" y="64" text-anchor="end" fill="#999">capacity wanted (desired replicas)</text>',
        "</svg>",
        "",
    ])
