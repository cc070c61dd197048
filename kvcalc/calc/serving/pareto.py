"""The Pareto front of candidate deployments over two costs to minimise (e.g. $ per million tokens and TPOT):
a candidate stays when no other is at least as good on both and strictly better on one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def pareto_front(items: Sequence[T], x: Callable[[T], float], y: Callable[[T], float]) -> list[T]:
    """Non-dominated `items`, sorted by x then y. Sweep by ascending x: an item stays if its y beats every
    y seen so far (ties in both keep the first)."""
    ordered = sorted(items, key=lambda it: (x(it), y(it)))
    front: list[T] = []
    best_y = float("inf")
    for item in ordered:
        if y(item) < best_y:
            front.append(item)
            best_y = y(item)
    return front
