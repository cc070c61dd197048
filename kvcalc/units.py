"""Parse and format quantities at the edges. Inside kvcalc, sizes are integer bytes and token counts ints.

Token counts follow vLLM's `human_readable_int` (`vllm/engine/arg_utils.py`, used by `--max-model-len`):
lower-case suffixes are decimal, upper-case binary: `32k` = 32,000, `32K` = 32,768, `1m` = 1,000,000,
`1M` = 1,048,576. The parsed integer is always echoed in the output.
Byte sizes: `GB` = 1e9 and `GiB` = 2**30 as written; a bare prefix (`64G`) means GiB, as RAM is sold.
"""

from __future__ import annotations

import re

from kvcalc.bounds import MAX_BYTES, MAX_TOKENS
from kvcalc.errors import InputError

GIB = 1 << 30
MIB = 1 << 20

_TOKEN_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$"
_TOKEN_SCALE = {"": 1, "k": 10**3, "m": 10**6, "K": 2**10, "M": 2**20}

#: Longer text is no number a person meant (and float() of 400 digits is inf).
_MAX_NUMBER_CHARS = 40
_BYTES_PATTERN = r"(?i)^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)\s*$"
_DECIMAL = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_BINARY = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}


def parse_tokens(text: str | int, what: str = "context") -> int:
    """`32k` -> 32000, `32K` -> 32768, `128K` -> 131072, `1m` -> 1000000, `8192` -> 8192 (vLLM's rule).

    At most `bounds.MAX_TOKENS` (2^30)."""
    if isinstance(text, int):
        value = text
    else:
        match = re.match(_TOKEN_PATTERN, text) if len(text) <= _MAX_NUMBER_CHARS else None
        if not match:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise InputError(f"{what} '{shown}' is not a token count; use e.g. 8192, 32k, 128K, 1m")
        number, suffix = match.groups()
        if suffix.isupper() and "." in number:
            raise InputError(f"{what} '{text}': decimals only go with decimal suffixes (k, m), as in vLLM")
        scaled = float(number) * _TOKEN_SCALE[suffix]
        if scaled != int(scaled):
            raise InputError(f"{what} '{text}' is not a whole number of tokens")
        value = int(scaled)
    if value <= 0:
        raise InputError(f"{what} must be a positive number of tokens, got {value}")
    if value > MAX_TOKENS:
        raise InputError(f"{what} {value:,} is absurd (more than 2^30 = {MAX_TOKENS:,} tokens)")
    return value


def parse_bytes(text: str | int, what: str = "size", *, minimum: int = 0) -> int:
    """`80GB` -> 80e9, `80GiB` -> 80 * 2**30, `64G` -> 64 * 2**30 (a bare G means GiB, as RAM is sold), `512` -> 512.

    Between `minimum` and `bounds.MAX_BYTES` (2^60 B = 1 EiB)."""
    if isinstance(text, int):
        value = text
    else:
        match = re.match(_BYTES_PATTERN, text) if len(text) <= _MAX_NUMBER_CHARS else None
        if not match:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise InputError(f"{what} '{shown}' is not a size; use e.g. 80GB, 80GiB, 64G, 512MiB")
        number, prefix, binary_mark, byte_mark = match.groups()
        binary = bool(binary_mark) or not byte_mark
        scale = (_BINARY if binary else _DECIMAL)[prefix.upper()]
        if float(number) * scale > MAX_BYTES:
            raise InputError(f"{what} '{text.strip()}' is absurd (more than 2^60 bytes = 1 EiB)")
        value = int(float(number) * scale)
    if value < minimum:
        need = "positive" if minimum == 1 else f"at least {minimum}"
        raise InputError(f"{what} must be {need}, got {value}" if value >= 0 else
                         f"{what} must not be negative, got {value}")
    if value > MAX_BYTES:
        raise InputError(f"{what} {value:,} is absurd (more than 2^60 bytes = 1 EiB)")
    return value




def fmt_gib(n_bytes: float, digits: int = 2) -> str:
    """'12.34 GiB' (binary gibibytes, labelled)."""
    return f"{n_bytes / GIB:,.{digits}f} GiB"


def fmt_bytes(n_bytes: float) -> str:
    """Human size with a binary unit, labelled: B, KiB, MiB, GiB, TiB."""
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or (unit == "GiB" and abs(value) < 1024 * 1024):
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.2f} {unit}"
        value /= 1024
    return f"{value:,.2f} TiB"


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for non-negative ints."""
    return -(-a // b)


def round_up(a: int, multiple: int) -> int:
    """Smallest multiple of `multiple` >= a."""
    return ceil_div(a, multiple) * multiple
