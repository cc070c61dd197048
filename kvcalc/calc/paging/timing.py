"""Time figures the paging layer needs, from first principles (floors, each labelled as such):

- prefill at peak: flops / (tp x dense bf16 peak) (a floor: real prefill runs below peak);
- a decode step reading every weight once: weight bytes per GPU / HBM bandwidth (the memory-bound floor of
  the roofline, with no KV reads, no launches);
- a swap: a request's KV out to host memory and back over each GPU's own PCIe link: 2 x bytes / PCIe.
"""

from __future__ import annotations

from kvcalc.calc.paging.prefill import prefill_flops
from kvcalc.calc.paging.simulate import PreemptCost
from kvcalc.calc.plan import DeploymentPlan


def prefill_seconds_floor(plan: DeploymentPlan, flops: float) -> float:
    """flops / (tp x dense bf16 peak): prefill time if the TP group ran at its datasheet peak."""
    peak = plan.gpu.peak_flops.get("bf16") or max(plan.gpu.peak_flops.values())
    return flops / (plan.parallel.tp * peak)


def decode_step_floor_s(plan: DeploymentPlan) -> float:
    """weights on the fullest GPU / its memory bandwidth: one decode step's weight read."""
    weights = max(d.weights_bytes for d in plan.devices)
    return weights / plan.gpu.memory_bandwidth_bytes_per_s


def swap_seconds(plan: DeploymentPlan, bytes_per_gpu: int) -> float:
    """2 x bytes / PCIe per direction (0 when the GPU file lists no PCIe figure)."""
    link = plan.gpu.interconnect.pcie_bytes_per_s_per_direction if plan.gpu.interconnect else 0
    return 2 * bytes_per_gpu / link if link else 0.0


def preemption_cost(plan: DeploymentPlan) -> PreemptCost:
    """(tokens, KV bytes per GPU) -> (recompute seconds at the prefill floor, swap seconds over PCIe)."""

    def cost(tokens: int, swap_bytes: int) -> tuple[float, float]:
        return prefill_seconds_floor(plan, prefill_flops(plan.model, 0, tokens)), swap_seconds(plan, swap_bytes)

    return cost
