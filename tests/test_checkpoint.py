"""Safetensors header reading on small real files written with the safetensors package (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

safetensors = pytest.importorskip("safetensors")
from safetensors.numpy import save_file  # noqa: E402

from kvcalc.errors import InputError  # noqa: E402
from kvcalc.sources.checkpoint import (  # noqa: E402
    CheckpointStats,
    read_safetensors_dir,
    read_safetensors_header,
)


def save_bf16(path: Path, name: str, shape: tuple[int, ...]) -> None:
    """numpy has no bfloat16: hand the raw 2-byte values to safetensors' serializer with dtype bfloat16."""
    raw = np.zeros(shape, dtype=np.uint16)
    spec = safetensors.TensorSpec(
        dtype="bfloat16", shape=shape, data_ptr=raw.ctypes.data, data_len=raw.nbytes
    )
    safetensors.serialize_file({name: spec}, str(path), metadata={"format": "pt"})


def test_float_and_packed_dtypes(tmp_path: Path) -> None:
    # model.safetensors:
    #   embed     F32  [10, 8]      80 el, 320 B
    #   norm      F16  [8]           8 el,  16 B
    #   qweight   I32  [2, 16]      32 el, 128 B   (GPTQ: 8 x 4-bit values per int32 -> 256 weights)
    #   scales    F16  [1, 16]      16 el,  32 B
    #   blocks    U8   [4, 2, 16]  128 el, 128 B   (MXFP4: 2 x 4-bit values per byte)
    #   scalar    F32  []            1 el,   4 B   (a 0-d tensor holds one element)
    # extra.safetensors is not read: model.safetensors wins when there is no index.
    save_file(
        {
            "embed": np.ones((10, 8), dtype=np.float32),
            "norm": np.ones(8, dtype=np.float16),
            "qweight": np.zeros((2, 16), dtype=np.int32),
            "scales": np.ones((1, 16), dtype=np.float16),
            "blocks": np.zeros((4, 2, 16), dtype=np.uint8),
            "scalar": np.array(1.0, dtype=np.float32),
        },
        str(tmp_path / "model.safetensors"),
        metadata={"format": "pt"},
    )
    save_bf16(tmp_path / "extra.safetensors", "w", (3, 3))
    stats = read_safetensors_dir(tmp_path)
    assert stats == CheckpointStats(
        params_total=80 + 8 + 32 + 16 + 128 + 1,
        weights_bytes=320 + 16 + 128 + 32 + 128 + 4,
        params_by_dtype={"F16": 24, "F32": 81, "I32": 32, "U8": 128},
        files=1,
        bytes_by_dtype={"F16": 48, "F32": 324, "I32": 128, "U8": 128},
    )


def test_bf16_and_glob_fallback(tmp_path: Path) -> None:
    # No model.safetensors and no index: every *.safetensors counts.
    # a: BF16 [3, 5] = 15 el, 30 B; b: BF16 [7] = 7 el, 14 B
    save_bf16(tmp_path / "a.safetensors", "x", (3, 5))
    save_bf16(tmp_path / "b.safetensors", "y", (7,))
    stats = read_safetensors_dir(tmp_path)
    assert stats is not None
    assert (stats.params_total, stats.weights_bytes, stats.files) == (22, 44, 2)
    assert stats.params_by_dtype == {"BF16": 22}


def test_sharded_index_ignores_duplicate_consolidated(tmp_path: Path) -> None:
    # Shards: F16 [4, 4] (16 el, 32 B) + F32 [6] (6 el, 24 B); consolidated.safetensors holds the same
    # weights again (Mistral repos) and must not be counted twice.
    save_file({"a": np.zeros((4, 4), dtype=np.float16)}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({"b": np.zeros(6, dtype=np.float32)}, str(tmp_path / "model-00002-of-00002.safetensors"))
    save_file(
        {"a": np.zeros((4, 4), dtype=np.float16), "b": np.zeros(6, dtype=np.float32)},
        str(tmp_path / "consolidated.safetensors"),
    )
    index = {
        "metadata": {"total_size": 56},
        "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"},
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    stats = read_safetensors_dir(tmp_path)
    assert stats is not None
    assert (stats.params_total, stats.weights_bytes, stats.files) == (22, 56, 2)

    (tmp_path / "model-00002-of-00002.safetensors").unlink()  # partial download -> no exact counts
    warnings: list[str] = []
    assert read_safetensors_dir(tmp_path, warn=warnings.append) is None
    assert len(warnings) == 1 and "missing" in warnings[0]


def test_no_safetensors(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert read_safetensors_dir(tmp_path) is None


def test_header_matches_safetensors_own_reader(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": np.zeros((3, 7), dtype=np.float16), "b": np.zeros(3, dtype=np.int32)}, str(path))
    mine = {(d, tuple(s)) for d, s, _ in read_safetensors_header(path)}
    with safetensors.safe_open(str(path), framework="numpy") as f:
        theirs = {(f.get_slice(k).get_dtype(), tuple(f.get_slice(k).get_shape())) for k in f.keys()}  # noqa: SIM118
    assert mine == theirs == {("F16", (3, 7)), ("I32", (3,))}


def test_truncated_data_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": np.zeros((64, 64), dtype=np.float32)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[:-100])  # a download cut short: header intact, data missing
    with pytest.raises(InputError, match=r"model\.safetensors: truncated safetensors file"):
        read_safetensors_dir(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x05\x00", "shorter than the 8-byte header length"),
        ((1000).to_bytes(8, "little") + b"{}", "declares 1000 header bytes"),
        ((4).to_bytes(8, "little") + b"{x:1", "not valid JSON"),
        ((2).to_bytes(8, "little") + b"[]", "expected a JSON object"),
        ((29).to_bytes(8, "little") + b'{"w": {"dtype": "F32"}}      ', "tensor 'w' has no valid"),
    ],
)
def test_bad_header_is_an_input_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"{path.name}: .*{message}"):
        read_safetensors_dir(tmp_path)
