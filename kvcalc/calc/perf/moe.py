"""Mixture-of-experts: how many distinct experts a batch of tokens touches.

Under uniform, independent routing each token picks `top_k` of `E` experts; one expert is missed by one
token with probability 1 - k/E, so by all B tokens with probability (1 - k/E)^B, and

    experts touched E_t(B) = E x (1 - (1 - k/E)^B)

(the balls-into-bins expectation; used for MoE decode bandwidth by e.g. MoE-Lightning, Cao et al. 2024,
arXiv:2411.11217, and the Mixtral serving analyses). E_t(1) = k, E_t grows with B and tends to E: decode
weight reads grow with the batch until every expert is read once per step. Real routers are not uniform
(hot experts): E_t is then lower, so this is an upper bound on the bytes a step reads.
Shared experts (DeepSeek, Qwen2-MoE, Llama 4) are read every step and counted as dense weights.
"""

from __future__ import annotations


def experts_touched(num_experts: int, top_k: int, tokens: float) -> float:
    """E x (1 - (1 - k/E)^B): distinct experts B tokens route to (0 for B = 0; k for B = 1)."""
    if tokens <= 0 or num_experts <= 0:
        return 0.0
    k = min(top_k, num_experts)
    return num_experts * (1.0 - (1.0 - k / num_experts) ** tokens)


def touched_fraction(num_experts: int, top_k: int, tokens: float) -> float:
    """E_t(B) / E: the share of the routed experts' bytes a step of B tokens reads."""
    if num_experts <= 0:
        return 0.0
    return experts_touched(num_experts, top_k, tokens) / num_experts
