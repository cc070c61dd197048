"""Communication time of one engine step: TP all-reduce, EP all-to-all, PP hand-off.

Each collective costs a fixed latency plus its bytes over the link (the alpha-beta model, Hockney 1994):

    t = comm_latency_s + bytes_on_the_wire / (link bytes/s per direction x comm_bw_eff)

- TP: two all-reduces per layer (after attention and after the MLP; Megatron-LM, Shoeybi et al. 2019 s3)
  of tokens x hidden x 2 B; a ring all-reduce puts 2 (tp - 1) / tp of the message on each GPU's link
  (Patarasuk & Yuan 2009) and takes 2 (tp - 1) steps (reduce-scatter, then all-gather), each paying a hop's
  latency: latency = comm_latency_s + 2 (tp - 1) x comm_hop_latency_s (`allreduce_latency`). Decode
  all-reduces are small (a few KB to MB), so this latency, not the bytes, sets their time.
  Counted per block: a layer without a mixer or MLP has one fewer.
- EP: per MoE layer a dispatch and a combine all-to-all, each moving tokens x top_k x hidden x 2 B of
  which (ep - 1) / ep leaves the GPU (DeepSpeed-MoE, Rajbhandari et al. 2022; DeepEP).
- PP: each stage hands tokens x hidden x 2 B to the next (one send per boundary).
The link is the hardware file's scale-up fabric (NVLink), or PCIe where the card has none.
"""

from __future__ import annotations

from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.model import ACTIVATION_BYTES, StageModel
from kvcalc.spec.base import record
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.gpu import GpuSpec

#: PCIe Gen4 x16 per direction, for a GPU file without an interconnect entry (PCI-SIG spec: 16 GT/s x 16
#: lanes, 128b/130b = 31.5 GB/s).
FALLBACK_LINK_BYTES_PER_S = 32e9


def link_bytes_per_s(gpu: GpuSpec) -> float:
    """Per-direction bytes/s of the GPU-to-GPU link (NVLink, else PCIe)."""
    if gpu.interconnect is None:
        return FALLBACK_LINK_BYTES_PER_S
    return float(gpu.interconnect.bytes_per_s_per_direction)


def collective_time(wire_bytes: float, gpu: GpuSpec, coeffs: PerfCoefficients, latency: float | None = None) -> float:
    """latency (default comm_latency_s) + bytes / (link x comm_bw_eff): one collective."""
    base = coeffs.comm_latency_s if latency is None else latency
    return base + wire_bytes / (link_bytes_per_s(gpu) * coeffs.comm_bw_eff)


def allreduce_latency(ranks: int, coeffs: PerfCoefficients) -> float:
    """Latency of one small ring all-reduce over `ranks` GPUs: comm_latency_s + 2 (ranks - 1) x
    comm_hop_latency_s (module docstring)."""
    return coeffs.comm_latency_s + 2 * (ranks - 1) * coeffs.comm_hop_latency_s


def allreduce_wire_bytes(message_bytes: float, tp: int) -> float:
    """Ring all-reduce: 2 (tp - 1) / tp x message per GPU (0 for tp = 1)."""
    return 2.0 * (tp - 1) / tp * message_bytes if tp > 1 else 0.0


@record
class CommTime:
    """Seconds of one step spent in each kind of collective on one GPU of one stage, and bytes sent."""

    tp_s: float = 0.0
    ep_s: float = 0.0
    pp_s: float = 0.0
    bytes_sent: float = 0.0

    @property
    def total_s(self) -> float:
        return self.tp_s + self.ep_s + self.pp_s


def step_comm(stage: StageModel, tokens: int, hidden: int, parallel: Parallel, gpu: GpuSpec,
              coeffs: PerfCoefficients, last_stage: bool) -> CommTime:
    """Collectives of one stage for a step of `tokens` tokens (module docstring)."""
    if tokens <= 0:
        return CommTime()
    message = tokens * hidden * ACTIVATION_BYTES
    tp_s = ep_s = pp_s = sent = 0.0
    if parallel.tp > 1:
        wire = allreduce_wire_bytes(message, parallel.tp)
        tp_s = stage.blocks * collective_time(wire, gpu, coeffs, allreduce_latency(parallel.tp, coeffs))
        sent += stage.blocks * wire
    if parallel.ep > 1 and stage.moe_layers:
        top_k = max((g.top_k for g in stage.experts), default=1)
        wire = message * top_k * (parallel.ep - 1) / parallel.ep
        ep_s = 2 * stage.moe_layers * collective_time(wire, gpu, coeffs)
        sent += 2 * stage.moe_layers * wire
    if parallel.pp > 1 and not last_stage:
        pp_s = collective_time(message, gpu, coeffs)
        sent += message
    return CommTime(tp_s=tp_s, ep_s=ep_s, pp_s=pp_s, bytes_sent=sent)
