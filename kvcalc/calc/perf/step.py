"""The cost of one engine step: decode requests and prefill chunks batched together (vLLM V1, SGLang and
TRT-LLM all run such mixed steps under chunked prefill).

For one GPU of each pipeline stage, with B the card's DRAM bytes/s and F[d] its dense peak at dtype d:

    t_weights   = dense_bytes / (B x weight_bw_eff)          dense weights this GPU reads
    t_gemm      = sum_d dense_flops[d] / (F[d] x gemm_eff[d] x s(M))      M = tokens in the step
    t_ew[g]     = expert_bytes[g] / (B x weight_bw_eff)      routed experts of group g: the touched share
    t_ex[g]     = sum_d expert_flops[g][d] / (F[d] x gemm_eff[d] x moe_gemm_eff x s(M_e))
    t_kv        = kv_bytes / (B x kv_bw_eff)                KV read (+ written), recurrent states
    t_attention = attention_flops / (F[16-bit] x attention_eff)
    t_ea[g]     = activation_bytes[g] / (B x weight_bw_eff)  routed rows' round trip (moe.py)
    t_stage     = R(t_weights, t_gemm) + sum_g (R(t_ew[g], t_ex[g]) + t_ea[g]) + R(t_kv, t_attention) + t_comm
                  + layer_units x layer_overhead_s

with s(M) = M / (M + gemm_rows_half) the efficiency of a GEMM of M rows, M_e = routed tokens x k / experts
touched the rows of each expert's GEMM, each GEMM's FLOPs also over d(K) = K / (K + gemm_depth_half) for its
depth K on this GPU, and R(a, b) = max(a, b) + overlap_loss x min(a, b) the roofline of one
kernel (calc/perf/shape.py; the lm_head's M is the sequences sampled).
GEMMs of different shapes and attention are separate kernels that run one after the other, so each takes its
own roofline (Williams et al. 2009) and they add: a step of pure decode is memory-bound in all, a big prefill
chunk compute-bound in all, and a mixed step pays the prefill's GEMM time plus the decodes' KV reads. The
expert GEMMs of a prefill see far fewer rows (M_e = 128 for 2,048 tokens of Qwen3-30B-A3B) than its dense
ones, so they can stream weights while the dense GEMMs compute.
layer_units counts each layer's kernels in plain dense layers (kernels.py: Llama 1, a DeepSeek-V3 MoE
layer 2.44).
The step adds what is paid once (step_overhead_s: scheduling, sampling, the CPU side CUDA graphs do not
remove) and per request (request_overhead_s), and the stages add up (a token passes every stage):

    t_step = sum over stages of t_stage + step_overhead_s + requests x request_overhead_s

Figures in `StepCost` are per GPU (one TP rank), summed over pipeline stages (with pp = 1: one GPU): the
latency of one batch through the whole pipeline.

What an engine step costs in a run (`step_time`, `decode_run_times`) adds two engine behaviours:
- pipeline micro-batches: with pp stages the engine keeps pp micro-batches in flight (vLLM V1
  `EngineCore.step_with_batch_queue`, batch queue of `max_concurrent_batches` = pp; GPipe, Huang et al. 2019).
  The step's requests split into pp micro-batches m; every request advances once per cycle:

      t_cycle = max(max_m latency(m), sum_m (slowest stage(m) + fixed(m)))

  latency ~ the sum of the stages, throughput ~ 1 / the slowest stage. A single micro-batch (one request)
  gains nothing.
- async scheduling (vLLM >= 0.14 by default, `vllm/config/vllm.py` "Enable async scheduling unless there is
  an incompatible option", PR #27614): the CPU prepares step n + 1 (per-request input preparation and output
  processing: requests x request_overhead_s) while the GPU runs step n, so that part overlaps:
  t = max(t_gpu + step_overhead_s, requests x request_overhead_s). step_overhead_s stays on the critical
  path: it was measured on vLLM 0.11 (async off) as what a step costs beyond its kernels, and its sampler
  and synchronisation run on the GPU. (`PerfModel.async_cpu`; off with pp > 1, where vLLM keeps the batch
  queue instead.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import field
from typing import Any, Literal

from kvcalc.calc.perf.attention import AttentionGroup, decode_keys_sum
from kvcalc.calc.perf.coefficients import PerfCoefficients
from kvcalc.calc.perf.comm import step_comm
from kvcalc.calc.perf.model import PerfModel, StageModel
from kvcalc.calc.perf.moe import touched_fraction
from kvcalc.calc.perf.shape import depth_scale, maximum, roofline, rows_per_expert
from kvcalc.spec.base import record, replace

Bound = Literal["memory", "compute"]


@record
class StepCost:
    """Every term of one step's time, separately (seconds, bytes, FLOPs; see the module docstring).
    `layer_units`: what layer_overhead_s multiplies (layers weighted by their kernels, kernels.py).
    `expert_*`: the routed experts' part of weight_bytes, gemm_flops, t_weights and t_gemm (their GEMMs run
    at rows per expert, calc/perf/shape.py). `gemm_shape_flops` / `expert_shape_flops`: the dense and expert
    GEMM FLOPs each over its row efficiency s(M) (what they cost at the large-GEMM rate).
    `expert_activation_bytes` / `t_expert_activations`: the routed activations' traffic outside the GEMMs
    (moe.activation_bytes_per_token), part of time_s and of neither t_weights nor t_gemm."""

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
    layer_units: float = 0.0
    expert_weight_bytes: float = 0.0
    expert_gemm_flops: float = 0.0
    t_expert_weights: float = 0.0
    t_experts: float = 0.0
    gemm_shape_flops: float = 0.0
    expert_shape_flops: float = 0.0
    expert_activation_bytes: float = 0.0
    t_expert_activations: float = 0.0

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
    """Decode contexts as a 2-D float array: one row per step (a run of decode steps), one column per request."""
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    return array.reshape(1, -1) if array.ndim < 2 else array


@record
class _ExpertWork:
    """One routed-expert group on this GPU for a step: the bytes it reads (touched experts), its GEMM FLOPs
    by dtype, and the rows each touched expert's GEMM gets (shape.rows_per_expert)."""

    weight_bytes: float
    gemm: dict[str, float]
    rows: float
    activation_bytes: float = 0.0


@record
class _StageWork:
    """One stage's GPU: weight bytes and GEMM FLOPs by dtype (same for every row; totals, experts included),
    KV bytes and attention FLOPs (one per row of contexts). `dense_bytes`, `dense_gemm` and `rows` (tokens
    in the step: the M of its dense GEMMs; the lm_head's is `sampled`) and `experts` split the totals by
    GEMM shape."""

    weight_bytes: float
    gemm: dict[str, float]
    kv_bytes: Any
    attention_flops: Any
    dense_bytes: float = 0.0
    dense_gemm: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    sampled: int = 0
    experts: tuple[_ExpertWork, ...] = ()


def expert_replicas(parallel: Any) -> int:
    """Data-parallel replicas whose tokens one GPU's experts serve: with expert parallelism across replicas
    (ep > tp, attention data parallel + EP: DeepSeek-V3 serving, vLLM `--data-parallel-size` with
    `--enable-expert-parallel`, SGLang `--enable-dp-attention`), every replica's tokens are dispatched to the
    experts' owners, so a GPU's experts see ep / tp replicas' tokens, not only its own."""
    return max(1, parallel.ep // parallel.tp) if parallel.dp > 1 else 1


def _expert_work(stage: StageModel, routed: int) -> tuple[_ExpertWork, ...]:
    """Each expert group's touched bytes (moe.touched_fraction), FLOPs (routed tokens x k/E of the params
    held) and rows per touched expert for `routed` tokens."""
    out = []
    for group in stage.experts:
        out.append(_ExpertWork(
            weight_bytes=group.bytes_on_gpu * touched_fraction(group.num_experts, group.top_k, routed),
            gemm={d: f * routed for d, f in group.flops_per_token.items()},
            rows=rows_per_expert(routed, group.num_experts, group.top_k),
            activation_bytes=group.activation_bytes_per_token * routed))
    return tuple(out)


def _attention_counts(group: AttentionGroup, contexts: Any, prefill: Sequence[tuple[int, int]]) -> tuple[Any, Any, int]:
    """(decode pairs, tokens read, prefill pairs) of one softmax-attention group: every decode token's keys
    (`decode_keys_sum`, per row of contexts); the tokens read, its keys plus its own K/V written, and for each
    chunk the cached prefix read once plus the chunk written; the chunks' pairs (`AttentionGroup.keys`)."""
    pairs = decode_keys_sum(group, contexts)
    read = pairs + contexts.shape[-1]
    prefill_pairs = 0
    for prior, new in prefill:
        prefill_pairs += group.keys(prior, new)
        read = read + group.cached_tokens(prior) + new
    return pairs, read, prefill_pairs


Counts = Callable[[AttentionGroup], tuple[Any, Any, int]]


def _mixer_work(stage: StageModel, n_decode: int, prefill: Sequence[tuple[int, int]],
                counts: Counts) -> tuple[Any, Any]:
    """KV (and recurrent state) bytes and attention FLOPs of every mixer group (attention.py), with `counts`
    a softmax group's `_attention_counts` for the step."""
    prefill_tokens = sum(new for _, new in prefill)
    kv_bytes: Any = 0.0
    attention: Any = 0.0
    for g in stage.attention:
        if g.recurrent:
            kv_bytes = kv_bytes + g.layers * 2.0 * g.state_bytes * (n_decode + len(prefill))
            per_prefill = g.prefill_state_flops_per_token or g.state_flops_per_token
            attention = attention + g.layers * (g.state_flops_per_token * n_decode + per_prefill * prefill_tokens)
            continue
        pairs, read, prefill_pairs = counts(g)
        attention = attention + g.layers * (g.flops_per_pair * pairs + g.prefill_flops_per_pair * prefill_pairs)
        kv_bytes = kv_bytes + g.layers * g.kv_bytes_per_token * read
    return kv_bytes, attention


def _linear_work(stage: StageModel, tokens: int, sampled: int, last: bool, expert_share: int) -> _StageWork:
    """`stage_work` without the mixers (no KV bytes or attention FLOPs): what depends only on the step's
    tokens and sampled sequences."""
    dense = {d: f * tokens for d, f in stage.gemm_flops_per_token.items()}
    if last and stage.head_flops_per_token:
        dense["head"] = stage.head_flops_per_token * sampled
    experts = _expert_work(stage, tokens * expert_share)
    weight_bytes = float(stage.dense_weight_bytes) + sum(e.weight_bytes for e in experts)
    gemm = dict(dense)
    for e in experts:
        for d, f in e.gemm.items():
            gemm[d] = gemm.get(d, 0.0) + f
    return _StageWork(weight_bytes=weight_bytes, gemm=gemm, kv_bytes=0.0, attention_flops=0.0,
                      dense_bytes=float(stage.dense_weight_bytes), dense_gemm=dense, rows=tokens,
                      sampled=sampled, experts=experts)


def stage_work(stage: StageModel, contexts: Any, prefill: Sequence[tuple[int, int]], sampled: int,
               last: bool, expert_share: int = 1) -> _StageWork:
    """Bytes and FLOPs of one stage's GPU for a step: decode `contexts` (rows: steps, columns: requests),
    prefill chunks `(prior, new)`, `sampled` sequences computing logits. `expert_share`: replicas whose tokens
    (as many as this step's, all replicas alike) the GPU's routed experts also serve (`expert_replicas`)."""
    tokens = contexts.shape[-1] + sum(new for _, new in prefill)
    kv_bytes, attention = _mixer_work(stage, contexts.shape[-1], prefill,
                                      lambda g: _attention_counts(g, contexts, prefill))
    return replace(_linear_work(stage, tokens, sampled, last, expert_share), kv_bytes=kv_bytes,
                   attention_flops=attention)


def _gemm_time(pm: PerfModel, coeffs: PerfCoefficients, gemm: dict[str, float], rows: float,
               depth: dict[str, float], head_rows: float = 0.0, scale: float = 1.0) -> tuple[float, float]:
    """(sum_d work[d] / (F[d] x gemm_eff[d] x scale), sum_d work[d]) with work[d] = flops[d] x depth[d] /
    s(rows): each dtype's FLOPs over its GEMMs' row and depth efficiencies (shape.py; `depth[d]` =
    shape.depth_scale). The lm_head runs at the 16-bit rate over `head_rows` rows (the sequences sampled)."""
    total = shaped = 0.0
    for dtype, flops in gemm.items():
        if not flops:
            continue
        rate = pm.sixteen_bit if dtype == "head" else dtype
        work = flops * depth.get(dtype, 1.0) / coeffs.row_efficiency(head_rows if dtype == "head" else rows)
        total += work / (pm.gpu.flops(rate) * coeffs.gemm_efficiency(rate) * scale)
        shaped += work
    return total, shaped


@record
class _LinearTimes:
    """The linear layers of one stage: weight-read and GEMM times (dense and experts summed) and the time
    they take, each GEMM shape under its own roofline (shape.roofline)."""

    t_weights: float
    t_gemm: float
    t_linear: float
    t_expert_weights: float
    t_experts: float
    gemm_shape_flops: float
    expert_shape_flops: float
    t_expert_activations: float = 0.0


def linear_times(pm: PerfModel, coeffs: PerfCoefficients, stage: StageModel, work: _StageWork) -> _LinearTimes:
    """Dense GEMMs (M = the step's tokens) and each expert group (M_e rows per expert, at moe_gemm_eff) are
    separate kernels: R(t_weights, t_gemm) per shape, summed (calc/perf/shape.py), plus the routed
    activations' round trip through memory (moe.activation_bytes_per_token, at the weight-read rate).
    `*_shape_flops`: FLOPs over their row and depth efficiencies, what the GEMMs cost at the large-GEMM rate
    (calibrate.StepPoint)."""
    bw = pm.gpu.memory_bandwidth_bytes_per_s * coeffs.weight_bw_eff
    half = coeffs.gemm_depth_half
    tw = work.dense_bytes / bw
    depth = dict(depth_scale(stage.depths, half))
    if stage.head_depth:
        depth["head"] = 1.0 / coeffs.depth_efficiency(stage.head_depth)
    tg, dense_shaped = _gemm_time(pm, coeffs, work.dense_gemm, work.rows, depth, work.sampled)
    linear = float(roofline(tw, tg, coeffs.overlap_loss))
    tew = tex = expert_shaped = tact = 0.0
    for group, e in zip(stage.experts, work.experts, strict=True):
        w = e.weight_bytes / bw
        g, shaped = _gemm_time(pm, coeffs, e.gemm, e.rows, depth_scale(group.depths, half),
                               scale=coeffs.moe_gemm_eff)
        tew, tex, expert_shaped = tew + w, tex + g, expert_shaped + shaped
        tact += e.activation_bytes / bw
        linear += float(roofline(w, g, coeffs.overlap_loss))
    return _LinearTimes(t_weights=tw + tew, t_gemm=tg + tex, t_linear=linear + tact, t_expert_weights=tew,
                        t_experts=tex, gemm_shape_flops=dense_shaped, expert_shape_flops=expert_shaped,
                        t_expert_activations=tact)


@record
class _Rates:
    """Per-step constants of one PerfModel under one set of coefficients: the KV read rate B x kv_bw_eff, the
    attention rate F[16-bit] x attention_eff, and each stage's layer_units x layer_overhead_s."""

    kv: float
    attention: float
    layers: tuple[float, ...]


def _rates(pm: PerfModel, coeffs: PerfCoefficients) -> _Rates:
    return _Rates(kv=pm.gpu.memory_bandwidth_bytes_per_s * coeffs.kv_bw_eff,
                  attention=pm.gpu.flops(pm.sixteen_bit) * coeffs.attention_eff,
                  layers=tuple(s.layer_units * coeffs.layer_overhead_s for s in pm.stages))


def _attention_time(rates: _Rates, coeffs: PerfCoefficients, kv_bytes: Any,
                    attention_flops: Any) -> tuple[Any, Any, Any]:
    """(t_kv, t_attention, R(t_kv, t_attention)) with t_kv = kv_bytes / (B x kv_bw_eff) and t_attention =
    attention_flops / (F[16-bit] x attention_eff); a stage's kernels take t_linear + R(t_kv, t_attention) +
    layer_units x layer_overhead_s."""
    tkv = kv_bytes / rates.kv
    ta = attention_flops / rates.attention
    return tkv, ta, roofline(tkv, ta, coeffs.overlap_loss)


def _terms(pm: PerfModel, coeffs: PerfCoefficients, contexts: Any, prefill: Sequence[tuple[int, int]],
           sampled: int) -> dict[str, Any]:
    """Every term of one step, summed over stages (`step_cost`'s breakdown)."""
    import numpy as np

    rates = _rates(pm, coeffs)
    n_decode = contexts.shape[-1]
    tokens = n_decode + sum(new for _, new in prefill)
    acc: dict[str, Any] = dict(wb=0.0, kvb=0.0, gf=0.0, af=0.0, tw=0.0, tkv=0.0, tg=0.0, ta=0.0, kernels=0.0,
                               comm=0.0, comm_bytes=0.0, ewb=0.0, egf=0.0, tew=0.0, tex=0.0,
                               gsf=0.0, esf=0.0, eab=0.0, tea=0.0)
    for i, stage in enumerate(pm.stages):
        last = i == len(pm.stages) - 1
        work = stage_work(stage, contexts, prefill, sampled, last, expert_replicas(pm.parallel))
        lin = linear_times(pm, coeffs, stage, work)
        tkv, ta, t_mixer = _attention_time(rates, coeffs, np.asarray(work.kv_bytes), np.asarray(work.attention_flops))
        kernels = lin.t_linear + t_mixer + rates.layers[i]
        acc["kernels"] = acc["kernels"] + kernels
        comm = step_comm(stage, tokens, pm.hidden_size, pm.parallel, pm.gpu, coeffs, last)
        expert_flops = sum(sum(e.gemm.values()) for e in work.experts)
        for key, value in (("wb", work.weight_bytes), ("kvb", work.kv_bytes), ("gf", sum(work.gemm.values())),
                           ("af", work.attention_flops), ("tw", lin.t_weights), ("tkv", tkv), ("tg", lin.t_gemm),
                           ("ta", ta), ("comm", comm.total_s), ("comm_bytes", comm.bytes_sent),
                           ("ewb", work.weight_bytes - work.dense_bytes), ("egf", expert_flops),
                           ("tew", lin.t_expert_weights), ("tex", lin.t_experts),
                           ("gsf", lin.gemm_shape_flops), ("esf", lin.expert_shape_flops),
                           ("eab", sum(e.activation_bytes for e in work.experts)), ("tea", lin.t_expert_activations)):
            acc[key] = acc[key] + value
    fixed = coeffs.step_overhead_s + (n_decode + len(prefill)) * coeffs.request_overhead_s
    acc["overhead"] = sum(s.layer_units for s in pm.stages) * coeffs.layer_overhead_s + fixed
    acc["time"] = acc["kernels"] + acc["comm"] + fixed
    return acc


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
    contexts = _contexts(decode_contexts)
    n_decode = contexts.shape[-1]
    sampled = n_decode + (len(prefill) if sampled_prefills is None else sampled_prefills)
    acc = _terms(pm, coeffs, contexts, prefill, sampled)

    def one(key: str) -> float:
        value = acc[key]
        return float(value[0]) if hasattr(value, "__len__") else float(value)

    bound: Bound = "compute" if one("tg") + one("ta") > one("tw") + one("tkv") else "memory"
    return StepCost(
        decode_tokens=n_decode, prefill_tokens=sum(new for _, new in prefill), requests=n_decode + len(prefill),
        weight_bytes=one("wb"), kv_bytes=one("kvb"), gemm_flops=one("gf"), attention_flops=one("af"),
        t_weights=one("tw"), t_kv=one("tkv"), t_gemm=one("tg"), t_attention=one("ta"), t_comm=one("comm"),
        comm_bytes=one("comm_bytes"), overhead_s=one("overhead"), time_s=one("time"), bound=bound,
        layer_units=sum(s.layer_units for s in pm.stages), expert_weight_bytes=one("ewb"),
        expert_gemm_flops=one("egf"), t_expert_weights=one("tew"), t_experts=one("tex"),
        gemm_shape_flops=one("gsf"), expert_shape_flops=one("esf"), expert_activation_bytes=one("eab"),
        t_expert_activations=one("tea"),
    )


class StepTimer:
    """What engine steps of one PerfModel cost under one set of coefficients (`step_time`,
    `decode_run_times`; module docstring), for the thousands of steps of a run. A stage's linear layers
    (`linear_times`) and collectives (`step_comm`) depend on a step only through its tokens and sampled
    sequences, so they are evaluated once per (stage, tokens, sampled) and kept; a softmax group's attention
    counts depend on its shape (class, window, chunk) and not on the stage, so they are evaluated once per
    micro-batch and shape, and stages with the same attention groups share their attention time. The
    formulas and their order of operations are `step_cost`'s: the times are the same, to the bit
    (tests/test_perf_step.py)."""

    def __init__(self, pm: PerfModel, coeffs: PerfCoefficients) -> None:
        self.pm, self.coeffs = pm, coeffs
        self.rates = _rates(pm, coeffs)
        self.share = expert_replicas(pm.parallel)
        self.overlap_cpu = pm.async_cpu and len(pm.stages) == 1
        self.linear: dict[tuple[int, int, int], tuple[float, float]] = {}
        groups: list[tuple[AttentionGroup, ...]] = []
        for stage in pm.stages:
            groups += [] if stage.attention in groups else [stage.attention]
        self.mixer_of = [groups.index(stage.attention) for stage in pm.stages]  # stages alike share an index

    def _linear(self, i: int, tokens: int, sampled: int) -> tuple[float, float]:
        """(t_linear, t_comm) of stage i for a step of `tokens` tokens, `sampled` of them computing logits."""
        key = (i, tokens, sampled)
        found = self.linear.get(key)
        if found is None:
            pm, stage, last = self.pm, self.pm.stages[i], i == len(self.pm.stages) - 1
            lin = linear_times(pm, self.coeffs, stage, _linear_work(stage, tokens, sampled, last, self.share))
            comm = step_comm(stage, tokens, pm.hidden_size, pm.parallel, pm.gpu, self.coeffs, last)
            found = self.linear[key] = (lin.t_linear, comm.total_s)
        return found

    def _micro_batch(self, rows: Any, prefill: Sequence[tuple[int, int]], sampled: int) -> tuple[Any, Any, float]:
        """(gpu, slowest stage, requests) of one micro-batch: gpu = sum over stages of kernels + t_comm, the
        slowest stage max(kernels + t_comm). One row of contexts gives floats, several numpy arrays."""
        counts: dict[tuple[type, int | None, int | None], tuple[Any, Any, int]] = {}

        def shape_counts(g: AttentionGroup) -> tuple[Any, Any, int]:
            key = (type(g), g.window, g.chunk)  # a subclass may count its pairs its own way (calc/verify/traffic.py)
            if key not in counts:
                pairs, read, prefill_pairs = _attention_counts(g, rows, prefill)
                counts[key] = ((float(pairs[0]), float(read[0]), prefill_pairs) if len(rows) == 1
                               else (pairs, read, prefill_pairs))
            return counts[key]

        n_decode = rows.shape[-1]
        tokens = n_decode + sum(new for _, new in prefill)
        kernels_sum: Any = 0.0
        comm_sum: Any = 0.0
        slowest: Any = 0.0
        mixers: dict[int, Any] = {}
        for i, stage in enumerate(self.pm.stages):
            t_linear, comm = self._linear(i, tokens, sampled)
            k = self.mixer_of[i]
            if k not in mixers:
                kv_bytes, attention = _mixer_work(stage, n_decode, prefill, shape_counts)
                mixers[k] = _attention_time(self.rates, self.coeffs, kv_bytes, attention)[2]
            kernels = t_linear + mixers[k] + self.rates.layers[i]
            kernels_sum = kernels_sum + kernels
            comm_sum = comm_sum + comm
            slowest = maximum(slowest, kernels + comm)
        return kernels_sum + comm_sum, slowest, n_decode + len(prefill)

    def engine_time(self, rows: Any, prefill: Sequence[tuple[int, int]], sampled: Sequence[bool]) -> Any:
        """Engine time of a step (over rows of contexts): pipeline cycle with pp micro-batches (micro-batch m
        takes decode columns and chunks m, m + pp, ...), CPU costs overlapped under async scheduling
        (module docstring)."""
        pp = len(self.pm.stages)
        chunks = list(zip(prefill, sampled, strict=True))
        latency: Any = 0.0
        bottleneck: Any = 0.0
        for m in range(pp):
            cols = rows[:, m::pp] if pp > 1 else rows
            part = chunks[m::pp]
            if not cols.shape[-1] and not part:
                continue
            gpu, slowest, requests = self._micro_batch(cols, [c for c, _ in part],
                                                        cols.shape[-1] + sum(s for _, s in part))
            cpu = requests * self.coeffs.request_overhead_s
            fixed = self.coeffs.step_overhead_s + cpu
            one = maximum(gpu + fixed - cpu, cpu) if self.overlap_cpu else gpu + fixed
            latency = maximum(latency, one)
            bottleneck = bottleneck + slowest + fixed
        return maximum(latency, bottleneck) if pp > 1 else latency

    def step_time(self, decode_contexts: Any = (), prefill: Sequence[tuple[int, int]] = (),
                  sampled: Sequence[bool] | None = None) -> float:
        """`step_time` (below) under this timer's model and coefficients."""
        import numpy as np

        rows = _contexts(decode_contexts)
        mask = [True] * len(prefill) if sampled is None else list(sampled)
        return float(np.asarray(self.engine_time(rows, prefill, mask)).reshape(-1)[0])

    def decode_run_times(self, contexts: Any, steps: int) -> Any:
        """`decode_run_times` (below) under this timer's model and coefficients."""
        import numpy as np

        base = np.asarray(contexts, dtype=np.float64).reshape(1, -1)
        rows = base + np.arange(steps, dtype=np.float64).reshape(-1, 1)
        times = self.engine_time(rows, (), ())
        return np.broadcast_to(np.asarray(times, dtype=np.float64), (steps,)).copy()


def step_time(pm: PerfModel, coeffs: PerfCoefficients, *, decode_contexts: Any = (),
              prefill: Sequence[tuple[int, int]] = (), sampled: Sequence[bool] | None = None) -> float:
    """What one engine step of this work costs in a run (seconds): `step_cost`'s terms with pipeline
    micro-batches and async scheduling (module docstring). `sampled[i]`: chunk i finishes its prompt and
    samples a token (default: every chunk)."""
    return StepTimer(pm, coeffs).step_time(decode_contexts, prefill, sampled)


def decode_run_times(pm: PerfModel, coeffs: PerfCoefficients, contexts: Any, steps: int) -> Any:
    """Times of `steps` consecutive pure-decode engine steps of the same requests (numpy array): step j
    decodes with every context grown by j. Same formula as `step_time`, evaluated for all steps at once."""
    return StepTimer(pm, coeffs).decode_run_times(contexts, steps)
