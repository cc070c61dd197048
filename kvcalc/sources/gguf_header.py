"""A bounded walk over a GGUF file's header, before `gguf.GGUFReader` parses it.

GGUF layout (github.com/ggml-org/ggml/blob/master/docs/gguf.md): magic `GGUF`, u32 version (2 or 3: u64
counts), u64 tensor count, u64 metadata count; each metadata entry a string key (u64 length + UTF-8 bytes),
a u32 value type and the value (arrays: u32 element type, u64 count, elements); then per tensor a string
name, u32 n_dims, n_dims x u64 dims, u32 ggml type and u64 data offset. Every length and count is checked
against the bytes left in the file and the bounds below, so a truncated file or a lying length is one
InputError and nothing is allocated from a declared size.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from kvcalc.bounds import MAX_BYTES
from kvcalc.errors import InputError

#: Bytes of each fixed-size value type (gguf-py `GGUFValueType`): UINT8 INT8 UINT16 INT16 UINT32 INT32
#: FLOAT32 BOOL, -, -, UINT64 INT64 FLOAT64; 8 = STRING and 9 = ARRAY are variable.
_FIXED_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
#: Bounds on what a header may declare (real files: ~40 keys, ~1,100 tensors, 262,144-entry vocabularies).
MAX_ENTRIES = 1 << 20  # metadata keys, and tensors
MAX_ARRAY = 1 << 24  # elements in one metadata array
MAX_KEY_BYTES = 1 << 16  # a key or tensor name
MAX_DIMS = 8  # ggml has 4
MAX_GGML_TYPE = 64


class _Cursor:
    def __init__(self, data: mmap.mmap | bytes, where: str) -> None:
        self.data, self.pos, self.where = data, 0, where

    def take(self, size: int, what: str) -> int:
        """Advance over `size` bytes; returns the old position."""
        if size < 0 or self.pos + size > len(self.data):
            raise InputError(f"{self.where}: truncated or corrupt GGUF: {what} at byte {self.pos} claims "
                             f"{size:,} bytes, {len(self.data) - self.pos:,} left")
        start, self.pos = self.pos, self.pos + size
        return start

    def unpack(self, fmt: str, what: str) -> int:
        start = self.take(struct.calcsize(fmt), what)
        value: int = struct.unpack_from(fmt, self.data, start)[0]
        return value

    def string(self, what: str, limit: int) -> None:
        length = self.unpack("<Q", f"{what} length")
        if length > limit:
            raise InputError(f"{self.where}: corrupt GGUF: {what} of {length:,} bytes (limit {limit:,})")
        self.take(length, what)


def _value(cur: _Cursor, kind: int, key_no: int) -> None:
    if kind in _FIXED_SIZE:
        cur.take(_FIXED_SIZE[kind], f"metadata value {key_no}")
    elif kind == _STRING:
        cur.string(f"metadata string {key_no}", len(cur.data))
    elif kind == _ARRAY:
        item = cur.unpack("<I", f"metadata array type {key_no}")
        count = cur.unpack("<Q", f"metadata array length {key_no}")
        if count > MAX_ARRAY:
            raise InputError(f"{cur.where}: corrupt GGUF: metadata array {key_no} of {count:,} items")
        if item in _FIXED_SIZE:
            cur.take(count * _FIXED_SIZE[item], f"metadata array {key_no}")
        elif item == _STRING:
            if count * 8 > len(cur.data) - cur.pos:
                raise InputError(f"{cur.where}: truncated or corrupt GGUF: metadata array {key_no} claims "
                                 f"{count:,} strings")
            for _ in range(count):
                cur.string(f"metadata array {key_no} string", len(cur.data))
        else:
            raise InputError(f"{cur.where}: corrupt GGUF: metadata array {key_no} has element type {item}")
    else:
        raise InputError(f"{cur.where}: corrupt GGUF: metadata value {key_no} has unknown type {kind}")


def check_gguf_header(path: Path) -> None:
    """Walk the header of GGUF file `path` with every count and length bounded; InputError if it is not a
    GGUF file, is truncated, or declares sizes its bytes cannot hold."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            if size < 24:
                raise InputError(f"{path}: not a readable GGUF file ({size} bytes)")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                _walk(_Cursor(data, str(path)))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _walk(cur: _Cursor) -> None:
    if cur.data[:4] != b"GGUF":
        raise InputError(f"{cur.where}: not a readable GGUF file (no GGUF magic)")
    cur.take(4, "magic")
    version = cur.unpack("<I", "version")
    if version not in (2, 3):
        raise InputError(f"{cur.where}: GGUF version {version} is not supported (2 and 3 are)")
    tensors = cur.unpack("<Q", "tensor count")
    entries = cur.unpack("<Q", "metadata count")
    if tensors > MAX_ENTRIES or entries > MAX_ENTRIES:
        raise InputError(f"{cur.where}: corrupt GGUF: declares {tensors:,} tensors and {entries:,} metadata keys")
    for number in range(entries):
        cur.string(f"metadata key {number}", MAX_KEY_BYTES)
        _value(cur, cur.unpack("<I", f"metadata type {number}"), number)
    for number in range(tensors):
        cur.string(f"tensor name {number}", MAX_KEY_BYTES)
        dims = cur.unpack("<I", f"tensor {number} dimension count")
        if not 1 <= dims <= MAX_DIMS:
            raise InputError(f"{cur.where}: corrupt GGUF: tensor {number} has {dims} dimensions")
        elements = 1
        for _ in range(dims):
            elements *= cur.unpack("<Q", f"tensor {number} dimension")
        kind = cur.unpack("<I", f"tensor {number} type")
        offset = cur.unpack("<Q", f"tensor {number} offset")
        if kind >= MAX_GGML_TYPE or elements > MAX_BYTES or offset > len(cur.data):
            raise InputError(f"{cur.where}: corrupt GGUF: tensor {number} (type {kind}, {elements:,} elements, "
                             f"offset {offset:,}) does not fit the file")
