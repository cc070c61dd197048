"""Exact parameter and byte counts from safetensors headers, without reading any tensor data.

safetensors layout (github.com/huggingface/safetensors, README "Format"): an 8-byte little-endian u64 `N`,
then `N` bytes of UTF-8 JSON mapping each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`
(offsets relative to the end of the header, so the data part is `max(end)` bytes), plus an optional
`"__metadata__"` dict of strings; the spec caps the header at 100 MB.

Which files make the checkpoint (as transformers' `from_pretrained` and huggingface_hub's
`get_safetensors_metadata` pick them): the shards named in `model.safetensors.index.json` when it exists
(`weight_map` values), else `model.safetensors`, else every `*.safetensors` in the folder. Repos such as
Mistral's ship the same weights twice (`consolidated.safetensors` and `model-*.safetensors`): the rule above
counts them once.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvcalc.bounds import MAX_BYTES
from kvcalc.errors import InputError
from kvcalc.spec.base import replace
from kvcalc.spec.model import ModelSpec

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
#: The safetensors spec's limit on the JSON header (crates/safetensors/src/tensor.rs `MAX_HEADER_SIZE`).
MAX_HEADER_BYTES = 100_000_000
#: Bytes per element of the byte-aligned dtypes (safetensors `Dtype::size`); a tensor of these must span
#: exactly numel x size bytes. Sub-byte types (F4, F6 ...) are not checked.
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
#: Dimensions of one tensor (PyTorch allows 64).
MAX_TENSOR_DIMS = 64


@dataclass(frozen=True)
class CheckpointStats:
    """Totals over a checkpoint's tensors, as stored.

    `weights_bytes` (sum of `end - begin` over tensors) is the exact size of the weights on disk and in
    memory. `params_total` is the number of *stored elements* (sum of prod(shape)): the true parameter count
    for float checkpoints (F32/BF16/F16/F8), but not for packed quantized ones, which store several values
    per element (GPTQ/AWQ `qweight` int32 = 8 x 4-bit values, MXFP4 `*_blocks` and NVFP4 uint8 = 2 x 4-bit
    values) next to their scales and zero points: trust `weights_bytes`, read `params_total` with care.
    It also counts every tensor the checkpoint ships (vision tower, MTP layers).
    """

    params_total: int
    weights_bytes: int
    params_by_dtype: dict[str, int]
    files: int
    bytes_by_dtype: dict[str, int] = field(default_factory=dict)


def stats_from_tensors(
    tensors: Iterable[tuple[str, Sequence[int], Sequence[int]]], files: int
) -> CheckpointStats:
    """Sum `(dtype, shape, data_offsets)` triples (from local headers or huggingface_hub's TensorInfo)."""
    params: dict[str, int] = {}
    nbytes: dict[str, int] = {}
    for dtype, shape, offsets in tensors:
        numel = 1
        for dim in shape:
            numel *= int(dim)
        params[dtype] = params.get(dtype, 0) + numel
        nbytes[dtype] = nbytes.get(dtype, 0) + int(offsets[1]) - int(offsets[0])
    return CheckpointStats(
        params_total=sum(params.values()),
        weights_bytes=sum(nbytes.values()),
        params_by_dtype=dict(sorted(params.items())),
        files=files,
        bytes_by_dtype=dict(sorted(nbytes.items())),
    )


def _is_int_list(value: Any, length: int | None = None) -> bool:
    """A list (of `length` items) of integers in [0, bounds.MAX_BYTES]."""
    return (
        isinstance(value, list)
        and (length is None or len(value) == length)
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_BYTES for v in value)
    )


def _tensor_entry(path: Path, name: str, entry: Any) -> tuple[str, list[int], list[int]]:
    """One header entry as (dtype, shape, data_offsets), or an InputError naming the tensor."""
    if not (
        isinstance(entry, dict)
        and isinstance(entry.get("dtype"), str)
        and _is_int_list(entry.get("shape"))
        and len(entry["shape"]) <= MAX_TENSOR_DIMS
        and _is_int_list(entry.get("data_offsets"), 2)
        and entry["data_offsets"][0] <= entry["data_offsets"][1]
    ):
        raise InputError(
            f"{path}: bad safetensors header: tensor '{name[:80]}' has no valid dtype/shape/data_offsets"
        )
    dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
    numel = 1
    for dim in shape:
        numel *= dim
    if dtype in DTYPE_BYTES and numel * DTYPE_BYTES[dtype] != end - begin:
        raise InputError(
            f"{path}: bad safetensors header: tensor '{name[:80]}' is {dtype} {shape} = "
            f"{numel * DTYPE_BYTES[dtype]:,} bytes but its data_offsets span {end - begin:,}"
        )
    return dtype, shape, [begin, end]


def read_safetensors_header(path: Path) -> list[tuple[str, list[int], list[int]]]:
    """The `(dtype, shape, data_offsets)` of every tensor in one file, reading only its header.

    A short, oversized or non-JSON header, a malformed entry, or a file shorter than the data its header
    describes (a truncated download) is an InputError naming the file.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise InputError(
                    f"{path}: not a safetensors file: {size} bytes, shorter than the 8-byte header length"
                )
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise InputError(
                    f"{path}: bad safetensors header: declares {length} header bytes, file has {size} bytes "
                    "(truncated or not a safetensors file)"
                )
            raw = f.read(length)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    from kvcalc.sources.untrusted import parse_json

    header = parse_json(raw, f"{path}: bad safetensors header, not valid JSON")
    if not isinstance(header, dict):
        raise InputError(f"{path}: bad safetensors header: expected a JSON object")
    out: list[tuple[str, list[int], list[int]]] = []
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        out.append(_tensor_entry(path, name, entry))
        data_end = max(data_end, out[-1][2][1])
    if 8 + length + data_end > size:
        raise InputError(
            f"{path}: truncated safetensors file: header describes {8 + length + data_end} bytes, "
            f"file has {size}"
        )
    return out


def checkpoint_files(folder: Path) -> list[Path] | None:
    """The safetensors files that make the checkpoint in `folder` (rule in the module docstring).

    [] when there are none; None when the index names shards that are not there (a partial download).
    """
    index = folder / INDEX_FILE
    if index.is_file():
        from kvcalc.sources.untrusted import parse_json, read_text

        data = parse_json(read_text(index, MAX_HEADER_BYTES, "shard index"), f"{index}: the shard index")
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise InputError(f"{index}: no 'weight_map' of tensor name -> shard file")
        names = {str(name) for name in weight_map.values()}
        if any("/" in name or "\\" in name or name in ("", ".", "..") for name in names):
            raise InputError(f"{index}: 'weight_map' names a shard outside the model folder")
        shards = [folder / name for name in sorted(names)]
        return shards if all(s.is_file() for s in shards) else None
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    return sorted(p for p in folder.glob("*.safetensors") if p.is_file())


def read_safetensors_dir(
    folder: Path, *, warn: Callable[[str], None] | None = None
) -> CheckpointStats | None:
    """Exact counts over the checkpoint in `folder`, or None when it has no safetensors files, or only some of
    the shards its index names (then `warn` is told, and the caller keeps config-derived counts)."""
    files = checkpoint_files(folder)
    if files is None:
        if warn is not None:
            warn(f"{folder}: some shards named in {INDEX_FILE} are missing; parameter counts are derived")
        return None
    if not files:
        return None
    tensors = [t for path in files for t in read_safetensors_header(path)]
    return stats_from_tensors(tensors, files=len(files))


def with_checkpoint_stats(model: ModelSpec, stats: CheckpointStats | None) -> ModelSpec:
    """`model` with exact weight bytes and stored element count from checkpoint headers (unchanged when None)."""
    if stats is None:
        return model
    return replace(model, params_source="exact", exact_params_total=stats.params_total,
                   exact_weights_bytes=stats.weights_bytes)
