"""Issue #14 on CPUs: the torchrun measurement with the gloo backend and 2 processes, and the report's fit of
latency + bytes / bandwidth against the perf model's communication terms."""

from __future__ import annotations

import pytest

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.perf.defaults import default_coefficients
from kvcalc.calc.verify.steps import harness_coefficients
from kvcalc.report.verify import communication
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.deployment import EngineSettings, Parallel


def _plan():  # type: ignore[no-untyped-def]
    return plan_deployment(load_model("llama-3.1-8b"), find_gpu("h100"), Parallel(), EngineSettings(), context=8192)


def test_two_processes_over_gloo() -> None:
    pytest.importorskip("torch")
    from kvcalc.bench.comm import launch

    result = launch(2, [1024, 65536, 1048576], backend="gloo", runs=3, warmup=1, timeout_s=240)
    assert result["ranks"] == 2 and result["backend"] == "gloo"
    rows = result["rows"]
    assert {(r["collective"], r["message_bytes"]) for r in rows} == {
        (c, n) for c in ("all_reduce", "all_to_all") for n in (1024, 65536, 1048576)}
    assert all(r["median_s"] > 0 for r in rows)
    # 2 ranks: an all-reduce puts 2 (2-1)/2 = 1 x the message on the link, an all-to-all half of it
    assert {r["wire_bytes"] for r in rows if r["collective"] == "all_reduce"} == {1024.0, 65536.0, 1048576.0}
    records, values = communication(result, _plan(), harness_coefficients(default_coefficients(find_gpu("h100"))))
    assert {r.quantity for r in records} >= {"all_reduce_s", "all_reduce_latency_s", "all_reduce_bus_bandwidth"}
    assert values["comm_latency_s"] >= 0 and values["comm_bw_eff"] > 0


def test_communication_fit_worked_by_hand() -> None:
    # NVLink H100: 450e9 B/s per direction. All-reduce measured as 10 us + wire / 300e9 over 2 GPUs, inside CUDA
    # graphs: latency 10 us, bus bandwidth 300e9 -> comm_bw_eff = 300 / 450 = 0.667
    sizes = [16384, 1 << 20, 16 << 20, 256 << 20]
    rows = [{"collective": "all_reduce", "message_bytes": n, "wire_bytes": float(n), "graph": True,
             "median_s": 10e-6 + n / 300e9} for n in sizes]
    rows += [{"collective": "all_reduce", "message_bytes": n, "wire_bytes": float(n), "graph": False,
              "median_s": 25e-6 + n / 280e9} for n in sizes]
    coeffs = harness_coefficients(default_coefficients(find_gpu("h100")))
    records, values = communication({"ranks": 2, "rows": rows}, _plan(), coeffs)
    assert values["comm_latency_s"] == pytest.approx(10e-6, rel=1e-6)  # the graph timing is preferred
    assert values["comm_bw_eff"] == pytest.approx(300 / 450, rel=1e-6)
    # the perf model's own prediction for the 1 MiB all-reduce: latency + 1 MiB / (450e9 x comm_bw_eff)
    one = next(r for r in records if r.quantity == "all_reduce_s" and r.settings["message_bytes"] == 1 << 20
               and r.settings["graph"])
    assert one.predicted == pytest.approx(coeffs.comm_latency_s + (1 << 20) / (450e9 * coeffs.comm_bw_eff))
    assert one.measured == pytest.approx(10e-6 + (1 << 20) / 300e9)
