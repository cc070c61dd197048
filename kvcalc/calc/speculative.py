"""Speculative decoding: tokens per target pass, wall-clock speedup, the best draft length, where it stops paying.

A draft proposes `gamma` tokens; the target verifies them in one pass and keeps the accepted prefix plus one
token of its own. Leviathan, Kalman & Matias 2023 ("Fast Inference from Transformers via Speculative
Decoding", arXiv:2211.17192) accept each draft token independently with probability `alpha`:

    E[tokens per target pass] = (1 - alpha^(gamma + 1)) / (1 - alpha)            (eq. 1; gamma + 1 at alpha = 1)
    speedup                   = E / (gamma c + 1)                                 (Theorem 3.8)

with c = draft step time / target step time. Real drafters are not that uniform: EAGLE's acceptance falls with
depth (EAGLE-3 paper arXiv:2503.01840 Fig. 7 plots the "n-alpha" of each depth), so kvcalc takes conditional
per-position rates a_1, a_2, ... (a_i = P(draft token i accepted | tokens 1..i-1 accepted); the last repeats
beyond the list) and sums the probability that each prefix survives:

    E = 1 + sum_{i=1..gamma} prod_{j=1..i} a_j

which is eq. 1 when every a_j = alpha. Engines log acceptance two other ways: vLLM's "Mean acceptance length"
is E itself (`vllm/v1/spec_decode/metrics.py`: 1 + accepted / drafts) and its "Per-position acceptance rate"
is unconditional, r_i = P(tokens 1..i all accepted), so a_i = r_i / r_(i-1).

Leviathan's speedup assumes verifying gamma + 1 tokens costs one target step and drafting costs c of one. In an
engine one speculative step costs the drafter's passes plus a verification pass over the draft tokens of every
sequence (`kvcalc.calc.spec_cost`), against one plain decode step per token:

    speedup = E x t_target(B) / t_spec(B, gamma)

At batch B the verification carries B (gamma + 1) tokens; once that turns compute-bound its time grows with
gamma + 1 and the speedup falls below 1 (`crossover_batch`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kvcalc.errors import InputError

#: Draft lengths searched for the best gamma.
MAX_GAMMA = 16


def check_alpha(alpha: float, what: str = "--alpha") -> None:
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"{what} must be an acceptance rate in [0, 1], got {alpha}")


def _check_gamma(gamma: int) -> None:
    if gamma < 0:
        raise InputError(f"--gamma must be >= 0, got {gamma}")


def expected_tokens_per_pass(alpha: float, gamma: int) -> float:
    """(1 - alpha^(gamma + 1)) / (1 - alpha): Leviathan et al. 2023 eq. 1 (gamma + 1 when alpha = 1)."""
    check_alpha(alpha)
    _check_gamma(gamma)
    if alpha == 1.0:
        return float(gamma + 1)
    return (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)


def rate_at(rates: Sequence[float], position: int) -> float:
    """a_position (1-based) of conditional rates; positions past the list take its last rate."""
    return rates[min(position, len(rates)) - 1]


def expected_tokens_from_rates(rates: Sequence[float], gamma: int) -> float:
    """E = 1 + sum_{i<=gamma} prod_{j<=i} a_j for conditional per-position acceptance a_j (module docstring).
    [0.8, 0.6, 0.4] at gamma 3: 1 + 0.8 + 0.48 + 0.192 = 2.472."""
    if not rates:
        raise InputError("acceptance rates must not be empty")
    for a in rates:
        check_alpha(a, "each acceptance rate")
    _check_gamma(gamma)
    total, survive = 1.0, 1.0
    for i in range(1, gamma + 1):
        survive *= rate_at(rates, i)
        total += survive
    return total


def conditional_from_unconditional(per_position: Sequence[float]) -> tuple[float, ...]:
    """a_i = r_i / r_(i-1) from unconditional per-position rates r_i (vLLM's "Per-position acceptance rate":
    accepted at position i / drafts, `vllm/v1/spec_decode/metrics.py`); r_0 = 1. A position never reached
    (r_(i-1) = 0) keeps rate 0."""
    out, previous = [], 1.0
    for r in per_position:
        check_alpha(r, "each per-position acceptance rate")
        if r > previous + 1e-9:
            raise InputError(f"per-position acceptance rates must not increase ({r} after {previous})")
        out.append(min(1.0, r / previous) if previous > 0 else 0.0)
        previous = r
    return tuple(out)


def alpha_for_acceptance_length(tau: float, gamma: int) -> float:
    """The constant alpha whose eq. 1 gives E = tau at this gamma (bisection; E rises with alpha), for a measured
    mean acceptance length (vLLM and SGLang log it) turned into a per-token rate."""
    if gamma < 1:
        raise InputError(f"--gamma must be >= 1 to use an acceptance length, got {gamma}")
    if not 1.0 <= tau <= gamma + 1:
        raise InputError(f"--acceptance-length must be from 1 to gamma + 1 = {gamma + 1}, got {tau}")
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if expected_tokens_per_pass(mid, gamma) < tau:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def speedup(alpha: float, gamma: int, cost_ratio: float) -> float:
    """E / (gamma c + 1): Leviathan et al. 2023 Theorem 3.8 (verification costs one target step)."""
    if cost_ratio < 0:
        raise InputError(f"--cost-ratio must be >= 0, got {cost_ratio}")
    return expected_tokens_per_pass(alpha, gamma) / (gamma * cost_ratio + 1.0)


def step_speedup(expected_tokens: float, target_step_s: float, spec_step_s: float) -> float:
    """E x t_target / t_spec: tokens per second with speculation over without (module docstring)."""
    return expected_tokens * target_step_s / spec_step_s


def end_to_end_speedup(prefill_s: float, output_tokens: int, expected_tokens: float, target_step_s: float,
                       spec_step_s: float) -> float:
    """(T_prefill + N t_target) / (T_prefill + N / E x t_spec): a request's run time without over with
    speculation, when both pay the same prefill and generate the same N tokens (offline benchmarks time
    `LLM.generate` end to end; the prefill is not sped up)."""
    plain = prefill_s + output_tokens * target_step_s
    return plain / (prefill_s + output_tokens / expected_tokens * spec_step_s)


def best_gamma(speedup_at: Callable[[int], float], max_gamma: int = MAX_GAMMA) -> tuple[int, float]:
    """The draft length in 1..max_gamma with the highest speedup (the shortest among equals)."""
    best = (1, speedup_at(1))
    for gamma in range(2, max_gamma + 1):
        value = speedup_at(gamma)
        if value > best[1] + 1e-12:
            best = (gamma, value)
    return best


def crossover_batch(speedup_at_batch: Callable[[int], float], max_batch: int) -> int | None:
    """Smallest batch in 1..max_batch where speculation no longer pays (speedup < 1), by doubling then
    bisection (speedup falls as the batch grows: verification turns compute-bound); None if it pays up to
    max_batch, 1 if it never pays."""
    if speedup_at_batch(1) < 1.0:
        return 1
    lo, hi = 1, 2
    while hi <= max_batch and speedup_at_batch(hi) >= 1.0:
        lo, hi = hi, hi * 2
    if hi > max_batch:
        if speedup_at_batch(max_batch) >= 1.0:
            return None
        hi = max_batch
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if speedup_at_batch(mid) >= 1.0:
            lo = mid
        else:
            hi = mid
    return hi
