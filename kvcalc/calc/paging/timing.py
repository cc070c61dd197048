"""Time figures the paging layer needs.

From the perf model (`kvcalc/calc/perf/`, the same coefficients `kvcalc perf` prints), when the caller builds
`PerfTiming(plan)`:
- an engine step of decode requests and prefill chunks: `step.step_cost(...).time_s`;
- a prefill of `new` tokens after `prior` cached ones, in chunks of max_num_batched_tokens, each chunk a step
  of its own: the sum of their step times. TTFT saved by a cache hit = prefill(0, P) - prefill(hit, P - hit).

First-principles floors (always available, each labelled as a floor):
- prefill at peak: flops / (tp x dense bf16 peak);
- a decode step reading every weight once: weights on the fullest GPU / HBM bandwidth;
- a swap: a request's KV out to host memory and back over each GPU's own PCIe link: 2 x bytes / PCIe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


class PerfTiming:
    """Step and prefill times from the perf model of `plan` (default coefficients, or `coeffs`)."""

    def __init__(self, plan: DeploymentPlan, coeffs: Any = None) -> None:
        from kvcalc.calc.perf.defaults import default_coefficients
        from kvcalc.calc.perf.model import perf_model

        self.plan = plan
        self.pm = perf_model(plan)
        self.coeffs = coeffs or default_coefficients(plan.gpu, plan.engine)
        self.source = self.coeffs.source

    def step_seconds(self, decode_contexts: Sequence[int], prefill: Sequence[tuple[int, int]]) -> float:
        """One engine step: a token for each decode context, plus each (prior, new) prefill chunk."""
        from kvcalc.calc.perf.step import step_cost

        if not decode_contexts and not prefill:
            return 0.0
        return step_cost(self.pm, self.coeffs, decode_contexts=list(decode_contexts), prefill=list(prefill)).time_s

    def prefill_seconds(self, prior: int, new: int) -> float:
        """`new` prompt tokens after `prior` cached ones, one chunk of max_num_batched_tokens per step."""
        chunk = max(1, self.plan.max_num_batched_tokens)
        return sum(self.step_seconds((), [(start, min(chunk, prior + new - start))])
                   for start in range(prior, prior + new, chunk))


def preemption_cost(plan: DeploymentPlan, timing: PerfTiming | None = None) -> PreemptCost:
    """(tokens, KV bytes per GPU) -> (recompute seconds, swap seconds over PCIe). Recompute: the perf
    model's prefill of those tokens when `timing` is given, else the peak floor."""

    def cost(tokens: int, swap_bytes: int) -> tuple[float, float]:
        if timing is not None:
            recompute = timing.prefill_seconds(0, tokens)
        else:
            recompute = prefill_seconds_floor(plan, prefill_flops(plan.model, 0, tokens))
        return recompute, swap_seconds(plan, swap_bytes)

    return cost
