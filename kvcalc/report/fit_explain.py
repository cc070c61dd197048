"""`kvcalc fit --explain`: each figure of a plan with its formula, the numbers substituted and the source,
in the engine's own terms (vLLM's budget and blocks, SGLang's static fraction, TensorRT-LLM's free fraction,
llama.cpp's context cells). Reads the plan; computes no budget."""

from __future__ import annotations

from kvcalc.calc.plan import DeploymentPlan
from kvcalc.report.explain import Derivation
from kvcalc.report.inspect import kv_derivations
from kvcalc.units import fmt_gib


def fit_derivations(plan: DeploymentPlan, weights_total: int) -> list[Derivation]:
    """Weights per GPU, the memory terms, the KV budget, the pool and what the engine reports."""
    s = plan.binding_device
    parallel = plan.parallel
    out = kv_derivations(plan.model, plan.kv_dtype, parallel.tp, engine=plan.engine)
    out.append(Derivation(
        figure=f"Weights on the fullest GPU (stage {s.stage}, {s.num_layers} layers)",
        formula="sum over its tensors of shard bytes in the served format: column/row-parallel / tp, embedding and "
        "head padded to 64 rows / tp, K/V kept whole per head when tp > KV heads, norms and routers replicated"
        + (" + rotary cos/sin cache" if plan.engine == "vllm" else "")
        + (" + the vision tower (below)" if "vision_tower_bytes" in plan.assumptions else "")
        + (" + deepstack input buffers (levels x max_num_batched_tokens x hidden)" if plan.engine == "vllm"
           and plan.model.vision is not None and plan.model.vision.tower.deepstack_levels else "")
        + ("; llama.cpp: the layers on the GPU, token_embd in host RAM" if plan.engine == "llamacpp" else ""),
        substituted=f"{fmt_gib(weights_total)} whole model ({plan.weight_format_source}) over tp={parallel.tp}, "
        f"pp={parallel.pp}, ep={parallel.ep}",
        value=fmt_gib(s.weights_bytes),
        source="vLLM linear.py / vocab_parallel_embedding.py / get_pp_indices" if plan.engine != "llamacpp"
        else "llama.cpp src/llama-model.cpp load_tensors",
    ))
    out += _vision(plan)
    out += _ENGINES[plan.engine](plan)
    return out


def _vision(plan: DeploymentPlan) -> list[Derivation]:
    """The vision tower's share of stage 0's weights (multimodal models; the plan's assumption)."""
    held = plan.assumptions.get("vision_tower_bytes")
    vision = plan.model.vision
    if held is None or vision is None:
        return []
    t, tp = vision.tower, plan.parallel.tp
    tower_tp = plan.assumptions["vision_tower_tp"].value if "vision_tower_tp" in plan.assumptions else tp
    return [Derivation(
        figure="Vision tower + projector per GPU of stage 0 (in the weights above)",
        formula="dtype bytes x [embeddings and norms + whole projector parts + (layers run x layer + mergers) / "
        "tower tp + projector linears / tp]",
        substituted=f"{plan.serving_dtype} x [{t.embed_params:,} + {vision.projector_other_params:,} + "
        f"({vision.layers_run} x {t.layer_params:,} + {t.merger_params:,}) / {tower_tp} + "
        f"{vision.projector_linear_params:,} / {tp}]" if held.value else "the engine serves the text model only",
        value=fmt_gib(int(held.value)),
        source=held.source,
    )]


def _vllm(plan: DeploymentPlan) -> list[Derivation]:
    """Requested memory R, the activation peak P and the KV memory A = R - weights - P - non-torch - graphs,
    then the blocks A holds."""
    s = plan.binding_device
    util = plan.assumptions["gpu_memory_utilization"].value
    detail = s.activation_detail
    out = [Derivation(
        figure="Requested memory per GPU (R)",
        formula="total as torch reports it x gpu_memory_utilization (ceil from v0.14)",
        substituted=f"{s.total_bytes:,} x {util}",
        value=f"{s.requested_bytes:,} B = {fmt_gib(s.requested_bytes)}",
        source="vLLM v1/worker/utils.py request_memory",
    )]
    if "forward_bytes" in detail:
        out.append(Derivation(
            figure="Activation peak of the profile run (P)",
            formula="max(MLP forward of max_num_batched_tokens, hidden + sampler c x rows x vocab) + slack"
            + (" + pipeline hand-off" if detail.get("pp_intermediate_bytes") else ""),
            substituted=f"max({detail['forward_bytes']:,}, {detail['hidden_bytes']:,} + {detail['sampler_bytes']:,}) "
            f"+ {detail['slack_bytes']:,} + {detail.get('pp_intermediate_bytes', 0):,}",
            value=fmt_gib(s.activation_bytes),
            source="vLLM gpu_model_runner.profile_run; calibration in docs/accuracy.md" + (
                f"; sampler c: {plan.assumptions['sampler_bytes_per_row_vocab'].source}"
                if "sampler_bytes_per_row_vocab" in plan.assumptions else ""),
        ))
    out.append(Derivation(
        figure="KV cache memory per GPU (A)",
        formula="R - weights - activation peak - non-torch - CUDA graphs",
        substituted=f"{fmt_gib(s.requested_bytes)} - {fmt_gib(s.weights_bytes)} - {fmt_gib(s.activation_bytes)} - "
        f"{fmt_gib(s.non_torch_bytes)} - {fmt_gib(s.cuda_graph_bytes)}",
        value=fmt_gib(s.kv_cache_bytes),
        source="vLLM gpu_worker.determine_available_memory",
    ))
    return out + _vllm_blocks(plan)


def _vllm_blocks(plan: DeploymentPlan) -> list[Derivation]:
    """KV blocks from A, the "GPU KV cache size" vLLM reports and its maximum concurrency (none without KV
    groups)."""
    s = plan.binding_device
    layout = plan.kv_pool.layout
    if not layout.groups:
        return []
    per_index = layout.block_bytes // max(1, layout.page_bytes)
    rule = plan.assumptions.get("reported_tokens")
    new_rule = rule is not None and rule.value == "concurrency"
    return [
        Derivation(
            figure="KV blocks",
            formula="floor(A / (page bytes x layers sharing a block index)); min over pipeline stages",
            substituted=f"floor({s.kv_cache_bytes:,} / ({layout.page_bytes:,} x {per_index}))",
            value=f"{plan.kv_pool.num_blocks:,} blocks of {layout.min_block_size} tokens, {layout.num_groups} KV "
            f"group(s), {plan.kv_dtype} KV",
            source="vLLM kv_cache_utils.get_num_blocks / _get_kv_cache_groups_uniform_page_size",
        ),
        Derivation(
            figure='"GPU KV cache size"',
            formula="int(max concurrency x max_model_len) (v0.21+)" if new_rule
            else "floor(blocks / KV groups) x smallest block size (before v0.21; = int(C x L) for one group)",
            substituted=f"{plan.kv_pool.num_blocks:,} blocks, {layout.num_groups} group(s), max_model_len "
            f"{plan.max_model_len:,}",
            value=f"{plan.kv_cache_tokens:,} tokens",
            source="vLLM _report_kv_cache_config (#41069 from v0.21)",
        ),
        Derivation(
            figure="Maximum concurrency",
            formula="blocks / blocks one max-length request needs (sum over KV groups; windows sized by "
            "admission tokens; Mamba groups 1 state block, 2 with prefix caching ('align'))",
            substituted=f"{plan.kv_pool.num_blocks:,} / {plan.blocks_per_max_request:,}",
            value=f"{plan.max_concurrency:.2f}x at {plan.max_model_len:,} tokens",
            source="vLLM get_max_concurrency_for_kv_cache_config",
        ),
    ]


def _sglang(plan: DeploymentPlan) -> list[Derivation]:
    s = plan.binding_device
    fraction = plan.assumptions["mem_fraction_static"].value
    cell = plan.kv_pool.block_bytes
    return [
        Derivation(
            figure="KV cache memory per GPU",
            formula="int((total - CUDA context) x mem_fraction_static) - weights",
            substituted=f"int(({s.total_bytes:,} - {s.non_torch_bytes:,}) x {fraction}) - {s.weights_bytes:,}",
            value=fmt_gib(s.kv_cache_bytes),
            source="SGLang kv_cache_configurator._profile_available_bytes (free before load x f - weights)",
        ),
        Derivation(
            figure="Token slots",
            formula="floor(KV memory / bytes of one token on one rank, every layer)",
            substituted=f"floor({s.kv_cache_bytes:,} / {cell:,})",
            value=f"{plan.kv_cache_tokens:,} tokens",
            source="SGLang memory_pool (page_size 1)",
        ),
    ]


def _trtllm(plan: DeploymentPlan) -> list[Derivation]:
    s = plan.binding_device
    fraction = plan.assumptions["free_gpu_memory_fraction"].value
    return [
        Derivation(
            figure="KV cache memory per GPU",
            formula="(total - weights - activation peak - non-torch) x free_gpu_memory_fraction",
            substituted=f"({fmt_gib(s.total_bytes)} - {fmt_gib(s.weights_bytes)} - {fmt_gib(s.activation_bytes)} - "
            f"{fmt_gib(s.non_torch_bytes)}) x {fraction}",
            value=fmt_gib(s.kv_cache_bytes),
            source="TensorRT-LLM _torch/pyexecutor/_util.py KvCacheCreator",
        ),
        Derivation(
            figure="KV blocks",
            formula="floor(KV memory / (tokens_per_block x bytes of one token on one rank))",
            substituted=f"floor({s.kv_cache_bytes:,} / {plan.kv_pool.block_bytes:,})",
            value=f"{plan.kv_pool.num_blocks:,} blocks of {plan.kv_pool.block_size} = {plan.kv_cache_tokens:,} tokens",
            source="TensorRT-LLM KVCacheManager (tokens_per_block 32)",
        ),
    ]


def _llamacpp(plan: DeploymentPlan) -> list[Derivation]:
    s = plan.binding_device
    n_ctx = plan.kv_cache_tokens
    return [
        Derivation(
            figure="KV cells (n_ctx)",
            formula="-c per request x -np slots (0 = the model's training context); --fit shrinks it only when -c "
            "is unset and the model does not fit",
            substituted=f"{plan.max_model_len:,} x {plan.max_num_seqs}",
            value=f"{n_ctx:,} cells ({plan.assumptions['n_ctx'].source})",
            source="llama.cpp common/arg.cpp -c, common/fit.cpp llama_params_fit",
        ),
        Derivation(
            figure="KV cache on the GPU",
            formula="sum over the GPU's layers of cells x bytes per cell (sliding layers: pad(min(n_ctx, window x "
            "slots + n_ubatch), 256) cells; recurrent layers: f32 state per slot)",
            substituted=f"{n_ctx:,} cells x {plan.kv_pool.kv_bytes_per_token:,} B/token on full layers "
            f"({plan.kv_dtype})",
            value=fmt_gib(s.kv_cache_bytes),
            source="llama.cpp src/llama-kv-cache.cpp, llama-kv-cache-iswa.cpp",
        ),
        Derivation(
            figure="Compute buffer",
            formula="n_ubatch x (n_vocab + 2 x n_embd) x 4 B on the device running the output layer",
            substituted=f"n_ubatch {plan.assumptions['n_ubatch'].value}",
            value=fmt_gib(s.activation_bytes),
            source="fitted to llama.cpp logs (calc/offload.compute_buffer_bytes)",
        ),
        Derivation(
            figure="Free on the GPU",
            formula="total - weights - KV - compute buffer - backend context (--fit keeps >= --fit-target free)",
            substituted=f"{fmt_gib(s.total_bytes)} - {fmt_gib(s.weights_bytes)} - {fmt_gib(s.kv_cache_bytes)} - "
            f"{fmt_gib(s.activation_bytes)} - {fmt_gib(s.non_torch_bytes)}",
            value=fmt_gib(s.free_bytes),
            source="llama.cpp common/fit.cpp (--fit-target 1024 MiB)",
        ),
    ]


_ENGINES = {"vllm": _vllm, "sglang": _sglang, "trtllm": _trtllm, "llamacpp": _llamacpp}
