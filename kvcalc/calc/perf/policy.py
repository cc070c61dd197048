"""Each engine's scheduling rules that change latency, read from its code, as one record the simulator runs.

- vLLM V1 (`vllm/v1/core/sched/scheduler.py::Scheduler.schedule`): running requests first, in admission
  order (a decode token each, or the next chunk of an unfinished prompt), then waiting requests first come
  first served while `max_num_batched_tokens` and `max_num_seqs` last; a waiting request is admitted on the
  blocks of the chunk it is given (`allocate_slots(request, num_new_tokens)`), not on its whole length. When a
  running request cannot get a block, the most recently admitted one is preempted (`self.running.pop()`),
  its blocks freed and its progress dropped (`num_computed_tokens = 0`: recomputed, prompt and output so far,
  when readmitted at the head of the queue); no new request is admitted in a step that preempted.
  Chunked prefill is always on in V1, and so is prefix caching (`enable_prefix_caching`): a preempted
  request's full blocks stay in the cache as free but reusable blocks (freed to the tail of the free queue,
  `block_pool.free_blocks`, so they are reallocated last) and, if no other allocation evicted them, its
  recomputation is a cache hit (`kv_cache_manager.get_computed_blocks`): preemption costs waiting, not work.
- SGLang (`python/sglang/srt/managers/scheduler.py::Scheduler.get_next_batch_to_run`): a prefill batch, if
  any request can be admitted, runs on its own before decoding resumes (`--enable-mixed-chunk` off by
  default); prompts are chunked at `chunked_prefill_size`. Admission (`schedule_policy.py::PrefillAdder`)
  reserves the new request's prompt plus its whole output (clipped at CLIP_MAX_NEW_TOKENS = 4,096) and,
  for every running request, its remaining output x `new_token_ratio` (0.7 at start, decaying by
  (0.7 - 0.098) / 600 per decode step to 0.7 x 0.14 = 0.098; reset to 0.7 when decoding runs out of
  memory and retracts requests; the radix cache keeps a retracted request's prefix, as vLLM's prefix
  cache does).
- TensorRT-LLM (`tensorrt_llm/llmapi/llm_args.py::SchedulerConfig`): capacity policy GUARANTEED_NO_EVICT
  admits a request only when the blocks of its whole prompt + output are free, so nothing is ever evicted;
  in-flight batching runs generation requests and context requests in one step up to `max_num_tokens`;
  `enable_chunked_prefill` is off by default, so a context request waits until its whole prompt fits the
  step's remaining tokens.
- llama.cpp server (`tools/server/server.cpp::update_slots`): `--parallel` slots, each with its own share
  of the context; every step's batch takes one token per generating slot, then prompt tokens up to
  `n_batch`.
"""

from __future__ import annotations

from typing import Any, Literal

from kvcalc.calc.plan import DeploymentPlan
from kvcalc.spec.base import record

Admission = Literal["chunk", "whole"]

#: SGLang's admission constants (python/sglang/srt/managers/schedule_policy.py, global config).
SGLANG_CLIP_MAX_NEW_TOKENS = 4096
SGLANG_INIT_NEW_TOKEN_RATIO = 0.7
SGLANG_MIN_NEW_TOKEN_RATIO = 0.7 * 0.14
SGLANG_NEW_TOKEN_RATIO_DECAY = (0.7 - 0.7 * 0.14) / 600


@record
class SchedulerPolicy:
    """How one engine schedules (module docstring). `budget`: tokens per step; `max_running`: requests at
    once; `pool_blocks`: KV pool in the engine's units; `admission`: "chunk" (blocks of the scheduled chunk,
    vLLM) or "whole" (prompt + reserved output); `reserve_new`/`reserve_running`: share of a new / running
    request's remaining output held back at admission (`decaying_ratio`: SGLang's new_token_ratio replaces
    reserve_running); `preempt`: recompute when decoding runs out of blocks; `mix_prefill`: prefill chunks
    share steps with decodes; `chunked`: prompts longer than the step's room are split."""

    engine: str
    budget: int
    max_running: int
    pool_blocks: int
    admission: Admission
    reserve_new: float
    reserve_running: float
    output_clip: int | None
    decaying_ratio: bool
    preempt: bool
    mix_prefill: bool
    chunked: bool
    source: str
    prefix_cache: bool = False


def policy_for(plan: DeploymentPlan, max_running: int | None = None) -> SchedulerPolicy:
    """The plan's engine's policy with its limits (max_num_seqs, token budget, KV pool)."""
    budget = max(1, plan.max_num_batched_tokens)
    running = max_running if max_running is not None else (plan.max_num_seqs or 1 << 30)
    pool = plan.kv_pool.num_blocks
    common: dict[str, Any] = dict(engine=plan.engine, budget=budget, max_running=max(1, running),
                                  pool_blocks=pool)
    if plan.engine == "sglang":
        return SchedulerPolicy(**common, admission="whole", reserve_new=1.0,
                               reserve_running=SGLANG_INIT_NEW_TOKEN_RATIO, output_clip=SGLANG_CLIP_MAX_NEW_TOKENS,
                               decaying_ratio=True, preempt=True, mix_prefill=False, chunked=True, prefix_cache=True,
                               source="SGLang Scheduler.get_next_batch_to_run (prefill first), PrefillAdder")
    if plan.engine == "trtllm":
        return SchedulerPolicy(**common, admission="whole", reserve_new=1.0, reserve_running=1.0, output_clip=None,
                               decaying_ratio=False, preempt=False, mix_prefill=True,
                               chunked=_setting(plan, "enable_chunked_prefill", False),
                               source="TensorRT-LLM GUARANTEED_NO_EVICT, in-flight batching, max_num_tokens")
    if plan.engine == "llamacpp":
        return SchedulerPolicy(**common, admission="whole", reserve_new=1.0, reserve_running=1.0, output_clip=None,
                               decaying_ratio=False, preempt=False, mix_prefill=True, chunked=True,
                               source="llama.cpp server slots (update_slots), n_batch")
    return SchedulerPolicy(**common, admission="chunk", reserve_new=0.0, reserve_running=0.0, output_clip=None,
                           decaying_ratio=False, preempt=True, mix_prefill=True, chunked=True, prefix_cache=True,
                           source="vLLM V1 Scheduler.schedule (chunked prefill, preemption by recompute)")


def _setting(plan: DeploymentPlan, name: str, default: bool) -> bool:
    value = getattr(plan.settings, name, None)
    return default if value is None else bool(value)
