"""`kvcalc serve --explain`: each figure of a ServeReport with its formula, the numbers substituted and the
source, built from the report's own numbers (so the explanation cannot drift from the figures)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvcalc.report.explain import Derivation

if TYPE_CHECKING:
    from kvcalc.report.serve import ServeReport

LITTLE = "Little's law, L = lambda W (Little 1961)"
PERF = "kvcalc.calc.perf.slo.max_concurrency_under_slo over the DeploymentPlan fit uses"


def _replica(r: ServeReport) -> list[Derivation]:
    w, pr = r.workload, r.per_replica
    assert pr is not None
    o = w.output_tokens
    return [
        Derivation(figure="Concurrency per replica (C)",
                   formula="largest C <= engine cap with mean TTFT(C) <= TTFT target and mean TPOT(C) <= TPOT "
                   "target, by regula falsi over closed-loop runs of the engine's scheduler",
                   substituted=f"engine cap {pr.engine_max_concurrency:,}; targets {w.ttft_slo_s * 1e3:g} ms / "
                   f"{w.tpot_slo_s * 1e3:g} ms; at C: TTFT {pr.ttft_s * 1e3:.1f} ms, TPOT {pr.tpot_s * 1e3:.2f} ms",
                   value=f"{pr.max_concurrency:,} (limited by {pr.limit})", source=PERF),
        Derivation(figure="Requests/s per replica (mu)", formula="C / (TTFT + (output - 1) x TPOT)",
                   substituted=f"{pr.max_concurrency} / ({pr.ttft_s:.4f} + {o - 1} x {pr.tpot_s:.5f})",
                   value=f"{pr.requests_per_s:.4f} req/s (the simulation counted "
                   f"{pr.simulated_requests_per_s:.4f})", source=LITTLE),
    ]


def _fleet(r: ServeReport) -> list[Derivation]:
    w, pr = r.workload, r.per_replica
    assert pr is not None
    return [
        Derivation(figure="Replicas", formula="ceil(demand x (1 + headroom) / mu)",
                   substituted=f"ceil({w.requests_per_s:g} x {1 + w.headroom:g} / {pr.requests_per_s:.4f})",
                   value=f"{r.replicas:,} replicas x {pr.gpus} GPUs = {r.gpus_total:,} GPUs"),
        Derivation(figure="Utilization", formula="demand / (replicas x mu)",
                   substituted=f"{w.requests_per_s:g} / ({r.replicas} x {pr.requests_per_s:.4f})",
                   value=f"{r.utilization:.1%}"),
        Derivation(figure="GPU-hours per day", formula="GPUs x 24",
                   substituted=f"{r.gpus_total} x 24", value=f"{r.gpu_hours_per_day:,.0f}"),
    ]


def _cost(r: ServeReport) -> list[Derivation]:
    c, w, pr = r.cost, r.workload, r.per_replica
    if c is None or r.price is None or pr is None:
        return []
    price = r.price.usd_per_gpu_hour
    decode_s = (w.output_tokens - 1) * pr.tpot_s / pr.max_concurrency
    return [
        Derivation(figure="Cost per hour", formula="GPUs x price per GPU-hour",
                   substituted=f"{r.gpus_total} x ${price:g}", value=f"${c.per_hour:,.2f}", source=r.price.source),
        Derivation(figure="Cost per request", formula="cost per hour / (3600 x demand)",
                   substituted=f"{c.per_hour:.4f} / (3600 x {w.requests_per_s:g})", value=f"${c.per_request:.6g}"),
        Derivation(figure="Input share of GPU time",
                   formula="prefill_s / (prefill_s + (output - 1) x TPOT / C)",
                   substituted=f"{pr.prefill_s:.5f} / ({pr.prefill_s:.5f} + {decode_s:.5f})",
                   value=f"{c.input_share:.3f}"),
        Derivation(figure="$ per million input tokens", formula="cost per request x input share / input x 1e6",
                   substituted=f"{c.per_request:.6g} x {c.input_share:.4f} / {w.mix.input.mean:g} x 1e6",
                   value=f"${c.per_million_input_tokens:.4f}"),
        Derivation(figure="$ per million output tokens",
                   formula="cost per request x (1 - input share) / output x 1e6",
                   substituted=f"{c.per_request:.6g} x {1 - c.input_share:.4f} / {w.mix.output.mean:g} x 1e6",
                   value=f"${c.per_million_output_tokens:.4f}"),
        Derivation(figure="$ per million tokens (blended)", formula="cost per request / (input + output) x 1e6",
                   substituted=f"{c.per_request:.6g} / {w.mix.input.mean + w.mix.output.mean:g} x 1e6",
                   value=f"${c.per_million_tokens:.4f}"),
    ]


def _cold_and_scaling(r: ServeReport) -> list[Derivation]:
    s = r.cold_start
    out = [Derivation(figure="Cold start", formula="replica weight bytes / load bandwidth + engine start-up",
                      substituted=f"{s.weight_bytes:,} / {s.load_bytes_per_s:,.0f} + {s.engine_startup_s:g}",
                      value=f"{s.total_s:.1f} s", source="kvcalc/calc/serving/coldstart.py")]
    a = r.autoscale
    if a is not None:
        out.append(Derivation(
            figure="Autoscaled GPU-hours vs static peak",
            formula="sum over intervals of (serving + starting replicas) x GPUs x hours; static: peak replicas "
            "all day",
            substituted=f"static {a.static_replicas} replicas x {len(a.intervals)} intervals of "
            f"{a.interval_s:g} s",
            value=f"{a.gpu_hours:,.1f} vs {a.static_gpu_hours:,.1f} GPU-hours ({a.savings_fraction:.0%} saved)",
            source="kvcalc/calc/serving/autoscale.py"))
    return out


def serve_derivations(report: ServeReport) -> list[Derivation]:
    """Every figure of `report` (which meets its SLOs) with its formula and numbers."""
    return _replica(report) + _fleet(report) + _cost(report) + _cold_and_scaling(report)
