"""Storage sizes of the element types kvcalc sizes weights, activations and KV caches in.

A dtype is stored in blocks: `block_elements` values take `block_bytes` bytes (scales included). Plain
floats are blocks of one element (bf16: 1 element, 2 bytes). Block-quantized KV types of llama.cpp
(`q8_0`, `q4_0` ...) take their sizes from the `gguf` package's `GGML_QUANT_SIZES` (the ggml type table,
ggml/src/ggml.c `type_traits`), never a hand-typed table.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvcalc.errors import EnvironmentProblem, InputError
from kvcalc.units import ceil_div


@dataclass(frozen=True)
class StorageType:
    """`block_elements` values stored in `block_bytes` bytes."""

    name: str
    block_elements: int
    block_bytes: int

    def bytes_for(self, elements: int) -> int:
        """bytes(n) = ceil(n / block_elements) * block_bytes (ggml rows are whole blocks)."""
        return ceil_div(elements, self.block_elements) * self.block_bytes

    @property
    def bits_per_element(self) -> float:
        return 8 * self.block_bytes / self.block_elements


# IEEE / OCP float and integer element sizes (bytes per element): fp32 4, bf16/fp16 2, fp8 (OCP FP8 E4M3/E5M2
# formats spec v1.0, 2023) 1, int8 1.
_PLAIN_BYTES: dict[str, int] = {
    "fp32": 4,
    "float32": 4,
    "bf16": 2,
    "bfloat16": 2,
    "fp16": 2,
    "float16": 2,
    "half": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "fp8_inc": 1,
    "int8": 1,
    "uint8": 1,
}

#: KV-cache names accepted by `--kv-dtype`; `auto` means "the model's dtype" (vLLM's `--kv-cache-dtype auto`).
GGML_KV_TYPES = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl", "f16", "bf16", "f32")


def storage_type(name: str) -> StorageType:
    """Resolve a dtype name (`bf16`, `fp8_e4m3`, `q8_0` ...) to its block storage."""
    key = name.strip().lower()
    if key in _PLAIN_BYTES:
        return StorageType(key, 1, _PLAIN_BYTES[key])
    if key in GGML_KV_TYPES:
        try:
            from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise EnvironmentProblem(
                f"dtype '{name}' needs the gguf package for its block size: pip install gguf"
            ) from exc
        block_elements, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType[key.upper()]]
        return StorageType(key, block_elements, block_bytes)
    known = sorted(set(_PLAIN_BYTES) | set(GGML_KV_TYPES))
    raise InputError(f"unknown dtype '{name}'; known: {', '.join(known)}")


def torch_dtype_name(config_dtype: str | None) -> str:
    """Normalise a config's `torch_dtype`/`dtype` ("bfloat16", "torch.float16") to kvcalc's short name."""
    if not config_dtype:
        return "bf16"
    key = str(config_dtype).replace("torch.", "").lower()
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "half": "fp16"}.get(key, key)
