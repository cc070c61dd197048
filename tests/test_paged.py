"""vLLM KV groups, blocks, reported size and concurrency: worked examples (vLLM kv_cache_utils)."""

from kvcalc.calc.engines.vllm_versions import rules_for
from kvcalc.calc.paged import blocks_per_request, kv_plan, max_concurrency, num_blocks, reported_tokens
from kvcalc.spec.dtypes import storage_type
from tests.conftest import GEMMA3_27B, GPT_OSS_20B, LLAMA_70B, build

BF16 = storage_type("bf16")
GIB = 1 << 30


def plan_for(config, tp=1, version="0.19.0"):
    model = build(config)
    threshold = rules_for(version).hybrid_group_threshold
    return kv_plan(list(model.layers), BF16, BF16, BF16, tp=tp, block_size=16, group_threshold=threshold)


def test_uniform_llama() -> None:
    plan = plan_for(LLAMA_70B, tp=4)
    # one group; page = 16 tokens x 2 x 2 KV heads x 128 x 2 B = 16,384 B; a block index costs 80 pages
    assert plan.layout == "uniform" and plan.num_groups == 1
    assert plan.page_bytes == 16_384 and plan.block_bytes == 80 * 16_384 == 1_310_720
    # 30 GiB / 1,310,720 B = 24,576 blocks = 393,216 tokens; at 8192 tokens: 24,576 / 512 = 48x
    blocks = num_blocks(30 * GIB, plan)
    assert blocks == 24_576
    assert reported_tokens(blocks, plan, 8192, 8192, (0, 19, 0)) == 393_216
    assert max_concurrency(blocks, plan, 8192, 8192) == 48.0


def test_gpt_oss_hybrid_groups() -> None:
    plan = plan_for(GPT_OSS_20B)
    # two buckets of 12 layers -> group size 12, 2 groups; page 2 x 16 x 8 x 64 x 2 = 32,768 B
    assert plan.layout == "hybrid" and plan.num_groups == 2
    assert plan.page_bytes == 32_768 and plan.block_bytes == 12 * 32_768 == 393_216
    # one 131,072-token request with mnbt 8192: full ceil(131072/16) = 8192 blocks, sliding
    # ceil(min(127 + 8192, 131072)/16) + 1 = 520 + 1 -> 8713 blocks
    assert sum(blocks_per_request(g, 131_072, 8192) for g in plan.groups) == 8192 + 520 + 1
    # A = 60 GiB -> 64,424,509,440 / 393,216 = 163,840 blocks
    blocks = num_blocks(60 * GIB, plan)
    assert blocks == 163_840
    # v0.19 reports floor(163,840 / 2) x 16 = 1,310,720 tokens; concurrency 163,840 / 8,713 = 18.80x
    assert reported_tokens(blocks, plan, 131_072, 8192, "groups") == 1_310_720
    assert round(max_concurrency(blocks, plan, 131_072, 8192), 2) == 18.80
    # v0.21 reports int(C x L) = int(163,840 / 8,713 x 131,072) = 2,464,689 tokens
    assert reported_tokens(blocks, plan, 131_072, 8192, "concurrency") == 2_464_689


def test_gemma3_padding_groups() -> None:
    plan = plan_for(GEMMA3_27B)
    # 52 sliding + 10 full: 52 >= 1.5 x 10 so S = 10; sliding splits into ceil(52/10) = 6 groups
    # (8 padding layers) plus 1 full group = 7 groups; page 2 x 16 x 16 x 128 x 2 = 131,072 B
    assert plan.num_groups == 7 and plan.padding_layers == 8
    assert plan.block_bytes == 10 * 131_072
    blocks = num_blocks(20 * GIB, plan)  # 21,474,836,480 / 1,310,720 = 16,384
    assert blocks == 16_384
    # v0.19: floor(16,384 / 7) x 16 = 2,340 x 16 = 37,440 tokens
    assert reported_tokens(blocks, plan, 131_072, 8192, "groups") == 37_440
    # per request: 8192 + 6 x (ceil(min(1023 + 8192, 131072)/16) + 1) = 8192 + 6 x 577 = 11,654
    assert sum(blocks_per_request(g, 131_072, 8192) for g in plan.groups) == 11_654


def test_group_threshold_by_version() -> None:
    # before v0.12 the group size is always the smallest bucket; gpt-oss buckets are equal so S = 12 anyway
    assert plan_for(GPT_OSS_20B, version="0.10.0").num_groups == 2


def test_no_blocks_without_memory() -> None:
    assert num_blocks(-5, plan_for(LLAMA_70B)) == 0


def test_pipeline_workers_project_the_global_groups() -> None:
    # 4 layers alternating sliding/full: buckets {0, 2} and {1, 3}, S = 2, so a block index costs 2 pages
    # on a worker holding all layers; with pp=2 (layers 0-1 and 2-3) each worker holds one member of each
    # group, so an index costs 1 page there (vLLM get_kv_cache_configs projects global groups per worker)
    config = dict(GPT_OSS_20B, num_hidden_layers=4, layer_types=["sliding_attention", "full_attention"] * 2)
    model = build(config)
    plan = kv_plan(list(model.layers), BF16, BF16, BF16, tp=1, block_size=16, group_threshold=1.5)
    assert [g.members for g in plan.groups] == [(0, 2), (1, 3)]
    assert plan.block_bytes == 2 * 32_768
    assert plan.worker_block_bytes(range(0, 2)) == plan.worker_block_bytes(range(2, 4)) == 32_768
    assert num_blocks(10 * 32_768, plan, range(0, 2)) == 10
