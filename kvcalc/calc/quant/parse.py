"""`--quant` text -> a weight format."""

from __future__ import annotations

from collections.abc import Iterable

from kvcalc.calc.quant.base import QuantFormat, parse_keep
from kvcalc.calc.quant.formats import (
    Bnb4Format,
    BnbInt8Format,
    FloatFormat,
    Fp8Format,
    Int8Format,
    NvFp4Format,
    PackedIntFormat,
)
from kvcalc.calc.quant.gguf import GGUF_ALIASES, GGUF_FTYPES, GgufRecipe
from kvcalc.calc.quant.mxfp4 import MXFP4_KERNELS, MxFp4Format
from kvcalc.errors import InputError
from kvcalc.spec.model import ModelSpec

GPTQ_BITS = (2, 3, 4, 8)


def _known_formats() -> str:
    ggufs = ", ".join(sorted(GGUF_FTYPES))
    return (
        "bf16, fp16, fp32, fp8[:tensor|:channel|:block], int8, bnb-int8, gptq:BITS:GROUP[:act|:file], "
        "awq:BITS:GROUP, w4a16[:GROUP][:asym], nf4[:dq], fp4[:dq], nvfp4, mxfp4[:marlin], and GGUF file "
        f"types (optionally gguf:NAME, :pure, :imatrix): {ggufs} (aliases Q3_K, Q4_K, Q5_K)"
    )


def _int(text: str, what: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"quantization '{spec}': {what} '{text}' is not an integer") from None


def _packed(kind: str, parts: list[str], spec: str, keep: frozenset[str] | None) -> QuantFormat:
    bits = _int(parts[1], "bits", spec) if len(parts) > 1 and parts[1] else 4
    group = _int(parts[2], "group size", spec) if len(parts) > 2 and parts[2] else 128
    flags = set(parts[3:])
    if bits not in GPTQ_BITS:
        raise InputError(f"quantization '{spec}': {bits}-bit is not supported; use bits 2, 3, 4 or 8")
    if group != -1 and (group < 16 or group & (group - 1)):
        raise InputError(f"quantization '{spec}': group size {group} must be -1 (channel-wise) or a power of two "
                         ">= 16 (32, 64, 128 ...)")
    unknown = flags - {"act", "file", "desc_act"}
    if unknown or (kind == "awq" and flags):
        raise InputError(f"quantization '{spec}': unknown option(s) {', '.join(sorted(flags))}; "
                         "gptq takes :act (desc_act, g_idx kept) or :file (checkpoint layout with g_idx)")
    act = bool(flags & {"act", "desc_act"})
    return PackedIntFormat(kind, bits, group, zeros=True, g_idx="file" in flags, desc_act=act,
                           keep_high_precision=keep)


def parse_quant(text: str, keep_high_precision: Iterable[str] | str | None = None, *,
                model: ModelSpec | None = None) -> QuantFormat:
    """A weight format from its name (case-insensitive; see `_known_formats`).

    `keep_high_precision`: roles to keep 16-bit instead of the format's default (a set, or `--keep-fp16`
    text such as `lm_head,embed`). `model`: bind the format to it (needed by GGUF recipes).
    Unknown names raise InputError listing the known ones.
    """
    keep = parse_keep(keep_high_precision) if isinstance(keep_high_precision, str) else (
        frozenset(keep_high_precision) if keep_high_precision is not None else None)
    fmt = _parse(text, keep)
    return fmt.bind(model) if model is not None else fmt


def _parse(text: str, keep: frozenset[str] | None) -> QuantFormat:
    spec = text.strip()
    low = spec.lower().replace("-", "_") if spec.lower().startswith("bnb") else spec.lower()
    parts = low.split(":")
    head = parts[0]
    if head in ("bf16", "bfloat16", "fp16", "float16", "half", "fp32", "float32") and len(parts) == 1:
        return FloatFormat({"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32"}.get(head, head))
    if head in ("fp8", "fp8_e4m3", "w8a8_fp8"):
        gran = parts[1] if len(parts) > 1 else "tensor"
        aliases = {"tensor": "tensor", "per_tensor": "tensor", "channel": "channel", "per_channel": "channel",
                   "dynamic": "channel", "block": "block", "block128": "block"}
        if gran not in aliases or len(parts) > 2:
            raise InputError(f"quantization '{spec}': use fp8, fp8:channel or fp8:block (128x128 scales)")
        return Fp8Format(aliases[gran], keep_high_precision=keep)
    if head in ("int8", "w8a8", "w8a8_int8", "w8a16") and len(parts) == 1:
        return Int8Format("int8", keep)
    if head in ("bnb_int8", "llm.int8", "bnb8", "bnb_8bit") and len(parts) == 1:
        return BnbInt8Format("bnb-int8", keep)
    if head in ("gptq", "awq"):
        return _packed(head, parts, spec, keep)
    if head in ("w4a16", "w8a16_packed"):
        group = _int(parts[1], "group size", spec) if len(parts) > 1 and parts[1] else 128
        extra = set(parts[2:]) - {"asym", "sym"}
        if extra:
            raise InputError(f"quantization '{spec}': use w4a16[:GROUP][:asym]")
        return PackedIntFormat("w4a16", 4, group, zeros="asym" in parts, keep_high_precision=keep)
    if head in ("nf4", "fp4", "bnb_nf4", "bnb_fp4"):
        kind = head.replace("bnb_", "")
        extra = set(parts[1:]) - {"dq", "double_quant"}
        if extra:
            raise InputError(f"quantization '{spec}': use {kind} or {kind}:dq (double quantization)")
        return Bnb4Format(kind, double_quant=bool(parts[1:]), keep_high_precision=keep)
    if head == "nvfp4" and len(parts) == 1:
        return NvFp4Format(keep_high_precision=keep)
    if head == "mxfp4":
        pad = parts[1] if len(parts) > 1 else None
        if (pad is not None and pad not in MXFP4_KERNELS) or len(parts) > 2:
            raise InputError(f"quantization '{spec}': use mxfp4 or mxfp4:KERNEL ({', '.join(MXFP4_KERNELS)})")
        return MxFp4Format(pad, keep_high_precision=keep)
    gguf_parts = parts[1:] if head == "gguf" else parts
    if gguf_parts:
        name = gguf_parts[0].upper()
        name = GGUF_ALIASES.get(name, name)
        flags = set(gguf_parts[1:])
        if name in GGUF_FTYPES and flags <= {"pure", "imatrix"}:
            return GgufRecipe(name, pure="pure" in flags, imatrix="imatrix" in flags, keep_high_precision=keep)
    raise InputError(f"unknown quantization '{spec}'; known: {_known_formats()}")
