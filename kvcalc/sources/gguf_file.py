"""A llama.cpp `.gguf` file -> ModelSpec, with exact parameter and byte counts from its tensor table.

GGUF layout (github.com/ggml-org/ggml/blob/master/docs/gguf.md): magic, version, tensor count, metadata
key/values, then one info record per tensor (name, dims with ne[0] innermost, ggml type, offset), then the
aligned tensor data. `gguf.GGUFReader` memory-maps the file, so nothing below reads tensor data.

The architecture comes from `general.architecture`; its hyper-parameters from the `<arch>.*` keys
(gguf-py `gguf/constants.py::Keys`), rewritten as the Hugging Face config.json fields that llama.cpp's
`convert_hf_to_gguf.py` read them from, then mapped by `sources.hf_config.model_from_config`. What keys do
not say is read off the tensor table: q/k/v biases (`blk.0.attn_q.bias`), tied embeddings (no
`output.weight`), vocabulary size (`token_embd.weight` ne[1]).

Counts are then made exact: params = sum of tensor element counts (logical values, whatever the
quantization), weights bytes = sum of tensor data bytes (`n_elements / block_size * type_size`, padding and
metadata excluded). Split files (`name-00001-of-00003.gguf`, llama.cpp `gguf-split`) are summed over every
shard. `dtype` is set to fp16: llama.cpp's default KV-cache type (`--cache-type-k/v f16`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvcalc.errors import EnvironmentProblem, InputError
from kvcalc.spec.base import replace
from kvcalc.spec.model import ModelSpec

#: GGUF architecture -> Hugging Face model_type (the llama arch with experts is Mixtral, fixed up below).
GGUF_ARCHITECTURES: dict[str, str] = {
    "llama": "llama",
    "qwen2": "qwen2",
    "qwen2moe": "qwen2_moe",
    "qwen3": "qwen3",
    "qwen3moe": "qwen3_moe",
    "gemma": "gemma",
    "gemma2": "gemma2",
    "gemma3": "gemma3_text",
    "phi3": "phi3",
}

#: `<arch>.<suffix>` key -> config.json field.
_KEYS: dict[str, str] = {
    "block_count": "num_hidden_layers",
    "embedding_length": "hidden_size",
    "feed_forward_length": "intermediate_size",
    "context_length": "max_position_embeddings",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.key_length": "head_dim",
    "attention.sliding_window": "sliding_window",
    "expert_count": "num_experts",
    "expert_used_count": "num_experts_per_tok",
    "expert_feed_forward_length": "moe_intermediate_size",
    "expert_shared_feed_forward_length": "shared_expert_intermediate_size",
    "vocab_size": "vocab_size",
}

_SPLIT_NAME = re.compile(r"^(?P<stem>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
_KV_NOTE = "GGUF: dtype fp16 is llama.cpp's default KV-cache type; weights are counted from the file"


@dataclass(frozen=True)
class _Tensor:
    name: str
    ggml_type: int
    dims: tuple[int, ...]  # ne[0] first (innermost), as GGUF stores them
    n_elements: int
    n_bytes: int


def _reader(path: Path) -> Any:
    """gguf's reader over `path`, after `gguf_header.check_gguf_header` has walked the header with every
    count and length bounded (GGUFReader itself trusts them)."""
    from kvcalc.sources.gguf_header import check_gguf_header

    check_gguf_header(path)
    try:
        from gguf import GGUFReader
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise EnvironmentProblem(f"{path}: reading .gguf files needs the gguf package: pip install gguf") from exc
    try:
        return GGUFReader(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    except Exception as exc:  # ValueError/IndexError/KeyError... on a malformed or truncated file
        raise InputError(f"{path}: not a readable GGUF file: {exc}") from exc


def _value(field: Any) -> Any:
    """A metadata value: str, int, float, bool, or a list of them (string arrays as their length only)."""
    from gguf import GGUFValueType

    types = list(field.types)
    if not types:
        return None
    if types[0] == GGUFValueType.ARRAY:
        if types[-1] == GGUFValueType.STRING:
            return len(field.data)
        return [field.parts[i].tolist()[0] for i in field.data]
    if types[0] == GGUFValueType.STRING:
        return bytes(field.parts[-1]).decode("utf-8", errors="replace")
    return field.parts[-1].tolist()[0]


def _metadata(reader: Any) -> dict[str, Any]:
    return {name: _value(field) for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def _tensors(reader: Any) -> list[_Tensor]:
    return [
        _Tensor(
            name=t.name,
            ggml_type=int(t.tensor_type),
            dims=tuple(int(d) for d in t.shape),
            n_elements=int(t.n_elements),
            n_bytes=int(t.n_bytes),
        )
        for t in reader.tensors
    ]


def _shards(path: Path, meta: dict[str, Any]) -> list[Path]:
    """Every file of a split GGUF (llama.cpp names them `<stem>-%05d-of-%05d.gguf`), or just `path`."""
    count = meta.get("split.count")
    if not isinstance(count, int) or count <= 1:
        return [path]
    match = _SPLIT_NAME.match(path.name)
    if match is None:
        raise InputError(f"{path}: split GGUF ({count} files) not named <name>-00001-of-{count:05d}.gguf")
    shards = [path.with_name(f"{match['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        shown = ", ".join(missing[:3])
        raise InputError(f"{path}: split GGUF is missing {len(missing)} of {count} files: {shown}")
    return shards


def _read(path: Path) -> tuple[dict[str, Any], list[_Tensor]]:
    """(metadata of the first file, tensors of every shard)."""
    reader = _reader(path)
    meta = _metadata(reader)
    tensors = _tensors(reader)
    del reader
    for shard in _shards(path, meta):
        if shard != path:
            tensors += _tensors(_reader(shard))
    return meta, tensors


def _uniform(value: Any, key: str, where: str) -> Any:
    """Per-layer arrays (some GGUFs store head counts per layer) must hold one value here."""
    if isinstance(value, list):
        if not value or any(v != value[0] for v in value):
            raise InputError(f"{where}: '{key}' differs between layers, which kvcalc does not map for GGUF")
        return value[0]
    return value


def gguf_config(meta: dict[str, Any], tensors: list[_Tensor], where: str) -> dict[str, Any]:
    """The HF-style config.json dict for a GGUF file's metadata and tensor table."""
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise InputError(f"{where}: GGUF has no general.architecture")
    if arch not in GGUF_ARCHITECTURES:
        hint = " (a multimodal projector: pass the language-model .gguf)" if arch == "clip" else ""
        supported = ", ".join(sorted(GGUF_ARCHITECTURES))
        raise InputError(f"{where}: unsupported GGUF architecture '{arch}'{hint}; supported: {supported}")
    config: dict[str, Any] = {"model_type": GGUF_ARCHITECTURES[arch], "torch_dtype": "float16"}
    for suffix, field in _KEYS.items():
        value = meta.get(f"{arch}.{suffix}")
        if value is not None:
            config[field] = _uniform(value, f"{arch}.{suffix}", where)
    names = {t.name: t for t in tensors}
    embd = names.get("token_embd.weight")
    if embd is not None and len(embd.dims) == 2:
        config["vocab_size"] = embd.dims[1]
    elif "vocab_size" not in config and isinstance(meta.get("tokenizer.ggml.tokens"), int):
        config["vocab_size"] = meta["tokenizer.ggml.tokens"]
    config["tie_word_embeddings"] = "output.weight" not in names
    config["attention_bias"] = "blk.0.attn_q.bias" in names or "blk.0.attn_qkv.bias" in names
    config["mlp_bias"] = "blk.0.ffn_up.bias" in names
    if arch == "llama" and int(config.get("num_experts") or 0) > 0:
        config["model_type"] = "mixtral"
        config["num_local_experts"] = config.pop("num_experts")
    if "moe_intermediate_size" in config and "intermediate_size" not in config:
        config["intermediate_size"] = config["moe_intermediate_size"]
    # llama.cpp: int N = every Nth layer is full attention (Gemma 3); bool array = per layer, True = sliding.
    pattern = meta.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list) and len(pattern) == config.get("num_hidden_layers"):
        config["layer_types"] = ["sliding_attention" if p else "full_attention" for p in pattern]
    elif isinstance(pattern, int) and pattern > 0:
        config["sliding_window_pattern"] = pattern
    rope_type = meta.get(f"{arch}.rope.scaling.type")
    factor = meta.get(f"{arch}.rope.scaling.factor")
    if isinstance(rope_type, str) and rope_type != "none" and factor:
        config["rope_scaling"] = {
            "rope_type": rope_type,
            "factor": factor,
            "original_max_position_embeddings": meta.get(f"{arch}.rope.scaling.original_context_length"),
        }
    return config


def _model_id(path: Path) -> str:
    match = _SPLIT_NAME.match(path.name)
    return match["stem"] if match else path.stem


def _file_type(meta: dict[str, Any]) -> str | None:
    from gguf import LlamaFileType

    value = meta.get("general.file_type")
    if not isinstance(value, int):
        return None
    try:
        return LlamaFileType(value).name
    except ValueError:
        return str(value)


def model_from_gguf(path: Path, warn: Callable[[str], None] | None = None) -> ModelSpec:
    """Map a GGUF file to a ModelSpec with params_source "exact" (module docstring for what is read)."""
    from kvcalc.calc.params import params_total
    from kvcalc.sources.hf_config import model_from_config

    meta, tensors = _read(path)
    config = gguf_config(meta, tensors, str(path))
    model = model_from_config(config, model_id=_model_id(path), warn=warn)
    exact = sum(t.n_elements for t in tensors)
    derived = params_total(model)
    notes = [*model.notes, _KV_NOTE]
    if derived and abs(exact - derived) > 0.01 * derived:
        note = (
            f"{path.name}: the file holds {exact:,} parameters but its '{meta['general.architecture']}' "
            f"hyper-parameters describe {derived:,}; the per-layer breakdown may be off"
        )
        (warn or (lambda m: print(f"warning: {m}", file=sys.stderr)))(note)
        notes.append(note)
    file_type = _file_type(meta)
    return replace(
        model,
        **{
            "params_source": "exact",
            "exact_params_total": exact,
            "exact_weights_bytes": sum(t.n_bytes for t in tensors),
            "quantization_config": {"quant_method": "gguf", "file_type": file_type} if file_type else None,
            "notes": tuple(notes),
        }
    )


def gguf_tensor_types(path: Path) -> dict[str, int]:
    """Tensor name -> ggml type id (`gguf.GGMLQuantizationType`: 0 F32, 1 F16, 8 Q8_0, 12 Q4_K ...).

    Covers every shard of a split file."""
    return {t.name: t.ggml_type for t in _read(path)[1]}


def gguf_weights_bytes(path: Path) -> int:
    """Sum of tensor data bytes over every shard (metadata, tokenizer and alignment padding excluded)."""
    return sum(t.n_bytes for t in _read(path)[1])
