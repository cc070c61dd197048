"""Collectives timed on several GPUs (bench/comm.py) against the perf model's communication terms
(calc/perf/comm.py), and the communication coefficients a calibration file carries."""

from __future__ import annotations

from typing import Any

from kvcalc.calc.perf.calibrate import LatencyBandwidthFit, fit_latency_bandwidth
from kvcalc.spec.gpu import GpuSpec


def collective_series(comm: dict[str, Any]) -> dict[tuple[str, bool], list[dict[str, Any]]]:
    """The timed rows per (collective, inside a CUDA graph), by growing message size."""
    series: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for row in comm.get("rows", []):
        series.setdefault((row["collective"], row["graph"]), []).append(row)
    return {key: sorted(rows, key=lambda r: r["message_bytes"]) for key, rows in sorted(series.items())}


def collective_fits(series: dict[tuple[str, bool], list[dict[str, Any]]]
                    ) -> dict[tuple[str, bool], LatencyBandwidthFit]:
    """t = latency + wire bytes / bandwidth fitted to each series of at least two sizes."""
    return {key: fit_latency_bandwidth([r["wire_bytes"] for r in rows], [r["median_s"] for r in rows])
            for key, rows in series.items() if len(rows) >= 2}


def communication_values(fits: dict[tuple[str, bool], LatencyBandwidthFit], gpu: GpuSpec) -> dict[str, float]:
    """comm_latency_s and comm_bw_eff = fitted bus bandwidth / the card's link bandwidth, from the all-reduce
    (its CUDA-graph timing where there is one: engines run decode collectives inside graphs)."""
    from kvcalc.calc.perf.comm import link_bytes_per_s

    chosen = fits.get(("all_reduce", True)) or fits.get(("all_reduce", False))
    if chosen is None:
        return {}
    return {"comm_latency_s": chosen.latency_s, "comm_bw_eff": chosen.bandwidth_bytes_per_s / link_bytes_per_s(gpu)}
