"""Quantized weight formats: hand-worked bytes, llama.cpp recipes, real GGUF files, pre-quantized configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvcalc.calc.parallel import weights_per_stage
from kvcalc.calc.quant import (
    Bnb4Format,
    FloatFormat,
    Fp8Format,
    GgufRecipe,
    MxFp4Format,
    NvFp4Format,
    PackedIntFormat,
    bits_per_weight,
    format_from_quantization_config,
    ggml_block,
    model_weights_bytes,
    parse_keep,
    parse_quant,
    roles_for_modules,
    tensor_storage,
)
from kvcalc.errors import InputError
from kvcalc.sources.hf_config import model_from_config
from kvcalc.spec.deployment import Parallel
from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.layers import TensorSpec
from kvcalc.spec.model import ModelSpec
from tests.conftest import GPT_OSS_20B

gguf = pytest.importorskip("gguf")


def _t(name: str, *shape: int, role: str = "attn_q", layer: int | None = 0) -> TensorSpec:
    return TensorSpec(name=name, shape=shape, role=role, layer=layer)


Q4096 = _t("blk.0.attn_q.weight", 4096, 4096)  # N = K = 4096, 16,777,216 values


def _model(config: dict[str, Any], name: str = "m") -> ModelSpec:
    return model_from_config(dict(config), model_id=name)


# Llama-3.1-8B (meta-llama/Llama-3.1-8B config.json): 32 layers, hidden 4096, 32 heads, 8 KV heads,
# intermediate 14336, vocab 128256, untied.
LLAMA_8B: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256, "tie_word_embeddings": False,
    "max_position_embeddings": 131072, "torch_dtype": "bfloat16",
}

# A small Llama-style model for recipe tests: 8 layers, hidden 256 (a multiple of the 256-value k-quant
# super-block), 4 heads of 64, 2 KV heads, FFN 512, vocab 1024, untied.
TINY: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 256, "num_hidden_layers": 8, "num_attention_heads": 4,
    "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 1024, "tie_word_embeddings": False,
    "max_position_embeddings": 4096, "torch_dtype": "bfloat16",
}


# ---------------------------------------------------------------------------------------------------------
# Hand-worked bytes of one 4096 x 4096 matrix
# ---------------------------------------------------------------------------------------------------------


def test_gptq_4bit_g128_hand_worked() -> None:
    # qweight int32 [4096*4/32, 4096]: 4096*4096/8                  = 8,388,608 B
    # scales  fp16  [4096/128 = 32 groups, 4096]: 32 x 4096 x 2      =   262,144 B
    # qzeros  int32 [32, 4096*4/32]: 32 x 4096/8 x 4                 =    65,536 B
    # total                                                           = 8,716,288 B = 4.156 bits/value
    fmt = parse_quant("gptq:4:128")
    assert fmt.tensor_bytes(Q4096, Q4096.numel) == 8_388_608 + 262_144 + 65_536 == 8_716_288
    assert 8 * 8_716_288 / Q4096.numel == pytest.approx(4 + 20 / 128)
    # desc_act keeps g_idx int32 [K]: + 4096 x 4 = 16,384 B
    assert parse_quant("gptq:4:128:act").tensor_bytes(Q4096, Q4096.numel) == 8_716_288 + 16_384
    # channel-wise (group -1): one group: 8,388,608 + 4096 x 2 + 4096/8 x 4 = 8,398,848
    assert parse_quant("gptq:4:-1").tensor_bytes(Q4096, Q4096.numel) == 8_388_608 + 8_192 + 2_048
    # 3-bit g128: qweight 4096*3/32 = 384 int32 rows x 4096 x 4 = 6,291,456; scales 262,144;
    # qzeros 32 x ceil(4096*3/32) = 384 x 4 = 49,152 -> 6,602,752
    assert parse_quant("gptq:3:128").tensor_bytes(Q4096, Q4096.numel) == 6_291_456 + 262_144 + 49_152


def test_awq_and_w4a16_hand_worked() -> None:
    # AWQ GEMM: qweight int32 [4096, 4096/8] = 8,388,608; qzeros [32, 512] x 4 = 65,536; scales 262,144
    assert parse_quant("awq:4:128").tensor_bytes(Q4096, Q4096.numel) == 8_716_288
    # compressed-tensors W4A16 symmetric: no zero points; weight_shape int64[2] = 16 B
    assert parse_quant("w4a16").tensor_bytes(Q4096, Q4096.numel) == 8_388_608 + 262_144 + 16


def test_fp8_int8_nvfp4_mxfp4_bnb_hand_worked() -> None:
    n = Q4096.numel
    assert parse_quant("fp8").tensor_bytes(Q4096, n) == n + 4  # 1 B per value + one fp32 scale
    assert parse_quant("fp8:channel").tensor_bytes(Q4096, n) == n + 2 * 4096  # + a 16-bit scale per row
    # block 128x128: fp32 [32, 32] = 4,096 B
    assert parse_quant("fp8:block").tensor_bytes(Q4096, n) == n + 4 * 32 * 32
    assert parse_quant("int8").tensor_bytes(Q4096, n) == n + 2 * 4096
    assert parse_quant("bnb-int8").tensor_bytes(Q4096, n) == n + 4 * 4096  # SCB fp32 per row
    # NVFP4: n/2 codes = 8,388,608 + e4m3 scale per 16 = 1,048,576 + fp32 global + input scale = 8
    assert parse_quant("nvfp4").tensor_bytes(Q4096, n) == 8_388_608 + 1_048_576 + 8
    # MXFP4: 17 B per 32 values: 4096 x 128 blocks x 17 = 8,912,896 (4.25 bpw)
    assert parse_quant("mxfp4").tensor_bytes(Q4096, n) == 8_912_896
    # NF4: codes n/2 = 8,388,608 + absmax fp32 per 64 = 262,144 x 4 = 1,048,576 + quant_map 16 x 4 = 64
    assert parse_quant("nf4").tensor_bytes(Q4096, n) == 8_388_608 + 1_048_576 + 64
    # NF4 + double quant: absmax uint8 262,144 + nested fp32 per 256 blocks 1,024 x 4 = 4,096
    # + nested map 256 x 4 = 1,024 + offset 4 + quant_map 64
    assert parse_quant("nf4:dq").tensor_bytes(Q4096, n) == 8_388_608 + 262_144 + 4_096 + 1_024 + 4 + 64


def test_gguf_block_sizes_come_from_gguf() -> None:
    # Q4_K: 256 values in 144 B = 4.5 bpw; Q6_K 210 B; Q8_0 32 values in 34 B; IQ4_XS 136 B; MXFP4 17 B / 32
    sizes = gguf.constants.GGML_QUANT_SIZES
    assert ggml_block("Q4_K") == tuple(sizes[gguf.GGMLQuantizationType.Q4_K]) == (256, 144)
    assert ggml_block("Q6_K") == (256, 210)
    assert ggml_block("Q8_0") == (32, 34)
    assert ggml_block("IQ4_XS") == (256, 136)
    assert ggml_block("MXFP4") == (32, 17)
    assert 8 * 144 / 256 == 4.5
    # a pure Q4_K 4096 x 4096 tensor: 4096 rows x 16 blocks x 144 B = 9,437,184 B
    tiny = _model(TINY)
    fmt = parse_quant("Q4_K:pure", model=tiny)
    q = tiny.layers[0].tensors[0]
    assert q.role == "attn_q" and q.shape == (256, 256)
    assert fmt.tensor_bytes(q, q.numel) == 256 * 1 * 144


def test_tp_shard_takes_its_share() -> None:
    fmt = parse_quant("gptq:4:128")
    assert fmt.tensor_bytes(Q4096, Q4096.numel // 4) == 8_716_288 // 4


def test_float_formats() -> None:
    assert parse_quant("bf16").tensor_bytes(Q4096, 10) == 20
    assert parse_quant("FP32").tensor_bytes(Q4096, 10) == 40
    assert isinstance(parse_quant("BFloat16"), FloatFormat)


# ---------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------


def test_parse_names_case_insensitive() -> None:
    assert isinstance(parse_quant("Q4_K_M"), GgufRecipe) and parse_quant("q4_k_m").name == "Q4_K_M"
    assert parse_quant("q4_k").name == "Q4_K_M"  # llama-quantize's alias
    assert parse_quant("gguf:bf16").name == "BF16" and isinstance(parse_quant("gguf:bf16"), GgufRecipe)
    assert isinstance(parse_quant("f16"), GgufRecipe) and isinstance(parse_quant("fp16"), FloatFormat)
    assert isinstance(parse_quant("GPTQ:4:128"), PackedIntFormat)
    assert isinstance(parse_quant("NF4:DQ"), Bnb4Format) and parse_quant("nf4:dq").name == "nf4:dq"
    assert isinstance(parse_quant("NVFP4"), NvFp4Format)
    assert isinstance(parse_quant("gguf:nvfp4"), GgufRecipe)
    assert isinstance(parse_quant("mxfp4:marlin"), MxFp4Format)
    assert isinstance(parse_quant("fp8:block"), Fp8Format)


def test_unknown_format_lists_the_known_ones() -> None:
    with pytest.raises(InputError) as err:
        parse_quant("q4_z")
    text = str(err.value)
    assert "unknown quantization 'q4_z'" in text and "Q4_K_M" in text and "gptq:BITS:GROUP" in text
    with pytest.raises(InputError, match="bits"):
        parse_quant("gptq:5:128")
    with pytest.raises(InputError, match="group size"):
        parse_quant("gptq:4:100")


def test_keep_fp16_parsing() -> None:
    assert parse_keep("lm_head,embed") == frozenset({"output", "token_embd"})
    assert parse_keep("none") == frozenset()
    assert parse_keep(None) is None
    assert parse_keep("attn,blk.0.ffn_down") == frozenset({"attn_*", "blk.0.ffn_down"})
    with pytest.raises(InputError, match="unknown tensor role"):
        parse_keep("lm_hed")


def test_keep_override_changes_what_is_quantized() -> None:
    model = _model(TINY)
    head = next(t for t in model.global_tensors if t.role == "output")
    default = parse_quant("gptq:4:128")
    assert default.storage(head) == "bf16"
    assert parse_quant("gptq:4:128", "none").storage(head) == "gptq:4:128"  # GPTQModel lm_head=True
    q8 = parse_quant("Q8_0", model=model)
    kept = parse_quant("Q8_0", "lm_head,embed", model=model)
    assert q8.storage(head) == "Q8_0" and kept.storage(head) == "F16"
    assert model_weights_bytes(model, kept) > model_weights_bytes(model, q8)


def test_unbound_gguf_recipe_says_so() -> None:
    with pytest.raises(ValueError, match="bind"):
        parse_quant("Q4_K_M").tensor_bytes(Q4096, Q4096.numel)


# ---------------------------------------------------------------------------------------------------------
# llama.cpp recipes
# ---------------------------------------------------------------------------------------------------------


def test_q4_k_m_recipe_on_an_8_layer_model() -> None:
    # use_more_bits(i, 8) = i < 1 or i >= 7 or (i - 1) % 3 == 2 -> layers {0, 3, 6, 7} get Q6_K for attn_v
    # and ffn_down (src/llama-quant.cpp, Q4_K_M branch); everything else 2-D is Q4_K; output.weight Q6_K;
    # norms (1-D) stay F32.
    model = _model(TINY)
    types = tensor_storage(model, parse_quant("Q4_K_M"))
    assert types["output.weight"] == "Q6_K"
    assert types["token_embd.weight"] == "Q4_K"
    assert types["output_norm.weight"] == "F32"
    more = {0, 3, 6, 7}
    for i in range(8):
        expect = "Q6_K" if i in more else "Q4_K"
        assert types[f"blk.{i}.attn_v.weight"] == expect, i
        assert types[f"blk.{i}.ffn_down.weight"] == expect, i
        for role in ("attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"):
            assert types[f"blk.{i}.{role}.weight"] == "Q4_K"
        assert types[f"blk.{i}.attn_norm.weight"] == "F32"


def test_other_recipes_on_the_8_layer_model() -> None:
    model = _model(TINY)
    q3m = tensor_storage(model, parse_quant("Q3_K_M"))
    # attn_v: Q5_K for the first 2 then Q4_K; ffn_down: Q5_K for i < 8/16 = 0 (none) else Q4_K;
    # attn_output Q4_K; the rest Q3_K
    assert [q3m[f"blk.{i}.attn_v.weight"] for i in range(3)] == ["Q5_K", "Q5_K", "Q4_K"]
    assert q3m["blk.0.ffn_down.weight"] == "Q4_K" and q3m["blk.0.attn_output.weight"] == "Q4_K"
    assert q3m["blk.0.attn_q.weight"] == "Q3_K" and q3m["output.weight"] == "Q6_K"
    q2 = tensor_storage(model, parse_quant("Q2_K"))
    # n_gqa = 4 / 2 = 2 < 4 -> attn_v Q3_K; ffn_down Q3_K; attn_output Q3_K
    assert q2["blk.0.attn_v.weight"] == "Q3_K" and q2["blk.5.ffn_down.weight"] == "Q3_K"
    assert q2["blk.0.attn_q.weight"] == "Q2_K"
    q8 = tensor_storage(model, parse_quant("Q8_0"))
    assert set(q8.values()) == {"Q8_0", "F32"}  # Q8_0 changes nothing, output stays Q8_0


def test_fallback_when_rows_do_not_divide_the_block() -> None:
    # hidden 896 (Qwen2.5-0.5B) is not a multiple of 256: Q4_K -> Q5_0, Q6_K -> Q8_0 (tensor_type_fallback);
    # the tied token_embd takes the output rule: ne0 % 256 != 0 -> Q8_0.
    cfg = {**TINY, "hidden_size": 896, "num_attention_heads": 14, "num_key_value_heads": 2,
           "intermediate_size": 4864, "tie_word_embeddings": True}
    model = _model(cfg)
    types = tensor_storage(model, parse_quant("Q4_K_M"))
    assert "output.weight" not in types
    assert types["token_embd.weight"] == "Q8_0"
    assert types["blk.1.attn_q.weight"] == "Q5_0"
    assert types["blk.0.attn_v.weight"] == "Q8_0"  # Q6_K by use_more_bits, then the fallback
    # ne0 = 4864 = 19 x 256: no fallback; layer 0 use_more_bits -> Q6_K, layer 1 -> Q4_K
    assert types["blk.0.ffn_down.weight"] == "Q6_K" and types["blk.1.ffn_down.weight"] == "Q4_K"


def test_mixtral_gets_q8_0_attention_kv() -> None:
    cfg = {"model_type": "mixtral", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
           "num_key_value_heads": 1, "intermediate_size": 512, "num_local_experts": 8, "num_experts_per_tok": 2,
           "vocab_size": 512, "max_position_embeddings": 4096}
    types = tensor_storage(_model(cfg), parse_quant("Q4_K_M"))
    assert types["blk.2.attn_k.weight"] == "Q8_0" and types["blk.2.attn_v.weight"] == "Q8_0"
    assert types["blk.2.attn_output.weight"] == "Q5_K"
    assert types["blk.0.ffn_gate_inp.weight"] == "F32"
    # n_expert > 1: ffn_down_exps of layer i follows the layer rule; use_more_bits(i, 4): n/8 = 0 (no
    # first layers), i >= 7n/8 = 3 -> layer 3, (i - 0) % 3 == 2 -> layer 2
    downs = [types[f"blk.{i}.ffn_down_exps.weight"] for i in range(4)]
    assert downs == ["Q4_K", "Q4_K", "Q6_K", "Q6_K"]


def test_llama_3_1_8b_q4_k_m_matches_the_published_bytes() -> None:
    # quant_formats.md 0.2: 4,912,898,304 B of tensor data including rope_freqs (64 x F32 = 256 B), a
    # GGUF-only tensor kvcalc's model does not hold; llama.cpp prints "4.58 GiB (4.89 BPW)".
    model = _model(LLAMA_8B)
    fmt = parse_quant("Q4_K_M", model=model)
    assert model_weights_bytes(model, fmt) == 4_912_898_304 - 256
    assert round(bits_per_weight(model, fmt), 2) == 4.89
    counts = Counter(fmt.storage(t) for t in model.all_tensors() if t.role in ("attn_v", "ffn_down"))
    assert counts == {"Q6_K": 32, "Q4_K": 32}


# ---------------------------------------------------------------------------------------------------------
# A real GGUF file written with gguf.GGUFWriter
# ---------------------------------------------------------------------------------------------------------


def _write_gguf(path: Path, model: ModelSpec, fmt: GgufRecipe) -> None:
    """Write every tensor of `model` in the type `fmt` assigns: really quantized with gguf.quants where gguf
    implements the type, else raw bytes of the type's byte shape (GGUFWriter raw_dtype)."""
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(model.num_layers)
    for t in model.all_tensors():
        type_name = fmt.storage(t)
        qtype = gguf.GGMLQuantizationType[type_name]
        data = rng.standard_normal(t.shape).astype(np.float32)
        if type_name == "F32":
            w.add_tensor(t.name, data)
        elif type_name == "F16":
            w.add_tensor(t.name, data.astype(np.float16))
        else:
            try:
                packed = gguf.quants.quantize(data, qtype)
            except NotImplementedError:
                shape = gguf.quants.quant_shape_to_byte_shape(t.shape, qtype)
                packed = rng.integers(0, 255, size=shape, dtype=np.uint8)
            w.add_tensor(t.name, packed, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("ftype", ["Q4_K_M", "Q8_0", "Q3_K_M", "IQ4_XS"])
def test_real_gguf_tensor_bytes_equal_the_prediction(tmp_path: Path, ftype: str) -> None:
    model = _model(TINY)
    fmt = parse_quant(ftype, model=model)
    assert isinstance(fmt, GgufRecipe)
    path = tmp_path / f"tiny-{ftype}.gguf"
    _write_gguf(path, model, fmt)
    reader = gguf.GGUFReader(path)
    written = {t.name: int(t.n_bytes) for t in reader.tensors}
    by_name = {t.name: t for t in model.all_tensors()}
    for name, n_bytes in written.items():
        assert n_bytes == fmt.tensor_bytes(by_name[name], by_name[name].numel), name
    assert sum(written.values()) == model_weights_bytes(model, fmt)

    from kvcalc.sources.gguf_file import gguf_weights_bytes

    assert gguf_weights_bytes(path) == model_weights_bytes(model, fmt)


# ---------------------------------------------------------------------------------------------------------
# Pre-quantized checkpoints (configs written as literals from the published config.json files)
# ---------------------------------------------------------------------------------------------------------


def _quantized(config: dict[str, Any], qc: dict[str, Any]) -> ModelSpec:
    return _model({**config, "quantization_config": qc})


def test_deepseek_fp8_block_config() -> None:
    # deepseek-ai/DeepSeek-V3 config.json quantization_config (literal)
    qc = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}
    model = _quantized(TINY, qc)
    fmt = format_from_quantization_config(model)
    assert isinstance(fmt, Fp8Format) and fmt.granularity == "block"
    q = model.layers[0].tensors[0]  # attn_q 256 x 256: 65,536 B + fp32 [2, 2] scales = 16 B
    assert fmt.tensor_bytes(q, q.numel) == 65_536 + 16
    head = next(t for t in model.global_tensors if t.role == "output")
    assert fmt.storage(head) == "bf16"


def test_gpt_oss_mxfp4_config_sizes_the_checkpoint() -> None:
    # openai/gpt-oss-20b config.json: experts MXFP4, modules_to_not_convert BF16. Tensor bytes of the
    # checkpoint: 19,110,297,600 MXFP4 values x 17/32 B + 1,804,459,584 BF16 values x 2 B = 13,761,264,768 B
    # (huggingface.js parse-safetensors-metadata.spec.ts element counts).
    qc = {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens",
                                     "lm_head"], "quant_method": "mxfp4"}
    model = _quantized(GPT_OSS_20B, qc)
    fmt = format_from_quantization_config(model)
    assert isinstance(fmt, MxFp4Format)
    assert model_weights_bytes(model, fmt) == 19_110_297_600 * 17 // 32 + 1_804_459_584 * 2 == 13_761_264_768
    q = next(t for t in model.layers[0].tensors if t.role == "attn_q" and t.name.endswith(".weight"))
    assert fmt.storage(q) == "bf16"


def test_compressed_tensors_configs() -> None:
    w4a16 = {
        "quant_method": "compressed-tensors", "format": "pack-quantized", "ignore": ["lm_head"],
        "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": None,
                                      "weights": {"num_bits": 4, "type": "int", "symmetric": True,
                                                  "strategy": "group", "group_size": 128}}},
    }
    fmt = format_from_quantization_config(_quantized(TINY, w4a16))
    assert isinstance(fmt, PackedIntFormat) and fmt.bits == 4 and fmt.group == 128 and not fmt.zeros
    assert fmt.tensor_bytes(Q4096, Q4096.numel) == 8_388_608 + 262_144 + 16
    fp8_dynamic = {
        "quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
        "config_groups": {"group_0": {"targets": ["Linear"],
                                      "input_activations": {"num_bits": 8, "type": "float", "dynamic": True,
                                                            "strategy": "token"},
                                      "weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}},
    }
    fmt = format_from_quantization_config(_quantized(TINY, fp8_dynamic))
    assert isinstance(fmt, Fp8Format) and fmt.granularity == "channel"
    w8a8 = {
        "quant_method": "compressed-tensors", "format": "int-quantized", "ignore": ["lm_head"],
        "config_groups": {"group_0": {"targets": ["Linear"],
                                      "input_activations": {"num_bits": 8, "type": "int", "dynamic": True},
                                      "weights": {"num_bits": 8, "type": "int", "strategy": "channel"}}},
    }
    assert format_from_quantization_config(_quantized(TINY, w8a8)).name == "int8"  # type: ignore[union-attr]
    nvfp4 = {
        "quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized",
        "ignore": ["lm_head", "re:.*mlp.gate$"],
        "config_groups": {"group_0": {"targets": ["Linear"],
                                      "input_activations": {"num_bits": 4, "type": "float", "group_size": 16},
                                      "weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group",
                                                  "group_size": 16}}},
    }
    fmt = format_from_quantization_config(_quantized(TINY, nvfp4))
    assert isinstance(fmt, NvFp4Format) and {"output", "ffn_gate_inp"} <= fmt.keep


def test_gptq_awq_bnb_configs() -> None:
    gptq = {"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": True, "sym": True}
    fmt = format_from_quantization_config(_quantized(TINY, gptq))
    assert isinstance(fmt, PackedIntFormat) and fmt.group == 32 and fmt.g_idx and fmt.name == "gptq:4:32:act"
    awq = {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm", "zero_point": True}
    assert format_from_quantization_config(_quantized(TINY, awq)).name == "awq:4:128"  # type: ignore[union-attr]
    bnb = {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
           "bnb_4bit_use_double_quant": True, "llm_int8_skip_modules": None}
    assert format_from_quantization_config(_quantized(TINY, bnb)).name == "nf4:dq"  # type: ignore[union-attr]
    assert format_from_quantization_config(_quantized(TINY, {"quant_method": "hqq"})) is None
    assert format_from_quantization_config(_model(TINY)) is None


def test_ignore_lists_map_to_roles() -> None:
    assert roles_for_modules(["lm_head", "re:.*mlp.gate$", "model.layers.*.self_attn"]) == {
        "output", "ffn_gate_inp", "attn_*"}
    assert roles_for_modules(["model.layers.0.mlp.down_proj", "vision_tower"]) == {"blk.0.ffn_down"}


def test_fit_uses_the_checkpoint_format_and_reports_bits_per_weight() -> None:
    from kvcalc.report.fit import fit_deployment
    from kvcalc.sources.hardware import find_gpu
    from kvcalc.spec.deployment import EngineSettings

    model = _model(LLAMA_8B)
    fmt = parse_quant("fp8", model=model)
    report = fit_deployment(model, find_gpu("h100"), Parallel(tp=1), EngineSettings(), context=8192,
                            weight_format=fmt, advise=False)
    assert report.model.weights_bytes == model_weights_bytes(model, fmt)
    assert report.model.bits_per_weight == pytest.approx(bits_per_weight(model, fmt), abs=1e-4)
    # TP2 halves the quantized linears (and the padded vocab) per GPU
    one = weights_per_stage(model, Parallel(tp=1), fmt)[0].weights_bytes
    two = weights_per_stage(model, Parallel(tp=2), fmt)[0].weights_bytes
    assert two == pytest.approx(one / 2, rel=1e-3)


# ---------------------------------------------------------------------------------------------------------
# KV-cache dtypes
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "block"), [("fp8_e4m3", (1, 1)), ("fp8_e5m2", (1, 1)), ("int8", (1, 1)),
                                             ("fp8", (1, 1))])
def test_kv_plain_8bit(name: str, block: tuple[int, int]) -> None:
    st = storage_type(name)
    assert (st.block_elements, st.block_bytes) == block and st.bits_per_element == 8


@pytest.mark.parametrize(("name", "block"), [("q8_0", (32, 34)), ("q4_0", (32, 18)), ("q4_1", (32, 20)),
                                             ("q5_0", (32, 22)), ("q5_1", (32, 24)), ("iq4_nl", (32, 18))])
def test_kv_llama_cpp_types(name: str, block: tuple[int, int]) -> None:
    # llama.cpp --cache-type-k/v: block sizes from gguf's GGML_QUANT_SIZES (q8_0: 32 values in 34 B)
    st = storage_type(name.upper())
    expected = tuple(gguf.constants.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name.upper()]])
    assert (st.block_elements, st.block_bytes) == expected == block
    # 128 values (one head) take 4 blocks
    assert st.bytes_for(128) == 4 * block[1]


# ---------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}


def _kvcalc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvcalc", *args], capture_output=True, text=True, env=ENV,
                          timeout=120)


def test_cli_quant_json() -> None:
    r = _kvcalc("quant", "llama-3.1-8b", "--gpu", "h100", "--context", "8192", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    names = [row["format"] for row in doc["rows"]]
    assert names[:3] == ["bf16", "fp8", "int8"] and "Q4_K_M" in names and "IQ4_XS" in names
    q4 = next(row for row in doc["rows"] if row["format"] == "Q4_K_M")
    assert q4["weights_bytes"] == 4_912_898_304 - 256 and round(q4["bits_per_weight"], 2) == 4.89
    assert q4["fits"] and q4["kv_cache_tokens"] > 0 and "ppl" in q4["quality"]
    assert "explain" not in doc


def test_cli_fit_quant_and_errors() -> None:
    r = _kvcalc("fit", "llama-3.1-8b", "--quant", "awq:4:128", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["model"]["bits_per_weight"] == pytest.approx(5.706, abs=1e-3)
    bad = _kvcalc("fit", "llama-3.1-8b", "--quant", "q4_z")
    assert bad.returncode == 2 and "unknown quantization" in bad.stderr and bad.stdout == ""
    keep = _kvcalc("fit", "llama-3.1-8b", "--keep-fp16", "lm_head")
    assert keep.returncode == 2 and "--quant" in keep.stderr


# ---------------------------------------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------------------------------------


def test_more_bits_more_bytes_across_the_k_quant_ladder() -> None:
    model = _model(LLAMA_8B)
    ladder = ["Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "f16"]
    sizes = [model_weights_bytes(model, parse_quant(name)) for name in ladder]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert parse_quant("Q4_K_M").bits_per_weight(model) == pytest.approx(bits_per_weight(model, parse_quant("Q4_K_M")))


@given(k_blocks=st.integers(1, 64), n=st.integers(2, 4096), bits=st.sampled_from([2, 3, 4, 8]))
def test_smaller_groups_cost_more_and_bits_add_up(k_blocks: int, n: int, bits: int) -> None:
    k = 128 * k_blocks
    t = _t("blk.0.ffn_up.weight", n, k, role="ffn_up")
    sizes = [parse_quant(f"gptq:{bits}:{g}").tensor_bytes(t, t.numel) for g in (-1, 128, 64, 32)]
    assert sizes == sorted(sizes)
    # the packed weights alone are b bits per value (K * b is a multiple of 32 here)
    assert sizes[0] - 2 * n - 4 * -(-n * bits // 32) == k * n * bits // 8
