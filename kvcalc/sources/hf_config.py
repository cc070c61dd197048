"""Hugging Face `config.json` (a dict, parsed as data only) -> ModelSpec.

One small mapper per `model_type` family lives in `sources/families/`; this module picks the mapper,
extracts the text model from multimodal configs, and reads the fields every family shares (dtype, RoPE
scaling, quantization). Nothing here executes code from a config: `auto_map` / `trust_remote_code` are ignored.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from kvcalc.bounds import MAX_TOKENS, check_float, check_int, check_tree
from kvcalc.errors import InputError
from kvcalc.sources.families._build import Cfg, Parts
from kvcalc.sources.vision import vision_of
from kvcalc.spec.dtypes import torch_dtype_name
from kvcalc.spec.model import ModelSpec, RopeScaling

#: model_type -> module in kvcalc.sources.families that maps it (module exposes build(cfg, model_type)).
_MAPPERS: dict[str, str] = {
    **dict.fromkeys(
        (
            "llama",
            "mistral",
            "mixtral",
            "qwen2",
            "qwen2_moe",
            "qwen3",
            "qwen3_moe",
            "phi3",
            "gemma",
            "gemma2",
            "gemma3_text",
            "granite",
            "phi3_v",
            "internlm2",
            "qwen2_vl",
            "qwen2_vl_text",
            "qwen2_5_vl",
            "qwen2_5_vl_text",
            "qwen3_vl_text",
            "qwen3_vl_moe_text",
        ),
        "decoder",
    ),
    **dict.fromkeys(("deepseek_v2", "deepseek_v3", "kimi_k2"), "deepseek"),
    "gpt_oss": "gpt_oss",
    "gpt2": "gpt2",
    "falcon": "falcon",
    "llama4_text": "llama4",
    "qwen3_next": "qwen3_next",
    "qwen3_5_moe_text": "qwen3_next",
    "qwen3_5_text": "qwen3_next",
    "jamba": "jamba",
    "nemotron_h": "nemotron_h",
    "gemma4_text": "gemma4",
}

#: Multimodal wrappers: the text model sits in `text_config`.
_TEXT_CONFIG_KEYS = ("text_config", "llm_config", "language_config")

#: transformers' config-class defaults for the text models multimodal wrappers nest: transformers builds the
#: sub-config from those classes, so a checkpoint's `text_config` names only what differs (llava-hf/llava-1.5-7b-hf
#: gives vocab_size and max_position_embeddings; google/gemma-3-4b-it omits heads and vocabulary).
#: Sources: LlamaConfig, MistralConfig and Gemma3TextConfig `__init__` defaults (transformers
#: models/*/configuration_*.py).
_NESTED_TEXT_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
              "num_attention_heads": 32, "max_position_embeddings": 2048},
    "mistral": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072},
    "gemma3_text": {"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                    "max_position_embeddings": 131072, "sliding_window": 4096, "sliding_window_pattern": 6},
}

#: Keys a config must have for the generic Llama-style mapping of an unknown model_type.
_STANDARD_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
)


def supported_model_types() -> list[str]:
    return sorted(_MAPPERS)


def _mapper(model_type: str) -> Callable[[Cfg, str], Parts]:
    module = importlib.import_module(f"kvcalc.sources.families.{_MAPPERS[model_type]}")
    build: Callable[[Cfg, str], Parts] = module.build
    return build


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The text model's config (a multimodal wrapper's `text_config`): its class defaults
    (`_NESTED_TEXT_DEFAULTS`), then the top-level keys, then its own."""
    for key in _TEXT_CONFIG_KEYS:
        inner = config.get(key)
        if isinstance(inner, dict):
            merged = dict(_NESTED_TEXT_DEFAULTS.get(str(inner.get("model_type")), {}))
            merged.update({k: v for k, v in config.items() if k not in _TEXT_CONFIG_KEYS})
            merged.update(inner)
            if "model_type" not in inner:
                merged["model_type"] = f"{config.get('model_type')}_text"
            return merged
    return config


def _rope_scaling(cfg: Cfg) -> RopeScaling | None:
    raw = cfg.get("rope_scaling") or cfg.get("rope_parameters")
    if not isinstance(raw, dict):
        return None
    if (
        "rope_type" not in raw and "type" not in raw
    ):  # per-layer-kind dict (Gemma 4): take the full-attention one
        nested = raw.get("full_attention")
        raw = nested if isinstance(nested, dict) else {}
    rope_type = str(raw.get("rope_type") or raw.get("type") or "default")
    if rope_type == "default" and raw.get("factor") is None:
        return None
    factor = raw.get("factor")
    original = raw.get("original_max_position_embeddings")
    where = f"{cfg.where}: config field 'rope_scaling"
    return RopeScaling(
        rope_type=rope_type,
        factor=check_float(factor, f"{where}.factor'", maximum=1e6) if factor is not None else None,
        original_max_position_embeddings=check_int(original, f"{where}.original_max_position_embeddings'",
                                                   maximum=MAX_TOKENS) if original is not None else None,
    )


#: Model types whose SSM state vLLM keeps in fp32 whatever the config says (vLLM `nemotron_h.py`
#: `get_mamba_state_dtype_from_config` with mamba_ssm_cache_dtype float32 for NemotronH).
_FP32_SSM_STATE = frozenset({"nemotron_h"})


def _ssm_state_dtype(text: dict[str, Any], model_type: str) -> str | None:
    """The recurrent-state dtype: `mamba_ssm_dtype` / `mamba_ssm_cache_dtype` from the config, fp32 for the
    families vLLM forces to it, else None (= the model dtype)."""
    named = text.get("mamba_ssm_dtype") or text.get("mamba_ssm_cache_dtype")
    if named:
        return str(named)
    return "float32" if model_type in _FP32_SSM_STATE else None


def _rotary_dim(cfg: Cfg, parts: Parts) -> int:
    """Dimensions RoPE rotates per head: MLA's qk_rope_head_dim, else head_dim x partial_rotary_factor
    (1 unless the config or its rope parameters say otherwise)."""
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    factor = cfg.get("partial_rotary_factor") or (rope.get("partial_rotary_factor") if isinstance(rope, dict) else None)
    for layer in parts.layers:
        mixer = layer.mixer
        if getattr(mixer, "qk_rope_head_dim", None):
            return int(mixer.qk_rope_head_dim)
        if getattr(mixer, "head_dim", None):
            return int(mixer.head_dim * float(factor or 1.0))
    return 0


def _check_layers(parts: Parts, where: str) -> None:
    """Reject layer specs no engine could run: a non-positive window, query heads not a multiple of the KV
    heads, more experts per token than experts, non-positive sizes."""
    from kvcalc.spec.layers import FullAttention, MoEMLP

    for layer in parts.layers:
        mixer, mlp = layer.mixer, layer.mlp
        if isinstance(mixer, FullAttention):
            if mixer.window is not None and mixer.window <= 0:
                raise InputError(f"{where}: layer {layer.index}: window {mixer.window} must be positive")
            if mixer.num_heads % mixer.num_kv_heads:
                raise InputError(f"{where}: layer {layer.index}: {mixer.num_heads} query heads are not a multiple "
                                 f"of {mixer.num_kv_heads} KV heads")
        if isinstance(mlp, MoEMLP) and mlp.top_k > mlp.num_experts:
            raise InputError(f"{where}: layer {layer.index}: {mlp.top_k} experts per token but only "
                             f"{mlp.num_experts} experts")
        for t in layer.tensors:
            if any(dim <= 0 for dim in t.shape):
                raise InputError(f"{where}: tensor {t.name} has a non-positive dimension {t.shape}")


#: What a mapper raises when a config field has the wrong type or shape (a string where a number goes, a
#: dict where a list goes ...): caught once, here, and reported as bad input naming the model.
_SHAPE_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError, OverflowError)


def model_from_config(
    config: Any, *, model_id: str, hf_repo: str | None = None, warn: Callable[[str], None] | None = None
) -> ModelSpec:
    """Map a parsed config.json to a ModelSpec, or raise InputError naming what is wrong.

    Every config (file, Hub, profile, GGUF metadata) passes here: it is checked as a whole first (depth and
    size: `bounds.check_tree`), each size field as it is read (`Cfg.int`: a finite integer within its bound),
    and a field of the wrong type or value anywhere else (NaN where an int goes ...) is an InputError, never
    a traceback.
    """
    if not isinstance(config, dict):
        raise InputError(f"{model_id}: config.json must be a JSON object, got {type(config).__name__}")
    check_tree(config, f"{model_id}: config.json")
    try:
        return _map_config(config, model_id, hf_repo, warn)
    except _SHAPE_ERRORS as exc:
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(f"{model_id}: config.json has a field of the wrong type or value ({detail})") from None


def _map_config(
    config: dict[str, Any], model_id: str, hf_repo: str | None, warn: Callable[[str], None] | None
) -> ModelSpec:
    text = _text_config(config)
    cfg = Cfg(text, model_id)
    model_type = str(text.get("model_type") or config.get("model_type") or "")
    notes: list[str] = []
    if model_type not in _MAPPERS:
        missing = [k for k in _STANDARD_KEYS if text.get(k) is None]
        if missing:
            shown = model_type[:60] or "(none)"
            raise InputError(
                f"{model_id}: unknown model_type '{shown}' and the standard field(s) "
                f"{', '.join(missing)} are missing; supported types: {', '.join(supported_model_types())}"
            )
        note = (
            f"unknown model_type '{model_type[:60]}': mapped as a Llama-style decoder (gated MLP, no biases "
            "unless attention_bias/mlp_bias, untied unless tie_word_embeddings)"
        )
        (warn or (lambda m: print(f"warning: {m}", file=sys.stderr)))(note)
        notes.append(note)
        parts = _mapper("llama")(cfg, "llama")
    else:
        parts = _mapper(model_type)(cfg, model_type)
    _check_layers(parts, model_id)
    hidden = cfg.first_int(("hidden_size", "n_embd", "d_model"))
    vision, vision_notes = vision_of(config, hidden, model_id)
    architectures = config.get("architectures") or []
    quant = text.get("quantization_config") or config.get("quantization_config")
    return ModelSpec(
        id=model_id,
        hf_repo=hf_repo,
        model_type=model_type,
        architecture=str(architectures[0]) if isinstance(architectures, list) and architectures else None,
        dtype=torch_dtype_name(text.get("torch_dtype") or text.get("dtype") or config.get("torch_dtype")),
        hidden_size=hidden,
        vocab_size=cfg.int("vocab_size"),
        max_position_embeddings=cfg.optional_int(("max_position_embeddings", "n_positions", "n_ctx")),
        tie_word_embeddings=not any(t.role == "output" for t in parts.global_tensors),
        layers=tuple(parts.layers),
        global_tensors=tuple(parts.global_tensors),
        mtp_tensors=tuple(parts.mtp_tensors),
        vision=vision,
        rope_scaling=_rope_scaling(cfg),
        rotary_dim=_rotary_dim(cfg, parts),
        ssm_state_dtype=_ssm_state_dtype(text, model_type),
        quantization_config=quant if isinstance(quant, dict) else None,
        notes=tuple(notes + parts.notes + vision_notes),
    )
