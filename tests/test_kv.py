"""KV bytes per token and per sequence, worked by hand."""

from hypothesis import given
from hypothesis import strategies as st

from kvcalc.calc.kv import bytes_per_sequence, fixed_bytes_per_sequence, kv_bytes_per_token
from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.layers import FullAttention
from tests.conftest import GEMMA3_27B, GPT_OSS_20B, LLAMA_70B, build

BF16 = storage_type("bf16")


def test_llama70b_gqa_per_token() -> None:
    # 80 layers x 2 (K and V) x 8 KV heads x 128 head_dim x 2 B = 327,680 B per token
    assert kv_bytes_per_token(build(LLAMA_70B), BF16) == 80 * 2 * 8 * 128 * 2 == 327_680


def test_llama70b_tp_shards_kv_heads() -> None:
    # tp=4: 8 / 4 = 2 KV heads per rank -> 80 x 2 x 2 x 128 x 2 = 81,920 B
    assert kv_bytes_per_token(build(LLAMA_70B), BF16, tp=4) == 81_920
    # tp=16 > 8 KV heads: each rank keeps one head (replicated) -> 80 x 2 x 1 x 128 x 2 = 40,960 B
    assert kv_bytes_per_token(build(LLAMA_70B), BF16, tp=16) == 40_960


def test_kv_dtypes() -> None:
    model = build(LLAMA_70B)
    # fp8: 1 byte per element -> half of bf16: 163,840 B
    assert kv_bytes_per_token(model, storage_type("fp8")) == 163_840
    # q8_0: 32 values in 34 bytes (ggml block_q8_0: fp16 scale + 32 int8); a row of 8 x 128 = 1024 values
    # is 32 blocks = 1,088 B; per token 80 layers x 2 (K, V) x 1,088 = 174,080 B
    assert kv_bytes_per_token(model, storage_type("q8_0")) == 80 * 2 * (1024 // 32) * 34 == 174_080
    # q4_0: 32 values in 18 bytes -> 80 x 2 x 32 x 18 = 92,160 B
    assert kv_bytes_per_token(model, storage_type("q4_0")) == 92_160


def test_sliding_window_layers_are_fixed_per_sequence() -> None:
    model = build(GPT_OSS_20B)
    # 12 full layers grow with context: 12 x 2 x 8 x 64 x 2 = 24,576 B per token
    assert kv_bytes_per_token(model, BF16) == 24_576
    # 12 sliding layers hold 128 tokens each: 12 x 2 x 8 x 64 x 2 x 128 = 3,145,728 B per sequence
    assert fixed_bytes_per_sequence(model, BF16) == 3_145_728
    # at 100 tokens (< window) every layer holds 100 tokens: 24 x 2,048 x 100 = 4,915,200 B
    assert bytes_per_sequence(model, 100, BF16) == 24 * 2048 * 100
    # at 8192 tokens: 24,576 x 8192 + 3,145,728 = 204,472,320 B
    assert bytes_per_sequence(model, 8192, BF16) == 24_576 * 8192 + 3_145_728


def test_gemma3_pattern() -> None:
    model = build(GEMMA3_27B)
    kinds = [layer.kind for layer in model.layers]
    # every 6th layer (index 5, 11, ...) is global: 62 // 6 = 10 full, 52 sliding
    assert kinds.count("full") == 10 and kinds.count("sliding") == 52
    assert kinds[5] == "full" and kinds[0] == "sliding"
    # per token: 10 x 2 x 16 x 128 x 2 = 81,920 B; fixed: 52 x 8,192 x 1024 = 436,207,616 B
    assert kv_bytes_per_token(model, BF16) == 81_920
    assert fixed_bytes_per_sequence(model, BF16) == 52 * 8192 * 1024


@given(
    heads=st.sampled_from([8, 16, 32, 64]),
    group=st.sampled_from([1, 2, 4, 8]),
    head_dim=st.sampled_from([64, 128]),
)
def test_mqa_le_gqa_le_mha(heads: int, group: int, head_dim: int) -> None:
    kv_heads = max(1, heads // group)
    mha = FullAttention(num_heads=heads, num_kv_heads=heads, head_dim=head_dim).kv_bytes_per_token(BF16)
    gqa = FullAttention(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim).kv_bytes_per_token(BF16)
    mqa = FullAttention(num_heads=heads, num_kv_heads=1, head_dim=head_dim).kv_bytes_per_token(BF16)
    assert mqa <= gqa <= mha
    assert mha == gqa * (heads // kv_heads)  # savings factor = heads / kv_heads


@given(context=st.integers(min_value=1, max_value=1 << 20))
def test_sequence_bytes_grow_with_context(context: int) -> None:
    model = build(GPT_OSS_20B)
    assert bytes_per_sequence(model, context, BF16) <= bytes_per_sequence(model, context + 1, BF16)


def test_attention_heads_ignore_recurrent_mixers() -> None:
    # Nemotron-H style: a Mamba-2 block (256 SSM heads) before the first attention block (64 heads)
    config = {
        "model_type": "nemotron_h", "hidden_size": 512, "num_hidden_layers": 3, "hybrid_override_pattern": "M*-",
        "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 8, "intermediate_size": 1024,
        "vocab_size": 1024, "mamba_num_heads": 256, "mamba_head_dim": 4, "ssm_state_size": 16, "n_groups": 8,
        "conv_kernel": 4, "expand": 2, "mlp_hidden_act": "relu2",
    }
    model = build(config)
    assert [layer.kind for layer in model.layers] == ["mamba", "full", "mlp-only"]
    assert model.num_attention_heads == 64 and model.num_kv_heads == 8
