"""Bytes as the GPU allocates them: the model's weights (layer by layer) and the engine's paged KV cache.

Measured = growth of `torch.cuda.memory_allocated()` around each allocation (the caching allocator rounds
each tensor up to 512 bytes: `c10/cuda/CUDACachingAllocator.cpp` kMinBlockSize). On a CPU device (tests) the
tensors' own bytes stand in for it.
"""

from __future__ import annotations

import gc
from typing import Any

import torch

from kvcalc.bench.modules import BenchHead, BenchLayer, dtype_of
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.calc.verify.layout import signature_groups
from kvcalc.spec.layers import MLAAttention
from kvcalc.spec.model import ModelSpec


def allocated(device: str) -> int:
    """Bytes the caching allocator has handed out on `device` (0 on CPU, where callers sum tensor bytes)."""
    return int(torch.cuda.memory_allocated()) if device == "cuda" else 0


def tensor_bytes(module: torch.nn.Module) -> int:
    """numel x element size summed over the module's parameters."""
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _measured(module: torch.nn.Module, before: int, device: str) -> int:
    return allocated(device) - before if device == "cuda" else tensor_bytes(module)


def free_bytes(device: str) -> int:
    """Free device memory (CUDA), or a notional 256 MiB on CPU (tests)."""
    if device == "cuda":
        return int(torch.cuda.mem_get_info()[0])
    return 2**28


def release(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def measure_weights(model: ModelSpec, dtype: str, device: str, *, whole: bool) -> dict[str, Any]:
    """Allocated bytes of the global tensors and of each layer, built with random weights in `dtype`.

    whole=True builds every layer and keeps them all (the whole model on the card); otherwise one layer of
    each signature is built and the report extrapolates by the signature counts (layout.extrapolate)."""
    torch_dtype = dtype_of(dtype)
    release(device)
    kept: list[torch.nn.Module] = []
    before = allocated(device)
    head = BenchHead(model, torch_dtype, device)
    kept.append(head)
    out: dict[str, Any] = {"dtype": dtype, "whole_model": whole, "globals_bytes": _measured(head, before, device),
                           "globals_params": sum(p.numel() for p in head.parameters()), "layers": []}
    groups = signature_groups(model)
    wanted = [i for idx in groups.values() for i in (idx if whole else idx[:1])]
    signature_of = {i: s for s, idx in groups.items() for i in idx}
    for index in sorted(wanted):
        before = allocated(device)
        layer = BenchLayer(model.layers[index], model.hidden_size, torch_dtype, device)
        out["layers"].append({"index": index, "signature": signature_of[index],
                              "bytes": _measured(layer, before, device),
                              "params": sum(p.numel() for p in layer.parameters())})
        if whole:
            kept.append(layer)
        else:
            del layer
    if device == "cuda":
        torch.cuda.synchronize()
    out["total_allocated_bytes"] = out["globals_bytes"] + sum(r["bytes"] for r in out["layers"])
    del kept
    release(device)
    return out


def _layer_page_shape(layer: Any, block_size: int) -> tuple[int, ...]:
    """One layer's paged KV tensor shape for `num_blocks` = 1, as vLLM's attention backends lay it out:
    FlashAttention (2, blocks, block_size, n_kv, head_dim) (`FlashAttentionBackend.get_kv_cache_shape`);
    MLA (blocks, block_size, kv_lora_rank + rope) (`MLACommonBackend.get_kv_cache_shape`)."""
    mixer = layer.mixer
    if isinstance(mixer, MLAAttention):
        return (1, block_size, mixer.latent_dim)
    return (2, 1, block_size, mixer.num_kv_heads, mixer.head_dim)


def measure_paged_kv(plan: DeploymentPlan, device: str, *, max_bytes: int) -> dict[str, Any]:
    """Allocate the plan's KV pool the way vLLM does, for as many blocks as `max_bytes` allows (at most the
    plan's own count), and read the bytes.

    vLLM (`kv_cache_utils.get_kv_cache_config_from_groups`): one KV-cache tensor of page x num_blocks bytes per
    layer when every layer has one spec; with several KV-cache groups, `group_size` tensors, tensor i shared by
    the i-th layer of every group, each layer viewing it in its own shape (its block size after page
    unification). Each layer's view must fit its tensor: a page-size rule wrong here fails the view."""
    model, layout = plan.model, plan.kv_pool.layout
    kv_dtype = dtype_of(plan.kv_dtype if plan.kv_dtype in ("bf16", "fp16", "fp32") else "fp8")
    element = torch.empty((), dtype=kv_dtype).element_size()
    groups = [g for g in layout.groups if g.kind not in ("linear", "mamba")]
    if not groups or plan.kv_pool.unit != "blocks":
        return {"skipped": "the plan has no paged attention KV groups (engine without blocks or no attention)"}
    pages = {i: _layer_page_shape(model.layers[i], g.block_size) for g in groups for i in g.members}
    page_bytes = {i: element * _numel(shape) for i, shape in pages.items()}
    tensors = max(len(g.members) for g in groups) if len(groups) > 1 else len(groups[0].members)
    largest_page = max(page_bytes.values())
    blocks = max(1, min(plan.kv_pool.num_blocks or 1, max_bytes // max(1, tensors * largest_page)))
    release(device)
    before = allocated(device)
    buffers, views = _allocate_pool(groups, pages, page_bytes, blocks, kv_dtype, device)
    tensor_total = sum(b.numel() for b in buffers)  # int8 buffers: numel = bytes
    measured = allocated(device) - before if device == "cuda" else tensor_total
    out = {"blocks": blocks, "plan_blocks": plan.kv_pool.num_blocks, "tensors": len(buffers),
           "tensor_bytes": tensor_total,
           "layers": len(views), "kv_dtype": plan.kv_dtype, "block_sizes": sorted({g.block_size for g in groups}),
           "allocated_bytes": measured, "layout": layout.layout}
    del buffers, views
    release(device)
    return out


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _allocate_pool(groups: list[Any], pages: dict[int, tuple[int, ...]], page_bytes: dict[int, int],
                   blocks: int, dtype: torch.dtype, device: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Raw int8 buffers (page x blocks each) and every layer's typed view of its buffer."""
    buffers: list[torch.Tensor] = []
    views: list[torch.Tensor] = []
    if len(groups) == 1:
        sharing = [[i] for i in groups[0].members]
    else:
        width = max(len(g.members) for g in groups)
        sharing = [[g.members[k] for g in groups if k < len(g.members)] for k in range(width)]
    for members in sharing:
        size = max(page_bytes[i] for i in members) * blocks
        buffer = torch.empty(size, dtype=torch.int8, device=device)
        buffer.random_(-128, 127)
        buffers.append(buffer)
        for i in members:
            shape = list(pages[i])
            shape[1 if len(shape) == 5 else 0] = blocks
            views.append(buffer[: page_bytes[i] * blocks].view(dtype).view(shape))
    return buffers, views
