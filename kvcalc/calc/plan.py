"""The DeploymentPlan: what one engine allocates for one deployment, as pure data (design.md section 1).

Every command that needs a memory answer (fit, advice, quant, local, attention-variants, perf, batch, paged,
prefix, serve, plan, verify) starts from a plan and never recomputes a budget. A plan holds:

- the deployment's identity: model, GPU, parallel layout, engine name and version, weight format, KV dtype;
- a ledger per device (one per pipeline stage: all TP ranks of a stage are alike), whose terms add up to the
  GPU's total exactly: weights + activation peak + non-torch + CUDA graphs + KV pool + free = total;
- the KV pool in the engine's own units (vLLM: blocks of `block_size` tokens per KV-cache group; SGLang: token
  slots; llama.cpp: the cells of its context), the tokens it holds, the limits that bind concurrency;
- every constant used (with its source), warnings, and the engine's start-up error, if it would refuse.
"""

from __future__ import annotations

from dataclasses import field
from typing import Literal

from kvcalc.calc.engines import Assumption
from kvcalc.calc.paged import KvPlan, request_blocks
from kvcalc.calc.weights import WeightFormat
from kvcalc.spec.base import record
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.model import ModelSpec

Binding = Literal["memory", "max_num_seqs", "max_model_len", "max_num_batched_tokens", "none"]


@record
class DeviceLedger:
    """Memory of one GPU of pipeline stage `stage` (its TP ranks are alike), in bytes.

    weights + activation + non_torch + cuda_graph + kv_cache + free == total (free may be negative when the
    engine would not start: the shortfall). `kv_blocks` is what this device's KV bytes would hold in the
    pool's units; the engine uses the fewest over all devices."""

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


@record
class KvPool:
    """The KV cache in the engine's own units.

    unit "blocks": `num_blocks` block indices of `block_size` tokens shared by every KV-cache group (vLLM);
    unit "cells": `num_blocks` token cells (SGLang token slots, TRT-LLM tokens, llama.cpp context cells), with
    block_size 1. `block_bytes` is what one block index (or cell) costs on the binding GPU; `layout` holds the
    KV-cache groups (vLLM's page-size unification and hybrid grouping, calc/paged.py)."""

    unit: Literal["blocks", "cells"]
    block_size: int
    num_blocks: int
    block_bytes: int
    layout: KvPlan
    kv_bytes_per_token: int
    fixed_bytes_per_sequence: int


@record
class DeploymentPlan:
    """One engine's allocation for one deployment (see the module docstring).

    `max_concurrency` is the engine's own figure: requests of max_model_len the pool holds (memory only, as
    vLLM logs "Maximum concurrency"); `binding` names the limit that caps concurrency at max_model_len
    (max_num_seqs when the pool holds more requests than the scheduler admits)."""

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

    @property
    def binding_device(self) -> DeviceLedger:
        return self.devices[self.binding_stage]

    def blocks_per_request(self, tokens: int) -> int:
        """Blocks (or cells) one request of `tokens` tokens holds, summed over KV-cache groups."""
        if self.kv_pool.unit == "cells":
            return tokens
        return request_blocks(self.kv_pool.layout, tokens, self.max_num_batched_tokens, self.parallel.cp)

    def concurrency_at(self, tokens: int) -> float:
        """Requests of `tokens` tokens the pool holds at once (memory only; max_num_seqs not applied)."""
        need = self.blocks_per_request(tokens)
        return self.kv_pool.num_blocks / need if need else 0.0

    def requests_at(self, tokens: int) -> int:
        """Requests of `tokens` tokens the engine runs at once: min(whole requests the pool holds,
        max_num_seqs)."""
        whole = int(self.concurrency_at(tokens))
        return whole if self.max_num_seqs is None else min(whole, self.max_num_seqs)

    def max_context_at(self, concurrency: int, limit: int | None = None) -> int:
        """Longest context L <= limit (default max_model_len) whose blocks for `concurrency` requests fit the
        pool (binary search: blocks per request never shrink as L grows)."""
        lo, hi = 0, limit if limit is not None else self.max_model_len
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.blocks_per_request(mid) * concurrency <= self.kv_pool.num_blocks:
                lo = mid
            else:
                hi = mid - 1
        return lo

