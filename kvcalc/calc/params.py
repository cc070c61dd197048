"""Parameter counts: total, active per token, and a per-component breakdown.

total = sum of numel over every tensor of the text model (embeddings, each layer, final norm, untied head).
active per token (MoE) = total - sum over MoE layers of routed-expert params * (1 - top_k / E): a token
runs top_k of E routed experts plus every shared expert and dense part (Shazeer et al. 2017; DeepSeek-V3
report's "37B activated of 671B" counts embeddings and head, as done here).
"""

from __future__ import annotations

from collections import Counter

from kvcalc.spec.layers import MoEMLP, TensorSpec
from kvcalc.spec.model import ModelSpec

#: Component of each tensor role, for the breakdown.
_COMPONENT_PREFIXES: tuple[tuple[str, str], ...] = (
    ("token_embd", "embeddings"),
    ("pos_embd", "embeddings"),
    ("output_norm", "norms"),
    ("output", "lm_head"),
    ("norm", "norms"),
    ("attn", "attention"),
    ("ffn_gate_inp", "router"),
    ("ffn_gate_exps", "routed_experts"),
    ("ffn_up_exps", "routed_experts"),
    ("ffn_down_exps", "routed_experts"),
    ("ffn_gate_up_exps", "routed_experts"),
    ("ffn_", "mlp"),
    ("ssm", "recurrent"),
)


def component(t: TensorSpec) -> str:
    """Breakdown bucket of a tensor (embeddings, attention, mlp, routed_experts, router, norms, lm_head ...)."""
    for prefix, name in _COMPONENT_PREFIXES:
        if t.role.startswith(prefix):
            if name == "mlp" and t.role.endswith("_shexp"):
                return "shared_experts"
            return name
    return "other"


def params_total(model: ModelSpec) -> int:
    """Every parameter of the text model (MTP layers and vision encoder excluded: see their own counts)."""
    return sum(t.numel for t in model.all_tensors())


def params_active(model: ModelSpec) -> int:
    """Params one token runs through: total minus the routed experts it skips (1 - top_k/E of them)."""
    skipped = 0
    for layer in model.layers:
        if isinstance(layer.mlp, MoEMLP):
            routed = sum(t.numel for t in layer.tensors if component(t) == "routed_experts")
            skipped += routed * (layer.mlp.num_experts - layer.mlp.top_k) // layer.mlp.num_experts
    return params_total(model) - skipped


def embedding_lookup_params(model: ModelSpec) -> int:
    """Parameters of the input embedding table (token_embd, pos_embd): a token reads one row of it by lookup, so
    it is not "active" in the sense of being multiplied. A tied head is the same tensor used as the output
    projection: then the table stays counted once, as the head."""
    if model.tie_word_embeddings:
        return sum(t.numel for t in model.global_tensors if t.role == "pos_embd")
    return sum(t.numel for t in model.global_tensors if t.role in ("token_embd", "pos_embd"))


def params_active_per_token(model: ModelSpec) -> int:
    """Parameters a token's forward pass multiplies by: params_active less the input embedding lookup
    (`embedding_lookup_params`). This is how the gpt-oss (5.13 B of 116.8 B), DeepSeek-V3 (36.6 B, "37B"),
    Kimi K2 (31.7 B, "32B") and Nemotron 3 Nano ("3.2B active, 3.6B with embeddings") cards count; Mistral,
    Qwen and Meta cards count the table too (`params_active`: Mixtral 8x7B 12.9 B, Qwen3-30B-A3B 3.3 B)."""
    return params_active(model) - embedding_lookup_params(model)


def params_breakdown(model: ModelSpec) -> dict[str, int]:
    """Params per component; the values sum to params_total."""
    counts: Counter[str] = Counter()
    for t in model.all_tensors():
        counts[component(t)] += t.numel
    return dict(sorted(counts.items()))


def params_mtp(model: ModelSpec) -> int:
    """Extra next-token-prediction layers (DeepSeek-V3 MTP, Qwen3.5 MTP) held by the checkpoint."""
    return sum(t.numel for t in model.mtp_tensors)
