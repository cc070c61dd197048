"""The DeploymentPlan: what one engine allocates for one deployment, as pure data.

Every command that needs a memory answer (fit, advice, quant, local, attention-variants, perf, batch, paged,
prefix, serve, plan, verify) starts from a plan and never recomputes a budget. A plan holds:

- the deployment's identity: model, GPU, parallel layout, engine name, version and settings, weight format
  (and where it came from), KV dtype;
- a ledger per device (one per pipeline stage: all TP ranks of a stage are alike), whose terms add up to the
  GPU's total exactly: weights + activation peak + non-torch + CUDA graphs + KV pool + free = total; and, for
  llama.cpp with layers left in host RAM, a host ledger;
- the KV pool in the engine's own units (vLLM / TensorRT-LLM: blocks of `block_size` tokens; SGLang token
  slots and llama.cpp context cells: "cells"), the tokens it holds, the limits that bind concurrency;
- every constant used (with its source), warnings (fallbacks the engine takes, options it ignores), and the
  engine's start-up error, if it would refuse.

Capacity is per replica: with data parallelism (`parallel.dp` > 1) each replica holds its own pool, and the
`total_*` properties give the whole deployment.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, Literal

from kvcalc.calc.paged import KvPlan, request_blocks
from kvcalc.calc.weights import WeightFormat
from kvcalc.spec.base import record
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec

Binding = Literal["memory", "max_num_seqs", "max_model_len", "max_num_batched_tokens", "none"]


@record
class Assumption:
    """A named constant used in a result, with its value and where it comes from."""

    value: float | int | str | bool
    unit: str = ""
    source: str


@record
class DeviceLedger:
    """Memory of one GPU of pipeline stage `stage` (its TP ranks are alike), in bytes.

    weights + activation + non_torch + cuda_graph + kv_cache + free == total (free may be negative when the
    engine would not start: the shortfall). `kv_blocks` is what this device's KV bytes hold in the pool's
    units; the engine uses the fewest over all devices."""

    stage: int
    first_layer: int
    num_layers: int
    total_bytes: int
    requested_bytes: int
    weights_bytes: int
    activation_bytes: int
    non_torch_bytes: int
    cuda_graph_bytes: int
    kv_cache_bytes: int
    free_bytes: int
    kv_blocks: int
    activation_detail: dict[str, int] = field(default_factory=dict)

    @property
    def layers(self) -> range:
        return range(self.first_layer, self.first_layer + self.num_layers)


def device_ledger(
    *,
    stage: int,
    layers: range,
    total: int,
    requested: int,
    weights: int,
    activation: int,
    non_torch: int,
    cuda_graph: int,
    kv_cache: int,
    kv_blocks: int,
    detail: dict[str, int] | None = None,
) -> DeviceLedger:
    """A ledger whose free bytes close the sum: free = total - (weights + activation + non-torch + graphs +
    KV pool), the KV pool counted as 0 when the budget is negative (then free is the shortfall)."""
    kv = max(0, kv_cache)
    used = weights + activation + non_torch + cuda_graph + kv
    return DeviceLedger(
        stage=stage, first_layer=layers.start, num_layers=len(layers), total_bytes=total, requested_bytes=requested,
        weights_bytes=weights, activation_bytes=activation, non_torch_bytes=non_torch, cuda_graph_bytes=cuda_graph,
        kv_cache_bytes=kv, free_bytes=total - used, kv_blocks=max(0, kv_blocks), activation_detail=detail or {},
    )


@record
class HostLedger:
    """Host RAM a llama.cpp plan uses for what it leaves off the GPUs (layers offloaded to the CPU), bytes."""

    weights_bytes: int
    kv_cache_bytes: int
    buffers_bytes: int
    layers: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.buffers_bytes


@record
class KvPool:
    """The KV cache in the engine's own units.

    unit "blocks": `num_blocks` block indices of `block_size` tokens shared by every KV-cache group (vLLM,
    TensorRT-LLM); unit "cells": `num_blocks` token cells (SGLang token slots, llama.cpp context cells), with
    block_size 1. `block_bytes` is what one block index (or cell) costs on the binding GPU; `layout` holds the
    KV-cache groups (vLLM's page-size unification and hybrid grouping, calc/paged.py); `reserved_blocks` are
    never given to requests (`usable_blocks`)."""

    unit: Literal["blocks", "cells"]
    block_size: int
    num_blocks: int
    block_bytes: int
    layout: KvPlan
    kv_bytes_per_token: int
    fixed_bytes_per_sequence: int
    reserved_blocks: int = 0

    @property
    def usable_blocks(self) -> int:
        """Blocks requests can hold: num_blocks less `reserved_blocks`, the blocks the engine keeps. vLLM keeps
        block 0 as its null block in every V1 release (block_pool.py: `self.null_block =
        self.free_block_queue.popleft()`; only its start-up check ignored it before #47272). TensorRT-LLM puts all
        N blocks in its free queue (kvCacheManager.cpp `WindowBlockManager`), but its PyTorch backend's
        CUDA-graph padding request (`cuda_graph_runner.py` `_get_padded_batch`, `add_dummy_requests`) takes one
        block on the first padded batch and never frees it. Cells (SGLang, llama.cpp) are all usable."""
        return max(0, self.num_blocks - self.reserved_blocks)


@record
class DeploymentPlan:
    """One engine's allocation for one deployment, per replica (see the module docstring).

    `max_concurrency` is the engine's own figure: requests of max_model_len the pool holds (memory only, as
    vLLM logs "Maximum concurrency"); `binding` names the limit that caps concurrency at max_model_len
    (max_num_seqs when the pool holds more requests than the scheduler admits; max_model_len when a llama.cpp
    context is shorter than what memory would hold). `admission_tokens` is the prefill chunk a request may
    have in flight when the engine sizes sliding-window blocks (vLLM max_num_batched_tokens, doubled under
    async scheduling from v0.26). `placement` is llama.cpp's layer placement (calc/offload OffloadPlan: layers on
    the GPU, host bytes, decode speed)."""

    model: ModelSpec
    gpu: GpuSpec
    parallel: Parallel
    engine: str
    engine_version: str
    weight_format: WeightFormat
    kv_dtype: str
    devices: tuple[DeviceLedger, ...]
    binding_stage: int
    kv_pool: KvPool
    kv_cache_tokens: int
    max_model_len: int
    max_num_seqs: int | None
    max_num_batched_tokens: int
    max_concurrency: float
    blocks_per_max_request: int
    binding: Binding
    startup_error: str | None
    assumptions: dict[str, Assumption]
    warnings: tuple[str, ...] = ()
    settings: Any = None
    weight_format_source: str = "model dtype"
    serving_dtype: str = "bf16"
    admission_tokens: int | None = None
    host: HostLedger | None = None
    engine_notes: tuple[str, ...] = ()
    placement: Any = None

    @property
    def binding_device(self) -> DeviceLedger:
        return self.devices[self.binding_stage]

    @property
    def replicas(self) -> int:
        return self.parallel.dp

    @property
    def total_kv_cache_tokens(self) -> int:
        """KV tokens of the whole deployment: every data-parallel replica holds its own pool."""
        return self.kv_cache_tokens * self.parallel.dp

    @property
    def total_max_concurrency(self) -> float:
        return self.max_concurrency * self.parallel.dp

    def blocks_per_request(self, tokens: int) -> int:
        """Blocks (or cells) one request of `tokens` tokens holds, summed over KV-cache groups."""
        if self.kv_pool.unit == "cells":
            return tokens
        if not self.kv_pool.layout.groups:
            return -(-tokens // self.kv_pool.block_size)
        chunk = self.admission_tokens or self.max_num_batched_tokens
        return request_blocks(self.kv_pool.layout, tokens, chunk, self.parallel.cp)

    def concurrency_at(self, tokens: int) -> float:
        """Requests of `tokens` tokens the pool's usable blocks hold at once (memory only; max_num_seqs not
        applied; `max_concurrency` is the engine's own figure over all blocks)."""
        need = self.blocks_per_request(tokens)
        return self.kv_pool.usable_blocks / need if need else 0.0

    def requests_at(self, tokens: int) -> int:
        """Requests of `tokens` tokens the engine runs at once: min(whole requests the pool holds,
        max_num_seqs)."""
        whole = int(self.concurrency_at(tokens))
        return whole if self.max_num_seqs is None else min(whole, self.max_num_seqs)

    def admits(self, concurrency: int, tokens: int | None = None) -> bool:
        """Whether the engine starts and runs `concurrency` requests of `tokens` (default max_model_len) at once
        in one replica: no start-up error, within max_num_seqs, and the pool holds them."""
        if self.startup_error is not None:
            return False
        if self.max_num_seqs is not None and concurrency > self.max_num_seqs:
            return False
        length = self.max_model_len if tokens is None else tokens
        return self.concurrency_at(length) >= concurrency

    def per_replica(self, concurrency: int) -> int:
        """Requests one data-parallel replica must hold when `concurrency` spread over all of them."""
        return -(-concurrency // self.parallel.dp)

    def admits_total(self, concurrency: int, tokens: int | None = None) -> bool:
        """`admits` for `concurrency` requests over the whole deployment (ceil(concurrency / dp) per replica)."""
        return self.admits(self.per_replica(concurrency), tokens)

    def max_context_at(self, concurrency: int, limit: int | None = None) -> int:
        """Longest context L <= limit (default max_model_len) whose blocks for `concurrency` requests fit the
        pool (binary search: blocks per request never shrink as L grows)."""
        lo, hi = 0, limit if limit is not None else self.max_model_len
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.blocks_per_request(mid) * concurrency <= self.kv_pool.usable_blocks:
                lo = mid
            else:
                hi = mid - 1
        return lo
