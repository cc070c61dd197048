"""The cost of one engine step: decode requests and prefill chunks batched together (vLLM V1, SGLang and
TRT-LLM all run such mixed steps under chunked prefill).

For one GPU of each pipeline stage, with B the card's DRAM bytes/s and F[d] its dense peak at dtype d:

    t_weights   = weight_bytes / (B x weight_bw_eff)        weights this GPU reads (experts: touched share)
    t_gemm      = sum_d gemm_flops[d] / (F[d] x gemm_eff[d]) linear layers at each tensor's rate
    t_kv        = kv_bytes / (B x kv_bw_eff)                KV read (+ written), recurrent states
    t_attention = attention_flops / (F[16-bit] x attention_eff)
    t_stage     = max(t_weights, t_gemm) + max(t_kv, t_attention) + t_comm
                  + layers x layer_overhead_s

GEMMs and attention are separate kernels that run one after the other, so each takes its own roofline
(Williams et al. 2009) and the two add; a step of pure decode is then memory-bound in both, a big prefill
chunk compute-bound in both, and a mixed step pays the prefill's GEMM time plus the decodes' KV reads.
The step adds what is paid once (step_overhead_s: scheduling, sampling, the CPU side CUDA graphs do not
remove) and per request (request_overhead_s), and the stages add up (a token passes every stage):

    t_step = sum over stages of t_stage + step_overhead_s + requests x request_overhead_s

Figures in `StepCost` are per GPU (one TP rank), summed over pipeline stages (with pp = 1: one GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from kvcalc.calc.perf.attention import decode_keys_sum
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.comm import CommTime, step_comm
from kvcalc.calc.perf.model import PerfModel, StageModel
from kvcalc.calc.perf.moe import touched_fraction
from kvcalc.spec.base import record

Bound = Literal["memory", "compute"]


@record
class StepCost:
    """Every term of one step's time, separately (seconds, bytes, FLOPs; see the module docstring)."""

    decode_tokens: int
    prefill_tokens: int
    requests: int
    weight_bytes: float
    kv_bytes: float
    gemm_flops: float
    attention_flops: float
    t_weights: float
    t_kv: float
    t_gemm: float
    t_attention: float
    t_comm: float
    comm_bytes: float
    overhead_s: float
    time_s: float
    bound: Bound

    @property
    def tokens(self) -> int:
        return self.decode_tokens + self.prefill_tokens

    @property
    def t_mem(self) -> float:
        return self.t_weights + self.t_kv

    @property
    def t_compute(self) -> float:
        return self.t_gemm + self.t_attention

    @property
    def flops(self) -> float:
        return self.gemm_flops + self.attention_flops

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.kv_bytes

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte of DRAM traffic (Williams et al. 2009)."""
        return self.flops / self.bytes if self.bytes else 0.0


def _contexts(values: Any) -> Any:
    import numpy as np

    return np.asarray(values, dtype=np.float64)


@record
class _StageWork:
    weight_bytes: float
    kv_bytes: float
    gemm: dict[str, float]
    attention_flops: float


def stage_work(stage: StageModel, contexts: Any, prefill: Sequence[tuple[int, int]], sampled: int,
               last: bool) -> _StageWork:
    """Bytes and FLOPs of one stage's GPU for a step (decode `contexts` array, `prefill` (prior, new))."""
    n_decode = len(contexts)
    new_tokens = sum(new for _, new in prefill)
    tokens = n_decode + new_tokens
    weight_bytes = float(stage.dense_weight_bytes)
    gemm = {d: f * tokens for d, f in stage.gemm_flops_per_token.items()}
    for group in stage.experts:
        weight_bytes += group.bytes_on_gpu * touched_fraction(group.num_experts, group.top_k, tokens)
        for d, f in group.flops_per_token.items():
            gemm[d] = gemm.get(d, 0.0) + f * tokens
    if last and stage.head_flops_per_token:
        head = stage.head_flops_per_token * sampled
        gemm["head"] = head
    kv_bytes = attention = 0.0
    for g in stage.attention:
        if g.recurrent:
            sequences = n_decode + len(prefill)
            kv_bytes += g.layers * 2.0 * g.state_bytes * sequences
            attention += g.layers * g.state_flops_per_token * tokens
            continue
        pairs = decode_keys_sum(g, contexts)
        read = pairs
        attention += g.layers * g.flops_per_pair * pairs
        for prior, new in prefill:
            attention += g.layers * g.prefill_flops_per_pair * g.keys(prior, new)
            read += g.cached_tokens(prior) + new  # read the cached prefix once, write the chunk
        kv_bytes += g.layers * g.kv_bytes_per_token * (read + n_decode)  # + each decode token's write
    return _StageWork(weight_bytes=weight_bytes, kv_bytes=kv_bytes, gemm=gemm, attention_flops=attention)


def step_cost(
    pm: PerfModel,
    coeffs: PerfCoefficients,
    *,
    decode_contexts: Any = (),
    prefill: Sequence[tuple[int, int]] = (),
    sampled_prefills: int | None = None,
) -> StepCost:
    """Cost of one step: one decode token for each request in `decode_contexts` (tokens already in its
    context) plus each prefill chunk `(prior, new)` (`new` prompt tokens after `prior` cached ones).
    `sampled_prefills`: chunks that finish their prompt and sample a token (default: all of them)."""
    gpu, par = pm.gpu, pm.parallel
    contexts = _contexts(decode_contexts)
    n_decode = len(contexts)
    sampled = n_decode + (len(prefill) if sampled_prefills is None else sampled_prefills)
    bw = gpu.memory_bandwidth_bytes_per_s
    tokens = n_decode + sum(new for _, new in prefill)
    totals = dict(wb=0.0, kvb=0.0, gf=0.0, af=0.0, tw=0.0, tkv=0.0, tg=0.0, ta=0.0)
    comm = CommTime()
    kernel_time = 0.0
    for i, stage in enumerate(pm.stages):
        last = i == len(pm.stages) - 1
        work = stage_work(stage, contexts, prefill, sampled, last)
        tw = work.weight_bytes / (bw * coeffs.weight_bw_eff)
        tkv = work.kv_bytes / (bw * coeffs.kv_bw_eff)
        tg = sum(f / (gpu.flops(pm.sixteen_bit if d == "head" else d)
                      * coeffs.gemm_efficiency(pm.sixteen_bit if d == "head" else d))
                 for d, f in work.gemm.items())
        ta = work.attention_flops / (gpu.flops(pm.sixteen_bit) * coeffs.attention_eff)
        kernel_time += max(tw, tg) + max(tkv, ta) + stage.layers * coeffs.layer_overhead_s
        c = step_comm(stage, tokens, pm.hidden_size, par, gpu, coeffs, last)
        comm = CommTime(tp_s=comm.tp_s + c.tp_s, ep_s=comm.ep_s + c.ep_s, pp_s=comm.pp_s + c.pp_s,
                        bytes_sent=comm.bytes_sent + c.bytes_sent)
        for key, value in (("wb", work.weight_bytes), ("kvb", work.kv_bytes), ("gf", sum(work.gemm.values())),
                           ("af", work.attention_flops), ("tw", tw), ("tkv", tkv), ("tg", tg), ("ta", ta)):
            totals[key] += value
    requests = n_decode + len(prefill)
    overhead = (sum(s.layers for s in pm.stages) * coeffs.layer_overhead_s + coeffs.step_overhead_s
                + requests * coeffs.request_overhead_s)
    time_s = kernel_time + comm.total_s + coeffs.step_overhead_s + requests * coeffs.request_overhead_s
    bound: Bound = "compute" if totals["tg"] + totals["ta"] > totals["tw"] + totals["tkv"] else "memory"
    return StepCost(
        decode_tokens=n_decode, prefill_tokens=tokens - n_decode, requests=requests,
        weight_bytes=totals["wb"], kv_bytes=totals["kvb"], gemm_flops=totals["gf"],
        attention_flops=totals["af"], t_weights=totals["tw"], t_kv=totals["tkv"], t_gemm=totals["tg"],
        t_attention=totals["ta"], t_comm=comm.total_s, comm_bytes=comm.bytes_sent, overhead_s=overhead,
        time_s=time_s, bound=bound,
    )
