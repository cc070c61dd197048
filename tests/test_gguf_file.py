"""model_from_gguf on small real GGUF files written with gguf-py's GGUFWriter (no mocks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from kvcalc.calc.params import params_total  # noqa: E402
from kvcalc.errors import InputError  # noqa: E402
from kvcalc.sources.gguf_file import gguf_tensor_types, gguf_weights_bytes, model_from_gguf  # noqa: E402
from kvcalc.spec.layers import FullAttention, MoEMLP  # noqa: E402

Q8_0 = gguf.GGMLQuantizationType.Q8_0

# Tiny llama: 2 layers, hidden 64, 4 heads of 16, 2 KV heads, FFN 128, vocab 256, untied output.
# Element counts and bytes (F32 4 B, F16 2 B, Q8_0 34 B per block of 32):
#   token_embd  256x64 F16   16,384 el   32,768 B
#   output_norm 64     F32       64 el      256 B
#   output      256x64 Q8_0  16,384 el   512 blocks x 34 = 17,408 B
#   per layer: attn_norm 64 F32 (64 el, 256 B), q 64x64 F16 (4,096, 8,192), k 32x64 (2,048, 4,096),
#              v 32x64 (2,048, 4,096), o 64x64 (4,096, 8,192), ffn_norm 64 F32 (64, 256),
#              gate/up 128x64 and down 64x128 F16 (3 x 8,192 el, 3 x 16,384 B)
#              = 36,992 el, 74,240 B; two layers 73,984 el, 148,480 B
#   total 16,384 + 64 + 16,384 + 73,984 = 106,816 el; 32,768 + 256 + 17,408 + 148,480 = 198,912 B
LLAMA_PARAMS = 106_816
LLAMA_BYTES = 198_912


def _llama_tensors() -> list[tuple[str, np.ndarray, bool]]:
    """(name, array in (out, in) order, quantize to Q8_0)."""
    rng = np.random.default_rng(0)

    def f16(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float16)

    def f32(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    out = [
        ("token_embd.weight", f16(256, 64), False),
        ("output_norm.weight", f32(64), False),
        ("output.weight", f32(256, 64), True),
    ]
    for i in range(2):
        out += [
            (f"blk.{i}.attn_norm.weight", f32(64), False),
            (f"blk.{i}.attn_q.weight", f16(64, 64), False),
            (f"blk.{i}.attn_k.weight", f16(32, 64), False),
            (f"blk.{i}.attn_v.weight", f16(32, 64), False),
            (f"blk.{i}.attn_output.weight", f16(64, 64), False),
            (f"blk.{i}.ffn_norm.weight", f32(64), False),
            (f"blk.{i}.ffn_gate.weight", f16(128, 64), False),
            (f"blk.{i}.ffn_up.weight", f16(128, 64), False),
            (f"blk.{i}.ffn_down.weight", f16(64, 128), False),
        ]
    return out


def write_llama(path: Path, head_count_kv: int | list[int] = 2, **writer_options: int) -> None:
    w = gguf.GGUFWriter(path, "llama", **writer_options)
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(head_count_kv)
    w.add_context_length(2048)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for name, array, quantize in _llama_tensors():
        if quantize:
            w.add_tensor(name, gguf.quants.quantize(array, Q8_0), raw_dtype=Q8_0)
        else:
            w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_llama_gguf_exact_counts(tmp_path: Path) -> None:
    path = tmp_path / "tiny-llama.gguf"
    write_llama(path)
    warnings: list[str] = []
    model = model_from_gguf(path, warn=warnings.append)
    assert warnings == []
    assert model.id == "tiny-llama"
    assert model.model_type == "llama"
    assert model.params_source == "exact"
    assert model.exact_params_total == LLAMA_PARAMS
    assert model.exact_weights_bytes == LLAMA_BYTES
    assert params_total(model) == LLAMA_PARAMS  # the config mapped from the keys describes the same tensors
    assert model.num_layers == 2 and model.hidden_size == 64 and model.vocab_size == 256
    assert model.num_attention_heads == 4 and model.num_kv_heads == 2
    assert model.max_position_embeddings == 2048
    assert not model.tie_word_embeddings
    assert model.dtype == "fp16"
    assert model.quantization_config == {"quant_method": "gguf", "file_type": "MOSTLY_F16"}
    mixer = model.layers[0].mixer
    assert isinstance(mixer, FullAttention) and mixer.head_dim == 16


def test_tensor_types_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "tiny-llama.gguf"
    write_llama(path)
    types = gguf_tensor_types(path)
    assert len(types) == 3 + 2 * 9
    assert types["output.weight"] == int(Q8_0) == 8
    assert types["token_embd.weight"] == int(gguf.GGMLQuantizationType.F16) == 1
    assert types["blk.1.ffn_norm.weight"] == int(gguf.GGMLQuantizationType.F32) == 0
    assert gguf_weights_bytes(path) == LLAMA_BYTES
    # the tensor payload sits after the metadata: the file is larger than the tensor bytes
    assert path.stat().st_size > LLAMA_BYTES


def test_split_gguf_sums_every_shard(tmp_path: Path) -> None:
    write_llama(tmp_path / "tiny.gguf", split_max_tensors=8)  # 21 tensors -> 3 files
    shards = sorted(tmp_path.glob("*.gguf"))
    assert [p.name for p in shards] == [f"tiny-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    model = model_from_gguf(shards[0])
    assert model.id == "tiny"
    assert model.exact_params_total == LLAMA_PARAMS
    assert model.exact_weights_bytes == LLAMA_BYTES
    assert gguf_weights_bytes(shards[0]) == LLAMA_BYTES
    shards[2].unlink()
    with pytest.raises(InputError, match=r"missing 1 of 3 files: tiny-00003-of-00003\.gguf"):
        model_from_gguf(shards[0])


def test_per_layer_head_counts(tmp_path: Path) -> None:
    uniform = tmp_path / "uniform.gguf"
    write_llama(uniform, head_count_kv=[2, 2])  # stored as a per-layer array, one value
    assert model_from_gguf(uniform).num_kv_heads == 2
    mixed = tmp_path / "mixed.gguf"
    write_llama(mixed, head_count_kv=[2, 1])
    with pytest.raises(InputError, match=r"'llama\.attention\.head_count_kv' differs between layers"):
        model_from_gguf(mixed)


def test_qwen3_moe_gguf(tmp_path: Path) -> None:
    # 1 layer, hidden 32, 2 heads of 16 (key_length), 1 KV head, 4 experts (2 used) of FFN 16, vocab 64, tied.
    #   token_embd 64x32 = 2,048; output_norm 32
    #   attn_norm 32, q 32x32 = 1,024, k 16x32 = 512, v 512, o 1,024, q_norm 16, k_norm 16, ffn_norm 32,
    #   router 4x32 = 128, gate/up/down experts 3 x 4x16x32 = 6,144  -> layer 9,440
    #   total 2,048 + 32 + 9,440 = 11,520 elements, all F32: 46,080 bytes
    path = tmp_path / "tiny-moe.gguf"
    w = gguf.GGUFWriter(path, "qwen3moe")
    w.add_block_count(1)
    w.add_embedding_length(32)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_key_length(16)
    w.add_value_length(16)
    w.add_context_length(4096)
    w.add_expert_count(4)
    w.add_expert_used_count(2)
    w.add_expert_feed_forward_length(16)
    shapes = {
        "token_embd.weight": (64, 32),
        "output_norm.weight": (32,),
        "blk.0.attn_norm.weight": (32,),
        "blk.0.attn_q.weight": (32, 32),
        "blk.0.attn_k.weight": (16, 32),
        "blk.0.attn_v.weight": (16, 32),
        "blk.0.attn_output.weight": (32, 32),
        "blk.0.attn_q_norm.weight": (16,),
        "blk.0.attn_k_norm.weight": (16,),
        "blk.0.ffn_norm.weight": (32,),
        "blk.0.ffn_gate_inp.weight": (4, 32),
        "blk.0.ffn_gate_exps.weight": (4, 16, 32),
        "blk.0.ffn_up_exps.weight": (4, 16, 32),
        "blk.0.ffn_down_exps.weight": (4, 32, 16),
    }
    for name, shape in shapes.items():
        w.add_tensor(name, np.zeros(shape, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    warnings: list[str] = []
    model = model_from_gguf(path, warn=warnings.append)
    assert warnings == []
    assert model.model_type == "qwen3_moe"
    assert model.tie_word_embeddings
    assert model.exact_params_total == params_total(model) == 11_520
    assert model.exact_weights_bytes == 11_520 * 4
    mlp = model.layers[0].mlp
    assert isinstance(mlp, MoEMLP)
    assert (mlp.num_experts, mlp.top_k, mlp.expert_intermediate_size) == (4, 2, 16)


def test_unsupported_architecture(tmp_path: Path) -> None:
    path = tmp_path / "rwkv.gguf"
    w = gguf.GGUFWriter(path, "rwkv6")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(InputError, match=r"unsupported GGUF architecture 'rwkv6'; supported: gemma, .*llama"):
        model_from_gguf(path)


def test_not_a_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.gguf"
    path.write_bytes(b"not a gguf file at all")
    with pytest.raises(InputError, match=r"junk\.gguf: not a readable GGUF file"):
        model_from_gguf(path)


def test_truncated_gguf(tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    write_llama(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(InputError, match=r"cut\.gguf: not a readable GGUF file"):
        model_from_gguf(path)


def test_sliding_window_patterns() -> None:
    """The metadata -> config mapping alone (gguf_config is a pure function of metadata and tensor table)."""
    from kvcalc.sources.gguf_file import gguf_config
    from kvcalc.sources.hf_config import model_from_config

    meta = {
        "general.architecture": "gemma3",
        "gemma3.block_count": 6,
        "gemma3.embedding_length": 32,
        "gemma3.feed_forward_length": 64,
        "gemma3.attention.head_count": 2,
        "gemma3.attention.head_count_kv": 1,
        "gemma3.attention.key_length": 16,
        "gemma3.attention.sliding_window": 512,
        "gemma3.vocab_size": 100,
    }
    int_pattern = model_from_config(
        gguf_config({**meta, "gemma3.attention.sliding_window_pattern": 3}, [], "x"), model_id="x"
    )
    assert [layer.kind for layer in int_pattern.layers] == ["sliding", "sliding", "full"] * 2
    bools = [True, False, False, True, True, False]
    per_layer = model_from_config(
        gguf_config({**meta, "gemma3.attention.sliding_window_pattern": bools}, [], "x"), model_id="x"
    )
    assert [layer.kind for layer in per_layer.layers] == ["sliding" if b else "full" for b in bools]
    assert per_layer.tie_word_embeddings  # no output.weight in the (empty) tensor table


def test_load_model_resolves_gguf_paths(tmp_path: Path) -> None:
    from kvcalc.sources.resolve import load_model

    path = tmp_path / "tiny-llama.gguf"
    write_llama(path)
    for name in (str(path), str(tmp_path)):  # the file itself, or a folder holding it
        model = load_model(name)
        assert (model.params_source, model.exact_params_total, model.exact_weights_bytes) == (
            "exact",
            LLAMA_PARAMS,
            LLAMA_BYTES,
        )
