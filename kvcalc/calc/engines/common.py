"""Pieces every engine module shares: which weight format is served and where that choice came from, the
per-stage token cell of engines with one flat pool, and the context check."""

from __future__ import annotations

from kvcalc.calc import kv as kvmod
from kvcalc.calc.weights import PlainFormat, WeightFormat
from kvcalc.errors import InputError
from kvcalc.spec.dtypes import StorageType
from kvcalc.spec.model import ModelSpec


def checkpoint_format(model: ModelSpec, dtype: str) -> tuple[WeightFormat, str]:
    """The checkpoint's stored format and where kvcalc read it: the config's `quantization_config` when it
    describes a quantized layout, else plain `dtype` (the dtype the engine serves the checkpoint in)."""
    if model.quantization_config is not None:
        from kvcalc.calc.quant import format_from_quantization_config

        stored = format_from_quantization_config(model)
        if stored is not None:
            method = model.quantization_config.get("quant_method", "quantization_config")
            return stored, f"checkpoint quantization_config ({method})"
    served = "" if dtype == model.dtype else f", served as {dtype}"
    return PlainFormat(dtype), f"checkpoint dtype {model.dtype}{served}"


def check_kv_dtype(engine: str, kv_name: str, allowed: frozenset[str]) -> None:
    """InputError when the engine has no KV cache of that dtype."""
    if kv_name.lower() not in allowed:
        names = ", ".join(sorted(allowed))
        raise InputError(f"--kv-dtype {kv_name} is not a {engine} KV-cache type; use one of {names}")


def resolve_format(model: ModelSpec, fmt: WeightFormat | None, dtype: str) -> tuple[WeightFormat, str]:
    """`fmt` when given (--quant), else the checkpoint's own format; with the source of the choice."""
    if fmt is not None:
        return fmt, "--quant"
    return checkpoint_format(model, dtype)


def stage_cell_bytes(model: ModelSpec, kv: StorageType, tp: int, layers: range) -> int:
    """KV bytes one token takes on one rank of a stage, every attention layer counted at full length (engines
    with one token pool keep window layers' tokens in the same pool): sum of per-layer bytes per token."""
    return max(1, sum(kvmod.layer_kv_bytes_per_token(model.layers[i], kv, tp) for i in layers))


def derived_max_model_len(model: ModelSpec) -> int | None:
    """The longest context the engine derives from the config (vLLM `_get_and_verify_max_len`, SGLang the
    same): max_position_embeddings, times the rope scaling factor for scaling types that extend it (not su,
    longrope, llama3); for yarn the factor multiplies original_max_position_embeddings."""
    limit = model.max_position_embeddings
    scaling = model.rope_scaling
    if limit is None or scaling is None or not scaling.factor:
        return limit
    if scaling.rope_type in ("su", "longrope", "llama3", "default", "mrope"):
        return limit
    base = scaling.original_max_position_embeddings if scaling.rope_type == "yarn" and \
        scaling.original_max_position_embeddings else limit
    return int(base * scaling.factor)


def context_refusal(model: ModelSpec, max_len: int, engine: str, env: str) -> str | None:
    """The engine's start-up error when the context exceeds what it derives from the config."""
    derived = derived_max_model_len(model)
    if derived and max_len > derived:
        return (f"User-specified max_model_len ({max_len:,}) is greater than the derived max_model_len ({derived:,}, "
                f"from the model's config.json); {engine} refuses it unless {env}=1 (the model was not trained for "
                "it)")
    return None


def context_warnings(model: ModelSpec, max_len: int, engine: str) -> list[str]:
    """A warning when the context exceeds the model's trained positions (for engines that accept it)."""
    limit = derived_max_model_len(model)
    if limit and max_len > limit:
        return [f"context {max_len:,} exceeds the {limit:,} positions the model was trained for; {engine} runs it "
                "but quality is not assured"]
    return []


def replica_warnings(dp: int) -> list[str]:
    """With dp > 1 data-parallel replicas, a warning that capacity and concurrency are one replica's."""
    if dp > 1:
        return [f"capacity and concurrency are per data-parallel replica: {dp} replicas hold {dp}x the tokens "
                "and requests"]
    return []
