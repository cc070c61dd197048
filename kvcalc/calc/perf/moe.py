"""Mixture-of-experts: how many distinct experts a batch of tokens touches.

Under uniform, independent routing each token picks `top_k` of `E` experts; one expert is missed by one
token with probability 1 - k/E, so by all B tokens with probability (1 - k/E)^B, and

    experts touched E_t(B) = E x (1 - (1 - k/E)^B)

(the balls-into-bins expectation; used for MoE decode bandwidth by e.g. MoE-Lightning, Cao et al. 2024,
arXiv:2411.11217, and the Mixtral serving analyses). E_t(1) = k, E_t grows with B and tends to E: decode
weight reads grow with the batch until every expert is read once per step. Real routers are not uniform
(hot experts): E_t is then lower, so this is an upper bound on the bytes a step reads.
Shared experts (DeepSeek, Qwen2-MoE, Llama 4) are read every step and counted as dense weights.

Around the two grouped GEMMs the routed activations make a round trip through memory in kernels of their own
(vLLM `fused_experts_impl`: `silu_and_mul` from intermediate_cache1 to cache2, `moe_sum` of cache3 into the
output; SGLang's and TRT-LLM's unfused paths alike). Per routed row (token x expert) of intermediate size I
on this GPU and hidden size h, in 16-bit activations:

    activation bytes = 2 x (3 I + h (1 + 1/k))      (silu_and_mul reads 2I and writes I; moe_sum reads the
                                                     row's h and writes h once per token, of k rows)

This traffic grows with the routed rows, k x tokens, against expert FLOPs of 6 h I per row: it is 0.14 of the
expert GEMM time for Mixtral (h 4096, I 14336) and 0.9 for Qwen3-30B-A3B (h 2048, I 768, k 8) at an H100's
ridge, which is why fine-grained MoE prefill runs far below the dense rate.
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


#: Bytes per activation value (engines run MoE activations in the 16-bit model dtype).
ACTIVATION_BYTES = 2


def activation_bytes_per_token(hidden: int, intermediate: int, top_k: int, ep: int = 1) -> float:
    """Bytes one token's routed rows move through memory outside the expert GEMMs on one GPU (module
    docstring): k / ep rows of 2 x (3 I + h (1 + 1/k)) bytes each (EP: a GPU gets k / ep of a token's rows)."""
    k = max(top_k, 1)
    return k / ep * ACTIVATION_BYTES * (3 * intermediate + hidden * (1 + 1 / k))
