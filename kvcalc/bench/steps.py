"""Decode steps and prefills of K real layers per layer signature, timed on the GPU.

Decode: a stack of K layers of one signature (distinct random weights each, its own KV cache of `batch`
sequences of `context` tokens) run as one CUDA graph, as engines run decode; fresh random hidden states
before every replay (so MoE routing changes), the median over many replays. The non-layer part of a step
(final norm, LM head, greedy pick, embedding of the next tokens) is timed the same way on its own. The report
extrapolates to the whole model with layout.extrapolate.

Prefill: the same stacks over one prompt of N tokens (eager: kernels are long, launch gaps negligible), plus
the head on the last token (engines compute logits for the last prompt token only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from kvcalc.bench.memory import free_bytes, release
from kvcalc.bench.modules import GROUPED, BenchHead, BenchLayer, cached_tokens, dtype_of, rope_tables
from kvcalc.bench.timing import time_graph_or_eager
from kvcalc.calc.verify.layout import signature_groups
from kvcalc.spec.layers import MLAAttention, MoEMLP
from kvcalc.spec.model import ModelSpec

#: at most this share of free memory goes to one configuration's KV caches and activations.
MEMORY_SHARE = 0.8


def kv_splits(batch: int, kv_heads: int, tokens: int, sm_count: int, device: str) -> int:
    """Chunks to split each sequence's KV into (flash-decoding) so that batch x heads x chunks fills about
    two waves of the GPU's SMs; 1 when the batch already does, on CPU, or for caches under 512 tokens.
    A power of two dividing `tokens`, each chunk at least 256 tokens."""
    if device != "cuda":
        return 1
    splits = 1
    while (batch * kv_heads * splits * 2 <= 2 * sm_count and tokens % (splits * 2) == 0
           and tokens // (splits * 2) >= 256):
        splits *= 2
    return splits


def _cache_bytes(cache: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in cache.values())


def _layer_cache_estimate(layer: BenchLayer, batch: int, context: int) -> int:
    mixer = layer.spec.mixer
    if mixer is None:
        return 0
    element = next(iter(layer.params.values())).element_size()
    if isinstance(mixer, MLAAttention):
        return batch * context * mixer.latent_dim * element
    tokens = cached_tokens(layer.spec, context)
    return batch * tokens * mixer.num_kv_heads * (mixer.head_dim + mixer.value_dim) * element  # type: ignore[union-attr]


def _stack(model: ModelSpec, indices: list[int], dtype: torch.dtype, device: str) -> list[BenchLayer]:
    return [BenchLayer(model.layers[i], model.hidden_size, dtype, device) for i in indices]


def count_kernels(fn: Callable[[], object], device: str) -> int | None:
    """GPU kernels (and memsets/copies) one call of `fn` launches, counted by the torch profiler (CUPTI);
    None on CPU or where the profiler is unavailable. The fit charges the fixed per-layer cost per kernel."""
    if device != "cuda":
        return None
    try:
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        return sum(1 for event in prof.events() if event.device_type == DeviceType.CUDA)
    except Exception:  # the count is optional: a profiler that will not start must not stop the run
        return None


def _timed(step: Callable[[], object], refresh: Callable[[], object], device: str, runs: int, warmup: int,
           moe: bool) -> tuple[Any, bool, int | None]:
    """Count the kernels of one eager call (which also lets a refusing grouped GEMM fall back before any
    capture), then time CUDA-graph replays, or eager calls where capture is refused."""
    kernels = count_kernels(step, device)
    if kernels is None:
        step()
    graph = GROUPED["ok"] or not moe  # the fallback's per-expert loop cannot be captured
    timing, graph = time_graph_or_eager(step, refresh=refresh, device=device, warmup=warmup, runs=runs, graph=graph)
    return timing, graph, kernels


def _late(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def time_decode(model: ModelSpec, *, dtype: str, batches: list[int], contexts: list[int], stack: int,
                device: str, sm_count: int, runs: int = 30, deadline: float | None = None) -> dict[str, Any]:
    """Per signature, per (batch, context): the median time of one decode step of `stack` layers, and the
    KV bytes those layers' caches hold. Configurations that would not fit in memory, or come after the
    `deadline` (time.monotonic), are listed as skipped; one that fails is listed with its error."""
    torch_dtype = dtype_of(dtype)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for signature, indices in signature_groups(model).items():
        chosen = indices[: max(1, min(stack, len(indices)))]
        layers = _stack(model, chosen, torch_dtype, device)
        if layers[0].unsupported:
            skipped.append({"signature": signature, "reason": layers[0].unsupported})
            continue
        for context in contexts:
            for batch in batches:
                need = sum(_layer_cache_estimate(layer, batch, context) for layer in layers)
                reason = ("the time budget ran out" if _late(deadline) else
                          f"KV caches of {need:,} B do not fit the free memory"
                          if need > MEMORY_SHARE * free_bytes(device) else None)
                if reason is None:
                    try:
                        rows.append(_decode_config(layers, signature, chosen, batch, context, device, sm_count,
                                                   runs))
                    except (RuntimeError, ValueError, NotImplementedError) as exc:
                        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                        release(device)
                if reason is not None:
                    skipped.append({"signature": signature, "batch": batch, "context": context, "reason": reason})
        del layers
        release(device)
    head = BenchHead(model, torch_dtype, device)
    head_rows = []
    for batch in batches:
        x = torch.randn(batch, model.hidden_size, dtype=torch_dtype, device=device)
        timing, graph, kernels = _timed(partial(head.step, x), x.normal_, device, runs, 5, False)
        head_rows.append({"batch": batch, "graph": graph, "kernels": kernels, **timing.as_dict()})
    del head
    release(device)
    return {"stack": rows, "head": head_rows, "skipped": skipped, "grouped_mm": GROUPED["ok"],
            "grouped_mm_note": GROUPED["why"]}


def _decode_config(layers: list[BenchLayer], signature: str, chosen: list[int], batch: int, context: int,
                   device: str, sm_count: int, runs: int) -> dict[str, Any]:
    mixer = layers[0].spec.mixer
    tokens = cached_tokens(layers[0].spec, context)
    heads = getattr(mixer, "num_kv_heads", 1) if not isinstance(mixer, MLAAttention) else 1
    splits = 1 if isinstance(mixer, MLAAttention) else kv_splits(batch, heads, tokens, sm_count, device)
    caches = [layer.new_cache(batch, context, splits) for layer in layers]
    dtype = next(iter(layers[0].params.values())).dtype
    x = torch.randn(batch, layers[0].hidden, dtype=dtype, device=device)
    position = torch.tensor([context - 1], device=device)
    cos, sin = rope_tables(position, layers[0].rope_dim(), dtype)

    def step() -> torch.Tensor:
        h = x
        for layer, cache in zip(layers, caches, strict=True):
            h = layer.decode(h, cache, cos, sin)
        return h

    moe = any(isinstance(layer.spec.mlp, MoEMLP) for layer in layers)
    timing, graph, kernels = _timed(step, x.normal_, device, runs, 5, moe)
    row = {"signature": signature, "layers": chosen, "batch": batch, "context": context, "splits": splits,
           "kv_bytes": sum(_cache_bytes(c) for c in caches), "graph": graph, "kernels": kernels,
           **timing.as_dict()}
    caches.clear()
    release(device)
    return row


def time_prefill(model: ModelSpec, *, dtype: str, lengths: list[int], stack: int, device: str,
                 runs: int = 5, deadline: float | None = None) -> dict[str, Any]:
    """Per signature, per prompt length N: the median time of `stack` layers over N tokens (batch 1)."""
    torch_dtype = dtype_of(dtype)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for signature, indices in signature_groups(model).items():
        chosen = indices[: max(1, min(stack, len(indices)))]
        layers = _stack(model, chosen, torch_dtype, device)
        if layers[0].unsupported:
            skipped.append({"signature": signature, "reason": layers[0].unsupported})
            continue
        for n in lengths:
            if _late(deadline):
                skipped.append({"signature": signature, "tokens": n, "reason": "the time budget ran out"})
                continue
            try:
                rows.append(_prefill_config(layers, signature, chosen, n, device, runs))
            except (RuntimeError, ValueError, NotImplementedError) as exc:
                skipped.append({"signature": signature, "tokens": n,
                                "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
                release(device)
        del layers
        release(device)
    head = BenchHead(model, torch_dtype, device)
    head_rows = []
    for n in lengths:
        tokens = torch.randint(0, model.vocab_size, (n,), device=device)
        x = torch.randn(1, model.hidden_size, dtype=torch_dtype, device=device)

        def run(h: BenchHead = head, t: torch.Tensor = tokens, last: torch.Tensor = x) -> object:
            h.embed(t)
            return h.logits(last).argmax(dim=-1)

        timing, graph, kernels = _timed(run, x.normal_, device, max(runs, 10), 3, False)
        head_rows.append({"tokens": n, "graph": graph, "kernels": kernels, **timing.as_dict()})
    del head
    release(device)
    return {"stack": rows, "head": head_rows, "skipped": skipped}


def _prefill_config(layers: list[BenchLayer], signature: str, chosen: list[int], n: int, device: str,
                    runs: int) -> dict[str, Any]:
    dtype = next(iter(layers[0].params.values())).dtype
    x = torch.randn(n, layers[0].hidden, dtype=dtype, device=device)
    cos, sin = rope_tables(torch.arange(n, device=device), layers[0].rope_dim(), dtype)

    def run() -> torch.Tensor:
        h = x
        for layer in layers:
            h = layer.prefill(h, cos, sin)
        return h

    moe = any(isinstance(layer.spec.mlp, MoEMLP) for layer in layers)
    timing, graph, kernels = _timed(run, x.normal_, device, runs, 2, moe)
    return {"signature": signature, "layers": chosen, "tokens": n, "graph": graph, "kernels": kernels,
            **timing.as_dict()}


def run_guarded(label: str, fn: Callable[[], dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    """Run one measurement; an out-of-memory or kernel refusal becomes a note, not a crash of the suite."""
    try:
        return fn()
    except (RuntimeError, ValueError, NotImplementedError) as exc:
        notes.append(f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        return {"error": notes[-1]}
