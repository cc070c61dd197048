"""Bytes a weight tensor takes in a storage format. `PlainFormat` is the unquantized case; quantized
formats (calc/quant.py) implement the same protocol."""

from __future__ import annotations

from typing import Protocol

from kvcalc.spec.dtypes import storage_type
from kvcalc.spec.layers import TensorSpec


class WeightFormat(Protocol):
    """A storage format: `tensor_bytes(t, numel)` = bytes of `numel` elements of tensor `t` (a shard of it)."""

    name: str

    def tensor_bytes(self, t: TensorSpec, numel: int) -> int: ...


class PlainFormat:
    """Every tensor in one float dtype: bytes = numel * bytes(dtype) (bf16 2, fp32 4)."""

    def __init__(self, dtype: str) -> None:
        self.name = dtype
        self._storage = storage_type(dtype)

    def tensor_bytes(self, t: TensorSpec, numel: int) -> int:
        return self._storage.bytes_for(numel)
