"""Engine memory budgets: how much of each GPU the serving engine gives the KV cache, and what it reports.

vLLM (V1 engine) per worker (vLLM `gpu_worker.py::determine_available_memory`, `utils/mem_utils.py`):
    R = ceil(T x u)                       requested memory (T = total as torch reports it, u = utilization)
    A = R - W - P - N - G                 KV cache memory ("Available KV cache memory")
with W weights ("Model loading took"), P the torch peak of the profile run, N non-torch memory that grew
while profiling (cuBLAS/Triton modules, the lazily created NCCL communicator), G the CUDA-graph estimate
(subtracted by default from v0.21, #38284). Blocks = min over workers of floor(A / block bytes).
SGLang: tokens = floor((T x f - W) / cell) with f = --mem-fraction-static (model_runner.profile_max_num_token).
TensorRT-LLM: KV = (T - peak after weights and a dummy forward) x free_gpu_memory_fraction (0.9)
(`tensorrt_llm/_torch/pyexecutor/_util.py::KvCacheCreator`).
llama.cpp: a flat cache of n_ctx cells x per-token bytes, no paging (`llama-kv-cache.cpp`).
"""

from __future__ import annotations

from kvcalc.calc import kv as kvmod
from kvcalc.calc.paged import (
    KvPlan,
    kv_plan,
    max_concurrency,
    num_blocks,
    reported_tokens,
    request_blocks,
    version_tuple,
)
from kvcalc.calc.parallel import stage_layers
from kvcalc.errors import InputError
from kvcalc.spec.base import record
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.dtypes import StorageType, storage_type
from kvcalc.spec.layers import DenseMLP, MoEMLP
from kvcalc.spec.model import ModelSpec
from kvcalc.units import GIB, MIB, ceil_div

#: The newest vLLM accounting kvcalc models (v0.21 changed graph accounting, default utilization and the
#: reported KV size; see calc/paged.py and vLLM PRs #38284, #41069).
VLLM_DEFAULT_VERSION = "0.21.0"


@record
class Assumption:
    """A named constant used in a result, with its value and where it comes from."""

    value: float | int | str | bool
    unit: str = ""
    source: str


# --- vLLM engine-level constants (never tuned per model) --------------------------------------------------
#: Non-torch memory growth during profiling at tp = pp = 1: median 0.25 GiB of the 21 single-GPU vLLM v0.19.0
#: H100 runs (0.24-0.26 GiB, except 0.46 for the three granite text models; shared/reference/
#: vllm_v019_h100_runs.tsv "nontorch_gib"; vLLM issue #25359; docs/accuracy.md section 6).
NON_TORCH_SINGLE = int(0.25 * GIB)
#: ... with tp x pp > 1: the TP NCCL communicator is created lazily inside the profiling window (vLLM
#: v0.11+ #25359): median 2.1 GiB of the 8 multi-GPU runs in the same set (tp 2: 2.07-2.11 GiB, tp 4:
#: 2.17-2.21 GiB).
NON_TORCH_MULTI = int(2.1 * GIB)
#: Compile/autotune and allocator slack on top of the modelled profile-run peak: 0.12 GiB. With it (and the
#: v0.17+ sampler coefficient 14) the median residual of the torch peak over the 19 text-only runs in the
#: same set is +0.01 GiB (docs/accuracy.md section 6).
PROFILE_SLACK = int(0.12 * GIB)
#: fused_moe processes at most this many tokens at once (vLLM envs VLLM_FUSED_MOE_CHUNK_SIZE = 32768).
FUSED_MOE_CHUNK = 32768
#: CUDA-graph estimate subtracted from v0.21: 0.36 GiB in a logged vLLM 0.27.1 start-up
#: (gpustack/runner PR #251, "Estimated CUDA graph memory: 0.36 GiB total"); an empirical default.
CUDA_GRAPH_DEFAULT = int(0.36 * GIB)


def sampler_bytes_per_row_vocab(version: tuple[int, ...]) -> int:
    """Bytes per (request row x vocab entry) live in the profile run's dummy sampler: bf16 logits (2) +
    fp32 copy (4) + top-k/top-p workspace: <= v0.11.0 FlashInfer sampler (6 in all), v0.11.1-v0.16 PyTorch
    sort path (~24), v0.17+ Triton top-k/top-p kernel (~14) (vLLM #26859, #33538, #40376)."""
    if version >= (0, 17):
        return 14
    if version >= (0, 11, 1):
        return 24
    return 6


def vllm_batch_defaults(gpu_total_bytes: int, gpu_name: str, usage: str) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) vLLM picks when unset: a "large" GPU (>= 70 GiB, not A100)
    gets 8192/1024 for `vllm serve` and 16384/1024 for `LLM(...)`; others 2048/256 and 8192/256
    (vllm/engine/arg_utils.py get_batch_defaults)."""
    large = gpu_total_bytes >= 70 * GIB and "a100" not in gpu_name.lower()
    if usage == "llm":
        return (16384, 1024) if large else (8192, 256)
    return (8192, 1024) if large else (2048, 256)


def rope_cache_bytes(model: ModelSpec, act: StorageType) -> int:
    """vLLM's rotary `cos_sin_cache`, built on every rank during loading and so part of "Model loading took":
    max_position_embeddings x rotary_dim values in the model dtype (vllm/model_executor/layers/
    rotary_embedding: `_compute_cos_sin_cache` -> [max_position, rotary_dim], cast to the model dtype).
    Llama 4 Scout: 10,485,760 x 128 x 2 B = 2.5 GiB."""
    return act.bytes_for((model.max_position_embeddings or 0) * model.rotary_dim)


def profile_peak_bytes(
    model: ModelSpec,
    parallel: Parallel,
    layers: range,
    *,
    tokens: int,
    rows: int,
    act: StorageType,
    version: tuple[int, ...],
    last_stage: bool,
    first_stage: bool,
) -> tuple[int, dict[str, int]]:
    """P, the torch peak of vLLM's profile run on one worker (attention returns zeros there, so the MLP
    and the sampler set it): P = max(forward, hidden + sampler) + slack, with
    forward = largest MLP of the stage: dense T x 3I/tp x b (gate_up + activation) + 2 T H b;
    MoE min(T, 32768) x top_k x (3 I_e / tp + H) x b + 2 T H b;  sampler (last stage) = c x R x V.
    Non-first stages also keep the received hidden states and residual (2 T H b)."""
    b = act.block_bytes
    tp = parallel.tp
    hidden = tokens * model.hidden_size * b
    forward = 0
    for index in layers:
        mlp = model.layers[index].mlp
        if isinstance(mlp, DenseMLP):
            width = (3 if mlp.gated else 2) * mlp.intermediate_size
            forward = max(forward, tokens * width // tp * b)
        elif isinstance(mlp, MoEMLP):
            per_expert = (
                (3 if mlp.gated else 2) * mlp.expert_intermediate_size // (1 if parallel.ep > 1 else tp)
            )
            forward = max(
                forward, min(tokens, FUSED_MOE_CHUNK) * mlp.top_k * (per_expert + model.hidden_size) * b
            )
    forward += 2 * hidden
    sampler = sampler_bytes_per_row_vocab(version) * rows * model.vocab_size if last_stage else 0
    intermediate = 0 if first_stage else 2 * hidden
    peak = max(forward, hidden + sampler) + PROFILE_SLACK + intermediate
    return peak, {
        "forward_bytes": forward,
        "sampler_bytes": sampler,
        "slack_bytes": PROFILE_SLACK,
        "pp_intermediate_bytes": intermediate,
        "hidden_bytes": hidden,
    }


@record
class StageBudget:
    """One worker of a pipeline stage (all its TP ranks are alike)."""

    stage: int
    layers: int
    total_bytes: int
    requested_bytes: int
    weights_bytes: int
    activation_bytes: int
    non_torch_bytes: int
    cuda_graph_bytes: int
    kv_cache_bytes: int
    num_blocks: int
    activation_detail: dict[str, int]


@record
class EngineResult:
    """What the engine would allocate and report."""

    engine: str
    version: str
    stages: list[StageBudget]
    binding_stage: int
    plan: KvPlan
    num_blocks: int
    kv_cache_tokens: int
    max_concurrency: float
    max_model_len: int
    blocks_per_request: int
    startup_error: str | None
    assumptions: dict[str, Assumption]


def vllm_budget(
    model: ModelSpec,
    parallel: Parallel,
    engine: EngineSettings,
    *,
    gpu_total_bytes: int,
    gpu_name: str,
    stage_weights: list[int],
    max_model_len: int,
    kv: StorageType,
) -> EngineResult:
    """vLLM's KV budget and reported capacity for one deployment (see module docstring)."""
    version_text = engine.version or VLLM_DEFAULT_VERSION
    version = version_tuple(version_text)
    if version < (0, 10):
        raise InputError(
            f"--engine-version {version_text}: kvcalc models vLLM's V1 accounting from 0.10 on; give a release "
            f"such as 0.19.0 (default {VLLM_DEFAULT_VERSION}, the newest rules modelled)"
        )
    util = engine.gpu_memory_utilization or (0.92 if version >= (0, 21) else 0.9)
    default_mnbt, default_seqs = vllm_batch_defaults(gpu_total_bytes, gpu_name, engine.usage)
    mnbt = engine.max_num_batched_tokens or default_mnbt
    seqs = engine.max_num_seqs or default_seqs
    rows = min(seqs, mnbt)
    is_mla = any(layer.kind == "mla" for layer in model.layers)
    block_size = engine.block_size or (64 if is_mla else 16)
    requested = (
        ceil_div(gpu_total_bytes * round(util * 10**6), 10**6)
        if version >= (0, 14)
        else int(gpu_total_bytes * util)
    )
    multi = parallel.tp * parallel.pp * parallel.dp > 1
    non_torch = (
        engine.non_torch_bytes
        if engine.non_torch_bytes is not None
        else (NON_TORCH_MULTI if multi else NON_TORCH_SINGLE)
    )
    graphs_on = version >= (0, 21) and not engine.enforce_eager
    graphs = (
        (engine.cuda_graph_bytes if engine.cuda_graph_bytes is not None else CUDA_GRAPH_DEFAULT)
        if graphs_on
        else 0
    )
    act = storage_type(model.dtype if model.dtype in ("bf16", "fp16") else "bf16")
    state = kvmod.state_storage(model)
    conv = storage_type(model.dtype)
    stages = stage_layers(model.num_layers, parallel.pp)
    plan = kv_plan(list(model.layers), kv, state, conv, tp=parallel.tp, block_size=block_size, version=version)
    budgets: list[StageBudget] = []
    for s, layers in enumerate(stages):
        if engine.activation_bytes is not None:
            peak, detail = engine.activation_bytes, {"override_bytes": engine.activation_bytes}
        else:
            peak, detail = profile_peak_bytes(
                model,
                parallel,
                layers,
                tokens=mnbt,
                rows=rows,
                act=act,
                version=version,
                last_stage=s == len(stages) - 1,
                first_stage=s == 0,
            )
        weights = stage_weights[s] + rope_cache_bytes(model, act)
        available = requested - weights - peak - non_torch - graphs
        budgets.append(
            StageBudget(
                stage=s,
                layers=len(layers),
                total_bytes=gpu_total_bytes,
                requested_bytes=requested,
                weights_bytes=weights,
                activation_bytes=peak,
                non_torch_bytes=non_torch,
                cuda_graph_bytes=graphs,
                kv_cache_bytes=available,
                num_blocks=num_blocks(available, plan, layers),
                activation_detail=detail,
            )
        )
    binding = min(range(len(budgets)), key=lambda i: budgets[i].num_blocks)
    blocks = budgets[binding].num_blocks
    needed = request_blocks(plan, max_model_len, mnbt, parallel.cp)
    error = None
    if any(b.kv_cache_bytes <= 0 for b in budgets):
        error = (
            "No available memory for the cache blocks (weights + activations + overheads exceed the budget)"
        )
    elif plan.groups and blocks < needed:
        error = (
            f"one request of max_model_len={max_model_len:,} needs {needed:,} blocks, the cache holds "
            f"{blocks:,}"
        )
    assumptions = {
        "gpu_memory_utilization": Assumption(
            value=util, source="--gpu-memory-utilization; default 0.9, 0.92 from vLLM v0.21 (#38284)"
        ),
        "max_num_batched_tokens": Assumption(
            value=mnbt, unit="tokens", source="vLLM get_batch_defaults for this GPU and usage"
        ),
        "max_num_seqs": Assumption(value=seqs, source="vLLM get_batch_defaults for this GPU and usage"),
        "block_size": Assumption(
            value=block_size, unit="tokens", source="vLLM CacheConfig default 16; MLA backends 64"
        ),
        "non_torch_bytes": Assumption(
            value=non_torch, unit="B", source="vLLM v0.19.0 H100 runs: 0.25 GiB single GPU, 2.1 GiB multi-GPU"
        ),
        "profile_slack_bytes": Assumption(
            value=PROFILE_SLACK, unit="B", source="median residual, docs/accuracy.md"
        ),
        "sampler_bytes_per_row_vocab": Assumption(
            value=sampler_bytes_per_row_vocab(version), unit="B", source="vLLM sampler path by version"
        ),
        "cuda_graph_bytes": Assumption(
            value=graphs,
            unit="B",
            source="subtracted from v0.21 unless --enforce-eager; 0.36 GiB logged estimate",
        ),
        "total_memory_bytes": Assumption(
            value=gpu_total_bytes,
            unit="B",
            source="torch.cuda.mem_get_info total for this GPU (hardware file)",
        ),
    }
    return EngineResult(
        engine="vllm",
        version=version_text,
        stages=budgets,
        binding_stage=binding,
        plan=plan,
        num_blocks=blocks,
        kv_cache_tokens=reported_tokens(blocks, plan, max_model_len, mnbt, version, parallel.cp),
        max_concurrency=max_concurrency(blocks, plan, max_model_len, mnbt, parallel.cp),
        max_model_len=max_model_len,
        blocks_per_request=needed,
        startup_error=error,
        assumptions=assumptions,
    )


def sglang_mem_fraction_static(gpu_total_bytes: int, tp: int, pp: int) -> tuple[float, int, int]:
    """SGLang's default --mem-fraction-static and the two defaults it derives from the GPU's memory
    (sglang/srt/server_args.py `_handle_gpu_memory_settings`, CUDA): chunked_prefill_size and
    cuda_graph_max_bs by memory class, then reserved MiB = 512 + 1.5 x max(chunked_prefill_size, 2048)
    + 2 x cuda_graph_max_bs + tp x pp / 8 x 1024, at least 10,240 MiB above 60 GiB; f = round((M - reserved)
    / M, 3) with M the memory in MiB. H100 (81,079 MiB, tp 1): 512 + 12,288 + 512 + 128 = 13,440 -> 0.834.
    Returns (f, chunked_prefill_size, cuda_graph_max_bs)."""
    mib = gpu_total_bytes / MIB
    if mib < 20 * 1024:
        chunk, graphs = 2048, 8
    elif mib < 35 * 1024:
        chunk, graphs = 2048, 24 if tp < 4 else 80
    elif mib < 60 * 1024:
        chunk, graphs = 4096, 32 if tp < 4 else 160
    elif mib < 160 * 1024:
        chunk, graphs = 8192, 256 if tp < 4 else 512
    else:
        chunk, graphs = 16384, 512
    reserved = 512 + max(chunk, 2048) * 1.5 + graphs * 2 + tp * pp / 8 * 1024
    if mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return round((mib - reserved) / mib, 3), chunk, graphs


def flat_budget(
    model: ModelSpec,
    parallel: Parallel,
    engine: EngineSettings,
    *,
    gpu_total_bytes: int,
    stage_weights: list[int],
    max_model_len: int,
    kv: StorageType,
) -> EngineResult:
    """SGLang, TensorRT-LLM and llama.cpp, which size one token pool (no vLLM-style groups):

    - sglang: KV = T x f - W, f = --mem-fraction-static (default: `sglang_mem_fraction_static`);
    - trtllm: KV = (T - W - P - N) x free_gpu_memory_fraction (0.9 default, KvCacheConfig);
    - llamacpp: KV = n_ctx x bytes per token; fits when W + KV + compute buffer <= T.
    tokens = min over stages of floor(KV / cell), cell = KV bytes per token of the stage's layers on one rank
    (window layers at full length: these engines keep one pool)."""
    version_text = engine.version or "latest"
    mnbt = engine.max_num_batched_tokens or 8192
    stages = stage_layers(model.num_layers, parallel.pp)
    cells = [
        max(1, sum(kvmod.layer_kv_bytes_per_token(model.layers[i], kv, parallel.tp) for i in layers))
        for layers in stages
    ]
    non_torch = engine.non_torch_bytes if engine.non_torch_bytes is not None else NON_TORCH_SINGLE
    act = storage_type("bf16")
    budgets = []
    assumptions: dict[str, Assumption] = {
        "total_memory_bytes": Assumption(value=gpu_total_bytes, unit="B", source="hardware file"),
        "kv_cell_bytes": Assumption(
            value=max(cells), unit="B", source="KV bytes per token on one rank of the fullest stage"
        ),
    }
    if engine.name != "sglang":
        assumptions["non_torch_bytes"] = Assumption(
            value=non_torch, unit="B", source="CUDA context and library workspaces; --non-torch-memory overrides"
        )
    for s, layers in enumerate(stages):
        requested = gpu_total_bytes
        weights = stage_weights[s]
        peak, detail = profile_peak_bytes(
            model,
            parallel,
            layers,
            tokens=mnbt,
            rows=min(256, mnbt),
            act=act,
            version=(0, 17),
            last_stage=s == len(stages) - 1,
            first_stage=s == 0,
        )
        if engine.name == "sglang":
            default, chunk, graphs = sglang_mem_fraction_static(gpu_total_bytes, parallel.tp, parallel.pp)
            fraction = engine.mem_fraction_static or default
            assumptions["mem_fraction_static"] = Assumption(
                value=fraction,
                source="--mem-fraction-static" if engine.mem_fraction_static else
                f"SGLang default for this GPU: chunked_prefill_size {chunk}, cuda_graph_max_bs {graphs} "
                "(server_args._handle_gpu_memory_settings)",
            )
            requested = int(gpu_total_bytes * fraction)
            available = requested - weights
            peak, non_torch_used = 0, 0
        elif engine.name == "trtllm":
            fraction = engine.free_gpu_memory_fraction or 0.9
            assumptions["free_gpu_memory_fraction"] = Assumption(
                value=fraction, source="KvCacheConfig default 0.9"
            )
            available = int((gpu_total_bytes - weights - peak - non_torch) * fraction)
            non_torch_used = non_torch
        else:  # llamacpp: the cache is exactly n_ctx cells; compute buffer ~ n_ubatch x vocab logits in fp32
            compute = 512 * model.vocab_size * 4 + 256 * MIB
            assumptions["compute_buffer_bytes"] = Assumption(
                value=compute, unit="B", source="n_ubatch 512 x vocab fp32 logits + 256 MiB graph (estimate)"
            )
            peak, non_torch_used = compute, non_torch
            available = gpu_total_bytes - weights - compute - non_torch
        budgets.append(
            StageBudget(
                stage=s,
                layers=len(layers),
                total_bytes=gpu_total_bytes,
                requested_bytes=requested,
                weights_bytes=weights,
                activation_bytes=peak,
                non_torch_bytes=non_torch_used,
                cuda_graph_bytes=0,
                kv_cache_bytes=available,
                num_blocks=max(0, available) // cells[s],
                activation_detail=detail,
            )
        )
    binding = min(range(len(budgets)), key=lambda i: budgets[i].num_blocks)
    tokens = budgets[binding].num_blocks
    plan = KvPlan(layout="flat", page_bytes=cells[binding], block_bytes=cells[binding], groups=[])
    needed_tokens = max_model_len
    error = None
    if budgets[binding].kv_cache_bytes <= 0:
        error = "weights and buffers leave no memory for the KV cache"
    elif tokens < needed_tokens:
        error = f"a {max_model_len:,}-token context needs {needed_tokens:,} KV cells, {tokens:,} fit"
    return EngineResult(
        engine=engine.name,
        version=version_text,
        stages=budgets,
        binding_stage=binding,
        plan=plan,
        num_blocks=tokens,
        kv_cache_tokens=tokens,
        max_concurrency=tokens / max_model_len,
        max_model_len=max_model_len,
        blocks_per_request=needed_tokens,
        startup_error=error,
        assumptions=assumptions,
    )
