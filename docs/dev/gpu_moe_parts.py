"""Where a routed-expert layer's prefill time goes in kvcalc's torch harness (kvcalc/bench/modules.py `_moe`),
part by part, on a real GPU: the evidence behind the MoE terms of calc/perf (row efficiency per expert,
moe_gemm_eff, the routed activations' traffic) and behind the fine-grained-MoE prefill misses in
docs/validation.md.

For the first routed-expert layer of each model (bf16, random weights) and N prompt tokens, CUDA events around
each part, median of 20 runs after 3 warm-ups, fresh random activations per N:
  route    router GEMM, top-k, softmax, sort by expert, offsets, gather of the routed rows
  gate_up  the grouped GEMM(s) of the gate and up projections (torch._grouped_mm)
  bias_gu  the gate/up biases added per routed row (gpt-oss only)
  act      silu(g) x u
  down     the grouped GEMM of the down projection
  combine  down biases, router weights, index_add_ back to the tokens
  moe      the whole `_moe` as the harness runs it
  balanced the two grouped GEMMs again with every expert given exactly N x k / E rows (no routing spread)
  dense    one GEMM of all N x k routed rows against expert 0's gate/up (gate and up where they are two
           tensors) and down (the dense rate at that depth); before 2026-12-07 the unfused models' dense part
           left out the up projection (docs/validation-h100-moe-parts.jsonl)

Usage (on the GPU machine): PYTHONPATH=. python3 docs/dev/gpu_moe_parts.py > moe_parts.jsonl
(`--cpu`: a smoke run on the CPU at 64 tokens.)
"""

from __future__ import annotations

import json
import sys
from typing import Any

MODELS = ("gpt-oss-20b", "qwen3-30b-a3b", "mixtral-8x7b", "deepseek-v2-lite")
TOKENS = (256, 1024, 4096, 16384)


def _parts(layer: Any, x: Any) -> dict[str, Any]:
    """Closures for each part of `_moe` on the fixed input x, with the intermediate tensors precomputed."""
    import torch
    import torch.nn.functional as F

    from kvcalc.bench.modules import grouped_mm

    e = layer.spec.mlp.num_experts
    fused = layer.has("ffn_gate_up_exps.weight")

    def route() -> tuple[Any, ...]:
        return layer.route(x)

    xs, offs, chosen, token, weights = route()
    rows = xs.shape[0]
    balanced = torch.arange(1, e + 1, device=x.device, dtype=torch.int32) * (rows // e)
    xs_bal = xs[: int(balanced[-1])]
    w_gu = layer.w("ffn_gate_up_exps.weight") if fused else layer.w("ffn_gate_exps.weight")
    w_down = layer.w("ffn_down_exps.weight")

    def gate_up(o: Any = offs, a: Any = xs) -> Any:
        if fused:
            return grouped_mm(a, w_gu, o)
        return grouped_mm(a, w_gu, o), grouped_mm(a, layer.w("ffn_up_exps.weight"), o)

    gu = gate_up()
    g, u = gu.chunk(2, dim=-1) if fused else gu
    h = F.silu(g) * u
    y = grouped_mm(h, w_down, offs)
    b_gu, b_down = layer.w("ffn_gate_up_exps.bias"), layer.w("ffn_down_exps.bias")

    def two_gemms(o: Any, a: Any) -> Any:
        both = gate_up(o, a)
        gate, up = both.chunk(2, dim=-1) if fused else both
        return grouped_mm(F.silu(gate) * up, w_down, o)

    def combine() -> Any:
        out = y if b_down is None else y + b_down.index_select(0, chosen)
        return torch.zeros_like(x).index_add_(0, token, out * weights)

    parts = {
        "route": route,
        "gate_up": gate_up,
        "act": lambda: F.silu(g) * u,
        "down": lambda: grouped_mm(h, w_down, offs),
        "combine": combine,
        "moe": lambda: layer._moe(x),
        "balanced": lambda: two_gemms(balanced, xs_bal),
        "dense": lambda: (xs @ w_gu[0].T, h @ w_down[0].T) if fused else (
            xs @ w_gu[0].T, xs @ layer.w("ffn_up_exps.weight")[0].T, h @ w_down[0].T),
    }
    if b_gu is not None:
        parts["bias_gu"] = lambda: gu + b_gu.index_select(0, chosen)
    return parts


def main() -> None:
    import torch

    from kvcalc.bench.modules import GROUPED, BenchLayer
    from kvcalc.bench.timing import time_runs
    from kvcalc.sources.resolve import load_model
    from kvcalc.spec.layers import MoEMLP

    device = "cpu" if "--cpu" in sys.argv else "cuda"
    tokens = (64,) if device == "cpu" else TOKENS
    torch.manual_seed(0)
    for name in MODELS:
        model = load_model(name)
        index = next(i for i, lay in enumerate(model.layers) if isinstance(lay.mlp, MoEMLP))
        layer = BenchLayer(model.layers[index], model.hidden_size, torch.bfloat16, device)
        mlp = layer.spec.mlp
        for n in tokens:
            x = torch.randn(n, model.hidden_size, dtype=torch.bfloat16, device=device)
            with torch.no_grad():
                parts = _parts(layer, x)
                times = {part: time_runs(fn, device=device, warmup=1 if device == "cpu" else 3,
                                           runs=1 if device == "cpu" else 20).median_s for part, fn in parts.items()}
            print(json.dumps({"model": name, "layer": index, "tokens": n, "experts": mlp.num_experts,
                              "top_k": mlp.top_k, "expert_ffn": mlp.expert_intermediate_size,
                              "hidden": model.hidden_size, "grouped_mm": GROUPED["ok"],
                              "seconds": times}), flush=True)
        del layer
    card = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(json.dumps({"torch": torch.__version__, "card": card}), file=sys.stderr)


if __name__ == "__main__":
    main()
