"""vLLM (V1 engine): the KV budget per worker, the paged pool, what it logs, and when it refuses to start.

Per worker (vLLM `gpu_worker.py::determine_available_memory`, `utils/mem_utils.py`):
    R = T x u                            requested memory (T = total as torch reports it, u = utilization;
                                         ceil from v0.14)
    A = R - W - P - N - G                KV cache memory ("Available KV cache memory")
with W the weights ("Model loading took", rotary cache included), P the torch peak of the profile run, N the
non-torch memory that grew while profiling, G the CUDA-graph estimate (subtracted from v0.20; 0 under Model
Runner V2 until v0.29). Blocks = min over workers of floor(A / bytes per block index) (calc/paged.py).
Every version-dependent rule comes from `vllm_versions.rules_for`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvcalc.calc import kv as kvmod
from kvcalc.calc.engines import platforms
from kvcalc.calc.engines.common import check_kv_dtype, context_refusal, replica_warnings, resolve_format
from kvcalc.calc.engines.settings import VllmSettings
from kvcalc.calc.engines.vllm_profile import (
    CUDA_GRAPH_DEFAULT,
    NON_TORCH_MULTI,
    NON_TORCH_SINGLE,
    PROFILE_SLACK,
    batch_defaults,
    profile_peak_bytes,
    rope_cache_bytes,
)
from kvcalc.calc.engines.vllm_versions import NEWEST, VllmRules, rules_for
from kvcalc.calc.paged import KvPlan, kv_plan, num_blocks, reported_tokens, request_blocks
from kvcalc.calc.parallel import check_parallel, stage_layers, weights_per_stage
from kvcalc.calc.plan import Assumption, Binding, DeploymentPlan, DeviceLedger, KvPool, device_ledger
from kvcalc.calc.vision import TowerPlacement, deepstack_buffer_bytes, encoder_tp, vision_assumption
from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import ParallelismError
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.dtypes import StorageType, storage_type
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.layers import MoEMLP
from kvcalc.spec.model import ModelSpec
from kvcalc.units import GIB, ceil_div

NAME = "vllm"
Settings = VllmSettings
#: `--kv-cache-dtype` values (vllm/config/cache.py CacheDType), in kvcalc's spelling too.
KV_DTYPES = frozenset({"bf16", "fp16", "fp32", "fp8", "fp8_e4m3", "fp8_e5m2"})


def check_decode_context_parallel(model: ModelSpec, parallel: Parallel) -> None:
    """vLLM's decode-context-parallel limits (ModelConfig.verify_with_parallel_config; ValueErrors from #49777):
    GQA/MQA needs tp > KV heads (DCP splits tokens over the ranks that would hold replicated KV heads),
    dcp <= tp // KV heads, and query heads per KV head divisible by dcp; MLA only needs dcp | tp; no sliding
    windows ("DCP not support sliding window", SlidingWindowSpec)."""
    dcp, tp = parallel.cp, parallel.tp
    if dcp == 1:
        return
    if any(layer.kind in ("sliding", "chunked") for layer in model.layers):
        raise ParallelismError(f"--cp {dcp}: vLLM's decode context parallelism does not support sliding-window "
                               f"or chunked attention layers, which {model.id} has")
    if any(layer.kind == "mla" for layer in model.layers):
        return
    kv = model.num_kv_heads
    if kv and tp <= kv:
        raise ParallelismError(f"--cp {dcp}: Decode context parallelism for GQA/MQA requires --tensor-parallel-size "
                               f"({tp}) to be greater than the model's total number of KV heads ({kv})")
    if kv and dcp > tp // kv:
        raise ParallelismError(f"--decode-context-parallel-size ({dcp}) exceeds the maximum supported value "
                               f"({tp // kv}) for --tensor-parallel-size ({tp}) and {kv} model KV heads")
    if kv and (model.num_attention_heads // kv) % dcp:
        raise ParallelismError(f"The model's number of query heads per KV head ({model.num_attention_heads // kv}) "
                               f"must be divisible by --decode-context-parallel-size ({dcp}) for GQA/MQA")


def uses_model_runner_v2(model: ModelSpec, rules: VllmRules, choice: str = "auto") -> bool:
    """Whether this release runs the model on Model Runner V2: `choice` v1/v2 (VLLM_USE_V2_MODEL_RUNNER),
    else its default for the model (release notes v0.22-v0.29)."""
    if choice != "auto":
        return choice == "v2"
    scope = rules.model_runner_v2
    dense = not any(isinstance(layer.mlp, MoEMLP) for layer in model.layers)
    if scope == "all":
        return True
    if scope == "dense":
        return dense
    families = {"qwen3-dense": ("qwen3",), "qwen3-llama-mistral-dense": ("qwen3", "llama", "mistral")}.get(scope, ())
    return dense and model.model_type in families


def sampler_coefficient(rules: VllmRules, mrv2: bool) -> int:
    """Bytes per (row x vocab) the profile run's dummy sampler holds: Model Runner V1 runs top-k/top-p sampling
    on FP32 copies (`sampler_bytes_per_row_vocab`, 14 from v0.17); Model Runner V2 samples without them
    (`mrv2_sampler_bytes_per_row_vocab`: 6 with its FP32 copy, 2 once the dummy batch skips logits processing)."""
    return rules.mrv2_sampler_bytes_per_row_vocab if mrv2 else rules.sampler_bytes_per_row_vocab


def mamba_state_blocks(settings: VllmSettings, rules: VllmRules) -> tuple[int, str]:
    """Blocks a request holds in each recurrent-state (Mamba / linear-attention) group, and the source:
    MambaSpec.max_memory_usage_bytes = page x (2 if mamba_cache_mode == "align" else 1) (+ speculative blocks,
    not modelled: kvcalc plans without speculative decoding). Prefix caching on a hybrid model selects "align";
    it is opt-in before ≈v0.28 and on by default after (#50991)."""
    if settings.enable_prefix_caching is not None:
        on = settings.enable_prefix_caching
        source = f"--{'enable' if on else 'no-enable'}-prefix-caching"
    else:
        on = rules.hybrid_prefix_caching_default
        source = rules.sources["hybrid_prefix_caching_default"]
    if on:
        return 2, f"prefix caching on ({source}): mamba_cache_mode 'align', 2 state blocks per request"
    return 1, f"prefix caching off ({source}): mamba_cache_mode 'none', 1 state block per request"


def with_state_blocks(layout: KvPlan, state_blocks: int) -> KvPlan:
    """The layout with `state_blocks` blocks per request in each recurrent-state group."""
    if state_blocks == 1 or not any(g.kind in ("linear", "mamba") for g in layout.groups):
        return layout
    from kvcalc.spec.base import replace

    groups = [replace(g, state_blocks=state_blocks) if g.kind in ("linear", "mamba") else g for g in layout.groups]
    return replace(layout, groups=groups)


def _batch(settings: VllmSettings, gpu: GpuSpec, max_len: int, rules: VllmRules) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs): given values, else get_batch_defaults, then
    _set_default_max_num_seqs_and_batched_tokens_args: a defaulted mnbt <= max_num_seqs x max_model_len, a
    defaulted max_num_seqs <= mnbt."""
    default_mnbt, default_seqs = batch_defaults(gpu.usable_memory_bytes, gpu.name, settings.usage,
                                                rules.large_gpu_serve_batched_tokens)
    seqs = settings.max_num_seqs or default_seqs
    mnbt = settings.max_num_batched_tokens or min(default_mnbt, seqs * max_len)
    if settings.max_num_seqs is None:
        seqs = min(seqs, mnbt)
    return mnbt, seqs


def admission_tokens(settings: VllmSettings, rules: VllmRules, mrv2: bool, mnbt: int, pp: int) -> int:
    """Tokens a request may have in flight when vLLM sizes a sliding/chunked group (vllm/config/vllm.py
    max_in_flight_tokens = max_concurrent_batches x max_num_batched_tokens; batches: pp + 1 with async
    scheduling on MRv2, 2 with async on MRv1 at pp = 1, else pp). Before the rule: max_num_batched_tokens."""
    if not rules.async_in_flight_tokens:
        return mnbt
    batches = (pp + 1 if mrv2 else 2 if pp == 1 else pp) if settings.async_scheduling else pp
    return batches * mnbt


def plan(
    model: ModelSpec,
    weight_format: WeightFormat | None,
    hardware: GpuSpec,
    layout: Parallel,
    settings: VllmSettings,
) -> DeploymentPlan:
    """vLLM's allocation for this deployment (module docstring), per data-parallel replica."""
    rules = rules_for(settings.version or NEWEST)
    check_parallel(model, layout)
    check_decode_context_parallel(model, layout)
    choice, fmt, fmt_source = _weights(model, weight_format, hardware, layout, rules)
    kv_name = choice.serving_dtype if settings.kv_cache_dtype == "auto" else settings.kv_cache_dtype
    check_kv_dtype(NAME, kv_name, KV_DTYPES)
    kv = storage_type(kv_name)
    max_len = settings.max_model_len or model.max_position_embeddings or 4096
    warnings = list(choice.warnings)
    mnbt, seqs = _batch(settings, hardware, max_len, rules)
    mrv2 = uses_model_runner_v2(model, rules, settings.model_runner)
    graphs, graph_source = _cuda_graphs(settings, rules, mrv2, warnings)
    if graphs and rules.hybrid_gdn_graph_overestimate and any(layer.kind == "linear" for layer in model.layers):
        warnings.append(GDN_GRAPH_WARNING.format(version=rules.version))
    util = settings.gpu_memory_utilization or rules.default_gpu_memory_utilization
    total = hardware.usable_memory_bytes
    requested = _requested(total, util, rules)
    non_torch = settings.non_torch_bytes if settings.non_torch_bytes is not None else (
        NON_TORCH_MULTI if layout.tp * layout.pp > 1 else NON_TORCH_SINGLE)
    is_mla = any(layer.kind == "mla" for layer in model.layers)
    block_size = settings.block_size or (64 if is_mla else 16)
    act = storage_type(choice.serving_dtype if choice.serving_dtype in ("bf16", "fp16", "fp32") else "bf16")
    layout_plan, state_blocks, state_source = _kv_layout(model, kv, layout.tp, block_size, settings, rules)
    stages = stage_layers(model.num_layers, layout.pp)
    budget = _Budget(total=total, requested=requested, non_torch=non_torch, graphs=graphs, tokens=mnbt,
                     rows=min(seqs, mnbt), act=act, mrv2=mrv2, tower=_tower(model, layout, settings, rules, act, mrv2))
    devices = _ledgers(model, layout, fmt, settings, rules, budget, layout_plan, stages)
    admit = admission_tokens(settings, rules, mrv2, mnbt, layout.pp)
    binding_stage = min(range(len(devices)), key=lambda i: devices[i].kv_blocks)
    blocks = devices[binding_stage].kv_blocks
    needed = request_blocks(layout_plan, max_len, admit, layout.cp)
    concurrency = blocks / needed if needed else 0.0
    error = context_refusal(model, max_len, "vLLM", "VLLM_ALLOW_LONG_MAX_MODEL_LEN") or _startup_error(
        devices, layout_plan, blocks, needed, max_len, rules)
    binding: Binding = "max_num_seqs" if concurrency > seqs else "memory"
    warnings += replica_warnings(layout.dp)
    assumptions = _assumptions(rules, settings, util, mnbt, seqs, block_size, non_torch, graphs, graph_source,
                               total, mrv2, admit, fmt_source, choice.kernel)
    assumptions.update(_model_assumptions(model, layout, layout_plan, (state_blocks, state_source), budget.tower))
    pool = _pool(model, kv, layout.tp, layout_plan, blocks, stages[binding_stage], block_size)
    return DeploymentPlan(
        model=model, gpu=hardware, parallel=layout, engine=NAME, engine_version=rules.version, weight_format=fmt,
        kv_dtype=kv_name, devices=tuple(devices), binding_stage=binding_stage, kv_pool=pool,
        kv_cache_tokens=reported_tokens(blocks, layout_plan, max_len, admit, rules.reported_tokens, layout.cp),
        max_model_len=max_len, max_num_seqs=seqs, max_num_batched_tokens=mnbt, max_concurrency=concurrency,
        blocks_per_max_request=needed, binding=binding, startup_error=error, assumptions=assumptions,
        warnings=tuple(warnings), settings=settings, weight_format_source=fmt_source,
        serving_dtype=choice.serving_dtype, admission_tokens=admit,
    )


def _kv_layout(model: ModelSpec, kv: StorageType, tp: int, block_size: int, settings: VllmSettings,
               rules: VllmRules) -> tuple[KvPlan, int, str]:
    """(the KV-cache groups `kv_plan` makes, with the Mamba state blocks each request holds; those blocks and
    their source)."""
    layout_plan = kv_plan(list(model.layers), kv, kvmod.state_storage(model), storage_type(model.dtype),
                          tp=tp, block_size=block_size, group_threshold=rules.hybrid_group_threshold)
    state_blocks, state_source = mamba_state_blocks(settings, rules)
    return with_state_blocks(layout_plan, state_blocks), state_blocks, state_source


#: vLLM's known CUDA-graph misestimate on gated-DeltaNet hybrids (vllm-project/vllm#50780).
GDN_GRAPH_WARNING = ("vLLM {version} over-estimates CUDA-graph memory on gated-DeltaNet hybrids (a ~128 KiB per "
                     "batched token transient counted as graph memory, #50780): its KV cache can be smaller than "
                     "shown; a smaller --max-num-batched-tokens shrinks the error")


def _weights(model: ModelSpec, weight_format: WeightFormat | None, hardware: GpuSpec, layout: Parallel,
             rules: VllmRules) -> tuple[platforms.PlatformChoice, WeightFormat, str]:
    """The platform's kernel choice, the weight format as served (a 16-bit checkpoint in the dtype the card
    serves it in) and where the format comes from."""
    partition = layout.tp if layout.ep == 1 else 1
    requested_fmt, fmt_source = resolve_format(model, weight_format, "bf16")
    choice = platforms.vllm_platform(model, requested_fmt, hardware, partition=partition,
                                     sm90_mxfp4=rules.mxfp4_sm90_kernel)
    fmt = choice.weight_format
    if weight_format is None and fmt_source.startswith("checkpoint dtype"):
        fmt, fmt_source = resolve_format(model, None, choice.serving_dtype)
    return choice, fmt, fmt_source


def _pool(model: ModelSpec, kv: StorageType, tp: int, layout_plan: KvPlan, blocks: int, binding_layers: range,
          block_size: int) -> KvPool:
    """The binding stage's KV pool in vLLM's units (blocks per KV-cache group)."""
    return KvPool(
        unit="blocks", block_size=layout_plan.min_block_size if layout_plan.groups else block_size, num_blocks=blocks,
        block_bytes=layout_plan.worker_block_bytes(binding_layers), layout=layout_plan,
        kv_bytes_per_token=kvmod.kv_bytes_per_token(model, kv, tp, layers=binding_layers),
        fixed_bytes_per_sequence=kvmod.fixed_bytes_per_sequence(model, kv, tp, layers=binding_layers),
        reserved_blocks=1)  # the null block, in every V1 release (KvPool.usable_blocks)


def _requested(total: int, util: float, rules: VllmRules) -> int:
    """total x gpu_memory_utilization, rounded as the release rounds it (ceil from the release that does)."""
    if rules.requested_rounding == "ceil":
        return ceil_div(total * round(util * 10**6), 10**6)
    return int(total * util)


@dataclass(frozen=True)
class _Budget:
    """The per-GPU terms every pipeline stage shares, the profile run's shape, and how a multimodal tower is
    held."""

    total: int
    requested: int
    non_torch: int
    graphs: int
    tokens: int
    rows: int
    act: StorageType
    mrv2: bool
    tower: TowerPlacement


def _ledgers(model: ModelSpec, layout: Parallel, fmt: WeightFormat, settings: VllmSettings, rules: VllmRules,
             b: _Budget, layout_plan: KvPlan, stages: list[range]) -> list[DeviceLedger]:
    """One ledger per pipeline stage: requested - weights - activation peak - non-torch - graphs = KV pool."""
    stage_weights = [w.weights_bytes for w in weights_per_stage(model, layout, fmt, tower=b.tower)]
    sampler_split = layout.tp if settings.enable_batch_sharded_sampling and rules.batch_sharded_sampling else 1
    devices = []
    for s, layers in enumerate(stages):
        if settings.activation_bytes is not None:
            peak, detail = settings.activation_bytes, {"override_bytes": settings.activation_bytes}
        else:
            peak, detail = profile_peak_bytes(
                model, layout, layers, tokens=b.tokens, rows=b.rows, act=b.act,
                sampler_coefficient=sampler_coefficient(rules, b.mrv2), last_stage=s == len(stages) - 1,
                first_stage=s == 0, sampler_split=sampler_split)
        weights = stage_weights[s] + rope_cache_bytes(model, b.act)
        weights += _side_buffers(model, rules, b) if s == 0 or b.tower.every_stage else 0
        available = b.requested - weights - peak - b.non_torch - b.graphs
        devices.append(device_ledger(
            stage=s, layers=layers, total=b.total, requested=b.requested, weights=weights, activation=peak,
            non_torch=b.non_torch, cuda_graph=b.graphs, kv_cache=available,
            kv_blocks=num_blocks(available, layout_plan, layers), detail=detail))
    return devices


def _tower(model: ModelSpec, layout: Parallel, settings: VllmSettings, rules: VllmRules, act: StorageType,
           mrv2: bool) -> TowerPlacement:
    """How this release builds a multimodal tower: loaded unless --language-model-only, split per
    --mm-encoder-tp-mode, in the served dtype `act`, on every pipeline stage unless v0.33+ runs Model Runner V2."""
    return TowerPlacement(loaded=not settings.language_model_only,
                          tower_tp=encoder_tp(model.vision, layout.tp, settings.mm_encoder_tp_mode),
                          element_bytes=act.bytes_for(1),
                          every_stage=not (rules.mm_tower_first_stage_only_mrv2 and mrv2))


def _side_buffers(model: ModelSpec, rules: VllmRules, b: _Budget) -> int:
    """Buffers a multimodal model allocates with its weights (Qwen3-VL's deepstack inputs; from v0.28 only
    when the tower is built)."""
    if not b.tower.loaded and rules.deepstack_follows_tower:
        return 0
    return deepstack_buffer_bytes(model.vision, tokens=b.tokens, text_hidden=model.hidden_size,
                                  dtype_bytes=b.act.bytes_for(1))


def _cuda_graphs(settings: VllmSettings, rules: VllmRules, mrv2: bool, warnings: list[str]) -> tuple[int, str]:
    """G and its source: 0 before v0.20 or with --enforce-eager; 0 under Model Runner V2 before v0.29 (its
    profile_cudagraph_memory() returned 0, #49224); else --cuda-graph-memory or the logged default."""
    if settings.enforce_eager:
        return 0, "--enforce-eager: no CUDA graphs captured"
    if not rules.cuda_graphs_subtracted:
        return 0, rules.sources["cuda_graphs_subtracted"]
    if mrv2 and not rules.mrv2_reserves_cuda_graphs:
        warnings.append(f"vLLM {rules.version} runs this model on Model Runner V2, which reserves no CUDA-graph "
                        "memory before sizing the KV cache (#49224, fixed in v0.29 by #53306); graph capture can "
                        "then run out of memory")
        return 0, rules.sources["mrv2_reserves_cuda_graphs"]
    if settings.cuda_graph_bytes is not None:
        return settings.cuda_graph_bytes, "--cuda-graph-memory"
    return CUDA_GRAPH_DEFAULT, ("vLLM's estimate, 0.36 GiB in a logged v0.27.1 start-up (gpustack/runner PR #251); "
                                "vLLM under-counts parts of the capture (#51590, #57865)")


def _startup_error(devices: list[DeviceLedger], layout: KvPlan, blocks: int, needed: int, max_len: int,
                   rules: VllmRules) -> str | None:
    """vLLM's refusal: no memory for the cache blocks, or one max_model_len request does not fit
    (_check_enough_kv_cache_memory; from ≈v0.25 the null block is reserved first, #47272)."""
    if any(d.requested_bytes - d.weights_bytes - d.activation_bytes - d.non_torch_bytes - d.cuda_graph_bytes <= 0
           for d in devices):
        return ("No available memory for the cache blocks (weights + activations + overheads exceed the budget). Try "
                "increasing `gpu_memory_utilization` when initializing the engine")
    null = 1 if rules.null_block_in_startup_check else 0
    if layout.groups and blocks - null < needed:
        need_gib = (needed + null) * layout.block_bytes / GIB
        return (f"To serve at least one request with the model's max seq len ({max_len:,}), {need_gib:.2f} GiB KV "
                f"cache is needed ({needed:,} blocks{' + the null block' if rules.null_block_in_startup_check else ''}"
                f"), which is larger than the available KV cache memory ({blocks * layout.block_bytes / GIB:.2f} GiB, "
                f"{blocks:,} blocks). Try increasing `gpu_memory_utilization` or decreasing `max_model_len`")
    return None


def _model_assumptions(model: ModelSpec, layout: Parallel, layout_plan: KvPlan, state: tuple[int, str],
                       tower: TowerPlacement) -> dict[str, Assumption]:
    """Assumptions only some models need: recurrent-state blocks per request (and their source), the vision
    tower's TP split and bytes as `tower` holds it."""
    out = {}
    if any(g.kind in ("linear", "mamba") for g in layout_plan.groups):
        out["mamba_state_blocks_per_request"] = Assumption(value=state[0], source=state[1])
    if model.vision is not None:
        out["vision_tower_tp"] = Assumption(value=tower.tower_tp or layout.tp, source="--mm-encoder-tp-mode "
                                            "(default weights: the TP degree; 1 for data mode or a replicated tower)")
        out["vision_tower_bytes"] = vision_assumption(model.vision, tower, tp=layout.tp,
                                                      model_element_bytes=storage_type(model.dtype).bytes_for(1))
    return out


def _assumptions(rules: VllmRules, settings: VllmSettings, util: float, mnbt: int, seqs: int, block_size: int,
                 non_torch: int, graphs: int, graph_source: str, total: int, mrv2: bool, admit: int,
                 fmt_source: str, kernel: str | None) -> dict[str, Assumption]:
    out = {
        "gpu_memory_utilization": Assumption(
            value=util, source="--gpu-memory-utilization" if settings.gpu_memory_utilization else
            rules.sources["default_gpu_memory_utilization"]),
        "max_num_batched_tokens": Assumption(value=mnbt, unit="tokens", source=(
            "--max-num-batched-tokens" if settings.max_num_batched_tokens else
            "vLLM get_batch_defaults for this GPU and usage")),
        "max_num_seqs": Assumption(value=seqs, source="--max-num-seqs" if settings.max_num_seqs else
                                   "vLLM get_batch_defaults for this GPU and usage"),
        "block_size": Assumption(value=block_size, unit="tokens",
                                 source="vLLM CacheConfig default 16; MLA backends 64"),
        "non_torch_bytes": Assumption(
            value=non_torch, unit="B", source="--non-torch-memory" if settings.non_torch_bytes is not None else
            "vLLM v0.19.0 H100 runs: 0.25 GiB single GPU, 2.1 GiB multi-GPU (docs/accuracy.md)"),
        "profile_slack_bytes": Assumption(value=PROFILE_SLACK, unit="B", source="median residual, docs/accuracy.md"),
        "sampler_bytes_per_row_vocab": Assumption(
            value=sampler_coefficient(rules, mrv2), unit="B",
            source=rules.sources["mrv2_sampler_bytes_per_row_vocab" if mrv2 else "sampler_bytes_per_row_vocab"]),
        "cuda_graph_bytes": Assumption(value=graphs, unit="B", source=graph_source),
        "reported_tokens": Assumption(value=rules.reported_tokens, source=rules.sources["reported_tokens"]),
        "model_runner": Assumption(value="v2" if mrv2 else "v1", source=rules.sources["model_runner_v2"]),
        "admission_tokens": Assumption(value=admit, unit="tokens", source=rules.sources["async_in_flight_tokens"]),
        "total_memory_bytes": Assumption(value=total, unit="B",
                                         source="torch.cuda.mem_get_info total for this GPU (hardware file)"),
        "weight_format": Assumption(value=fmt_source, source="--quant, else the checkpoint's config.json"),
    }
    if kernel is not None:
        out["weight_kernel"] = Assumption(value=kernel, source="vLLM kernel selection for this GPU")
    return out


def with_context(settings: VllmSettings, context: int | None) -> VllmSettings:
    """`--context L` is vLLM's --max-model-len."""
    from kvcalc.spec.base import replace

    return settings if context is None else replace(settings, max_model_len=context)
