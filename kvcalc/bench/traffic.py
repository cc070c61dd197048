"""The memory traffic of the harness's routed-expert layer outside its GEMMs (no torch): what `kvcalc verify`
charges the harness instead of an engine's fused MoE kernels.

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

against the engine's 6 I + 2 h + 2 h / k: 3.1 x for Qwen3-30B-A3B (h 2048, I 768, k 8), 1.5 x for Mixtral
(h 4096, I 14336, k 2). Left as an engine's traffic, the harness's extra bytes land in the fitted expert GEMM
efficiency and make fine-grained MoE prefill look slow (docs/validation.md). The GEMMs' own reads of their
inputs and writes of their outputs are in neither count, as in calc/perf/moe.py.
"""

from __future__ import annotations

from kvcalc.calc.perf.model import PerfModel
from kvcalc.spec.base import replace
from kvcalc.spec.layers import MoEMLP
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


def harness_perf_model(pm: PerfModel) -> PerfModel:
    """`pm` with every expert group's routed-row traffic the harness's (harness_activation_bytes_per_token)
    instead of an engine's: the perf model `kvcalc verify` compares with the harness's timings."""
    model = pm.plan.model
    stages = tuple(
        replace(stage, experts=tuple(
            replace(g, activation_bytes_per_token=harness_activation_bytes_per_token(model, g.num_experts, g.top_k))
            for g in stage.experts))
        for stage in pm.stages)
    return replace(pm, stages=stages)
