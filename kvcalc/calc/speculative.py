"""Speculative decoding: tokens per target pass, wall-clock speedup, the best draft length, where it stops paying.

A draft proposes `gamma` tokens; the target verifies them in one pass and keeps the accepted prefix plus one
token of its own. With each draft token accepted independently with probability `alpha` (Leviathan, Kalman &
Matias 2023, "Fast Inference from Transformers via Speculative Decoding", arXiv:2211.17192):

    E[tokens per target pass] = (1 - alpha^(gamma + 1)) / (1 - alpha)            (eq. 1; gamma + 1 at alpha = 1)
    speedup                   = E / (gamma c + 1)                                 (Theorem 3.8)

with c = draft step time / target step time. That speedup assumes verifying gamma + 1 tokens costs one target
step, true while the step is memory-bound. In general one speculative step costs gamma draft steps plus a
verification pass over gamma + 1 tokens per sequence, against one plain decode step per token:

    speedup = E x t_target(B) / (gamma t_draft(B) + t_verify(B, gamma + 1))

which is Leviathan's formula when t_verify = t_target and c = t_draft / t_target. At batch B the
verification carries B (gamma + 1) tokens; once that step turns compute-bound its time grows with gamma + 1 and
the speedup falls below 1 (`crossover_batch`).
"""

from __future__ import annotations

from collections.abc import Callable

from kvcalc.errors import InputError

#: Draft lengths searched for the best gamma.
MAX_GAMMA = 16


def check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"--alpha must be an acceptance rate in [0, 1], got {alpha}")


def expected_tokens_per_pass(alpha: float, gamma: int) -> float:
    """(1 - alpha^(gamma + 1)) / (1 - alpha): Leviathan et al. 2023 eq. 1 (gamma + 1 when alpha = 1)."""
    check_alpha(alpha)
    if gamma < 0:
        raise InputError(f"--gamma must be >= 0, got {gamma}")
    if alpha == 1.0:
        return float(gamma + 1)
    return (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)


def speedup(alpha: float, gamma: int, cost_ratio: float) -> float:
    """E / (gamma c + 1): Leviathan et al. 2023 Theorem 3.8 (verification costs one target step)."""
    if cost_ratio < 0:
        raise InputError(f"--cost-ratio must be >= 0, got {cost_ratio}")
    return expected_tokens_per_pass(alpha, gamma) / (gamma * cost_ratio + 1.0)


def step_speedup(alpha: float, gamma: int, target_step_s: float, draft_step_s: float, verify_step_s: float) -> float:
    """E x t_target / (gamma t_draft + t_verify): tokens per second with speculation over without."""
    return expected_tokens_per_pass(alpha, gamma) * target_step_s / (gamma * draft_step_s + verify_step_s)


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
