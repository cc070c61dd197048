"""Vision towers of multimodal checkpoints: parameters against published totals, and the bytes vLLM loads.

Configs are written from the checkpoints' published config.json fields (vision_config and the text model's
sizes). Every total below is a published figure: the checkpoint's parameter count (Hugging Face's safetensors
metadata, model.safetensors.index.json total_size / 2 for these all-16-bit checkpoints, or a library's test
that builds the model from its config): text + vision + projector must equal it exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kvcalc.calc.params import params_total
from kvcalc.calc.vision import vision_weight_bytes
from kvcalc.sources.hf_config import model_from_config

SIGLIP_GEMMA3 = {"model_type": "siglip_vision_model", "hidden_size": 1152, "image_size": 896,
                 "intermediate_size": 4304, "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14,
                 "vision_use_head": False}


def gemma3(hidden: int, inter: int, layers: int, heads: int, kv: int, head_dim: int) -> dict[str, Any]:
    return {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"], "vision_config": SIGLIP_GEMMA3,
            "text_config": {"model_type": "gemma3_text", "hidden_size": hidden, "intermediate_size": inter,
                            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
                            "head_dim": head_dim, "vocab_size": 262208, "sliding_window": 1024}}


def qwen3_vl(depth: int, vh: int, vi: int, out: int, deepstack: list[int], hidden: int, inter: int, layers: int,
             heads: int, tied: bool) -> dict[str, Any]:
    vision = {"model_type": "qwen3_vl", "depth": depth, "hidden_size": vh, "intermediate_size": vi, "num_heads": 16,
              "in_channels": 3, "patch_size": 16, "temporal_patch_size": 2, "spatial_merge_size": 2,
              "num_position_embeddings": 2304, "out_hidden_size": out, "deepstack_visual_indexes": deepstack}
    return {"model_type": "qwen3_vl", "vision_config": vision,
            "text_config": {"model_type": "qwen3_vl_text", "hidden_size": hidden, "intermediate_size": inter,
                            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": 8,
                            "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": tied}}


def qwen2_5_vl(hidden: int, inter: int, layers: int, heads: int, kv: int, vocab: int, tied: bool) -> dict[str, Any]:
    vision = {"model_type": "qwen2_5_vl", "depth": 32, "hidden_size": 1280, "intermediate_size": 3420,
              "num_heads": 16, "in_chans": 3, "patch_size": 14, "temporal_patch_size": 2, "spatial_merge_size": 2,
              "out_hidden_size": hidden}
    return {"model_type": "qwen2_5_vl", "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": vocab,
            "tie_word_embeddings": tied, "vision_config": vision}


def qwen2_vl(hidden: int, inter: int, layers: int, heads: int, kv: int, tied: bool) -> dict[str, Any]:
    # Qwen2-VL's vision_config names its width embed_dim; its hidden_size is the text model's
    vision = {"model_type": "qwen2_vl", "depth": 32, "embed_dim": 1280, "hidden_size": hidden, "mlp_ratio": 4,
              "num_heads": 16, "in_chans": 3, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    return {"model_type": "qwen2_vl", "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": 151936 if tied else 152064,
            "tie_word_embeddings": tied, "vision_config": vision}


MISTRAL_SMALL_3_1 = {
    "model_type": "mistral3", "spatial_merge_size": 2, "multimodal_projector_bias": False, "vision_feature_layer": -1,
    "vision_config": {"model_type": "pixtral", "hidden_size": 1024, "intermediate_size": 4096,
                      "num_hidden_layers": 24, "num_attention_heads": 16, "head_dim": 64, "image_size": 1540,
                      "patch_size": 14},
    "text_config": {"model_type": "mistral", "hidden_size": 5120, "intermediate_size": 32768, "num_hidden_layers": 40,
                    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 131072}}
GRANITE_VISION_3_3_2B = {
    "model_type": "llava_next", "vision_feature_layer": [-24, -20, -12, -1], "tie_word_embeddings": True,
    "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152, "image_size": 384,
                      "intermediate_size": 4304, "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14},
    "text_config": {"model_type": "granite", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 40,
                    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 49156,
                    "tie_word_embeddings": True}}
LLAVA_1_5_7B = {
    "model_type": "llava", "vision_feature_layer": -2,
    "vision_config": {"model_type": "clip_vision_model", "hidden_size": 1024, "image_size": 336,
                      "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24, "patch_size": 14},
    "text_config": {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                    "num_attention_heads": 32, "vocab_size": 32064}}
KIMI_VL_VISION = {"model_type": "moonvit", "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
                  "num_attention_heads": 16, "patch_size": 14, "init_pos_emb_height": 64, "init_pos_emb_width": 64,
                  "merge_kernel_size": [2, 2]}

#: (config, published total parameters, source).
PUBLISHED = {
    # HF safetensors metadata; model.safetensors.index.json total_size 8,600,158,944 B = 2 x this
    "gemma-3-4b-it": (gemma3(2560, 10240, 34, 8, 4, 256), 4_300_079_472),
    "gemma-3-12b-it": (gemma3(3840, 15360, 48, 16, 8, 256), 12_187_325_040),  # HF API safetensors.total
    # medgemma-27b-it (same architecture) total_size 54,864,813,280 B = 2 x this
    "gemma-3-27b-it": (gemma3(5376, 21504, 62, 32, 16, 128), 27_432_406_640),
    "Mistral-Small-3.1-24B": (MISTRAL_SMALL_3_1, 24_011_361_280),  # keras-hub mistral3 presets
    "granite-vision-3.3-2b": (GRANITE_VISION_3_3_2B, 2_975_396_928),  # HF API "Params"
    # a public table of parameter counts per model id (qwen/qwen2-vl-2b/7b/72b-instruct)
    "Qwen2-VL-2B": (qwen2_vl(1536, 8960, 28, 12, 2, True), 2_208_985_600),
    "Qwen2-VL-7B": (qwen2_vl(3584, 18944, 28, 28, 4, False), 8_291_375_616),
    "Qwen2-VL-72B": (qwen2_vl(8192, 29568, 80, 64, 8, False), 73_405_560_320),
    "Qwen2.5-VL-3B": (qwen2_5_vl(2048, 11008, 36, 16, 2, 151936, True), 3_754_622_976),  # mteb n_parameters
    "Qwen2.5-VL-7B": (qwen2_5_vl(3584, 18944, 28, 28, 4, 152064, False), 8_292_166_656),  # HF numParameters
    "Qwen3-VL-2B": (qwen3_vl(24, 1024, 4096, 2048, [5, 11, 17], 2048, 6144, 28, 16, True), 2_127_532_032),
    "Qwen3-VL-4B": (qwen3_vl(24, 1024, 4096, 2560, [5, 11, 17], 2560, 9728, 36, 32, True), 4_437_815_808),
    "Qwen3-VL-8B": (qwen3_vl(27, 1152, 4304, 4096, [8, 16, 24], 4096, 12288, 36, 32, False), 8_767_123_696),
    # transformers' test: count_parameters(LlavaForConditionalGeneration(config)) == 7,063,427,072
    "llava-1.5-7b-hf": (LLAVA_1_5_7B, 7_063_427_072),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_text_plus_vision_is_the_published_total(name: str) -> None:
    config, total = PUBLISHED[name]
    model = model_from_config(config, model_id=name)
    assert model.vision is not None and model.notes == ()
    assert params_total(model) + model.vision_params == total


def test_siglip_tower_of_gemma3_by_hand() -> None:
    # patch conv 3 x 14^2 x 1152 + 1152 bias = 678,528; positions (896/14)^2 = 4096 x 1152 = 4,718,592;
    # post_layernorm 2,304; a layer 4 x 1152^2 + 2 x 1152 x 4304 + 4304 + 9 x 1152 = 15,239,504, x 27 =
    # 411,466,608; no pooling head (vision_use_head false): 416,866,032. Projector 1152 x 2560 + 1152.
    model = model_from_config(PUBLISHED["gemma-3-4b-it"][0], model_id="g")
    assert model.vision is not None
    assert model.vision.tower.params == 416_866_032
    assert model.vision.projector_params == 2_950_272


def test_granite_vision_stores_an_unused_siglip_head() -> None:
    # vision_use_head defaults to true: probe 1152 + in_proj 3 x 1152^2 + 3 x 1152 + out_proj 1152^2 + 1152
    # + LayerNorm 2 x 1152 + MLP 2 x 1152 x 4304 + 4304 + 1152 = 15,238,352, stored and never run
    model = model_from_config(GRANITE_VISION_3_3_2B, model_id="granite")
    assert model.vision is not None and model.vision.tower.unused_params == 15_238_352


def test_vllm_shards_the_tower_and_keeps_gemma3s_projection_whole() -> None:
    # gemma-3-27b at tp 2: layers 411,466,608 / 2 = 205,733,304 per rank; patch conv, positions and
    # post-norm 678,528 + 4,718,592 + 2,304 = 5,399,424 and the projection 1152 x 5376 + 1152 = 6,194,304
    # whole: 217,327,032 params x 2 B
    model = model_from_config(PUBLISHED["gemma-3-27b-it"][0], model_id="g27")
    assert vision_weight_bytes(model.vision, tp=2, dtype_bytes=2) == 434_654_064


def test_vllm_builds_llava_only_up_to_its_feature_layer() -> None:
    # vision_feature_layer -2 of 24 CLIP layers: 23 built (12,596,224 each = 289,713,152); class 1024 +
    # conv 602,112 + 577 positions x 1024 + pre-norm 2048 = 1,196,032; projector 1024 x 4096 + 4096^2 + 2 x 4096
    # = 20,979,712; the last layer and post_layernorm not built: 311,888,896 params x 2 B at tp 1
    model = model_from_config(LLAVA_1_5_7B, model_id="llava")
    assert model.vision is not None and model.vision.layers_run == 23
    assert vision_weight_bytes(model.vision, tp=1, dtype_bytes=2) == 623_777_792


def test_kimi_vl_projector_is_whole_on_every_rank() -> None:
    text = {"model_type": "deepseek_v3", "hidden_size": 2048, "intermediate_size": 11264, "moe_intermediate_size": 1408,
            "num_hidden_layers": 2, "num_attention_heads": 16, "num_key_value_heads": 16, "n_routed_experts": 64,
            "n_shared_experts": 2, "num_experts_per_tok": 6, "first_k_dense_replace": 1, "kv_lora_rank": 512,
            "q_lora_rank": None, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
            "vocab_size": 163840}
    model = model_from_config({"model_type": "kimi_vl", "vision_config": KIMI_VL_VISION, "text_config": text},
                              model_id="kimi")
    # MoonViT = SigLIP-SO400M's numbers with a 64 x 64 position grid: 416,866,032; projector LayerNorm 2304 +
    # 4608^2 + 4608 + 4608 x 2048 + 2048 = 30,679,808, whole on every rank; at tp 4 the 27 layers split:
    # 411,466,608 / 4 = 102,866,652 + embeddings 5,399,424 + 30,679,808 = 138,945,884 params x 2 B
    assert model.vision is not None and model.vision.params == 416_866_032 + 30_679_808
    assert vision_weight_bytes(model.vision, tp=4, dtype_bytes=2) == 277_891_768


def test_unknown_wrapper_or_bad_vision_config_is_a_note_not_an_error() -> None:
    text = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "vocab_size": 100}
    odd = model_from_config({"model_type": "new_vlm", "text_config": text, "vision_config": {"depth": 2}}, model_id="x")
    assert odd.vision is None and any("vision tower" in n for n in odd.notes)
    bad = model_from_config({"model_type": "gemma3", "text_config": {**text, "model_type": "gemma3_text"},
                             "vision_config": {**SIGLIP_GEMMA3, "hidden_size": "wide"}}, model_id="y")
    assert bad.vision is None and any("not computable" in n for n in bad.notes)


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}


def _fit(path: Path, *extra: str) -> dict[str, Any]:
    run = subprocess.run([sys.executable, "-m", "kvcalc", "fit", str(path), "--gpu", "h100", "--context", "8192",
                          "--json", *extra], capture_output=True, text=True, env=ENV, timeout=120)
    assert run.returncode == 0, run.stderr
    return dict(json.loads(run.stdout))


def test_fit_loads_the_tower_unless_language_model_only(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(PUBLISHED["gemma-3-4b-it"][0]))
    served, text_only = _fit(path), _fit(path, "--language-model-only")
    # at tp 1 every vision parameter is loaded: 416,866,032 + 2,950,272 = 419,816,304 params x 2 B
    weights = served["per_gpu"]["weights_bytes"] - text_only["per_gpu"]["weights_bytes"]
    assert weights == 839_632_608
    assert text_only["per_gpu"]["kv_cache_bytes"] > served["per_gpu"]["kv_cache_bytes"]


def _scout(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvcalc", "fit", "llama-4-scout", "--gpu", "h100", "--tp", "4",
                           "--context", "8192", *extra], capture_output=True, text=True, env=ENV, timeout=120)


def test_fit_explains_the_tower_and_other_engines_ignore_the_flag() -> None:
    run = _scout("--explain")
    assert run.returncode == 0, run.stderr
    # Llama 4's tower at tp 4: 34 layers x 23,807,872 + adapter 39,845,888 = 849,313,536 split four ways =
    # 212,328,384, + the projector 5120 x 4096 = 20,971,520 / 4 = 5,242,880, + patch, class, positions and
    # norms 1,647,360 whole = 219,218,624 x 2 B
    assert "bf16 x [1,647,360 + 0 + (34 x 23,807,872 + 39,845,888) / 4 + 20,971,520 / 4]" in run.stdout
    assert json.loads(_scout("--json").stdout)["assumptions"]["vision_tower_bytes"]["value"] == 438_437_248
    other = _scout("--engine", "sglang", "--language-model-only", "--json")
    assert other.returncode == 0 and "--language-model-only applies to vllm, not sglang" in other.stderr


def test_vllm_counts_qwen3_vl_deepstack_buffers_in_the_weights(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(PUBLISHED["Qwen3-VL-8B"][0]))
    base = _fit(path, "--max-num-batched-tokens", "8192", "--language-model-only")
    served = _fit(path, "--max-num-batched-tokens", "8192")
    # tower + mergers at tp 1: 576,388,336 params x 2 B = 1,152,776,672 B; deepstack buffers, 3 levels x 8,192
    # tokens x 4,096 x 2 B = 201,326,592 B (vLLM qwen3_vl.py deepstack_input_embeds)
    assert served["per_gpu"]["weights_bytes"] - base["per_gpu"]["weights_bytes"] == 1_152_776_672 + 201_326_592


def test_mm_encoder_tp_mode_data_keeps_a_whole_tower_where_vllm_allows_it(tmp_path: Path) -> None:
    # Llama 4 declares supports_encoder_tp_data: its tower whole, (1,647,360 + 849,313,536) on every GPU at
    # tp 4, while its projector (a ColumnParallelLinear) stays split, 20,971,520 / 4: 856,203,776 x 2 B
    doc = json.loads(_scout("--mm-encoder-tp-mode", "data", "--json").stdout)
    assert doc["assumptions"]["vision_tower_bytes"]["value"] == 1_712_407_552
    # Gemma 3 does not: vLLM falls back to "weights", the tower stays split
    path = tmp_path / "config.json"
    path.write_text(json.dumps(PUBLISHED["gemma-3-27b-it"][0]))
    split = _fit(path, "--tp", "2")["per_gpu"]["weights_bytes"]
    assert _fit(path, "--tp", "2", "--mm-encoder-tp-mode", "data")["per_gpu"]["weights_bytes"] == split


#: Verbatim config.json files, which name only what differs from transformers' config-class defaults.
LLAVA_1_5_VERBATIM = {
    "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": 32000,
    "model_type": "llava", "pad_token_id": 32001, "projector_hidden_act": "gelu",
    "text_config": {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
                    "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
                    "torch_dtype": "float16", "vocab_size": 32064},
    "tie_word_embeddings": False, "torch_dtype": "float16",
    "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                      "model_type": "clip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 24,
                      "patch_size": 14, "projection_dim": 768, "vocab_size": 32000},
    "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "vocab_size": 32064}
GEMMA_3_4B_VERBATIM = {
    "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
    "image_token_index": 262144, "mm_tokens_per_image": 256, "model_type": "gemma3", "torch_dtype": "bfloat16",
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                    "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                    "sliding_window": 1024},
    "vision_config": SIGLIP_GEMMA3}


@pytest.mark.parametrize(("config", "total"), [(LLAVA_1_5_VERBATIM, 7_063_427_072),
                                               (GEMMA_3_4B_VERBATIM, 4_300_079_472)])
def test_verbatim_configs_take_transformers_text_defaults(config: dict[str, Any], total: int) -> None:
    # llava-1.5's text_config gives only vocab 32064: LlamaConfig's 4096 / 11008 / 32 layers / 32 heads fill
    # the rest (vicuna-7b); gemma-3-4b's omits heads and vocabulary: Gemma3TextConfig's 8 heads, 4 KV heads of
    # 256 and 262,208 rows
    model = model_from_config(config, model_id="verbatim")
    assert params_total(model) + model.vision_params == total


def _tower_bytes(path: Path, *extra: str) -> int:
    return int(_fit(path, *extra)["assumptions"]["vision_tower_bytes"]["value"])


def test_vllm_release_and_dtype_rules_for_towers(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**PUBLISHED["Qwen3-VL-8B"][0], "torch_dtype": "float32"}))
    # an fp32 checkpoint is served in bf16: the tower is 576,388,336 x 2 B, not x 4
    assert _tower_bytes(path) == 1_152_776_672
    # Qwen3-VL's deepstack buffers, 3 x 8,192 x 4,096 x 2 B = 201,326,592, stay allocated under
    # --language-model-only until v0.27 (use_deepstack did not look at the tower), not from v0.28
    def weights(*extra: str) -> int:
        return int(_fit(path, "--max-num-batched-tokens", "8192", "--language-model-only", *extra)
                   ["per_gpu"]["weights_bytes"])
    assert weights("--engine-version", "0.27.0") - weights("--engine-version", "0.28.0") == 201_326_592


def test_vllm_builds_the_tower_on_every_pipeline_stage_before_v033(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(PUBLISHED["gemma-3-27b-it"][0]))
    stages = {v: _fit(path, "--pp", "2", "--engine-version", v)["stages"] for v in ("0.32.0", "0.33.0")}
    last = {v: s[-1]["weights_bytes"] for v, s in stages.items()}
    # v0.32: the last stage builds the SigLIP tower too (423,060,336 params x 2 B at tp 1); v0.33 runs Model
    # Runner V2 for this dense model and skips it on non-first stages
    assert last["0.32.0"] - last["0.33.0"] == 846_120_672


def test_gemma4_tower_is_whole_on_every_gpu_in_vllm() -> None:
    def tower(tp: str) -> int:
        run = subprocess.run([sys.executable, "-m", "kvcalc", "fit", "gemma-4-26b-a4b", "--gpu", "h100", "--tp", tp,
                              "--context", "8192", "--json"], capture_output=True, text=True, env=ENV, timeout=120)
        return int(json.loads(run.stdout)["assumptions"]["vision_tower_bytes"]["value"])
    # gemma4_mm.py builds the tower with transformers' AutoModel: every linear replicated, so tp 2 holds what tp 1
    # holds. The profile's tower (h 1152, 16 heads = 16 KV heads of 72, I 4304, patch 16, 10,240 positions,
    # standardize): a layer q, o 2 x 1152^2 + k, v 2 x 1152^2 + q/k norms 144 + MLP 3 x 1152 x 4304 + norms 4,608
    # = 20,187,792, x 27 = 545,070,384; patch 1152 x 3 x 16^2 = 884,736 + positions 2 x 10,240 x 1152 =
    # 23,592,960 + std 2,304; projection 2816 x 1152 = 3,244,032: 572,794,416 params x 2 B
    assert tower("1") == tower("2") == 1_145_588_832


def test_other_encoders_are_named_in_a_note() -> None:
    config = {**GEMMA_3_4B_VERBATIM, "audio_config": {"hidden_size": 1536}}
    assert "audio_config present: not counted" in model_from_config(config, model_id="a").notes


def test_llava_onevision_takes_the_llava_next_projector_and_the_last_layer() -> None:
    text = {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
            "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152128}
    vision = {"model_type": "siglip_vision_model", "hidden_size": 1152, "image_size": 384, "intermediate_size": 4304,
              "num_attention_heads": 16, "num_hidden_layers": 26, "patch_size": 14, "vision_use_head": False}
    model = model_from_config({"model_type": "llava_onevision", "text_config": text, "vision_config": vision},
                              model_id="ov")
    # SigLIP at 384 px: patch conv 677,376 + 1,152, (384 // 14)^2 = 729 positions x 1152 = 839,808, post-norm
    # 2,304, 26 layers x 15,239,504 = 396,227,104 -> 397,747,744; projector 1152 x 3584 + 3584^2 + 2 x 3584 =
    # 16,980,992 and image_newline 3,584; vision_feature_layer defaults to -1: all 26 layers run
    assert model.vision is not None and model.vision.layers_run == 26
    assert model.vision_params == 397_747_744 + 16_980_992 + 3_584


def test_phi3_5_vision_sizes_its_fixed_clip_tower() -> None:
    config = {"model_type": "phi3_v", "architectures": ["Phi3VForCausalLM"], "hidden_size": 3072,
              "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
              "vocab_size": 32064, "tie_word_embeddings": False, "max_position_embeddings": 131072,
              "img_processor": {"image_dim_out": 1024, "model_name": "openai/clip-vit-large-patch14-336",
                                "name": "clip_vision_model", "num_img_tokens": 144}}
    model = model_from_config(config, model_id="phi-3.5-vision")
    # CLIP ViT-L/14-336 303,507,456 (as llava-1.5's); glb_GN + sub_GN 2 x 4096, img_projection 4096 x 3072 + 3072
    # + 3072^2 + 3072 = 22,026,240: 22,034,432; the published total of microsoft/Phi-3.5-vision-instruct
    # (a public table of parameter counts per model id) is 4,146,621,440
    assert model.vision is not None and model.vision.layers_run == 23
    assert model.vision.projector_params == 22_034_432
    assert params_total(model) + model.vision_params == 4_146_621_440


VIT_300M = {"model_type": "intern_vit_6b", "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
            "num_attention_heads": 16, "image_size": 448, "patch_size": 14, "qkv_bias": True,
            "qk_normalization": False, "norm_type": "layer_norm"}
VIT_6B = {"model_type": "intern_vit_6b", "hidden_size": 3200, "intermediate_size": 12800, "num_hidden_layers": 45,
          "num_attention_heads": 25, "image_size": 448, "patch_size": 14, "qkv_bias": False,
          "qk_normalization": True, "norm_type": "rms_norm"}


def _llm(kind: str, hidden: int, inter: int, layers: int, heads: int, kv: int, vocab: int) -> dict[str, Any]:
    return {"model_type": kind, "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": vocab, "tie_word_embeddings": False}


@pytest.mark.parametrize(("vision", "llm", "total"), [
    (VIT_300M, _llm("qwen2", 896, 4864, 24, 14, 2, 151674), 938_193_024),  # InternVL2.5-1B
    (VIT_300M, _llm("qwen2", 2048, 11008, 36, 16, 2, 151674), 3_712_637_952),  # InternVL2.5-4B
    (VIT_300M, _llm("internlm2", 4096, 14336, 32, 32, 8, 92553), 8_075_365_376),  # InternVL2.5-8B
    (VIT_6B, _llm("internlm2", 6144, 16384, 48, 48, 8, 92553), 25_514_186_112),  # InternVL2.5-26B
])
def test_internvl_matches_published_totals(vision: dict[str, Any], llm: dict[str, Any], total: int) -> None:
    # published in the same public table of parameter counts (opengvlab/internvl2_5-*). InternViT-300M:
    # class token 1,024 + patch conv 602,112 + 1,024 + (448 / 14)^2 + 1 = 1,025 positions x 1,024 = 1,653,760;
    # a layer 4 x 1024^2 + 2 x 1024 x 4096 + 4096 + 9 x 1024 + layer scales 2,048 = 12,598,272, x 24 ->
    # 304,012,288; mlp1 over 4 x 1024 = 4,096 features: LayerNorm 8,192 + 4096 x D + D + D^2 + D
    config = {"model_type": "internvl_chat", "select_layer": -1, "downsample_ratio": 0.5, "vision_config": vision,
              "llm_config": llm}
    model = model_from_config(config, model_id="internvl")
    assert model.notes == () and params_total(model) + model.vision_params == total


def test_internvit_6b_attention_is_whole_when_its_25_heads_do_not_divide_tp() -> None:
    config = {"model_type": "internvl_chat", "select_layer": -1, "downsample_ratio": 0.5, "vision_config": VIT_6B,
              "llm_config": _llm("internlm2", 6144, 16384, 48, 48, 8, 92553)}
    vision = model_from_config(config, model_id="internvl-26b").vision
    # a layer's attention: qkv 3 x 3200^2 + proj 3200^2 + 3200 + q/k norms 6,400 = 40,969,600; the rest of the
    # layer 122,918,400 - 40,969,600 = 81,948,800. At tp 4 the MLP splits, 45 x 81,948,800 / 4 = 921,924,000;
    # the attention stays whole (25 % 4 != 0), 45 x 40,969,600 = 1,843,632,000; embeddings 5,168,000 and mlp1
    # 116,429,824 whole: 2,887,153,824 params x 2 B. At tp 5 the heads divide: everything in the layers splits.
    assert vision_weight_bytes(vision, tp=4, dtype_bytes=2) == 5_774_307_648
    assert vision_weight_bytes(vision, tp=5, dtype_bytes=2) == 2 * (5_168_000 + 116_429_824 + 45 * 122_918_400 // 5)
