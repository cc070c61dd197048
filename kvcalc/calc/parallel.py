"""Tensor, pipeline, expert and context parallelism: divisibility rules, per-rank weights, communication.

Rules and sharding follow vLLM (`vllm/config/parallel.py`, `vllm/model_executor/layers/linear.py`
QKVParallelLinear / ColumnParallelLinear / RowParallelLinear, `vocab_parallel_embedding.py`,
`vllm/distributed/utils.py::get_pp_indices`).
"""

from __future__ import annotations

from kvcalc.calc.vision import TowerPlacement, tower_bytes_on_stage
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import ParallelismError
from kvcalc.spec.base import record
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.layers import LinearAttention, MambaMixer, MLAAttention, MoEMLP, TensorSpec
from kvcalc.spec.model import ModelSpec
from kvcalc.units import round_up

#: vLLM pads the vocabulary to a multiple of 64 before splitting it over TP ranks
#: (`vocab_parallel_embedding.py::DEFAULT_VOCAB_PADDING_SIZE`).
VOCAB_PADDING = 64

#: Roles split on their output features (column parallel) and on their input features (row parallel).
COLUMN_PARALLEL = frozenset(
    {
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_qkv",
        "attn_q_b",
        "attn_kv_b",
        "attn_sinks",
        "ffn_gate",
        "ffn_up",
        "ffn_gate_up",
        "ffn_gate_shexp",
        "ffn_up_shexp",
    }
)
ROW_PARALLEL = frozenset({"attn_output", "ffn_down", "ffn_down_shexp"})
VOCAB_PARALLEL = frozenset({"token_embd", "output"})


def _options(n: int, limit: int = 64) -> str:
    return ", ".join(str(d) for d in range(1, min(n, limit) + 1) if n % d == 0)


def _tp_problem(model: ModelSpec, tp: int, ep: int) -> str | None:
    """The first tensor-parallel rule `tp` breaks for this model, or None (vLLM's checks, in its order)."""
    heads = model.num_attention_heads
    if heads and heads % tp:
        return f"tp={tp} does not divide {heads} attention heads"
    kv = model.num_kv_heads
    if kv and (tp % kv if tp >= kv else kv % tp):
        return f"tp={tp} and {kv} KV heads: tp must divide the KV heads or be a multiple of them"
    padded_vocab = round_up(model.vocab_size, VOCAB_PADDING)
    if padded_vocab % tp:
        return (f"tp={tp} does not divide the padded vocabulary {padded_vocab:,} (vocab {model.vocab_size:,} "
                f"rounded up to a multiple of {VOCAB_PADDING})")
    for layer in model.layers:
        mixer = layer.mixer
        if isinstance(mixer, MambaMixer) and mixer.version == 2 and mixer.n_groups > 1 and mixer.n_groups % tp:
            return (f"tp={tp} does not divide the {mixer.n_groups} SSM groups of layer {layer.index} (vLLM "
                    "mamba_mixer2 needs n_groups % tp == 0 or n_groups == 1)")
        if isinstance(mixer, (LinearAttention, MambaMixer)):
            n = mixer.num_value_heads if isinstance(mixer, LinearAttention) else (mixer.num_heads or mixer.d_inner)
            if n % tp:
                return f"tp={tp} does not divide the {n} heads of layer {layer.index}'s {mixer.kind} mixer"
        if isinstance(mixer, MLAAttention) and mixer.num_heads % tp:
            return f"tp={tp} does not divide {mixer.num_heads} MLA heads"
        if isinstance(layer.mlp, MoEMLP) and ep == 1 and layer.mlp.expert_intermediate_size % tp:
            return f"tp={tp} does not divide the expert intermediate size {layer.mlp.expert_intermediate_size}"
    return None


def valid_tp(model: ModelSpec, ep: int = 1, limit: int = 64) -> list[int]:
    """Every tensor-parallel degree up to `limit` that passes all of the model's TP rules."""
    return [tp for tp in range(1, limit + 1) if _tp_problem(model, tp, 1 if ep == 1 else tp) is None]


def check_parallel(model: ModelSpec, parallel: Parallel) -> None:
    """Raise ParallelismError naming the first rule the layout breaks and the values that would work."""
    tp = parallel.tp
    problem = _tp_problem(model, tp, parallel.ep)
    if problem is not None:
        options = ", ".join(map(str, valid_tp(model, parallel.ep)[:10]))
        raise ParallelismError(f"{problem}; tp values that work for {model.id}: {options}")
    for layer in model.layers:
        if isinstance(layer.mlp, MoEMLP) and parallel.ep > 1 and layer.mlp.num_experts % parallel.ep:
            experts = layer.mlp.num_experts
            raise ParallelismError(f"ep={parallel.ep} does not divide {experts} experts; try ep in {_options(experts)}")
    if parallel.cp > 1 and tp % parallel.cp:
        raise ParallelismError(
            f"cp={parallel.cp} must divide tp={tp}: decode context parallelism splits each sequence's KV over "
            "the ranks of the TP group (vLLM --decode-context-parallel-size)"
        )
    if parallel.pp > model.num_layers:
        raise ParallelismError(f"pp={parallel.pp} is more than the {model.num_layers} layers")
    if parallel.ep > 1 and not any(isinstance(layer.mlp, MoEMLP) for layer in model.layers):
        raise ParallelismError(f"ep={parallel.ep} needs a mixture-of-experts model; {model.id} is dense")
    if parallel.ep > 1 and parallel.ep != tp * parallel.dp:
        raise ParallelismError(
            f"ep={parallel.ep} must equal tp x dp = {tp * parallel.dp} (vLLM --enable-expert-parallel spans them)"
        )


def pp_partition(num_layers: int, pp: int) -> list[int]:
    """Layers per pipeline stage, as vLLM `get_pp_indices`: n // pp each, the remainder added one each to
    stages -2, -3, ... (never the last, which holds the head): 61 layers / pp=2 -> [31, 30]."""
    sizes = [num_layers // pp] * pp
    for i in range(num_layers % pp):
        sizes[-2 - i] += 1
    return sizes


def stage_layers(num_layers: int, pp: int) -> list[range]:
    """Layer index ranges of each pipeline stage."""
    out, start = [], 0
    for size in pp_partition(num_layers, pp):
        out.append(range(start, start + size))
        start += size
    return out


def shard_numel(t: TensorSpec, model: ModelSpec, parallel: Parallel) -> int:
    """Elements of tensor `t` that one rank holds.

    - vocab-parallel (embedding, head): ceil(V / 64) * 64 / tp rows;
    - column parallel: numel / tp, except K/V of a layer with fewer KV heads than tp: numel * max(1, n_kv/tp) / n_kv
      (each rank keeps one whole head: replication tp / n_kv);
    - row parallel weight: numel / tp (its bias is replicated);
    - routed experts [E, out, in]: with ep > 1 whole experts, numel / ep; else sliced numel / tp;
    - recurrent-mixer tensors (per-head): numel / tp;
    - norms, routers, MLA's low-rank down projections: replicated.
    """
    tp = parallel.tp
    role = t.role
    is_bias = t.name.endswith(".bias")
    if role in VOCAB_PARALLEL:
        return round_up(t.shape[0], VOCAB_PADDING) // tp * (t.numel // t.shape[0])
    if role.endswith("_exps"):
        return t.numel // parallel.ep if parallel.ep > 1 else t.numel // tp
    if role in ("attn_k", "attn_v", "attn_qkv") and t.layer is not None:
        mixer = model.layers[t.layer].mixer
        kv = getattr(mixer, "num_kv_heads", 0)
        if kv and tp > kv:
            if role != "attn_qkv":
                return t.numel // kv
            # fused q/k/v: the query rows split tp ways, each rank keeps one whole K and V head
            q_rows = mixer.num_heads * mixer.head_dim  # type: ignore[union-attr]
            kv_rows = t.shape[0] - q_rows
            cols = t.numel // t.shape[0]
            return (q_rows // tp + kv_rows // kv) * cols
    if role in COLUMN_PARALLEL:
        return t.numel // tp
    if role in ROW_PARALLEL:
        return t.numel if is_bias else t.numel // tp
    if role.startswith("ssm") and not role.endswith("norm"):
        return t.numel // tp
    return t.numel


@record
class RankWeights:
    """Weight bytes held by one pipeline stage's ranks (all TP ranks of a stage hold the same)."""

    stage: int
    layers: int
    weights_bytes: int


def weights_per_stage(model: ModelSpec, parallel: Parallel, fmt: WeightFormat, *,
                      tower: TowerPlacement | None = None) -> list[RankWeights]:
    """Bytes of weights on one rank of each pipeline stage.

    Stage 0 holds the embeddings and, for multimodal models, the vision tower and projector as `tower` places
    them (`calc.vision`: loaded on the first stage, linears split over TP, by default); the last stage holds the
    final norm and head (and a second copy of tied embeddings when pp > 1, as vLLM loads it).
    """
    sized = fmt.tensor_bytes
    placement = tower or TowerPlacement()
    element = storage_type(model.dtype).bytes_for(1)
    stages = stage_layers(model.num_layers, parallel.pp)
    out = []
    for s, layers in enumerate(stages):
        total = 0
        for index in layers:
            for t in model.layers[index].tensors:
                total += sized(t, shard_numel(t, model, parallel))
        for t in model.global_tensors:
            first, last = s == 0, s == len(stages) - 1
            if t.role in ("token_embd", "pos_embd"):
                held = first or (
                    last and model.tie_word_embeddings and parallel.pp > 1 and t.role == "token_embd"
                )
            else:
                held = last
            if held:
                total += sized(t, shard_numel(t, model, parallel))
        total += tower_bytes_on_stage(model.vision, placement, tp=parallel.tp, stage=s, model_element_bytes=element)
        out.append(RankWeights(stage=s, layers=len(layers), weights_bytes=total))
    return out


@record
class CommPerToken:
    """Bytes each GPU sends per generated or prefilled token, by kind of collective."""

    tp_allreduce_bytes: int
    ep_alltoall_bytes: int
    pp_activation_bytes: int


def comm_per_token(model: ModelSpec, parallel: Parallel, activation_bytes: int = 2) -> CommPerToken:
    """TP: two all-reduces of H activations per layer; a ring all-reduce moves 2 (tp-1)/tp of the message
    per GPU (Patarasuk & Yuan 2009; Megatron-LM, Shoeybi et al. 2019 s3).
    EP: dispatch and combine all-to-all of top_k * H activations per MoE layer, (ep-1)/ep of it off-GPU.
    PP: a stage hands one H activation to the next.
    Per GPU: the layers of the largest pipeline stage."""
    h = model.hidden_size * activation_bytes
    tp, ep = parallel.tp, parallel.ep
    stage = max(stage_layers(model.num_layers, parallel.pp), key=len)
    layers = [model.layers[i] for i in stage]
    blocks = sum(1 for layer in layers if layer.mixer is not None) + sum(1 for layer in layers if layer.mlp)
    tp_bytes = blocks * 2 * (tp - 1) * h // tp if tp > 1 else 0
    ep_bytes = 0
    if ep > 1:
        for layer in layers:
            if isinstance(layer.mlp, MoEMLP):
                ep_bytes += 2 * layer.mlp.top_k * h * (ep - 1) // ep
    return CommPerToken(
        tp_allreduce_bytes=tp_bytes, ep_alltoall_bytes=ep_bytes, pp_activation_bytes=h if parallel.pp > 1 else 0
    )
