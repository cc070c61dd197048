"""vLLM's non-KV memory terms: defaults it picks for the profile run, the torch peak of that run, the rotary
cache it loads with the weights, and the engine-level constants measured on real start-ups (never tuned per
model). Used by `calc/engines/vllm.py`; TensorRT-LLM's dummy forward reuses `profile_peak_bytes`."""

from __future__ import annotations

from kvcalc.spec.deployment import Parallel
from kvcalc.spec.dtypes import StorageType
from kvcalc.spec.layers import DenseMLP, MoEMLP
from kvcalc.spec.model import ModelSpec
from kvcalc.units import GIB

#: Non-torch memory growth during profiling at tp = pp = 1: median 0.25 GiB of the 21 single-GPU vLLM v0.19.0
#: H100 runs (0.24-0.26 GiB, except 0.46 for the three granite text models; shared reference
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
#: CUDA-graph estimate subtracted from v0.20: 0.36 GiB in a logged vLLM 0.27.1 start-up
#: (gpustack/runner PR #251, "Estimated CUDA graph memory: 0.36 GiB total"); an empirical default. vLLM's own
#: estimate misses part of the capture (issues #51590, #57865: 0.49 GiB actual vs 0.40 estimated on a TP4
#: run, 1.28 vs 1.26 on another): override with --cuda-graph-memory from your log.
CUDA_GRAPH_DEFAULT = int(0.36 * GIB)


def batch_defaults(gpu_total_bytes: int, gpu_name: str, usage: str, large_serve_tokens: int = 8192
                   ) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) vLLM picks when unset: a "large" GPU (>= 70 GiB, not A100)
    gets `large_serve_tokens`/1024 for `vllm serve` (8192; 16384 from ≈v0.28, #51726) and 16384/1024 for
    `LLM(...)`; others 2048/256 and 8192/256 (vllm/engine/arg_utils.py get_batch_defaults)."""
    large = gpu_total_bytes >= 70 * GIB and "a100" not in gpu_name.lower()
    if usage == "llm":
        return (16384, 1024) if large else (8192, 256)
    return (large_serve_tokens, 1024) if large else (2048, 256)


def rope_cache_bytes(model: ModelSpec, act: StorageType) -> int:
    """vLLM's rotary `cos_sin_cache`, built on every rank during loading and so part of "Model loading took":
    max_position_embeddings x rotary_dim values in the model dtype (vllm/model_executor/layers/
    rotary_embedding: `_compute_cos_sin_cache` -> [max_position, rotary_dim], cast to the model dtype).
    Llama 4 Scout: 10,485,760 x 128 x 2 B = 2.5 GiB."""
    return act.bytes_for((model.max_position_embeddings or 0) * model.rotary_dim)


def forward_peak_bytes(model: ModelSpec, parallel: Parallel, layers: range, tokens: int, act: StorageType) -> int:
    """Largest MLP activation of the stage's layers for `tokens` tokens, plus hidden and residual (2 T H b):
    dense T x (3 or 2) I / tp x b (gate_up + activation); MoE min(T, 32768) x top_k x ((3 or 2) I_e / tp + H) x b
    (fused_moe intermediate caches, chunked at VLLM_FUSED_MOE_CHUNK_SIZE; with EP each rank holds whole
    experts, so I_e is not split)."""
    b = act.block_bytes
    tp = parallel.tp
    forward = 0
    for index in layers:
        mlp = model.layers[index].mlp
        if isinstance(mlp, DenseMLP):
            width = (3 if mlp.gated else 2) * mlp.intermediate_size
            forward = max(forward, tokens * width // tp * b)
        elif isinstance(mlp, MoEMLP):
            split = 1 if parallel.ep > 1 else tp
            per_expert = (3 if mlp.gated else 2) * mlp.expert_intermediate_size // split
            forward = max(forward, min(tokens, FUSED_MOE_CHUNK) * mlp.top_k * (per_expert + model.hidden_size) * b)
    return forward + 2 * tokens * model.hidden_size * b


def profile_peak_bytes(
    model: ModelSpec,
    parallel: Parallel,
    layers: range,
    *,
    tokens: int,
    rows: int,
    act: StorageType,
    sampler_coefficient: int,
    last_stage: bool,
    first_stage: bool,
    sampler_split: int = 1,
) -> tuple[int, dict[str, int]]:
    """P, the torch peak of vLLM's profile run on one worker (attention returns zeros there, so the MLP and
    the sampler set it):

        P = max(forward, hidden + sampler) + slack (+ 2 T H b received from the previous stage when pp > 1)
        sampler = c x rows x V / sampler_split (last stage only; c = `sampler_coefficient`, rows = min(max_num_seqs,
        max_num_batched_tokens); sampler_split = tp with --enable-batch-sharded-sampling)
    """
    hidden = tokens * model.hidden_size * act.block_bytes
    forward = forward_peak_bytes(model, parallel, layers, tokens, act)
    sampler = sampler_coefficient * rows * model.vocab_size // sampler_split if last_stage else 0
    intermediate = 0 if first_stage else 2 * hidden
    peak = max(forward, hidden + sampler) + PROFILE_SLACK + intermediate
    return peak, {
        "forward_bytes": forward,
        "sampler_bytes": sampler,
        "slack_bytes": PROFILE_SLACK,
        "pp_intermediate_bytes": intermediate,
        "hidden_bytes": hidden,
    }
