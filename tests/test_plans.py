"""DeploymentPlans: each engine rule worked by hand (a removed rule turns a test red), the fixes of issue #8,
and the plan's invariants (ledger sums, monotonicity) as properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvcalc
from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.engines.settings import LlamacppSettings, TrtllmSettings, VllmSettings
from kvcalc.calc.engines.vllm_profile import NON_TORCH_MULTI, NON_TORCH_SINGLE
from kvcalc.calc.parallel import comm_per_token, weights_per_stage
from kvcalc.calc.quant import format_from_quantization_config, parse_quant
from kvcalc.errors import InputError, ParallelismError
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import EngineSettings, Parallel
from tests.conftest import CODELLAMA_7B, GPT_OSS_20B, LLAMA_70B, build

GIB = 1 << 30
H100 = find_gpu("h100")


# --- gpt-oss MXFP4: the layout each kernel gives the experts ------------------------------------------------


def test_mxfp4_triton_hopper_layout_by_hand() -> None:
    # gpt-oss-120b, one rank: 36 layers of 128 experts, H = I = 2880. Values are the checkpoint's (17 B per 32):
    # what triton_kernels adds per layer on SM90 is a padded copy of the uint8 scales and fp32 biases:
    #   scale copy gate_up 128 x round_up(5760, 256) = 5888 x round_up(90, 2) = 90  = 67,829,760
    #   scale copy down    128 x round_up(2880, 256) = 3072 x 90                    = 35,389,440
    #   biases to fp32: (128 x 5760 + 128 x 2880) x 2 more bytes                     =  2,211,840
    #   = 105,431,040 B per layer, x 36 = 3,795,517,440 B (3.53 GiB)
    model = load_model("gpt-oss-120b")
    stored = format_from_quantization_config(model)
    assert stored is not None
    raw = weights_per_stage(model, Parallel(), stored)[0].weights_bytes
    triton = weights_per_stage(model, Parallel(), stored.for_kernel("triton-hopper", 1))[0].weights_bytes  # type: ignore[attr-defined]
    assert triton - raw == 36 * 105_431_040
    # vLLM v0.14.1 on one H100 logged "Model loading took 64.38 GiB" (vllm-project/vllm #33155); the plan's W
    # (rotary cache included) must be within 0.5 % of it, not 60.8 GiB
    plan = kvcalc.plan("gpt-oss-120b", gpu="h100", version="0.14.1")
    assert plan.assumptions["weight_kernel"].value == "triton-hopper"
    assert abs(plan.binding_device.weights_bytes / GIB - 64.38) / 64.38 < 0.005


def test_mxfp4_marlin_and_flashinfer_padding_by_hand() -> None:
    # Marlin (A100, and every card 7.0-8.9) pads per TP slice: intermediate round_up(2880 / 2, 128) = 1536,
    # hidden round_up(2880, 256) = 3072. One layer at tp=2: gate_up 128 x (2 x 1536) x (3072 / 32) x 17
    # = 641,728,512; down 128 x 3072 x (1536 / 32) x 17 = 320,864,256; bf16 biases 128 x 3072 x 2 twice
    # = 1,572,864 -> 964,165,632 B per layer.
    model = load_model("gpt-oss-120b")
    stored = format_from_quantization_config(model)
    marlin = stored.for_kernel("marlin", 2)  # type: ignore[union-attr]
    layer = model.layers[0]
    experts = [t for t in layer.tensors if t.role.endswith("_exps")]
    shard = sum(marlin.tensor_bytes(t, t.numel // 2) for t in experts)
    assert shard == 641_728_512 + 320_864_256 + 1_572_864
    # a TP2 vLLM log (GPU unstated) reads "Model loading took 34.3774 GiB": the Marlin layout, within 0.5 %
    plan = kvcalc.plan("gpt-oss-120b", gpu="a100-80gb", tp=2, version="0.14.1")
    assert plan.assumptions["weight_kernel"].value == "marlin"
    assert abs(plan.binding_device.weights_bytes / GIB - 34.3774) / 34.3774 < 0.005
    assert any("weight-only through the Marlin kernel" in w for w in plan.warnings)
    # Blackwell (FlashInfer TRT-LLM MoE) pads both to 256: gate_up at tp=1 128 x 6144 x 96 x 17 = 1,283,457,024
    gate_up = next(t for t in experts if t.role.startswith("ffn_gate_up") and t.name.endswith(".weight"))
    assert stored.for_kernel("flashinfer-trtllm", 1).tensor_bytes(gate_up, gate_up.numel) == 1_283_457_024  # type: ignore[union-attr]


# --- vLLM rules -------------------------------------------------------------------------------------------------


def test_multi_gpu_non_torch_term() -> None:
    # one GPU: 0.25 GiB of non-torch growth while profiling; tp x pp > 1: 2.1 GiB (the TP NCCL communicator is
    # created inside the profiling window, vLLM v0.11+ #25359)
    one = plan_deployment(build(CODELLAMA_7B), H100, Parallel(), VllmSettings(version="0.19.0"))
    two = plan_deployment(build(CODELLAMA_7B), H100, Parallel(tp=2), VllmSettings(version="0.19.0"))
    pipe = plan_deployment(build(CODELLAMA_7B), H100, Parallel(pp=2), VllmSettings(version="0.19.0"))
    assert one.binding_device.non_torch_bytes == int(0.25 * GIB) == NON_TORCH_SINGLE
    assert two.binding_device.non_torch_bytes == pipe.binding_device.non_torch_bytes
    assert two.binding_device.non_torch_bytes == int(2.1 * GIB) == NON_TORCH_MULTI


def test_mla_block_size_is_64() -> None:
    # vLLM's MLA backends (FlashMLA, CUTLASS MLA) use 64-token blocks; a GQA model 16
    mla = kvcalc.plan("deepseek-v2-lite", gpu="h100")
    gqa = kvcalc.plan("llama-3.1-8b", gpu="h100")
    assert mla.kv_pool.block_size == 64 and gqa.kv_pool.block_size == 16


def test_llama4_chunked_attention_blocks_per_request() -> None:
    # Llama-4 Scout: 48 layers, every 4th global (12 full), the other 36 chunked (8,192-token chunks).
    # Groups (S = 12): 1 full group + 3 chunked groups. v0.19 (no async doubling, serve on H100: 8192 tokens):
    # a 131,072-token request needs full ceil(131072 / 16) = 8192 blocks and each chunked group
    # ceil(min(8192 + 8192, 131072) / 16) = 1024 -> 8192 + 3 x 1024 = 11,264 blocks.
    plan = kvcalc.plan("llama-4-scout", gpu="h200", tp=4, context=131072, version="0.19.0")
    kinds = sorted(g.kind for g in plan.kv_pool.layout.groups)
    assert kinds == ["chunked", "chunked", "chunked", "full"]
    assert plan.blocks_per_request(131_072) == 8192 + 3 * 1024
    # v0.33 (async scheduling: 2 x 16,384 tokens in flight): ceil(min(8192 + 32768, 131072) / 16) = 2560 each
    newest = kvcalc.plan("llama-4-scout", gpu="h200", tp=4, context=131072)
    assert newest.admission_tokens == 2 * 16_384
    assert newest.blocks_per_request(131_072) == 8192 + 3 * 2560


def test_tied_embeddings_are_copied_to_the_last_stage() -> None:
    # a tied model under pp=2: vLLM loads the embedding on stage 0 and again as the head on the last stage, so the
    # two stages together hold one more table than the pp=1 model: vocab 32,016 padded to 32,064 rows x 4,096 x 2 B
    # = 262,668,288 B
    from kvcalc.calc.weights import PlainFormat

    tied = build(dict(CODELLAMA_7B, tie_word_embeddings=True))
    bf16 = PlainFormat("bf16")
    whole = weights_per_stage(tied, Parallel(), bf16)[0].weights_bytes
    first, last = (s.weights_bytes for s in weights_per_stage(tied, Parallel(pp=2), bf16))
    assert first + last - whole == 32_064 * 4096 * 2 == 262_668_288


def test_expert_parallel_communication_by_hand() -> None:
    # Qwen3-30B-A3B: 48 MoE layers, top_k 8, hidden 2048, bf16. With ep = 4 each token's dispatch and combine
    # move 2 x 8 x 2048 x 2 B x (4 - 1) / 4 = 49,152 B per layer -> 48 x 49,152 = 2,359,296 B per token
    model = load_model("qwen3-30b-a3b")
    comm = comm_per_token(model, Parallel(tp=4, ep=4))
    assert comm.ep_alltoall_bytes == 48 * 49_152 == 2_359_296


def test_max_num_seqs_caps_concurrency_and_the_profile() -> None:
    # --max-num-seqs 4: the profile's dummy sampler has min(4, 8192) = 4 rows: 14 B x 4 x 32,016 = 1,792,896 B
    plan = plan_deployment(build(CODELLAMA_7B), H100, Parallel(),
                           VllmSettings(version="0.19.0", max_num_seqs=4), context=1024)
    assert plan.binding_device.activation_detail["sampler_bytes"] == 14 * 4 * 32_016 == 1_792_896
    # the pool holds far more than 4 requests of 1,024 tokens: the scheduler limit binds, and 8 do not "fit"
    assert plan.binding == "max_num_seqs" and plan.max_num_seqs == 4
    assert plan.admits(4) and not plan.admits(8)
    report = kvcalc.fit("llama-3.1-8b", gpu="h100", context=1024, concurrency=8, max_num_seqs=4)
    assert not report.fits and "max_num_seqs = 4" in (report.reason or "")
    assert report.advice[0].change == "--max-num-seqs 8"


def test_decode_context_parallel_limits() -> None:
    # GQA needs tp > KV heads (8), dcp <= tp // 8 and (64 / 8) % dcp == 0 (vLLM #49777)
    model = build(LLAMA_70B)
    with pytest.raises(ParallelismError, match=r"requires --tensor-parallel-size \(8\) to be greater"):
        plan_deployment(model, H100, Parallel(tp=8, cp=2), VllmSettings())
    with pytest.raises(ParallelismError, match=r"exceeds the maximum supported value \(2\)"):
        plan_deployment(model, H100, Parallel(tp=16, cp=4), VllmSettings())
    ok = plan_deployment(model, H100, Parallel(tp=16, cp=2), VllmSettings(), context=131072)
    # each rank holds 1 KV head and half of every sequence: a full group needs ceil(ceil(131072 / 2) / 16) blocks
    assert ok.blocks_per_request(131_072) == 4096
    # sliding windows are refused with DCP; MLA only needs cp | tp
    with pytest.raises(ParallelismError, match="sliding"):
        plan_deployment(build(GPT_OSS_20B), H100, Parallel(tp=8, cp=2), VllmSettings())
    assert kvcalc.plan("deepseek-v3", gpu="h200", tp=8, cp=8).parallel.cp == 8
    with pytest.raises(ParallelismError, match="no equivalent"):
        plan_deployment(model, H100, Parallel(tp=16, cp=2), EngineSettings(name="sglang"))


def test_data_parallel_totals() -> None:
    # capacity is per replica; dp replicas hold dp x the tokens
    one = kvcalc.fit("llama-3.1-8b", gpu="h100", context="8K")
    four = kvcalc.fit("llama-3.1-8b", gpu="h100", dp=4, context="8K")
    assert four.capacity.kv_cache_tokens == one.capacity.kv_cache_tokens
    assert four.capacity.total_kv_cache_tokens == 4 * one.capacity.kv_cache_tokens
    assert four.capacity.total_max_concurrency == pytest.approx(4 * one.capacity.max_concurrency, abs=1e-3)
    assert any("per data-parallel replica" in w for w in four.warnings)


def test_context_beyond_the_derived_length_is_refused() -> None:
    # vLLM derives 131,072 for Llama-3.1 (rope type llama3 does not extend it): 1M is a start-up error, and the
    # advice only offers the derived length, never more GPUs for a context vLLM refuses
    report = kvcalc.fit("llama-70b", gpu="h100", tp=4, context="1M")
    assert not report.fits and "derived max_model_len (131,072" in (report.reason or "")
    assert [a.change for a in report.advice] == ["--context 131072"]


# --- TensorRT-LLM ----------------------------------------------------------------------------------------------


def test_trtllm_budget_by_hand() -> None:
    # CodeLlama-7B on one H100, activation and non-torch pinned: W = 13,477,879,808 B (6,738,939,904 params x 2 B)
    # A = (85,017,493,504 - 13,477,879,808 - 1 GiB - 0.25 GiB) x 0.9 = (70,197,436,416) x 0.9 = 63,177,692,774
    # blocks of 32 tokens x 524,288 B: floor(63,177,692,774 / 16,777,216) = 3,765 -> 120,480 tokens
    plan = plan_deployment(build(CODELLAMA_7B), H100, Parallel(),
                           TrtllmSettings(activation_bytes=GIB, non_torch_bytes=GIB // 4), context=8192)
    assert plan.binding_device.weights_bytes == 13_477_879_808
    assert plan.binding_device.kv_cache_bytes == int((85_017_493_504 - 13_477_879_808 - GIB - GIB // 4) * 0.9)
    assert plan.binding_device.kv_cache_bytes == 63_177_692_774
    assert plan.kv_pool.unit == "blocks" and plan.kv_pool.num_blocks == 3_765 and plan.kv_cache_tokens == 120_480


# --- llama.cpp: the cells of its context ------------------------------------------------------------------------


def test_llamacpp_allocates_its_context_not_free_memory() -> None:
    # CodeLlama-7B Q4_K_M on an H100: llama.cpp allocates n_ctx cells (-c 0 = the training context, 16,384),
    # not the ~70 GiB the GPU has left: 16,384 x 32 layers x 2 x 4,096 x 2 B = 8 GiB of KV
    model = build(CODELLAMA_7B)
    q4 = parse_quant("Q4_K_M", model=model)
    plan = plan_deployment(model, H100, Parallel(), LlamacppSettings(), weight_format=q4)
    assert plan.kv_pool.unit == "cells" and plan.kv_cache_tokens == 16_384
    assert plan.binding_device.kv_cache_bytes == 16_384 * 32 * 2 * 4096 * 2 == 8 * GIB
    assert plan.binding == "max_model_len" and plan.binding_device.free_bytes > 50 * GIB
    explain = kvcalc.fit("llama-3.1-8b", gpu="h100", engine="llamacpp", context="8K", explain=True).explain
    sources = " ".join(d.source for d in explain if "KV" in d.figure or "cells" in d.figure)
    assert "llama.cpp" in sources and "vLLM" not in sources


def test_llamacpp_fit_shrinks_the_context_in_256_cell_steps() -> None:
    # Llama-3.1-8B BF16 GGUF (~15 GiB) on a 24 GiB RTX 4090: the 131,072-token context (16 GiB of KV) does not
    # fit, -c is unset, so --fit keeps every layer and takes the largest context that leaves 1,024 MiB free
    plan = kvcalc.plan("llama-3.1-8b", gpu="rtx-4090", engine="llamacpp")
    n_ctx = plan.kv_cache_tokens
    assert 4096 <= n_ctx < 131_072 and n_ctx % 256 == 0
    assert plan.binding_device.free_bytes >= 1024 * 2**20
    # one more step of 256 cells (128 KiB each per token: 32 layers x 2 x 1,024 x 2 B) would eat the margin
    assert plan.binding_device.free_bytes - 256 * 131_072 < 1024 * 2**20
    assert any("--fit reduces the context" in w for w in plan.warnings)


# --- what runs where ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "gpu", "options", "needle"),
    [
        ("llama-3.1-8b", "v100-sxm2-32gb", {"quant": "fp8"}, "Minimum capability: 75. Current capability: 70"),
        ("llama-3.1-8b", "t4", {"engine": "trtllm", "context": 4096}, "TensorRT-LLM supports Ampere"),
        ("llama-3.1-8b", "a100-80gb", {"engine": "trtllm", "quant": "fp8"}, "FP8 (weights fp8) needs Ada or Hopper"),
        ("llama-3.1-8b", "a100-80gb", {"engine": "trtllm", "kv_dtype": "fp8"}, "FP8 (KV cache) needs Ada"),
        ("llama-3.1-8b", "h100", {"engine": "trtllm", "quant": "nvfp4"}, "NVFP4 needs Blackwell"),
        ("llama-3.1-8b", "m4-max-128", {}, "vLLM has no Metal backend"),
        ("llama-3.1-8b", "mi300x", {"engine": "trtllm"}, "NVIDIA GPUs only"),
        ("llama-3.1-8b", "gaudi3", {"engine": "sglang"}, "SGLang has no backend"),
        ("llama-3.1-8b", "gaudi3", {"engine": "llamacpp"}, "llama.cpp has no Gaudi backend"),
        ("llama-3.1-8b", "h100", {"engine": "llamacpp", "quant": "awq:4:128"}, "llama.cpp runs GGUF files only"),
        ("llama-3.1-8b", "h100", {"engine": "sglang", "quant": "Q4_K_M"}, "SGLang does not serve GGUF"),
    ],
)
def test_combinations_the_engine_refuses(model: str, gpu: str, options: dict[str, object], needle: str) -> None:
    with pytest.raises(InputError, match=needle.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        kvcalc.plan(model, gpu=gpu, **options)  # type: ignore[arg-type]


def test_fallbacks_the_engine_takes_are_warnings() -> None:
    # FP8 weights on Ampere: W8A16 through FP8 Marlin, same 1 B/weight
    a100 = kvcalc.fit("llama-3.1-8b", gpu="a100-80gb", quant="fp8", context="8K")
    assert a100.weight_format.kernel == "fp8-marlin-w8a16"
    assert any("FP8 Marlin kernel (W8A16" in w for w in a100.warnings)
    # bf16 on a T4: served as fp16 (same bytes); gemma2 in fp32 (twice the bytes)
    t4 = kvcalc.plan("llama-3.1-8b", gpu="t4", context=4096)
    assert t4.serving_dtype == "fp16" and any("falls back to float16" in w for w in t4.warnings)
    gemma = kvcalc.plan("gemma-2-9b", gpu="t4", context=4096)
    gemma_a100 = kvcalc.plan("gemma-2-9b", gpu="a100-80gb", context=4096)
    assert gemma.serving_dtype == "fp32"
    assert gemma.binding_device.weights_bytes > 1.9 * gemma_a100.binding_device.weights_bytes
    # vLLM on Gaudi runs through its plugin: stated, not refused
    assert any("vllm-gaudi" in w for w in kvcalc.plan("llama-3.1-8b", gpu="gaudi3").warnings)


# --- weight format and active parameters ------------------------------------------------------------------------


def test_weight_format_in_use_is_shown() -> None:
    report = kvcalc.fit("gpt-oss-120b", gpu="h100")
    assert report.weight_format.name == "mxfp4:triton-hopper"
    assert report.weight_format.source == "checkpoint quantization_config (mxfp4)"
    assert kvcalc.inspect("gpt-oss-120b").model.weight_format == "mxfp4"
    assert kvcalc.inspect("llama-3.1-8b").model.weight_format == "bf16"


def test_active_parameters_exclude_the_embedding_lookup() -> None:
    # gpt-oss-120b: 5,711,982,912 counting the 201,088 x 2,880 = 579,133,440 embedding table; the model card's
    # 5.1B excludes it: 5,132,849,472
    m = kvcalc.inspect("gpt-oss-120b").model
    assert m.params_active_with_embedding == 5_711_982_912
    assert m.params_active == 5_711_982_912 - 201_088 * 2880 == 5_132_849_472
    assert "embedding" in m.params_active_definition and "billions" in m.params_active_definition
    # MoE active parameters: Mixtral 8x7B routes 2 of 8 experts, each 3 x 4096 x 14336 = 176,160,768 per layer;
    # skipped per layer 6 x 176,160,768 = 1,056,964,608, x 32 layers = 33,822,867,456
    mixtral = kvcalc.inspect("mixtral-8x7b").model
    assert mixtral.params_total - mixtral.params_active_with_embedding == 33_822_867_456


# --- properties ---------------------------------------------------------------------------------------------------

_ENGINES = st.sampled_from(["vllm", "sglang", "trtllm"])


@settings(max_examples=25, deadline=None)
@given(engine=_ENGINES, tp=st.sampled_from([1, 2, 4]), pp=st.sampled_from([1, 2]),
       util=st.floats(min_value=0.5, max_value=0.98))
def test_every_ledger_sums_to_its_total(engine: str, tp: int, pp: int, util: float) -> None:
    options = {"vllm": {"gpu_memory_utilization": util}, "sglang": {"mem_fraction_static": util},
               "trtllm": {"free_gpu_memory_fraction": util}}[engine]
    plan = plan_deployment(build(CODELLAMA_7B), H100, Parallel(tp=tp, pp=pp),
                           EngineSettings(name=engine, **options), context=4096)  # type: ignore[arg-type]
    for d in plan.devices:
        assert (d.weights_bytes + d.activation_bytes + d.non_torch_bytes + d.cuda_graph_bytes + d.kv_cache_bytes
                + d.free_bytes) == d.total_bytes


@settings(max_examples=25, deadline=None)
@given(engine=_ENGINES, low=st.floats(min_value=0.5, max_value=0.9), step=st.floats(min_value=0.0, max_value=0.08))
def test_higher_utilization_never_gives_fewer_tokens(engine: str, low: float, step: float) -> None:
    field = {"vllm": "gpu_memory_utilization", "sglang": "mem_fraction_static",
             "trtllm": "free_gpu_memory_fraction"}[engine]
    plans = [plan_deployment(build(CODELLAMA_7B), H100, Parallel(), EngineSettings(name=engine, **{field: u}),  # type: ignore[arg-type]
                             context=4096) for u in (low, low + step)]
    assert plans[1].kv_cache_tokens >= plans[0].kv_cache_tokens


@settings(max_examples=20, deadline=None)
@given(engine=_ENGINES, extra=st.integers(min_value=0, max_value=40 * GIB))
def test_more_memory_never_gives_fewer_tokens(engine: str, extra: int) -> None:
    bigger = replace(H100, memory_bytes=H100.memory_bytes + extra, usable_memory_bytes=H100.usable_memory_bytes + extra)
    small, large = (plan_deployment(build(CODELLAMA_7B), gpu, Parallel(), EngineSettings(name=engine), context=4096)  # type: ignore[arg-type]
                    for gpu in (H100, bigger))
    assert large.kv_cache_tokens >= small.kv_cache_tokens


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm", "llamacpp"])
def test_a_smaller_kv_dtype_never_gives_fewer_tokens(engine: str) -> None:
    fp8 = "q8_0" if engine == "llamacpp" else "fp8"
    quant = "Q4_K_M" if engine == "llamacpp" else None
    wide = kvcalc.plan("llama-3.1-8b", gpu="rtx-4090", engine=engine, quant=quant) if engine == "llamacpp" else \
        kvcalc.plan("llama-3.1-8b", gpu="h100", engine=engine, context="8K")
    narrow = kvcalc.plan("llama-3.1-8b", gpu="rtx-4090", engine=engine, quant=quant, kv_dtype=fp8) \
        if engine == "llamacpp" else kvcalc.plan("llama-3.1-8b", gpu="h100", engine=engine, context="8K", kv_dtype=fp8)
    assert narrow.kv_cache_tokens >= wide.kv_cache_tokens


@pytest.mark.parametrize(("engine", "version", "reserved"), [
    ("vllm", "0.20.0", 1),  # the null block is popped in every V1 release, not only once #47272 checks it
    ("vllm", None, 1),
    ("trtllm", None, 1),  # the CUDA-graph padding request keeps one block
    ("sglang", None, 0),  # token cells: all usable
])
def test_reserved_blocks_are_one_rule_for_capacity_and_paging(engine: str, version: str | None, reserved: int) -> None:
    from kvcalc.calc.paging.requests import usable_blocks

    plan = kvcalc.plan("llama-3.1-8b", gpu="h100", engine=engine, engine_version=version, context="8K")
    pool = plan.kv_pool
    assert usable_blocks(plan) == pool.usable_blocks == pool.num_blocks - reserved
    need = plan.blocks_per_request(8192)
    assert plan.concurrency_at(8192) == pytest.approx((pool.num_blocks - reserved) / need)
