"""Replicas for a load: demand over what one replica sustains, with headroom, and what the fleet uses.

    replicas    = ceil(demand_rps x (1 + headroom) / per_replica_rps)
    utilization = demand_rps / (replicas x per_replica_rps)
    GPU-hours per day = replicas x gpus_per_replica x 24

Headroom is spare capacity for bursts, failures and rolling restarts: 0.2 provisions 20% more capacity than the
mean demand needs.
"""

from __future__ import annotations

import math

from kvcalc.spec.base import record

#: Relative slack under which a ratio that is a whole number in exact arithmetic is not rounded up
#: (12 x 1.2 / 2.4 is 6.000000000000001 in binary floating point).
_EPS = 1e-9


def ceil_ratio(numerator: float, denominator: float) -> int:
    """ceil(numerator / denominator), forgiving floating-point dust: 6.000000000000001 -> 6."""
    ratio = numerator / denominator
    return math.ceil(ratio * (1.0 - _EPS))


def replicas_for_load(demand_rps: float, per_replica_rps: float, headroom: float = 0.0) -> int:
    """`ceil(demand x (1 + headroom) / per_replica_rps)`; 0 for no demand."""
    if per_replica_rps <= 0:
        raise ValueError(f"per-replica capacity must be positive, got {per_replica_rps}")
    if demand_rps < 0 or headroom < 0:
        raise ValueError("demand and headroom must not be negative")
    return ceil_ratio(demand_rps, per_replica_rps / (1.0 + headroom)) if demand_rps > 0 else 0


def utilization(demand_rps: float, replicas: int, per_replica_rps: float) -> float:
    """`demand / (replicas x per_replica_rps)` (0 with no replicas)."""
    capacity = replicas * per_replica_rps
    return demand_rps / capacity if capacity > 0 else 0.0


@record
class Fleet:
    """A static fleet sized for one load."""

    demand_rps: float
    headroom: float
    per_replica_rps: float
    replicas: int
    gpus_per_replica: int
    gpus_total: int
    utilization: float
    gpu_hours_per_day: float


def size_fleet(demand_rps: float, per_replica_rps: float, gpus_per_replica: int, headroom: float = 0.0) -> Fleet:
    """Replicas, GPUs, utilization and GPU-hours per day for `demand_rps` (module docstring)."""
    replicas = replicas_for_load(demand_rps, per_replica_rps, headroom)
    gpus = replicas * gpus_per_replica
    return Fleet(
        demand_rps=demand_rps, headroom=headroom, per_replica_rps=per_replica_rps, replicas=replicas,
        gpus_per_replica=gpus_per_replica, gpus_total=gpus,
        utilization=utilization(demand_rps, replicas, per_replica_rps), gpu_hours_per_day=gpus * 24.0,
    )
