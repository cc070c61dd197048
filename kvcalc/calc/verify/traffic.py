"""Where the harness's work differs from an engine's (no torch): what `kvcalc verify` charges the harness.

Sliding-window prefill. An engine's FlashAttention skips the key blocks outside the window, so a prompt of N
tokens costs the pairs S(N) of calc/perf/attention.py (about N x W for N > W). The harness
(bench/modules.py `local_attention`) cuts a prompt longer than the window W into ceil(N / W) blocks of W
queries and attends each to its own and the previous block, 2 W keys, under a band mask: SDPA computes every
pair, so it costs ceil(N / W) x W x 2 W pairs, 2 to 4 x an engine's (Mistral-7B at 16,384 tokens, W 4,096:
2.3 x; Phi-3-mini at 4,096, W 2,047, three blocks: 4.0 x), and the masked SDPA runs the memory-efficient
backend rather than flash. Chunked layers (Llama 4) go through the same block-local path with the chunk as
the window (`ChunkedAttention.window`), so a prompt longer than the chunk c costs ceil(N / c) x c x 2 c pairs
against an engine's N x c / 2. `HarnessLocalAttention` counts those pairs, at the flash attention rate: what
the masked backend loses beyond that is not charged.

MLA decode. An engine's MLA decode kernel (FlashMLA, FlashInfer's MLA) reads each cached latent once,
2 (r + rho) bytes a token (kv_lora_rank r, rope dim rho). The harness's absorbed decode
(bench/modules.py `_mla_decode`) runs it as two batched GEMMs over the cache, scores then values, and
materialises the n_h scores of every cached token through five elementwise kernels:

    scores = q_full @ latent^T          read the latent, r + rho values; write n_h bf16 scores    2 (r + rho) + 2 n_h
    x 1/sqrt(d)                         read and write n_h bf16                                   4 n_h
    .float(), softmax, .to(bf16)        n_h: read 2 write 4, read 4 write 4, read 4 write 2      20 n_h
    probs @ latent[..., :r]             read n_h bf16 probs and r latent values                  2 n_h + 2 r

    harness bytes per cached token and layer = 2 (2 r + rho) + 28 n_h

2,624 against an engine's 1,152 for DeepSeek-V2-Lite (r 512, rho 64, 16 heads): 2.3 x. `harness_perf_model`
charges MLA groups that figure per token read; prefill writes its new latents at the same figure, a few
tenths of a millisecond too many on a 16k prompt.

Routed experts: the memory traffic of the harness's routed-expert layer outside its GEMMs, instead of an
engine's fused MoE kernels.

An engine moves each routed row (token x expert) through memory once around its two grouped GEMMs
(calc/perf/moe.py: `silu_and_mul` and `moe_sum`, 2 x (3 I + h (1 + 1/k)) bytes). The harness
(bench/modules.py `BenchLayer._moe`) runs the same layer in stock torch ops, each its own kernel reading and
writing 16-bit rows (2 bytes a value), for a routed row of hidden size h and expert intermediate size I:

    gather            x.index_select(0, token)             read h, write h        4 h
    activation        F.silu(g)                            read I, write I        4 I
                      silu(g) x u                          read 2 I, write I      6 I
    router weight     y x weights[order]                   read h, write h        4 h
    combine           out.index_add_(0, token, y)          read h, read+write h   6 h
    zeroed output     torch.zeros_like(x), once per token  write h / k            2 h / k
    expert biases     bias.index_select(0, chosen) + add   gate/up: write 2 I, read 4 I, write 2 I   16 I
    (gpt-oss)                                              down: write h, read 2 h, write h          8 h

    harness bytes per routed row = 10 I + 14 h + 2 h / k  (+ 16 I with gate/up biases, + 8 h with down biases)

against the engine's 6 I + 2 h + 2 h / k: 4.0 x for Qwen3-30B-A3B (h 2048, I 768, k 8), 2.1 x for Mixtral
(h 4096, I 14336, k 2). A shared expert's output added to the routed sum (DeepSeek: read 2 h, write h per
token) and the router's own small tensors are not counted (about 5 % and under 1 % of DeepSeek-V2-Lite's
routed bytes). Left as an engine's traffic, the harness's extra bytes land in the fitted expert GEMM
efficiency and make fine-grained MoE prefill look slow (docs/validation.md). The GEMMs' own reads of their
inputs and writes of their outputs are in neither count, as in calc/perf/moe.py.
"""

from __future__ import annotations

from dataclasses import fields

from kvcalc.calc.perf.attention import AttentionGroup
from kvcalc.calc.perf.model import PerfModel
from kvcalc.spec.base import replace
from kvcalc.spec.layers import MLAAttention, MoEMLP
from kvcalc.spec.model import ModelSpec

#: Bytes per activation value in the harness (it runs in the model's 16-bit dtype).
ACTIVATION_BYTES = 2


def routed_row_bytes(hidden: int, intermediate: int, top_k: int, gate_up_bias: bool = False,
                     down_bias: bool = False) -> float:
    """Bytes one routed row moves outside the expert GEMMs in the harness (module docstring):
    2 x (5 I + 7 h + h / k), plus 2 x 8 I with gate/up biases and 2 x 4 h with a down bias."""
    k = max(top_k, 1)
    values = 5 * intermediate + 7 * hidden + hidden / k
    values += 8 * intermediate if gate_up_bias else 0
    values += 4 * hidden if down_bias else 0
    return ACTIVATION_BYTES * values


def harness_activation_bytes_per_token(model: ModelSpec, num_experts: int, top_k: int) -> float:
    """One token's routed rows' traffic in the harness summed over the MoE layers with E = num_experts and
    k = top_k (one GPU, no TP or EP: the harness runs on one card): k x routed_row_bytes per layer."""
    total = 0.0
    for layer in model.layers:
        mlp = layer.mlp
        if not isinstance(mlp, MoEMLP) or (mlp.num_experts, mlp.top_k) != (num_experts, top_k):
            continue
        biases = {t.name.rsplit(".", 2)[-2] for t in layer.tensors if t.name.endswith("_exps.bias")}
        gate_up = bool(biases & {"ffn_gate_up_exps", "ffn_gate_exps", "ffn_up_exps"})
        total += mlp.top_k * routed_row_bytes(model.hidden_size, mlp.expert_intermediate_size, mlp.top_k,
                                              gate_up, "ffn_down_exps" in biases)
    return total


class HarnessLocalAttention(AttentionGroup):
    """A sliding-window or chunked group as the harness runs it: a prompt longer than the window (or chunk)
    B costs ceil(N / B) x B x 2 B pairs (module docstring); everything else as an engine's."""

    def keys(self, prior: int, new: int) -> int:
        block = self.window or self.chunk
        if prior == 0 and block and new > block and not self.recurrent:
            return -(-new // block) * block * 2 * block
        return super().keys(prior, new)


def mla_decode_bytes_per_token(kv_lora_rank: int, rope_dim: int, heads: int) -> int:
    """Bytes the harness's absorbed MLA decode moves per cached token and layer (module docstring):
    2 (2 r + rho) + 28 n_h."""
    return 2 * (2 * kv_lora_rank + rope_dim) + 28 * heads


def _as_harness(group: AttentionGroup, model: ModelSpec) -> AttentionGroup:
    """The group the harness runs: block-local for sliding and chunked softmax attention, its own decode bytes
    for MLA, else unchanged."""
    if group.kind == "mla":
        mla = next(layer.mixer for layer in model.layers if isinstance(layer.mixer, MLAAttention))
        return replace(group, kv_bytes_per_token=mla_decode_bytes_per_token(
            mla.kv_lora_rank, mla.qk_rope_head_dim, mla.num_heads))
    if not (group.window or group.chunk) or group.recurrent:
        return group
    return HarnessLocalAttention(**{f.name: getattr(group, f.name) for f in fields(group)})


def harness_perf_model(pm: PerfModel) -> PerfModel:
    """`pm` with the harness's own work where it differs from an engine's (module docstring): each expert
    group's routed-row traffic (harness_activation_bytes_per_token), each sliding or chunked group's
    block-local prefill pairs and each MLA group's decode bytes. The perf model `kvcalc verify` compares with
    the harness's timings; the harness runs the whole model on one GPU, so the plan must be one (the expert
    traffic is summed over every MoE layer)."""
    par = pm.parallel
    if (par.tp, par.pp, par.ep) != (1, 1, 1):
        raise ValueError(f"the harness runs on one GPU; got tp {par.tp}, pp {par.pp}, ep {par.ep}")
    model = pm.plan.model
    stages = tuple(
        replace(stage, experts=tuple(
            replace(g, activation_bytes_per_token=harness_activation_bytes_per_token(model, g.num_experts, g.top_k))
            for g in stage.experts), attention=tuple(_as_harness(a, model) for a in stage.attention))
        for stage in pm.stages)
    return replace(pm, stages=stages)
