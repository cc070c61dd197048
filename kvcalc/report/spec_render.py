"""`kvcalc spec` for people: the derivation of each figure (`--explain`) and the Rich tables."""

from __future__ import annotations

from typing import Any

from kvcalc.report.explain import Derivation
from kvcalc.report.spec import SpecReport
from kvcalc.units import fmt_bytes

_LEVIATHAN = "Leviathan et al. 2023 arXiv:2211.17192"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4f} ms"


def _acceptance(r: SpecReport) -> Derivation:
    shown = ", ".join(f"{a:.3f}" for a in r.acceptance_rates)
    return Derivation(
        figure="expected tokens per target pass", formula="1 + sum_{i<=gamma} prod_{j<=i} a_j (a_j conditional)",
        substituted=f"a = [{shown}] (the last repeats), gamma = {r.gamma}",
        value=f"{r.expected_tokens_per_pass:.4f}",
        source=f"{_LEVIATHAN} eq. 1 generalised per position; a: {r.acceptance_source}")


def _step(r: SpecReport) -> Derivation:
    return Derivation(
        figure="one speculative step", formula="verify(B, N) + draft passes (kernels + host) + per-step cost",
        substituted=f"{_ms(r.verify_step_s)} ({r.verify_tokens} tokens per sequence, {r.verify_bound}-bound) + "
                    f"{_ms(r.draft_kernels_s)} + {_ms(r.draft_overhead_s)} + {_ms(r.spec_overhead_s)}",
        value=_ms(r.spec_step_s), source="kvcalc.calc.spec_cost (perf model step_cost; engine speculation costs)")


def spec_derivations(r: SpecReport) -> tuple[Derivation, ...]:
    """Each figure with its formula, the numbers substituted and the source."""
    e = r.expected_tokens_per_pass
    out = [
        _acceptance(r),
        _step(r),
        Derivation(figure="speedup", formula="E x t_decode / t_spec",
                   substituted=f"{e:.4f} x {_ms(r.target_step_s)} / {_ms(r.spec_step_s)}",
                   value=f"{r.speedup:.4f}x", source="kvcalc.calc.speculative.step_speedup"),
        Derivation(figure="Leviathan's idealised speedup", formula="E / (gamma c + 1), c = draft / (gamma t_decode)",
                   substituted=f"alpha {r.alpha:.4f} (same E); c = {_ms(r.draft_step_s)} / ({r.gamma} x "
                               f"{_ms(r.target_step_s)}) = {r.cost_ratio:.4f}; {e:.4f} / ({r.gamma} x "
                               f"{r.cost_ratio:.4f} + 1)",
                   value=f"{r.leviathan_speedup:.4f}x", source=f"{_LEVIATHAN} Theorem 3.8 (verification = one step)"),
        Derivation(figure="best gamma", formula="argmax over gamma = 1..16 of the speedup",
                   substituted=", ".join(f"{g.gamma}: {g.speedup:.3f}" for g in r.by_gamma[:8]) + ", ...",
                   value=f"gamma = {r.best_gamma} ({r.best_speedup:.3f}x)", source="kvcalc.calc.speculative"),
        Derivation(figure="batch where speculation stops paying",
                   formula="smallest B with speedup(B) < 1 (doubling, then bisection)",
                   substituted=f"gamma = {r.gamma}; best gamma per batch",
                   value=f"{r.crossover_batch} / {r.crossover_batch_best_gamma}",
                   source="kvcalc.calc.speculative.crossover_batch"),
    ]
    if r.end_to_end is not None:
        x = r.end_to_end
        out.append(Derivation(
            figure="end-to-end speedup", formula="(T_prefill + N t_decode) / (T_prefill + N / E x t_spec)",
            substituted=f"({x.prefill_s:.4f} + {x.output_tokens} x {_ms(r.target_step_s)}) / ({x.prefill_s:.4f} + "
                        f"{x.output_tokens} / {e:.4f} x {_ms(r.spec_step_s)})",
            value=f"{x.speedup:.4f}x", source="kvcalc.calc.speculative.end_to_end_speedup"))
    m = r.memory
    if m is not None:
        out.append(Derivation(
            figure="target KV tokens with the draft",
            formula="(KV pool - draft weights) / (target + draft KV bytes per token)",
            substituted=f"({m.kv_pool_bytes:,} - {m.draft_weights_bytes:,}) / ({m.target_kv_bytes_per_token:,} + "
                        f"{m.draft_kv_bytes_per_token:,})",
            value=f"{m.kv_cache_tokens_with_draft:,} tokens (of {m.kv_cache_tokens:,})",
            source="DeploymentPlan KV pool; draft layers' KV share its blocks"))
    return tuple(out)


def _summary(console: Any, r: SpecReport) -> None:
    shape = f"gamma {r.gamma}" + (f", topk {r.topk}, {r.verify_tokens} verified" if r.topk > 1 else "")
    console.print(f"{r.model} + {r.method}{f' ({r.draft})' if r.draft else ''} on {r.gpu} ({r.engine} "
                  f"{r.engine_version}): batch {r.batch}, context {r.context:,}, {shape}", markup=False)
    console.print(f"acceptance {', '.join(f'{a:.2f}' for a in r.acceptance_rates)} ({r.acceptance_source})",
                  markup=False)
    console.print(f"{r.expected_tokens_per_pass:.3f} tokens per target pass; step {r.spec_step_s * 1e3:.3f} ms "
                  f"(verify {r.verify_step_s * 1e3:.3f}, draft {r.draft_step_s * 1e3:.3f}, other "
                  f"{r.spec_overhead_s * 1e3:.3f}) vs decode {r.target_step_s * 1e3:.3f} ms: speedup "
                  f"{r.speedup:.3f}x (Leviathan's E/(gamma c + 1) with c = {r.cost_ratio:.4f}: "
                  f"{r.leviathan_speedup:.3f}x); best gamma {r.best_gamma} at {r.best_speedup:.3f}x", markup=False)
    if r.end_to_end is not None:
        x = r.end_to_end
        console.print(f"end to end ({x.input_tokens:,} in, {x.output_tokens:,} out): {x.plain_s:.3f} s -> "
                      f"{x.speculative_s:.3f} s, {x.speedup:.3f}x", markup=False)


def render_spec(console: Any, r: SpecReport) -> None:
    """Summary, the gamma table, the batch table, memory."""
    from rich.table import Table

    _summary(console, r)
    g = Table(title="By draft length (at the batch)", title_justify="left")
    for col in ("gamma", "tokens/pass", "E/(gamma c+1)", "speedup"):
        g.add_column(col, justify="right")
    for grow in r.by_gamma[:10]:
        g.add_row(str(grow.gamma), f"{grow.expected_tokens_per_pass:.3f}", f"{grow.leviathan_speedup:.3f}",
                  f"{grow.speedup:.3f}")
    console.print(g)
    b = Table(title=f"By batch (gamma {r.gamma} and the best gamma)", title_justify="left")
    for col in ("batch", "decode ms", "draft ms", "verify ms", "step ms", "verify bound", "speedup", "best gamma",
                "best"):
        b.add_column(col, justify="right")
    for row in r.by_batch:
        b.add_row(str(row.batch), f"{row.target_step_s * 1e3:.3f}", f"{row.draft_step_s * 1e3:.3f}",
                  f"{row.verify_step_s * 1e3:.3f}", f"{row.spec_step_s * 1e3:.3f}", row.verify_bound,
                  f"{row.speedup:.3f}", str(row.best_gamma), f"{row.best_speedup:.3f}")
    console.print(b)
    cross = "never below 1x up to the largest batch" if r.crossover_batch is None else str(r.crossover_batch)
    best = "never" if r.crossover_batch_best_gamma is None else str(r.crossover_batch_best_gamma)
    console.print(f"speculation stops paying at batch {cross} (gamma {r.gamma}); {best} with the best gamma",
                  markup=False)
    m = r.memory
    if m is not None:
        console.print(f"draft memory per GPU: weights {fmt_bytes(m.draft_weights_bytes)}, KV "
                      f"{m.draft_kv_bytes_per_token:,} B/token; target KV tokens {m.kv_cache_tokens:,} -> "
                      f"{m.kv_cache_tokens_with_draft:,}; concurrency at {r.context:,}: "
                      f"{m.concurrency_at_context} -> {m.concurrency_with_draft}", markup=False)
    console.print("sources: " + "; ".join(r.papers), markup=False)
    for note in r.notes:
        console.print(f"note: {note}", markup=False)
