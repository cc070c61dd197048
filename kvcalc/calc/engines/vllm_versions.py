"""vLLM's version table: every accounting rule that changed between releases, in one place.

Each `VersionRule` names the rule, the first release it applies to, its value, and where it comes from (PR,
file). Releases from v0.10 to v0.33 are accepted (any patch or pre-release of those minors); "≈" marks a
release inferred from a PR's merge date against release dates (vLLM's tags were not read directly; see
docs/accuracy.md "vLLM versions"). `rules_for(version)` resolves the table for one release.
"""

from __future__ import annotations

import re
from typing import Literal

from kvcalc.errors import InputError
from kvcalc.spec.base import record

Version = tuple[int, ...]

#: Minor releases kvcalc models, oldest first; the newest is the default.
KNOWN_MINORS: tuple[str, ...] = tuple(f"0.{minor}" for minor in range(10, 34))
#: The release `--engine-version` defaults to: v0.33.0 (≈2026-11-12/17, vllm-torchtpu v0.33.0 notes), the newest
#: release found on 2026-12-06 (no v0.34).
NEWEST = "0.33.0"


@record
class VersionRule:
    """One version-dependent rule: `value` applies from release `since` until the next row of the same rule."""

    rule: str
    since: Version
    value: float | int | str | bool
    source: str


RULES: tuple[VersionRule, ...] = (
    VersionRule(rule="default_gpu_memory_utilization", since=(0, 10), value=0.9,
                source="vllm/config/cache.py gpu_memory_utilization default 0.9"),
    VersionRule(rule="default_gpu_memory_utilization", since=(0, 20), value=0.92,
                source="#38284, merged 2026-04-21, in the v0.20.0 tag (vllm/config/cache.py:68 default 0.92)"),
    VersionRule(rule="requested_rounding", since=(0, 10), value="floor",
                source="vllm/v1/worker/gpu_worker.py: requested_memory = total x utilization (float)"),
    VersionRule(rule="requested_rounding", since=(0, 14), value="ceil",
                source="#30868 vllm/v1/worker/utils.py request_memory: ceil(total x utilization) (≈v0.14)"),
    VersionRule(rule="sampler_bytes_per_row_vocab", since=(0, 10), value=6,
                source="FlashInfer top-k/top-p in the dummy sampler: bf16 logits + fp32 copy (<= v0.11.0)"),
    VersionRule(rule="sampler_bytes_per_row_vocab", since=(0, 11, 1), value=24,
                source="#26859 FlashInfer sampler off: PyTorch sort path (fp32 values + int64 indices)"),
    VersionRule(rule="sampler_bytes_per_row_vocab", since=(0, 17), value=14,
                source="#33538 Triton top-k/top-p kernel; v0.21 #40376/#41375 keep the native pass as the max"),
    VersionRule(rule="mrv2_sampler_bytes_per_row_vocab", since=(0, 10), value=6,
                source="vllm/v1/worker/gpu/sample/sampler.py (Model Runner V2): the profile's dummy sampler copies "
                "the [rows, V] logits to a new FP32 tensor ('Copy logits to a new FP32 tensor') while the model-dtype "
                "logits stay alive: 2 + 4 B; no top-k/top-p or sort buffers ('the sampler may skip top_k, top_p')"),
    VersionRule(rule="mrv2_sampler_bytes_per_row_vocab", since=(0, 26), value=2,
                source="#47711 MRv2 logits-processing fast path (merged July 2026, ≈v0.26): InputBatch.make_dummy "
                "registers no sampling params, so apply_sampling_params returns the raw logits and the profiled "
                "sampler holds only the [rows, V] model-dtype logits (PR #57926 describes the gap; #48641 drops the "
                "FP32 copy)"),
    VersionRule(rule="hybrid_prefix_caching_default", since=(0, 10), value=False,
                source="vllm/engine/arg_utils.py _set_default_chunked_prefill_and_prefix_caching_args: 'Hybrid models "
                "support prefix caching but keep it opt-in for now' (mamba_cache_mode 'none': one state block per "
                "request)"),
    VersionRule(rule="hybrid_prefix_caching_default", since=(0, 28), value=True,
                source="#50991 '[Mamba] enable prefix cache by default' (opened 2026-08-04, merged; ≈v0.28): prefix "
                "caching on for hybrid models with mamba_cache_mode 'align' (two state blocks per request, "
                "MambaSpec.max_memory_usage_bytes)"),
    VersionRule(rule="hybrid_group_threshold", since=(0, 10), value=1.0,
                source="kv_cache_utils _get_kv_cache_groups_uniform_page_size: group size = smallest bucket"),
    VersionRule(rule="hybrid_group_threshold", since=(0, 12), value=1.25,
                source="#29303 group size = largest bucket if largest < 1.25 x smallest"),
    VersionRule(rule="hybrid_group_threshold", since=(0, 18), value=1.5, source="#36684 threshold 1.25 -> 1.5"),
    VersionRule(rule="reported_tokens", since=(0, 10), value="groups",
                source="kv_cache_utils _report_kv_cache_config: floor(blocks / groups) x block size"),
    VersionRule(rule="reported_tokens", since=(0, 21), value="concurrency",
                source="#41069 GPU KV cache size = int(max concurrency x max_model_len)"),
    VersionRule(rule="cuda_graphs_subtracted", since=(0, 10), value=False,
                source="graph memory not profiled before the KV budget (v0.18-v0.19: estimated, not subtracted, "
                "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0, #30515)"),
    VersionRule(rule="cuda_graphs_subtracted", since=(0, 20), value=True,
                source="#38284 gpu_worker.determine_available_memory subtracts the CUDA-graph estimate (a stock "
                "v0.20.0 log prints 'Estimated CUDA graph memory' and the equivalent utilization; the message says "
                "'default since v0.21.0')"),
    VersionRule(rule="model_runner_v2", since=(0, 10), value="none", source="model runner V1 everywhere"),
    VersionRule(rule="model_runner_v2", since=(0, 22), value="qwen3-dense",
                source="v0.22.0 release notes (#39337): MRv2 default for Qwen3 dense models"),
    VersionRule(rule="model_runner_v2", since=(0, 23), value="qwen3-llama-mistral-dense",
                source="v0.23.0 release notes (#43458): also Llama and Mistral dense"),
    VersionRule(rule="model_runner_v2", since=(0, 25), value="dense",
                source="v0.25.0 release notes (#44443): MRv2 default for all dense models"),
    VersionRule(rule="model_runner_v2", since=(0, 29), value="all",
                source="v0.29.0 release notes: MRv2 default for all models (MRv1 deprecated)"),
    VersionRule(rule="mrv2_reserves_cuda_graphs", since=(0, 10), value=False,
                source="#49224 MRv2 profile_cudagraph_memory() returns 0 (dummy API of #36520)"),
    VersionRule(rule="mrv2_reserves_cuda_graphs", since=(0, 29), value=True,
                source="#53306 [Model Runner V2] Reserve CUDA graph memory (merged ≈2026-08-24)"),
    VersionRule(rule="null_block_in_startup_check", since=(0, 10), value=False,
                source="_check_enough_kv_cache_memory: blocks >= blocks one max-length request needs"),
    VersionRule(rule="null_block_in_startup_check", since=(0, 25), value=True,
                source="#47272 reserve the KV null block when validating max_model_len (≈v0.25)"),
    VersionRule(rule="async_in_flight_tokens", since=(0, 10), value=False,
                source="SlidingWindowSpec.max_memory_usage_bytes uses max_num_batched_tokens"),
    VersionRule(rule="async_in_flight_tokens", since=(0, 26), value=True,
                source="#47728 windows sized by max_in_flight_tokens = max_concurrent_batches x max_num_batched_"
                "tokens (vllm/config/vllm.py; present in v0.27.1; ≈v0.26)"),
    VersionRule(rule="large_gpu_serve_batched_tokens", since=(0, 10), value=8192,
                source="vllm/engine/arg_utils.py get_batch_defaults: serve on >= 70 GiB (not A100) 8192"),
    VersionRule(rule="large_gpu_serve_batched_tokens", since=(0, 28), value=16384,
                source="#51726 default max_num_batched_tokens 8192 -> 16384 (merged 2026-08-10..26; ≈v0.28)"),
    VersionRule(rule="hybrid_gdn_graph_overestimate", since=(0, 10), value=False, source="-"),
    VersionRule(rule="hybrid_gdn_graph_overestimate", since=(0, 26), value=True,
                source="#50780: from v0.26.0 the CUDA-graph estimate of gated-DeltaNet hybrids also counts a "
                "~128 KiB per batched token transient (4.2 vs 0.56 GiB on Qwen3.5-122B); #52872"),
    VersionRule(rule="mxfp4_sm90_kernel", since=(0, 10), value="marlin",
                source="v0.10.x on Hopper without triton_kernels (torch < 2.8): Marlin MXFP4 MoE (gpt-oss-120b "
                "logged 65.97 GiB on v0.10.1, #23278)"),
    VersionRule(rule="mxfp4_sm90_kernel", since=(0, 10, 2), value="triton-hopper",
                source="torch 2.8 from v0.10.2: triton_kernels matmul_ogs on SM90 (64.38 GiB logged on v0.14.1, "
                "#33155)"),
    VersionRule(rule="batch_sharded_sampling", since=(0, 10), value=False, source="not available"),
    VersionRule(rule="batch_sharded_sampling", since=(0, 29), value=True,
                source="#50465 --enable-batch-sharded-sampling (opt-in): each TP rank samples num_tokens / tp rows"),
    VersionRule(rule="mm_tower_first_stage_only_mrv2", since=(0, 10), value=False,
                source="models/interfaces.py _mark_tower_model: no pipeline condition, the tower on every PP stage"),
    VersionRule(rule="mm_tower_first_stage_only_mrv2", since=(0, 33), value=True,
                source="v0.33 models/interfaces.py _mark_tower_model: skipped on non-first PP ranks under Model "
                "Runner V2 (still built on every stage under V1)"),
    VersionRule(rule="deepstack_follows_tower", since=(0, 10), value=False,
                source="qwen3_vl.py: use_deepstack = hasattr(vision_config, 'deepstack_visual_indexes'): the buffers "
                "are allocated even with the tower skipped (--language-model-only)"),
    VersionRule(rule="deepstack_follows_tower", since=(0, 28), value=True,
                source="v0.28 qwen3_vl.py: use_deepstack also requires the tower (not a StageMissingLayer)"),
)


@record
class VllmRules:
    """The table resolved for one release."""

    version: str
    version_tuple: Version
    default_gpu_memory_utilization: float
    requested_rounding: Literal["floor", "ceil"]
    sampler_bytes_per_row_vocab: int
    mrv2_sampler_bytes_per_row_vocab: int
    hybrid_prefix_caching_default: bool
    hybrid_group_threshold: float
    reported_tokens: Literal["groups", "concurrency"]
    cuda_graphs_subtracted: bool
    model_runner_v2: str
    mrv2_reserves_cuda_graphs: bool
    null_block_in_startup_check: bool
    async_in_flight_tokens: bool
    batch_sharded_sampling: bool
    large_gpu_serve_batched_tokens: int
    hybrid_gdn_graph_overestimate: bool
    mxfp4_sm90_kernel: str
    mm_tower_first_stage_only_mrv2: bool
    deepstack_follows_tower: bool
    sources: dict[str, str]


_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[.+-]?(?:rc|dev|post)\S*)?$")


def parse_version(text: str) -> Version:
    """'0.19.0' -> (0, 19, 0); 'v0.21' -> (0, 21); '0.31.1rc1.dev50+g554340f' -> (0, 31, 1).

    InputError for anything that is not a vLLM release from 0.10 to the newest modelled, listing them."""
    match = _VERSION_RE.match(text.strip())
    known = ", ".join(KNOWN_MINORS)
    if not match:
        raise InputError(f"--engine-version {text}: not a vLLM release number; kvcalc models {known} "
                         f"(any patch release; default {NEWEST})")
    parts = tuple(int(p) for p in match.groups() if p is not None)
    if f"{parts[0]}.{parts[1]}" not in KNOWN_MINORS:
        raise InputError(f"--engine-version {text}: kvcalc models vLLM {known} (any patch release; default "
                         f"{NEWEST}, the newest release)")
    return parts


def rules_for(version: str) -> VllmRules:
    """Each rule's value at `version`: the last row with since <= version."""
    parts = parse_version(version)
    values: dict[str, float | int | str | bool] = {}
    sources: dict[str, str] = {}
    for row in RULES:
        if row.since <= parts:
            values[row.rule] = row.value
            sources[row.rule] = row.source
    return VllmRules(version=version.lstrip("v"), version_tuple=parts, sources=sources, **values)  # type: ignore[arg-type]
