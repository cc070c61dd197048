"""vLLM rules of recent releases (v0.20-v0.33) worked by hand; each fails when its rule is removed from
calc/engines/vllm_versions.py or calc/engines/vllm.py."""

from __future__ import annotations

from kvcalc.calc.deploy import plan_deployment
from kvcalc.calc.engines.settings import VllmSettings
from kvcalc.calc.engines.vllm_versions import rules_for
from kvcalc.calc.paged import max_concurrency, reported_tokens
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.hf_config import model_from_config
from kvcalc.sources.resolve import load_model
from kvcalc.spec.base import replace
from kvcalc.spec.deployment import Parallel

GIB = 1 << 30
H100 = find_gpu("h100")

#: Qwen/Qwen3.5-4B text config (public config.json: hidden 2560, MLP 9216, 32 layers = 8 full-attention every
#: 4th + 24 gated-DeltaNet, 16 heads / 4 KV heads of 256, linear 16 key / 32 value heads of 128, SSM state fp32,
#: vocab 248,320).
QWEN35_4B = {
    "architectures": ["Qwen3_5ForConditionalGeneration"], "model_type": "qwen3_5",
    "text_config": {
        "model_type": "qwen3_5_text", "hidden_size": 2560, "intermediate_size": 9216, "num_hidden_layers": 32,
        "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 256, "linear_num_key_heads": 16,
        "linear_num_value_heads": 32, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4, "full_attention_interval": 4, "vocab_size": 248320,
        "max_position_embeddings": 262144, "tie_word_embeddings": True, "dtype": "bfloat16",
        "mamba_ssm_dtype": "float32"},
}


def _qwen35_4b():
    return model_from_config(dict(QWEN35_4B), model_id="Qwen/Qwen3.5-4B", warn=lambda _m: None)


def test_version_table_rows() -> None:
    assert rules_for("0.25.1").mrv2_sampler_bytes_per_row_vocab == 6
    assert rules_for("0.26.0").mrv2_sampler_bytes_per_row_vocab == 2
    assert rules_for("0.27.1").hybrid_prefix_caching_default is False
    assert rules_for("0.28.0").hybrid_prefix_caching_default is True
    assert rules_for("0.33.0").sampler_bytes_per_row_vocab == 14  # Model Runner V1 keeps its top-k/top-p copies


def test_model_runner_v2_profile_sampler_by_hand() -> None:
    # Llama-3.1-8B on one H100 (serve: max_num_seqs 1,024 dummy rows x vocab 128,256 = 131,334,144). The dummy
    # sampler holds
    #   MRv1 (v0.26, VLLM_USE_V2_MODEL_RUNNER=0): 14 B x 1,024 x 128,256 = 1,838,678,016
    #   MRv2 v0.25 (FP32 copy + bf16 logits):      6 B x 1,024 x 128,256 =   788,004,864
    #   MRv2 v0.26 (raw bf16 logits only):         2 B x 1,024 x 128,256 =   262,668,288
    model = load_model("llama-3.1-8b")
    cases = {("0.26.0", "v1"): 1_838_678_016, ("0.25.1", "v2"): 788_004_864, ("0.26.0", "v2"): 262_668_288}
    for (version, runner), sampler in cases.items():
        plan = plan_deployment(model, H100, Parallel(), VllmSettings(version=version, model_runner=runner),  # type: ignore[arg-type]
                               context=8192)
        assert plan.binding_device.activation_detail["sampler_bytes"] == sampler
    # the v2 default on v0.26 (all dense models, #44443): P = max(forward, hidden + sampler) + slack with
    #   forward = 8,192 x 3 x 14,336 x 2 + 2 x 8,192 x 4,096 x 2 = 838,860,800, hidden = 8,192 x 4,096 x 2
    #   = 67,108,864: MRv1 P - MRv2 P = (67,108,864 + 1,838,678,016) - 838,860,800 = 1,066,926,080 B more KV
    v1 = plan_deployment(model, H100, Parallel(), VllmSettings(version="0.26.0", model_runner="v1"), context=8192)
    v2 = plan_deployment(model, H100, Parallel(), VllmSettings(version="0.26.0"), context=8192)
    assert v2.assumptions["model_runner"].value == "v2"
    assert v1.binding_device.activation_bytes - v2.binding_device.activation_bytes == 1_066_926_080
    # and MRv2 on v0.26 reserves no CUDA-graph memory (#49224), MRv1 its 0.36 GiB default (386,547,056 B)
    assert v1.binding_device.cuda_graph_bytes == 386_547_056 and v2.binding_device.cuda_graph_bytes == 0
    assert v2.binding_device.kv_cache_bytes - v1.binding_device.kv_cache_bytes == 1_066_926_080 + 386_547_056


def test_hybrid_state_blocks_follow_prefix_caching() -> None:
    # Qwen3.5-35B-A3B, fp8 KV, max_model_len 65,536 (vLLM v0.20.0 log, RedHatAI/Qwen3.6-35B-A3B-NVFP4 with
    # --enable-prefix-caching: "Setting attention block size to 2096 tokens"): 4 groups of 10 layers, the
    # full-attention group needs ceil(65,536 / 2,096) = 32 blocks, each of the 3 DeltaNet groups 2 ("align")
    # -> 38 per request; without prefix caching 32 + 3 = 35.
    model = load_model("qwen3.5-35b-a3b")
    on = plan_deployment(model, H100, Parallel(), VllmSettings(version="0.20.0", kv_cache_dtype="fp8",
                                                               enable_prefix_caching=True), context=65536)
    assert on.kv_pool.layout.min_block_size == 2096
    assert on.blocks_per_max_request == 32 + 3 * 2 == 38
    off = plan_deployment(model, H100, Parallel(), VllmSettings(version="0.20.0", kv_cache_dtype="fp8"),
                          context=65536)
    assert off.blocks_per_max_request == 32 + 3 == 35
    # from v0.28 prefix caching is on by default for hybrid models (#50991)
    new = plan_deployment(model, H100, Parallel(), VllmSettings(version="0.28.0", kv_cache_dtype="fp8"),
                          context=65536)
    assert new.blocks_per_max_request == 38
    assert new.assumptions["mamba_state_blocks_per_request"].value == 2
    # the logged pool: A = 2.95 GiB -> floor(2.95 x 2^30 / 21,463,040) = 147 blocks; v0.20 reports
    # floor(147 / 4) x 2,096 = 75,456 tokens and 147 / 38 = 3.87x (vLLM printed 75,456 tokens, 3.87x)
    blocks = int(2.95 * GIB) // on.kv_pool.layout.block_bytes
    # fp8 KV: 2 x 2 KV heads x 256 x 1 B = 1,024 B per token, x 2,096 = 2,146,304 B a page, x 10 layers
    assert on.kv_pool.layout.block_bytes == 10 * 2096 * 2 * 2 * 256 * 1 == 21_463_040
    assert blocks == 147
    assert reported_tokens(blocks, on.kv_pool.layout, 65536, 8192, "groups") == 75_456
    assert round(blocks / on.blocks_per_max_request, 2) == 3.87


def test_qwen35_4b_without_prefix_caching_by_hand() -> None:
    # vLLM v0.22.0 log (Qwen3.5-4B, prefix caching off, max_model_len 1,024): "Setting attention block size to
    # 528 tokens", "Available KV cache memory: 11.11 GiB", "GPU KV cache size: 141,107 tokens", "137.80x".
    # Page: the fp32 DeltaNet state is 32 x 128 x 128 x 4 + (2 x 16 x 128 + 32 x 128) x 3 x 2 = 2,146,304 B;
    # attention holds 2 x 4 x 256 x 2 = 4,096 B per token, so its block grows to ceil(2,146,304 / (16 x 4,096))
    # x 16 = 528 tokens = 2,162,688 B; 32 layers in 4 groups of 8 -> 17,301,504 B per block index.
    plan = plan_deployment(_qwen35_4b(), H100, Parallel(), VllmSettings(version="0.22.0"), context=1024)
    layout = plan.kv_pool.layout
    assert layout.min_block_size == 528
    assert layout.block_bytes == 8 * 528 * 4096 == 17_301_504
    blocks = int(11.11 * GIB) // layout.block_bytes  # 689
    assert blocks == 689
    # per request: ceil(1,024 / 528) = 2 + 3 groups x 1 state block = 5 -> 689 / 5 = 137.8, int(137.8 x 1,024)
    assert plan.blocks_per_max_request == 5
    assert max_concurrency(blocks, layout, 1024, 8192) == 137.8
    assert reported_tokens(blocks, layout, 1024, 8192, "concurrency") == 141_107


#: MiniMaxAI/MiniMax-M2 config.json (62 layers, 48 heads / 8 KV heads of 128; only the KV shape matters here).
MINIMAX_M2 = {"architectures": ["MiniMaxM2ForCausalLM"], "model_type": "minimax_m2", "vocab_size": 200064,
              "hidden_size": 3072, "intermediate_size": 1536, "num_hidden_layers": 62, "num_attention_heads": 48,
              "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 196608,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16"}


def _minimax_with_blocks(version: str, blocks: int):
    """MiniMax-M2 at tp 2 with an activation override that leaves exactly `blocks` KV blocks."""
    model = model_from_config(dict(MINIMAX_M2), model_id="MiniMax-M2", warn=lambda _m: None)
    settings = VllmSettings(version=version, max_model_len=196608, cuda_graph_bytes=0)
    first = plan_deployment(model, H100, Parallel(tp=2), settings)
    per_block = first.kv_pool.block_bytes
    extra = first.binding_device.kv_cache_bytes - blocks * per_block
    settings = replace(settings, activation_bytes=first.binding_device.activation_bytes + extra)
    return plan_deployment(model, H100, Parallel(tp=2), settings)


def test_null_block_in_the_startup_check_by_hand() -> None:
    # MiniMax-M2.7 at tp 2 (eugr/spark-vllm-docker #396, vLLM 0.29.1rc1): 62 x 2 x (8 / 2) x 128 x 2 B = 126,976 B
    # per token per rank; a block index = 16 x 126,976 = 2,031,616 B; one 196,608-token request needs
    # 196,608 / 16 = 12,288 blocks, and from ≈v0.25 the null block too (#47272): 12,289 x 2,031,616 B = 23.25 GiB,
    # the figure vLLM's refusal printed.
    ok = _minimax_with_blocks("0.24.0", 12_288)
    assert ok.kv_pool.block_bytes == 16 * 126_976 == 2_031_616
    assert ok.blocks_per_max_request == 12_288
    assert ok.startup_error is None  # before the rule a pool of exactly one request started (and hung, #47272)
    refused = _minimax_with_blocks("0.29.1", 12_288)
    assert refused.startup_error is not None and "23.25 GiB" in refused.startup_error
    assert round(12_289 * 2_031_616 / GIB, 2) == 23.25
    assert _minimax_with_blocks("0.29.1", 12_289).startup_error is None
