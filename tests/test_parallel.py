"""Parallel rules (vLLM) and per-rank weights, worked by hand."""

import pytest

from kvcalc.calc.parallel import check_parallel, comm_per_token, pp_partition, shard_numel, weights_per_stage
from kvcalc.calc.weights import PlainFormat
from kvcalc.errors import ParallelismError
from kvcalc.spec.deployment import Parallel
from tests.conftest import LLAMA_70B, build

BF16 = PlainFormat("bf16")


def test_pp_partition_like_vllm() -> None:
    # get_pp_indices: 61 // 2 = 30 each, the remainder goes to the second-to-last stage first
    assert pp_partition(61, 2) == [31, 30]
    # 80 // 3 = 26, remainder 2 -> stages -2 and -3 get one more
    assert pp_partition(80, 3) == [27, 27, 26]
    assert pp_partition(80, 4) == [20, 20, 20, 20]


def test_tp_must_divide_heads() -> None:
    # the tp values that pass every rule: divisors of the 64 heads that divide the 8 KV heads (1, 2, 4, 8) or
    # are multiples of them (16, 32, 64), all dividing the vocabulary 128,256 = 2,004 x 64
    with pytest.raises(ParallelismError, match=r"tp=3 does not divide 64 attention heads; tp values that work "
                       r"for llama-70b: 1, 2, 4, 8, 16, 32, 64"):
        check_parallel(build(LLAMA_70B, "llama-70b"), Parallel(tp=3))


def test_tp_and_kv_heads() -> None:
    # Qwen3-14B shape: 40 heads, 8 KV heads; tp=5 divides the heads but not the KV heads
    config = dict(
        LLAMA_70B, num_attention_heads=40, num_key_value_heads=8, hidden_size=5120, num_hidden_layers=4
    )
    # what works: divisors of 40 that divide the 8 KV heads (1, 2, 4, 8); 40 itself is a multiple of 8 but
    # does not divide the vocabulary 128,256 (= 3,206.4 x 40)
    with pytest.raises(ParallelismError, match=r"8 KV heads.*tp values that work for test-model: 1, 2, 4, 8$"):
        check_parallel(build(config), Parallel(tp=5))
    check_parallel(build(config), Parallel(tp=8))  # 8 divides both


def test_tp_must_divide_padded_vocab() -> None:
    # vocab 151,936 is a multiple of 64; 151,936 / 5 is not whole (vLLM: "151936 is not divisible by 5")
    config = dict(
        LLAMA_70B, num_attention_heads=40, num_key_value_heads=40, vocab_size=151_936, num_hidden_layers=2
    )
    with pytest.raises(ParallelismError, match="padded vocabulary 151,936"):
        check_parallel(build(config), Parallel(tp=5))


def test_ep_needs_moe() -> None:
    with pytest.raises(ParallelismError, match="mixture-of-experts"):
        check_parallel(build(LLAMA_70B), Parallel(tp=2, ep=2))


def test_pp_more_than_layers() -> None:
    with pytest.raises(ParallelismError, match="more than the 80 layers"):
        check_parallel(build(LLAMA_70B), Parallel(pp=81))


def test_llama70b_weights_per_rank_tp4() -> None:
    model = build(LLAMA_70B)
    (rank,) = weights_per_stage(model, Parallel(tp=4), BF16)
    # per layer: q 8192^2 + o 8192^2 + k, v 1024 x 8192 each = 150,994,944 attention params, / 4
    # MLP 3 x 8192 x 28672 = 704,643,072, / 4; norms 2 x 8192 replicated
    per_layer = (150_994_944 + 704_643_072) // 4 + 16_384
    # embedding and head: 128,256 rows (already a multiple of 64) / 4 x 8192 each; final norm 8192
    globals_ = 2 * (128_256 // 4 * 8192) + 8192
    assert rank.weights_bytes == 2 * (80 * per_layer + globals_) == 35_278_831_616


def test_more_tp_never_raises_per_gpu_weights() -> None:
    model = build(LLAMA_70B)
    sizes = [weights_per_stage(model, Parallel(tp=tp), BF16)[0].weights_bytes for tp in (1, 2, 4, 8, 16)]
    assert sizes == sorted(sizes, reverse=True)


def test_pp_puts_embeddings_first_and_head_last() -> None:
    model = build(LLAMA_70B)
    first, last = weights_per_stage(model, Parallel(pp=2), BF16)
    # both stages hold 40 layers; the first adds the embedding, the last the head and final norm
    assert last.weights_bytes - first.weights_bytes == 8192 * 2


def test_tp_allreduce_volume() -> None:
    # 80 layers x 2 all-reduces x 2 (tp-1)/tp x 8192 x 2 B at tp=4: 160 x 2 x 3 x 16,384 / 4 = 3,932,160 B
    comm = comm_per_token(build(LLAMA_70B), Parallel(tp=4))
    assert comm.tp_allreduce_bytes == 3_932_160
    assert comm_per_token(build(LLAMA_70B), Parallel()).tp_allreduce_bytes == 0


def test_expert_intermediate_must_divide_without_ep() -> None:
    # A small Mixtral-like model whose heads (48) and padded vocab (32,256 = 504 x 64) divide by 6 and 8,
    # but whose expert intermediate size 1000 divides by 8 (125) and not by 6 (166.7)
    config = {
        "model_type": "mixtral", "hidden_size": 1536, "num_hidden_layers": 2, "num_attention_heads": 48,
        "num_key_value_heads": 48, "intermediate_size": 1000, "vocab_size": 32256, "num_local_experts": 8,
        "num_experts_per_tok": 2,
    }
    with pytest.raises(ParallelismError, match="expert intermediate size 1000"):
        check_parallel(build(config), Parallel(tp=6))
    check_parallel(build(config), Parallel(tp=8))
    # with expert parallel the experts are whole: ep must divide the 8 experts
    with pytest.raises(ParallelismError, match="ep=6 does not divide 8 experts"):
        check_parallel(build(config), Parallel(tp=6, ep=6))
    check_parallel(build(config), Parallel(tp=8, ep=8))


def test_moe_ep_shards_whole_experts() -> None:
    config = {
        "model_type": "mixtral", "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
        "num_key_value_heads": 4, "intermediate_size": 128, "vocab_size": 128, "num_local_experts": 8,
        "num_experts_per_tok": 2, "tie_word_embeddings": False,
    }
    model = build(config)
    tp4 = weights_per_stage(model, Parallel(tp=4), BF16)[0].weights_bytes
    ep4 = weights_per_stage(model, Parallel(tp=4, ep=4), BF16)[0].weights_bytes
    # experts: 8 x 3 x 64 x 128 = 196,608 params, split 4 ways either way (slices or whole experts)
    assert tp4 == ep4
    # everything else is the same too; the total on one rank:
    # attention 4 x 64 x 64 / 4 = 4,096; router 8 x 64 = 512 (replicated); norms 2 x 64 + final 64 = 192;
    # experts 196,608 / 4 = 49,152; embedding + head 2 x (128 / 4) x 64 = 4,096 -> 58,048 params x 2 B
    assert tp4 == 2 * (4_096 + 512 + 192 + 49_152 + 4_096) == 116_096


def test_fused_qkv_keeps_whole_kv_heads_when_tp_exceeds_them() -> None:
    # Falcon-40B style fused query_key_value: 8 query heads, 2 KV heads, head_dim 4, hidden 32
    config = {
        "model_type": "falcon", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 8,
        "num_kv_heads": 2, "new_decoder_architecture": True, "vocab_size": 256, "parallel_attn": True,
        "bias": False,
    }
    model = build(config)
    (qkv,) = [t for t in model.layers[0].tensors if t.role == "attn_qkv"]
    # rows: 8 x 4 query + 2 x 2 x 4 K and V = 48; at tp=4 a rank holds 32 / 4 = 8 query rows and one K and
    # one V head (2 x 4 = 8 rows): (8 + 8) x 32 columns = 512 elements, not 48 x 32 / 4 = 384
    assert qkv.shape == (48, 32)
    assert shard_numel(qkv, model, Parallel(tp=4)) == 512


def test_mamba2_groups_must_divide_tp() -> None:
    config = {
        "model_type": "nemotron_h", "hidden_size": 512, "num_hidden_layers": 2, "hybrid_override_pattern": "M*",
        "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 32, "intermediate_size": 1024,
        "vocab_size": 1024, "mamba_num_heads": 32, "mamba_head_dim": 8, "ssm_state_size": 16, "n_groups": 8,
        "conv_kernel": 4, "expand": 2,
    }
    # 8 SSM groups: tp=16 divides the 32 SSM heads and 16 attention heads but not the groups (vLLM mamba_mixer2)
    with pytest.raises(ParallelismError, match="8 SSM groups"):
        check_parallel(build(config), Parallel(tp=16))
    check_parallel(build(config), Parallel(tp=8))


def test_context_parallel_divides_tp_and_adds_no_gpus() -> None:
    with pytest.raises(ParallelismError, match="cp=3 must divide tp=4"):
        check_parallel(build(LLAMA_70B), Parallel(tp=4, cp=3))
    assert Parallel(tp=4, cp=2).gpus == 4


def test_communication_is_per_gpu_under_pp() -> None:
    # tp=2, pp=2: each GPU runs 40 of the 80 layers: 40 x 2 all-reduces x 2 x (2-1)/2 x 16,384 B = 1,310,720 B;
    # the pipeline hands one 8192 x 2 B = 16,384 B activation per token to the next stage
    comm = comm_per_token(build(LLAMA_70B), Parallel(tp=2, pp=2))
    assert comm.tp_allreduce_bytes == 1_310_720 and comm.pp_activation_bytes == 16_384


def test_vision_encoder_weights_sit_on_the_first_stage() -> None:
    from kvcalc.spec.base import replace
    from kvcalc.spec.vision import VisionCount, VisionTower

    text_only = build(LLAMA_70B)
    tower = VisionTower(kind="test", layers=4, layer_params=1_000, embed_params=100, merger_params=200,
                        unused_params=7_000)
    vision = VisionCount(tower=tower, wrapper="test", projector_linear_params=400, projector_other_params=50,
                         layers_run=3)
    multimodal = replace(text_only, vision=vision)
    # run layers, mergers and projector linears split over tp=4: (3 x 1,000 + 200 + 400) / 4 = 900;
    # embeddings and the whole projector parts on every rank: 100 + 50; the fourth layer and the unused
    # head not built: (900 + 150) x 2 B = 2,100 B more on each rank of the first stage only
    plain = weights_per_stage(text_only, Parallel(tp=4, pp=2), BF16)
    with_vision = weights_per_stage(multimodal, Parallel(tp=4, pp=2), BF16)
    assert with_vision[0].weights_bytes - plain[0].weights_bytes == 2_100
    assert with_vision[1].weights_bytes == plain[1].weights_bytes
    from kvcalc.calc.vision import TowerPlacement

    assert weights_per_stage(multimodal, Parallel(tp=4, pp=2), BF16, tower=TowerPlacement(loaded=False)) == plain
    # built on every pipeline stage (vLLM before v0.33): the second stage holds the same 2,100 B more
    every = weights_per_stage(multimodal, Parallel(tp=4, pp=2), BF16, tower=TowerPlacement(every_stage=True))
    assert every[1].weights_bytes - plain[1].weights_bytes == 2_100
