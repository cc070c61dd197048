"""Cross-check of kvcalc's torch modules against transformers' own (`from_config`, random weights), where
transformers is installed: the first K layers plus the embeddings and head, parameters counted and bytes
allocated. Skipped (with the reason) when transformers is absent or cannot build the architecture."""

from __future__ import annotations

from typing import Any

import torch

from kvcalc.bench.memory import allocated, release


def hf_config_for(config: dict[str, Any], layers: int) -> tuple[str, dict[str, Any]]:
    """model_type and config keys for a `layers`-layer copy of `config` (per-layer lists cut to length; the
    checkpoint's quantization dropped: random weights are built unquantized)."""
    cfg = {k: v for k, v in config.items() if k not in ("quantization_config", "auto_map", "architectures")}
    model_type = str(cfg.pop("model_type"))
    if model_type == "kimi_k2":
        model_type = "deepseek_v3"
    cfg["num_hidden_layers"] = layers
    for key in ("layer_types", "mlp_only_layers_list", "hybrid_override_pattern"):
        value = cfg.get(key)
        if isinstance(value, (list, str)):
            cfg[key] = value[:layers]
    return model_type, cfg


def hf_check(config: dict[str, Any] | None, layers: int, device: str) -> dict[str, Any]:
    """Params and allocated bytes of transformers' model of the first `layers` layers (bf16)."""
    if config is None:
        return {"skipped": "no config.json to hand to transformers (GGUF or Hub model)"}
    try:
        import transformers
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError:
        return {"skipped": "transformers is not installed"}
    release(device)
    before = allocated(device)
    try:
        model_type, cfg = hf_config_for(config, layers)
        hf_config = AutoConfig.for_model(model_type, **cfg)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.bfloat16)
    except Exception as exc:  # transformers refuses many things; the check is optional
        release(device)
        return {"skipped": f"transformers {transformers.__version__} could not build it: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    grown = allocated(device) - before if device == "cuda" else sum(
        p.numel() * p.element_size() for p in model.parameters()) + buffers
    del model
    release(device)
    return {"layers": layers, "params": int(params), "allocated_bytes": int(grown), "buffers_bytes": int(buffers),
            "transformers": str(transformers.__version__)}
