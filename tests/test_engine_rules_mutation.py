"""Engine rules that no other test pinned: each test works its figure out by hand from the engine source cited in
the rule's docstring, and fails when the rule is removed (mutation testing of calc/engines, calc/paging,
calc/perf/policy and defaults)."""

from __future__ import annotations

import pytest

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.engines import llamacpp, sglang
from kvcalc.calc.engines.settings import LlamacppSettings, SglangSettings, TrtllmSettings, VllmSettings
from kvcalc.calc.engines.vllm import _batch, admission_tokens, check_decode_context_parallel
from kvcalc.calc.engines.vllm_profile import batch_defaults, forward_peak_bytes, profile_peak_bytes
from kvcalc.calc.engines.vllm_versions import NEWEST, rules_for
from kvcalc.calc.offload.memory import layer_kv_bytes, layer_kv_cells
from kvcalc.calc.paged import KvGroup, KvPlan, blocks_per_request, kv_plan
from kvcalc.calc.paging.groups import SlidingGroup
from kvcalc.calc.paging.managers import VllmManager
from kvcalc.calc.paging.radix import RadixCache
from kvcalc.calc.paging.tokens import TokenSeq
from kvcalc.calc.parallel import shard_numel
from kvcalc.calc.perf import policy as pol
from kvcalc.calc.perf.defaults import default_coefficients
from kvcalc.calc.perf.model import async_cpu
from kvcalc.calc.serving.launch import sglang_command
from kvcalc.errors import InputError, ParallelismError
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.hf_config import model_from_config
from kvcalc.sources.resolve import load_model
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.model import ModelSpec
from tests.conftest import LLAMA_70B
from tests.test_engines_recent import QWEN35_4B

GIB = 1 << 30
MIB = 1 << 20
H100 = find_gpu("h100")
BF16 = storage_type("bf16")


# --- vLLM version table (calc/engines/vllm_versions.py): each row's first release, and the one before ---------

@pytest.mark.parametrize(("rule", "before", "old", "since", "new"), [
    ("default_gpu_memory_utilization", "0.19.1", 0.9, "0.20.0", 0.92),  # #38284 cache.py default 0.92
    ("requested_rounding", "0.13.0", "floor", "0.14.0", "ceil"),  # #30868 request_memory ceil
    ("sampler_bytes_per_row_vocab", "0.11.0", 6, "0.11.1", 24),  # #26859 PyTorch sort path
    ("sampler_bytes_per_row_vocab", "0.16.0", 24, "0.17.0", 14),  # #33538 Triton top-k/top-p
    ("hybrid_group_threshold", "0.11.0", 1.0, "0.12.0", 1.25),  # #29303
    ("hybrid_group_threshold", "0.17.1", 1.25, "0.18.0", 1.5),  # #36684
    ("reported_tokens", "0.20.2", "groups", "0.21.0", "concurrency"),  # #41069
    ("cuda_graphs_subtracted", "0.19.1", False, "0.20.0", True),  # #38284
    ("model_runner_v2", "0.21.0", "none", "0.22.0", "qwen3-dense"),  # v0.22.0 notes #39337
    ("model_runner_v2", "0.24.0", "qwen3-llama-mistral-dense", "0.25.0", "dense"),  # v0.25.0 notes #44443
    ("model_runner_v2", "0.28.0", "dense", "0.29.0", "all"),  # v0.29.0 notes
    ("mrv2_reserves_cuda_graphs", "0.28.0", False, "0.29.0", True),  # #53306
    ("null_block_in_startup_check", "0.24.0", False, "0.25.0", True),  # #47272
    ("async_in_flight_tokens", "0.25.1", False, "0.26.0", True),  # #47728
    ("large_gpu_serve_batched_tokens", "0.27.1", 8192, "0.28.0", 16384),  # #51726
    ("hybrid_gdn_graph_overestimate", "0.25.1", False, "0.26.0", True),  # #50780
    ("mxfp4_sm90_kernel", "0.10.1", "marlin", "0.10.2", "triton-hopper"),  # torch 2.8 from v0.10.2
    ("batch_sharded_sampling", "0.28.0", False, "0.29.0", True),  # #50465
])
def test_vllm_version_rows_start_where_their_sources_say(rule: str, before: str, old: object, since: str,
                                                          new: object) -> None:
    assert getattr(rules_for(before), rule) == old
    assert getattr(rules_for(since), rule) == new


# --- vLLM (calc/engines/vllm.py, vllm_profile.py) --------------------------------------------------------------

def test_dcp_needs_query_heads_per_kv_head_divisible() -> None:
    # 48 heads / 8 KV heads = 6 per KV head; tp 32 > 8 and dcp 4 <= 32 // 8 pass, but 6 % 4 = 2 is refused (#49777)
    model = model_from_config({**LLAMA_70B, "num_attention_heads": 48}, model_id="t", warn=lambda _m: None)
    with pytest.raises(ParallelismError, match=r"query heads per KV head \(6\)"):
        check_decode_context_parallel(model, Parallel(tp=32, cp=4))
    check_decode_context_parallel(model, Parallel(tp=32, cp=2))  # 6 % 2 = 0


def test_defaulted_batch_limits_clip_each_other() -> None:
    # _set_default_max_num_seqs_and_batched_tokens_args on an H100 (79.2 GiB >= 70: 16,384 / 1,024 from v0.28)
    rules = rules_for(NEWEST)
    # mnbt <= max_num_seqs x max_model_len = 1,024 x 8 = 8,192
    assert _batch(VllmSettings(), H100, 8, rules) == (8192, 1024)
    # a given mnbt of 512 caps the defaulted max_num_seqs: min(1,024, 512)
    assert _batch(VllmSettings(max_num_batched_tokens=512), H100, 4096, rules) == (512, 512)


def test_async_mrv1_keeps_two_batches_in_flight() -> None:
    # max_in_flight_tokens = max_concurrent_batches x mnbt: 2 batches with async scheduling on MRv1 at pp = 1
    assert admission_tokens(VllmSettings(), rules_for(NEWEST), False, 8192, 1) == 2 * 8192
    assert admission_tokens(VllmSettings(async_scheduling=False), rules_for(NEWEST), False, 8192, 1) == 8192


def test_batch_sharded_sampling_splits_the_dummy_sampler() -> None:
    # Llama-3.1-8B tp 2, MRv1 (14 B per row x vocab), rows = min(1,024, 16,384): 14 x 1,024 x 128,256 / 2 (#50465)
    model = load_model("llama-3.1-8b")
    settings = VllmSettings(model_runner="v1", enable_batch_sharded_sampling=True)
    plan = plan_deployment(model, H100, Parallel(tp=2), settings, context=8192)
    assert plan.binding_device.activation_detail["sampler_bytes"] == 14 * 1024 * 128_256 // 2 == 919_339_008


def test_gdn_hybrid_graph_overestimate_is_warned() -> None:
    # #50780: from v0.26 the graph estimate of gated-DeltaNet hybrids counts a ~128 KiB per-token transient
    model = model_from_config(dict(QWEN35_4B), model_id="Qwen/Qwen3.5-4B", warn=lambda _m: None)
    plan = plan_deployment(model, H100, Parallel(), VllmSettings(), context=8192)
    assert any("#50780" in w for w in plan.warnings)
    eager = plan_deployment(model, H100, Parallel(), VllmSettings(enforce_eager=True), context=8192)
    assert not any("#50780" in w for w in eager.warnings)


def test_large_gpu_threshold_is_70_gib() -> None:
    # get_batch_defaults: >= 70 GiB and not an A100 is "large" (8,192 / 1,024 for serve before v0.28)
    assert batch_defaults(75 * GIB, "some 75 GiB card", "serve") == (8192, 1024)
    assert batch_defaults(69 * GIB, "some 69 GiB card", "serve") == (2048, 256)


def test_fused_moe_chunk_and_expert_parallel_in_forward_peak() -> None:
    # Qwen3-30B-A3B: H 2,048, I_e 768 gated, top-8. fused_moe works in chunks of 32,768 tokens
    # (VLLM_FUSED_MOE_CHUNK_SIZE): 65,536 tokens -> 32,768 x 8 x (3 x 768 + 2,048) x 2 = 2,281,701,376, plus
    # hidden and residual 2 x 65,536 x 2,048 x 2 = 536,870,912
    model = load_model("qwen3-30b-a3b")
    layers = range(model.num_layers)
    assert forward_peak_bytes(model, Parallel(), layers, 65_536, BF16) == 2_281_701_376 + 536_870_912
    # with EP each rank holds whole experts: I_e is not split by tp 2. 8,192 x 8 x (2,304 + 2,048) x 2
    # = 570,425,344 + 2 x 8,192 x 2,048 x 2 = 67,108,864
    assert forward_peak_bytes(model, Parallel(tp=2, ep=2), layers, 8192, BF16) == 570_425_344 + 67_108_864


def test_non_gated_moe_width_is_two_intermediates() -> None:
    # Nemotron-3-Nano-30B-A3B experts are relu^2 (not gated): 8,192 x 6 x (2 x 1,856 + 2,688) x 2 = 629,145,600,
    # plus 2 x 8,192 x 2,688 x 2 = 88,080,384
    model = load_model("nemotron-3-nano-30b-a3b")
    assert forward_peak_bytes(model, Parallel(), range(model.num_layers), 8192, BF16) == 629_145_600 + 88_080_384


def test_profile_peak_pipeline_terms() -> None:
    # a middle pipeline stage receives 2 T H b from the previous one (2 x 8,192 x 4,096 x 2 = 134,217,728) and
    # runs no sampler (it sits on the last stage only)
    model = load_model("llama-3.1-8b")
    _, detail = profile_peak_bytes(model, Parallel(pp=2), range(16), tokens=8192, rows=1024, act=BF16,
                                   sampler_coefficient=14, last_stage=False, first_stage=False)
    assert detail["pp_intermediate_bytes"] == 134_217_728
    assert detail["sampler_bytes"] == 0


def test_vllm_mxfp4_experts_under_ep_are_padded_whole() -> None:
    # vllm._weights: with ep > 1 each rank holds whole experts (not TP slices), so Marlin's padding (weight-only
    # MXFP4 on sm_80: intermediate to 128, hidden to 256; quant/mxfp4.py) applies to the whole intermediate.
    # gpt-oss-20b, 24 layers of 32 experts, hidden 2880, intermediate 2880; tp 2, ep 2 -> 16 experts per rank:
    # I' = round_up(2880, 128) = 2944, H' = round_up(2880, 256) = 3072, 17 B per 32 MXFP4 values, bf16 biases
    model = load_model("gpt-oss-20b")
    layout = Parallel(tp=2, ep=2)
    plan = plan_deployment(model, find_gpu("a100-80gb"), layout, VllmSettings(), context=8192)
    gate_up = 16 * 2 * 2944 * (3072 // 32) * 17 + 16 * 2 * 2944 * 2
    down = 16 * 3072 * (2944 // 32) * 17 + 16 * 3072 * 2
    experts = sum(plan.weight_format.tensor_bytes(t, shard_numel(t, model, layout))
                  for layer in model.layers for t in layer.tensors if t.role.endswith("_exps"))
    # sliced by tp instead: 32 experts of round_up(1440, 128) = 1536 each
    assert experts == 24 * (gate_up + down) == 5_541_789_696


# --- SGLang (calc/engines/sglang.py) ----------------------------------------------------------------------------

def test_sglang_multi_gpu_context_and_request_cap() -> None:
    # tp x pp > 1: NCCL communicators before the free-memory probe, int(2.1 GiB) = 2,254,857,830 B
    plan = plan_deployment(load_model("llama-3.1-8b"), H100, Parallel(tp=2), SglangSettings(), context=8192)
    assert plan.binding_device.non_torch_bytes == 2_254_857_830
    # init_memory_pool: min(max(int(tokens / context x 512), 2048), 4096)
    assert sglang.default_max_running_requests(10_000_000, 1000) == 4096


def test_sglang_big_card_defaults() -> None:
    # > 160 GiB: chunk 16,384, cuda_graph_max_bs 512. Prefill graph sizes up to 16,384: 8 + 14 + 8 + 8 + 12 + 24
    # = 74 -> 592 MiB; reserved = 512 + 1.5 x 16,384 + 1 x 1 / 8 x 1,024 + 2 x 512 + 592 = 26,832 MiB;
    # f = round((184,320 - 26,832) / 184,320, 3) = 0.854 for 180 GiB
    assert len(sglang.prefill_graph_sizes(16_384)) == 74
    assert sglang.default_mem_fraction_static(180 * GIB, 1, 1) == (0.854, 16_384, 512)


def test_sglang_reserve_follows_the_launch() -> None:
    # memory_hook.handle_gpu_memory_settings: reserved MiB = 512 + 1.5 x max(chunked_prefill_size, 2048)
    # + tp x pp / 8 x 1024 + reserve_for_graph_mb (2 x decode max_bs; 8 MiB per prefill graph size up to the
    # chunk), at least 10 x 1024 above 60 GiB; f = round((M - reserved) / M, 3)
    m = H100.usable_memory_bytes / MIB  # 81,079 MiB: decode max_bs 256 at tp 1
    # --chunked-prefill-size 2048: 42 prefill sizes (8 + 14 + 8 + 8 + 4 up to 2048):
    # 512 + 3,072 + 128 + 512 + 336 = 4,560 < 10,240, so the floor binds
    assert sglang.default_mem_fraction_static(H100.usable_memory_bytes, 1, 1, chunked_prefill_size=2048) == \
        (round((m - 10_240) / m, 3), 2048, 256) == (0.874, 2048, 256)
    # 24 GiB (no floor), decode max_bs 48, chunk 1024 (38 prefill sizes): the activation term counts 2048 tokens:
    # 512 + 3,072 + 128 + 96 + 304 = 4,112
    assert sglang.default_mem_fraction_static(24 * GIB, 1, 1, chunked_prefill_size=1024)[0] == \
        round((24_576 - 4_112) / 24_576, 3) == 0.833
    model = load_model("llama-3.1-8b")

    def fraction(gpu_key: str, layout: Parallel, settings: SglangSettings) -> float:
        plan = plan_deployment(model, find_gpu(gpu_key), layout, settings, context=8192)
        return float(plan.assumptions["mem_fraction_static"].value)

    # the plan passes --chunked-prefill-size through
    assert fraction("h100", Parallel(), SglangSettings(chunked_prefill_size=2048)) == 0.874
    # cuda_graph_hook.apply_cuda_graph_compatibility: breakable prefill graphs are off under pp > 1, so no
    # prefill term: 512 + 12,288 + 2 / 8 x 1,024 + 512 = 13,568
    assert fraction("h100", Parallel(pp=2), SglangSettings()) == round((m - 13_568) / m, 3) == 0.833
    # --disable-cuda-graph: neither graph term: 512 + 12,288 + 128 = 12,928
    assert fraction("h100", Parallel(), SglangSettings(disable_cuda_graph=True)) == round((m - 12_928) / m, 3)
    # ROCm: tc_piecewise prefill graphs are disabled off CUDA. MI300X 196,592 MiB (> 160 GiB: chunk 16,384,
    # decode max_bs 512): 512 + 24,576 + 128 + 1,024 = 26,240
    mi = find_gpu("mi300x").usable_memory_bytes / MIB
    assert fraction("mi300x", Parallel(), SglangSettings()) == round((mi - 26_240) / mi, 3) == 0.867


def test_sglang_refuses_a_pool_shorter_than_the_context() -> None:
    # f 0.25 of (79.2 GiB - 0.5 GiB) = 19.7 GiB, less 15.0 GiB of Llama-3.1-8B weights, leaves < 5 GiB:
    # < 5 GiB / 131,072 B per token = 40,960 cells, fewer than one 131,072-token context
    plan = plan_deployment(load_model("llama-3.1-8b"), H100, Parallel(), SglangSettings(mem_fraction_static=0.25),
                           context=131_072)
    assert plan.kv_cache_tokens < 40_960
    assert plan.startup_error is not None and "131,072" in plan.startup_error


def test_sglang_launch_spells_fp8_kv_as_e4m3() -> None:
    # sglang server_args --kv-cache-dtype choices: fp8_e4m3 / fp8_e5m2 (no bare fp8)
    plan = plan_deployment(load_model("llama-3.1-8b"), H100, Parallel(),
                           SglangSettings(kv_cache_dtype="fp8"), context=8192)
    assert "--kv-cache-dtype fp8_e4m3" in sglang_command(plan, 16).command


# --- TensorRT-LLM (calc/engines/trtllm.py) ----------------------------------------------------------------------

def test_trtllm_activation_peak_and_refusal() -> None:
    # dummy context batch of max_num_tokens 8,192 on Llama-3.1-8B: 8,192 x 3 x 14,336 x 2 + 2 x 8,192 x 4,096 x 2
    # = 838,860,800, plus the 0.12 GiB profile slack (int: 128,849,018)
    model = load_model("llama-3.1-8b")
    plan = plan_deployment(model, H100, Parallel(), TrtllmSettings(), context=8192)
    assert plan.binding_device.activation_bytes == 838_860_800 + 128_849_018
    # fraction 0.05 of what is left (< 64 GiB) is < 3.2 GiB = < 800 blocks of 32 x 131,072 B; one request of
    # 131,072 tokens needs 131,072 / 32 = 4,096 blocks
    small = plan_deployment(model, H100, Parallel(), TrtllmSettings(free_gpu_memory_fraction=0.05), context=131_072)
    assert small.startup_error is not None and "4,096 blocks of 32" in small.startup_error


# --- llama.cpp (calc/engines/llamacpp.py, calc/offload/memory.py) -------------------------------------------------

def test_llamacpp_swa_cells_are_padded() -> None:
    # llama-kv-cache-iswa.cpp: pad(min(n_ctx, n_swa x n_seq + n_ubatch), 256) = pad(128 + 512, 256) = 768
    sliding = load_model("gpt-oss-20b").layers[0]
    assert layer_kv_cells(sliding, 32_768, 1) == 768


def test_llamacpp_slots_and_context() -> None:
    # -np auto: 4 slots sharing one unified cache of -c cells; explicit -np 4 gets -c = L x 4
    model = load_model("llama-3.1-8b")
    plan = plan_deployment(model, find_gpu("rtx-4090"), Parallel(), LlamacppSettings(), context=8192)
    assert plan.max_num_seqs == 4
    assert plan.kv_cache_tokens == 8192
    assert llamacpp.with_context(LlamacppSettings(n_parallel=4), 8192).n_ctx == 32_768


def test_llamacpp_fit_shrinks_to_fit_ctx() -> None:
    # Llama-3.1-70B BF16 (~141 GB) never fits a 24 GB card: --fit shrinks the context to --fit-ctx 4,096
    plan = plan_deployment(load_model("llama-3.1-70b"), find_gpu("rtx-4090"), Parallel(), LlamacppSettings())
    assert plan.kv_cache_tokens == 4096


def test_llamacpp_quantized_v_needs_flash_attention() -> None:
    with pytest.raises(InputError, match="flash attention"):
        plan_deployment(load_model("llama-3.1-8b"), find_gpu("rtx-4090"), Parallel(),
                        LlamacppSettings(cache_type_k="q8_0", cache_type_v="q8_0", flash_attn="off"), context=8192)


def test_llamacpp_recurrent_state_per_sequence() -> None:
    # Qwen3.5-4B gated-DeltaNet layer, f32 (llama-memory-recurrent.cpp): conv 3 x (2 x 16 x 128 + 32 x 128) = 24,576
    # values + SSM 32 x 128 x 128 = 524,288 values -> 2,195,456 B per sequence; 4 sequences 8,781,824 B
    model: ModelSpec = model_from_config(dict(QWEN35_4B), model_id="Qwen/Qwen3.5-4B", warn=lambda _m: None)
    assert model.layers[0].kind == "linear"
    assert layer_kv_bytes(model, 4096, storage_type("fp16"), sequences=4)[0] == 4 * 2_195_456


# --- paging (calc/paging, calc/paged.py) ---------------------------------------------------------------------------

def test_sliding_window_counts() -> None:
    # SlidingWindowManager.get_num_skipped_tokens: 1,000 - 128 + 1 = 873 skipped (groups.py worked example)
    assert SlidingGroup(16, 128).skipped_tokens(1000) == 873
    # max_memory_usage: ceil(min(w - 1 + mnbt, L) / B) + 1 = ceil((127 + 1) / 16) + 1 = 9
    group = KvGroup(kind="sliding", block_size=16, window=128, layers=1)
    assert blocks_per_request(group, 100_000, 1) == 9


def test_hybrid_groups_unify_pages_and_take_the_largest_bucket() -> None:
    # kv_cache_utils: page = 2 x 16 x 8 KV heads x 64 x 2 B = 32,768 for gpt-oss-20b. 11 sliding + 12 full layers:
    # 12 < 1.5 x 11, so S = 12 (#36684): ceil(11/12) + ceil(12/12) = 2 groups, a block index 12 x 32,768 B
    oss = load_model("gpt-oss-20b").layers
    plan = kv_plan(list(oss[1:]), BF16, BF16, BF16, tp=1, block_size=16, group_threshold=1.5)
    assert (plan.num_groups, plan.block_bytes, plan.padding_layers) == (2, 12 * 32_768, 1)
    # unify_kv_cache_spec_page_size: a Llama-3.1-8B full layer (8 x 128: page 65,536 B) beside gpt-oss sliding
    # layers (32,768 B) grows the sliding block to 16 x 65,536 / 32,768 = 32 tokens
    mixed = [*load_model("llama-3.1-8b").layers[:2], oss[0], oss[2]]
    plan = kv_plan(mixed, BF16, BF16, BF16, tp=1, block_size=16)
    assert {g.kind: g.block_size for g in plan.groups} == {"full": 16, "sliding": 32}
    assert plan.page_bytes == 65_536


def test_radix_cache_evicts_least_recently_used() -> None:
    cache = RadixCache()
    cache.insert(TokenSeq.stream("a", 10))
    cache.insert(TokenSeq.stream("b", 10))
    cache.match(TokenSeq.stream("a", 10), 10)  # "a" used last
    assert cache.evict(10) == 10
    assert cache.match(TokenSeq.stream("a", 10), 10)[0] == 10
    assert cache.match(TokenSeq.stream("b", 10), 10)[0] == 0


def test_vllm_window_frees_skipped_blocks_last_first() -> None:
    # vLLM SingleTypeKVCacheManager.remove_skipped_blocks walks i = num_skipped_blocks - 1 .. 0 and frees the
    # blocks in that order; BlockPool.free_blocks appends cached blocks to the free queue tail in the order
    # given ("the first block will be evicted first"), so a window's earliest block is evicted last.
    layout = KvPlan(layout="uniform", page_bytes=1, block_bytes=4,
                    groups=[KvGroup(kind="sliding", block_size=4, window=5, layers=1)])
    mgr = VllmManager(layout, 6)  # block 0 is the null block; 1..5 usable
    a = TokenSeq([("a", 0, 12)])
    assert mgr.allocate("a", a, None, 0, 12)  # blocks 1, 2, 3; free queue [4, 5]
    mgr.commit("a", 12, prompt_done=True)
    # decoding token 13: 12 - 5 + 1 = 8 tokens skipped = blocks 1 and 2, freed 2 then 1: queue [4, 5, 2, 1];
    # the new block is 4
    assert mgr.allocate("a", a, None, 12, 13)
    # two blocks for another prompt take 5 and 2 (evicting 2's cache entry); block 1 stays cached
    assert mgr.allocate("b", TokenSeq([("b", 0, 8)]), None, 0, 8)
    # a prompt repeating a's first 8 tokens: right to left, block 2 is gone and block 1 is cached
    # (ceil((5 - 1) / 4) = 1 contiguous block suffices), so the hit is 4 tokens (8 if 1 had gone first)
    assert mgr.lookup("c", TokenSeq([("a", 0, 8), ("c", 0, 1)]), 9, None) == 4


# --- scheduling and overheads (calc/perf) -------------------------------------------------------------------------

def test_engine_scheduler_policies() -> None:
    model = load_model("llama-3.1-8b")
    vllm = pol.policy_for(plan_deployment(model, H100, Parallel(), VllmSettings(), context=8192))
    assert (vllm.admission, vllm.prefix_cache) == ("chunk", True)  # allocate_slots(num_new_tokens); prefix cache on
    trt = pol.policy_for(plan_deployment(model, H100, Parallel(), TrtllmSettings(), context=8192))
    assert (trt.chunked, trt.reserve_running) == (False, 1.0)  # enable_chunked_prefill off; GUARANTEED_NO_EVICT
    # schedule_policy.py: CLIP_MAX_NEW_TOKENS 4,096; new_token_ratio floor 0.7 x 0.14 = 0.098
    assert pol.SGLANG_CLIP_MAX_NEW_TOKENS == 4096
    assert pytest.approx(0.098) == pol.SGLANG_MIN_NEW_TOKEN_RATIO


def test_sglang_retraction_resets_the_new_token_ratio() -> None:
    from kvcalc.calc.perf.model import perf_model
    from kvcalc.calc.perf.scheduler import _Run

    plan = plan_deployment(load_model("llama-3.1-8b"), H100, Parallel(), SglangSettings(), context=8192)
    run = _Run(perf_model(plan), default_coefficients(H100, "sglang"), pol.policy_for(plan), [100], [100], [0.0],
               [True])
    run.ratio = 0.2
    run.start(0)
    run.preempt(0)
    assert run.ratio == 0.7  # retract_decode: new_token_ratio back to the initial 0.7


def test_vllm_async_scheduling_from_v014() -> None:
    # PR #27614 (≈v0.14): async scheduling on by default
    model = load_model("llama-3.1-8b")
    old = plan_deployment(model, H100, Parallel(), VllmSettings(version="0.13.0"), context=8192)
    new = plan_deployment(model, H100, Parallel(), VllmSettings(version="0.14.0"), context=8192)
    assert (async_cpu(old), async_cpu(new)) == (False, True)


def test_engine_overheads_by_engine_and_graph_mode() -> None:
    # ENGINE_OVERHEADS rows: llama.cpp front end 5 ms, TensorRT-LLM 25 ms; vLLM eager 90 us per layer
    assert default_coefficients(H100, "llamacpp").frontend_latency_s == 5e-3
    assert default_coefficients(H100, "trtllm").frontend_latency_s == 25e-3
    assert default_coefficients(H100, "vllm", cuda_graphs=False).layer_overhead_s == 90e-6
