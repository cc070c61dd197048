"""PerfModel: what one engine step costs per token, per GPU, precomputed once from a DeploymentPlan.

A step's work is linear in its tokens and attention pairs, so the plan is reduced once to per-stage rates
(`perf_model(plan)`), and `step.step_cost` multiplies them by a step's load. The weights, layout, KV dtype
and pool are the plan's: a latency never disagrees with the memory answer.

Per pipeline stage, on one of its GPUs (all TP ranks of a stage are alike):
- dense weights: every tensor the stage holds except routed experts and the input embedding, read once per
  step (attention, dense MLPs, shared experts, norms, routers, the lm_head on the last stage). Bytes are the
  plan's weight format applied to this GPU's shard (`calc/parallel.shard_numel`), so they add up to the
  ledger's weights less the embedding table (which a step gathers only B rows of) and the vision encoder.
- routed experts: bytes on this GPU per MoE group, read in the share `moe.touched_fraction(E, k, B)`;
  FLOPs per token 2 x k x (params on this GPU / E): TP slices every expert, EP holds E/ep whole ones, and
  either way a token's k experts cost this GPU k/E of the params it holds.
- GEMM FLOPs per token: 2 x params on this GPU (a multiply-add per weight; Kaplan et al. 2020 s2.1), by the
  tensor-core rate each tensor runs at (`precision.compute_dtype`); the lm_head only for sampled tokens
  (engines compute logits for the last position of a prefill, vLLM `logits_processor` on
  `logits_indices`); also by each GEMM's depth K on this GPU (`gemm_depth`), which sets its efficiency
  (calc/perf/shape.py).
- attention groups: `attention.AttentionGroup` per layer kind and shape.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import field
from functools import lru_cache

from kvcalc.calc import kv as kvmod
from kvcalc.calc.parallel import ROW_PARALLEL, shard_numel, stage_layers
from kvcalc.calc.perf.attention import AttentionGroup
from kvcalc.calc.perf.kernels import layer_units
from kvcalc.calc.perf.moe import activation_bytes_per_token
from kvcalc.calc.perf.precision import compute_dtype, sixteen_bit
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.errors import InputError
from kvcalc.spec.base import record
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.dtypes import StorageType, storage_type
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.layers import LayerSpec, LinearAttention, MambaMixer, MLAAttention, MoEMLP, TensorSpec
from kvcalc.spec.model import ModelSpec

#: Bytes of one activation value sent between GPUs (engines communicate in the 16-bit model dtype).
ACTIVATION_BYTES = 2


@record
class ExpertGroup:
    """Routed experts of the MoE layers of one stage with the same (E, k), on one GPU."""

    num_experts: int
    top_k: int
    layers: int
    bytes_on_gpu: int
    flops_per_token: dict[str, float] = field(default_factory=dict)
    activation_bytes_per_token: float = 0.0
    depths: tuple[tuple[str, int, float], ...] = ()


@record
class StageModel:
    """One pipeline stage, per GPU: dense weight bytes, GEMM FLOPs per token by dtype, experts, attention.
    `depths` (and ExpertGroup.depths): FLOPs per token by (dtype, K), K the GEMM's depth on this GPU
    (`gemm_depth`); `head_depth`: the lm_head's K."""

    stage: int
    layers: int
    layer_units: float
    blocks: int
    moe_layers: int
    dense_weight_bytes: int
    embedding_bytes: int
    gemm_flops_per_token: dict[str, float]
    head_flops_per_token: float
    experts: tuple[ExpertGroup, ...]
    attention: tuple[AttentionGroup, ...]
    depths: tuple[tuple[str, int, float], ...] = ()
    head_depth: int = 0


@record
class PerfModel:
    """The plan reduced to per-token rates (see the module docstring); `stages` in pipeline order."""

    plan: DeploymentPlan
    stages: tuple[StageModel, ...]
    hidden_size: int
    sixteen_bit: str

    @property
    def gpu(self) -> GpuSpec:
        return self.plan.gpu

    @property
    def parallel(self) -> Parallel:
        return self.plan.parallel

    @property
    def async_cpu(self) -> bool:
        """Whether the plan's engine overlaps its CPU work with the GPU step (`async_cpu`); read from the plan
        each time, so a PerfModel shared between engines' plans (`replace(pm, plan=...)`) stays right."""
        return async_cpu(self.plan)


def _add(acc: dict[str, float], dtype: str, flops: float) -> None:
    acc[dtype] = acc.get(dtype, 0.0) + flops


def attention_group(layer: LayerSpec, kv: StorageType, state: StorageType, conv: StorageType, tp: int,
                    cp: int) -> tuple[object, AttentionGroup] | None:
    """The AttentionGroup of one layer (1 layer) and a key grouping identical layers; None for MLP-only.

    Softmax attention: heads_on_gpu = n_heads / tp; pair FLOPs 2 (qk_dim + v_dim) heads_on_gpu.
    MLA decode runs absorbed (DeepSeek-V2 paper s2.1.3, vLLM `MLACommonImpl._forward_decode`): scores over
    the latent and rope part, values over the latent: 2 (kv_lora + rope + kv_lora) per head; its prefill
    runs as ordinary attention on up-projected K/V: 2 (nope + rope + v) per head.
    Decode context parallelism (cp) splits each sequence's keys over cp ranks: pairs and KV bytes / cp.
    Recurrent state FLOPs per token: ~4 per state element (decay, rank-1 update and read-out, multiply-add
    = 2 FLOPs each; Gated DeltaNet, Yang et al. 2024, arXiv:2412.06464; Mamba-2, Dao & Gu 2024)."""
    mixer = layer.mixer
    if mixer is None:
        return None
    kv_per_token = mixer.kv_bytes_per_token(kv, tp) // cp
    if isinstance(mixer, MLAAttention):
        heads = mixer.num_heads // tp
        decode = 2.0 * (2 * mixer.kv_lora_rank + mixer.qk_rope_head_dim) * heads / cp
        prefill = 2.0 * (mixer.qk_nope_head_dim + mixer.qk_rope_head_dim + mixer.v_head_dim) * heads / cp
        group = AttentionGroup(kind="mla", layers=1, flops_per_pair=decode, prefill_flops_per_pair=prefill,
                               kv_bytes_per_token=kv_per_token)
    elif isinstance(mixer, (LinearAttention, MambaMixer)):
        state_bytes = mixer.state_bytes(state, tp, conv)
        group = AttentionGroup(kind=mixer.kind, layers=1, state_bytes=state_bytes,
                               state_flops_per_token=4.0 * mixer.ssm_state_elements(tp),
                               prefill_state_flops_per_token=recurrent_prefill_flops(mixer, tp))
    else:
        heads = mixer.num_heads // tp
        pair = 2.0 * (mixer.head_dim + mixer.value_dim) * heads / cp
        group = AttentionGroup(kind=mixer.kind, layers=1, window=getattr(mixer, "sliding_window", None),
                               chunk=getattr(mixer, "chunk", None), flops_per_pair=pair,
                               prefill_flops_per_pair=pair, kv_bytes_per_token=kv_per_token)
    key = (group.kind, group.window, group.chunk, group.flops_per_pair, group.prefill_flops_per_pair,
           group.kv_bytes_per_token, group.state_bytes, group.state_flops_per_token,
           group.prefill_state_flops_per_token)
    return key, group


#: Tokens per chunk of the chunked scans engines run for prefill: Mamba-2 SSD `chunk_size` (128 in both
#: shipped Mamba-2 configs, Nemotron-H and Nemotron-3-Nano; mamba_ssm's default 256), Gated DeltaNet 64 (fla
#: `chunk_gated_delta_rule`, BT = 64, as vLLM's fla ops run it).
MAMBA2_CHUNK_TOKENS = 128
DELTANET_CHUNK_TOKENS = 64


def recurrent_prefill_flops(mixer: LinearAttention | MambaMixer, tp: int) -> float:
    """FLOPs of one prefill token of a recurrent layer on this GPU, as the chunked scan computes it (0 for
    Mamba-1, whose selective scan is the recurrence itself: the decode count applies).

    Mamba-2 SSD (Dao & Gu 2024, arXiv:2405.21060, s6 "SSD algorithm: block decomposition"; mamba_ssm
    `ssd_combined.py`), with Q tokens per chunk, N = d_state, P = head_dim, h heads and g B/C groups per GPU:
    within a chunk C B^T (2 Q N per token per group) and (L o C B^T) X (2 Q P per head), the chunk's state
    B^T X (2 N P per head) and the output from the carried state C h (2 N P per head):
        h (2 Q P + 4 N P) + g 2 Q N.
    Gated DeltaNet, chunkwise (Yang et al. 2024, arXiv:2412.06464, s3; fla `chunk_gated_delta_rule`), with C
    tokens per chunk and h value heads of d_k x d_v state: within the chunk Q K^T and the WY transform's
    K K^T (2 x 2 C d_k) and their product with V (2 C d_v), the state read by queries and keys and its
    update (3 x 2 d_k d_v):
        h (2 C (2 d_k + d_v) + 6 d_k d_v)."""
    if isinstance(mixer, LinearAttention):
        heads, dk, dv, c = mixer.num_value_heads // tp, mixer.key_head_dim, mixer.value_head_dim, DELTANET_CHUNK_TOKENS
        return float(heads * (2 * c * (2 * dk + dv) + 6 * dk * dv))
    if mixer.version != 2:
        return 0.0
    q, n, p = MAMBA2_CHUNK_TOKENS, mixer.d_state, mixer.head_dim
    groups = (mixer.n_groups + (0 if mixer.n_groups % tp == 0 else tp - mixer.n_groups)) // tp
    return float(mixer.num_heads // tp * (2 * q * p + 4 * n * p) + groups * 2 * q * n)


def _attention_groups(plan: DeploymentPlan, layers: range) -> tuple[AttentionGroup, ...]:
    model, par = plan.model, plan.parallel
    kv = storage_type(plan.kv_dtype)
    state, conv = kvmod.state_storage(model), storage_type(model.dtype)
    counts: dict[object, int] = defaultdict(int)
    shapes: dict[object, AttentionGroup] = {}
    for index in layers:
        found = attention_group(model.layers[index], kv, state, conv, par.tp, par.cp)
        if found is not None:
            key, group = found
            counts[key] += 1
            shapes[key] = group
    return tuple(
        AttentionGroup(**{**{f: getattr(g, f) for f in g.__dataclass_fields__}, "layers": counts[k]})
        for k, g in shapes.items()
    )


def gemm_depth(t: TensorSpec, par: Parallel) -> int:
    """K of the GEMM weight `t` runs in on one GPU: its input features (the last axis), split tp ways in
    row-parallel layers (attention output, down projections; routed experts' down projection without EP)."""
    k = t.shape[-1]
    if t.role in ROW_PARALLEL or (t.role == "ffn_down_exps" and par.ep == 1):
        return max(1, k // par.tp)
    return k


def _depths(acc: dict[tuple[str, int], float]) -> tuple[tuple[str, int, float], ...]:
    return tuple((d, k, f) for (d, k), f in sorted(acc.items()))


def _stage(plan: DeploymentPlan, stage: int, layers: range, last: bool) -> StageModel:
    """Bytes and FLOPs per token of one stage's GPU (module docstring)."""
    model, par, fmt, gpu = plan.model, plan.parallel, plan.weight_format, plan.gpu
    dense_bytes = embedding_bytes = head_depth = 0
    gemm: dict[str, float] = {}
    depths: dict[tuple[str, int], float] = {}
    head_flops = 0.0
    experts: dict[tuple[int, int], list] = {}
    tensors = [t for i in layers for t in model.layers[i].tensors]
    tied_head = model.tie_word_embeddings and not any(t.role == "output" for t in model.global_tensors)
    for t in model.global_tensors:
        if t.role == "token_embd" and tied_head and last:
            tensors.append(t)  # tied embeddings: the table is the lm_head, read whole every step
        elif t.role in ("token_embd", "pos_embd"):
            if stage == 0:
                embedding_bytes += fmt.tensor_bytes(t, shard_numel(t, model, par))
        elif last:
            tensors.append(t)
    for t in tensors:
        numel = shard_numel(t, model, par)
        size = fmt.tensor_bytes(t, numel)
        dtype = compute_dtype(fmt, t, gpu)
        if t.role.endswith("_exps") and t.layer is not None:
            mlp = model.layers[t.layer].mlp
            assert isinstance(mlp, MoEMLP)
            entry = experts.setdefault((mlp.num_experts, mlp.top_k), [set(), 0, {}, {}])
            entry[0].add(t.layer)
            entry[1] += size
            flops = 2.0 * mlp.top_k * numel / mlp.num_experts
            _add(entry[2], dtype, flops)
            key = (dtype, gemm_depth(t, par))
            entry[3][key] = entry[3].get(key, 0.0) + flops
            continue
        dense_bytes += size
        if t.role in ("output", "token_embd"):
            head_flops += 2.0 * numel
            head_depth = t.shape[-1]
        elif len(t.shape) >= 2 and t.name.endswith(".weight"):
            _add(gemm, dtype, 2.0 * numel)
            key = (dtype, gemm_depth(t, par))
            depths[key] = depths.get(key, 0.0) + 2.0 * numel
    groups = tuple(
        ExpertGroup(num_experts=e, top_k=k, layers=len(v[0]), bytes_on_gpu=v[1], flops_per_token=v[2],
                    activation_bytes_per_token=sum(_activation_bytes(model, i, par) for i in v[0]),
                    depths=_depths(v[3]))
        for (e, k), v in experts.items()
    )
    moe_layers = sum(1 for i in layers if isinstance(model.layers[i].mlp, MoEMLP))
    blocks = sum((model.layers[i].mixer is not None) + (model.layers[i].mlp is not None) for i in layers)
    return StageModel(
        stage=stage, layers=len(layers), layer_units=layer_units([model.layers[i] for i in layers]),
        blocks=blocks, moe_layers=moe_layers, dense_weight_bytes=dense_bytes,
        embedding_bytes=embedding_bytes, gemm_flops_per_token=gemm, head_flops_per_token=head_flops,
        experts=groups, attention=_attention_groups(plan, layers), depths=_depths(depths), head_depth=head_depth,
    )


def _activation_bytes(model: ModelSpec, layer: int, par: Parallel) -> float:
    """moe.activation_bytes_per_token for MoE layer `layer` on one GPU: EP holds E/ep whole experts (a token
    sends k/ep of its rows here, full width), TP slices every expert's intermediate size."""
    mlp = model.layers[layer].mlp
    assert isinstance(mlp, MoEMLP)
    if par.ep > 1:
        return activation_bytes_per_token(model.hidden_size, mlp.expert_intermediate_size, mlp.top_k, par.ep)
    return activation_bytes_per_token(model.hidden_size, mlp.expert_intermediate_size // par.tp, mlp.top_k, 1)


#: First vLLM release whose `async_scheduling` defaults to on (PR #27614, merged 2025-12-29: "Enable async
#: scheduling unless there is an incompatible option", vllm/config/vllm.py; ≈v0.14).
VLLM_ASYNC_DEFAULT_SINCE = (0, 14)


def async_cpu(plan: DeploymentPlan) -> bool:
    """Whether the engine's CPU work overlaps the GPU step (step.py docstring): vLLM from v0.14 with
    async scheduling on (kvcalc's VllmSettings.async_scheduling, default on) and no pipeline stages.
    SGLang's and TRT-LLM's overlap schedulers were on in the releases their fixed costs were measured with,
    so their step costs already are what is left."""
    if plan.engine != "vllm" or plan.parallel.pp > 1 or not getattr(plan.settings, "async_scheduling", True):
        return False
    return _vllm_async_default(plan.engine_version)


@lru_cache(maxsize=64)
def _vllm_async_default(version: str) -> bool:
    from kvcalc.calc.engines.vllm_versions import parse_version

    try:
        return parse_version(version) >= VLLM_ASYNC_DEFAULT_SINCE
    except InputError:  # an engine version kvcalc does not model: the newest behaviour
        return True


def perf_model(plan: DeploymentPlan) -> PerfModel:
    """Per-stage, per-GPU rates of `plan` (module docstring)."""
    stages = stage_layers(plan.model.num_layers, plan.parallel.pp)
    out = tuple(_stage(plan, s, layers, s == len(stages) - 1) for s, layers in enumerate(stages))
    return PerfModel(plan=plan, stages=out, hidden_size=plan.model.hidden_size,
                     sixteen_bit=sixteen_bit(plan.gpu))
