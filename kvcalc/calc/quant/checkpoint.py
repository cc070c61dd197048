"""Pre-quantized checkpoints: the weight format a config's `quantization_config` describes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from kvcalc.calc.quant.base import QuantFormat
from kvcalc.calc.quant.formats import (
    Bnb4Format,
    BnbInt8Format,
    Fp8Format,
    Int8Format,
    NvFp4Format,
    PackedIntFormat,
)
from kvcalc.calc.quant.gguf import GGUF_FTYPES, GgufRecipe
from kvcalc.calc.quant.mxfp4 import MxFp4Format
from kvcalc.calc.quant.parse import GPTQ_BITS
from kvcalc.spec.model import ModelSpec

#: HF module-name fragments -> kvcalc roles (first match wins), for ignore / modules_to_not_convert lists.
_MODULE_ROLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"lm_head", ("output",)),
    (r"embed_tokens|\bwte\b|word_embeddings", ("token_embd",)),
    (r"q_a_proj", ("attn_q_a",)),
    (r"q_b_proj", ("attn_q_b",)),
    (r"kv_a_proj", ("attn_kv_a_mqa",)),
    (r"kv_b_proj", ("attn_kv_b",)),
    (r"qkv_proj|query_key_value", ("attn_qkv",)),
    (r"\bq_proj", ("attn_q",)),
    (r"\bk_proj", ("attn_k",)),
    (r"\bv_proj", ("attn_v",)),
    (r"o_proj|\bdense\b", ("attn_output",)),
    (r"self_attn|attention|\battn\b", ("attn_*",)),
    (r"shared_expert_gate", ("ffn_gate_inp_shexp",)),
    (r"shared_expert", ("ffn_*_shexp",)),
    (r"experts", ("ffn_*_exps",)),
    (r"router|(mlp|moe)\.gate($|\$|\b(?!_))", ("ffn_gate_inp",)),
    (r"gate_up_proj", ("ffn_gate_up",)),
    (r"gate_proj|\bw1\b", ("ffn_gate",)),
    (r"up_proj|\bw3\b", ("ffn_up",)),
    (r"down_proj|\bw2\b", ("ffn_down",)),
    (r"\bmlp\b|feed_forward", ("ffn_*",)),
    (r"mixer|mamba|linear_attn", ("ssm_*",)),
)


def roles_for_modules(modules: Iterable[str] | None) -> set[str]:
    """kvcalc roles (or `blk.N.role` patterns) for HF module names / `re:` patterns of an ignore list.
    Modules outside the text model (vision tower, projector) map to nothing."""
    roles: set[str] = set()
    for raw in modules or ():
        text = str(raw)
        text = text[3:] if text.startswith("re:") else text
        if re.search(r"vision|visual|multi_modal|mm_projector|audio", text):
            continue
        layer = re.search(r"layers\.(\d+)\.", text)
        for pattern, mapped in _MODULE_ROLES:
            if re.search(pattern, text):
                roles.update(f"blk.{layer.group(1)}.{r}" if layer else r for r in mapped)
                break
    return roles


def _keep_from(config: dict[str, Any], *keys: str, lm_head_default: bool = True) -> frozenset[str]:
    modules: list[str] = []
    for key in keys:
        value = config.get(key)
        if isinstance(value, list):
            modules.extend(str(v) for v in value)
    keep = roles_for_modules(modules)
    if lm_head_default:
        keep.add("output")
    return frozenset(keep)


def _compressed_tensors(qc: dict[str, Any]) -> QuantFormat | None:
    groups = qc.get("config_groups") or {}
    chosen: dict[str, Any] | None = None
    for group in groups.values():
        if isinstance(group, dict) and isinstance(group.get("weights"), dict):
            targets = [str(x) for x in group.get("targets") or []]
            if chosen is None or "Linear" in targets:
                chosen = group
    if chosen is None:
        return None
    w = chosen["weights"]
    keep = _keep_from(qc, "ignore", lm_head_default=False)
    bits = int(w.get("num_bits", 8))
    kind = str(w.get("type", "int")).lower()
    strategy = str(w.get("strategy", "tensor")).lower()
    group_size = w.get("group_size")
    if kind == "float" and bits == 8:
        gran = {"tensor": "tensor", "channel": "channel", "block": "block"}.get(strategy, "tensor")
        block = tuple(w.get("block_structure") or (128, 128))
        static = isinstance(chosen.get("input_activations"), dict) and not chosen["input_activations"].get("dynamic")
        return Fp8Format(gran, block=(int(block[0]), int(block[1])), static_input=bool(static),
                         keep_high_precision=keep)
    if kind == "float" and bits == 4:
        return NvFp4Format(input_scale=chosen.get("input_activations") is not None, keep_high_precision=keep)
    if kind == "int" and bits == 8 and strategy != "group":
        return Int8Format("int8", keep)
    if kind == "int" and bits in GPTQ_BITS:
        group = int(group_size) if strategy == "group" and group_size else -1
        return PackedIntFormat("w4a16", bits, group, zeros=not w.get("symmetric", True),
                               g_idx=str(w.get("actorder") or "").lower() == "group", keep_high_precision=keep)
    return None


def format_from_quantization_config(model: ModelSpec) -> QuantFormat | None:
    """The format a pre-quantized checkpoint is stored in, from `model.quantization_config` (config.json),
    bound to `model`; None when the model is not quantized or the method is not modelled.

    Read: `fp8` (DeepSeek-V3/R1, Qwen3-FP8: `weight_block_size` -> block scales, else per-tensor;
    `ignored_layers` / `modules_to_not_convert`), `fbgemm_fp8` (per-channel), `mxfp4` (gpt-oss,
    `modules_to_not_convert`), `compressed-tensors` (`config_groups` FP8 / INT8 / W4A16 / NVFP4, `ignore`),
    `modelopt` (`quant_algo` FP8 / NVFP4, `exclude_modules`), `gptq` / `auto-round` (`bits`, `group_size`,
    `desc_act`, `lm_head`), `awq` (`bits`/`w_bit`, `group_size`/`q_group_size`), `bitsandbytes`
    (`load_in_4bit`, `bnb_4bit_quant_type`, `bnb_4bit_use_double_quant`, `load_in_8bit`,
    `llm_int8_skip_modules`) and kvcalc's own `gguf` marker (`file_type` of a .gguf file).
    """
    qc = model.quantization_config
    if not qc:
        return None
    method = str(qc.get("quant_method", "")).lower().replace("_", "-")
    reader = _READERS.get(method)
    fmt = reader(qc) if reader is not None else None
    return fmt.bind(model) if fmt is not None else None


def _fp8(qc: dict[str, Any]) -> QuantFormat:
    """Block scales with `weight_block_size`, else per-tensor (static input scales with `activation_scheme`)."""
    keep = _keep_from(qc, "ignored_layers", "modules_to_not_convert")
    block = qc.get("weight_block_size")
    if block:
        return Fp8Format("block", block=(int(block[0]), int(block[1])), keep_high_precision=keep)
    return Fp8Format("tensor", static_input=qc.get("activation_scheme") == "static", keep_high_precision=keep)


def _fbgemm_fp8(qc: dict[str, Any]) -> QuantFormat:
    return Fp8Format("channel", keep_high_precision=_keep_from(qc, "modules_to_not_convert"))


def _mxfp4(qc: dict[str, Any]) -> QuantFormat:
    return MxFp4Format(keep_high_precision=_keep_from(qc, "modules_to_not_convert"))


def _modelopt(qc: dict[str, Any]) -> QuantFormat | None:
    """`quant_algo` FP8 or NVFP4*, at the top level or under `quantization`."""
    nested = qc.get("quantization")
    inner: dict[str, Any] = nested if isinstance(nested, dict) else qc
    algo = str(inner.get("quant_algo", "")).upper()
    keep = _keep_from(inner, "exclude_modules", "ignore")
    if algo == "FP8":
        return Fp8Format("tensor", static_input=True, keep_high_precision=keep)
    if algo.startswith("NVFP4"):
        return NvFp4Format(keep_high_precision=keep)
    return None


def _gptq(qc: dict[str, Any]) -> QuantFormat:
    bits = int(qc.get("bits", 4))
    group = int(qc.get("group_size", 128))
    keep = _keep_from(qc, "modules_to_not_convert", "modules_to_not_quantize",
                      lm_head_default=not qc.get("lm_head", False))
    return PackedIntFormat("gptq", bits, group, desc_act=bool(qc.get("desc_act", False)), keep_high_precision=keep)


def _awq(qc: dict[str, Any]) -> QuantFormat:
    bits = int(qc.get("bits", qc.get("w_bit", 4)))
    group = int(qc.get("group_size", qc.get("q_group_size", 128)))
    return PackedIntFormat("awq", bits, group, keep_high_precision=_keep_from(qc, "modules_to_not_convert"))


def _bitsandbytes(qc: dict[str, Any]) -> QuantFormat | None:
    keep = _keep_from(qc, "llm_int8_skip_modules")
    if qc.get("load_in_4bit"):
        return Bnb4Format(str(qc.get("bnb_4bit_quant_type", "fp4")).lower(),
                          double_quant=bool(qc.get("bnb_4bit_use_double_quant", False)), keep_high_precision=keep)
    if qc.get("load_in_8bit"):
        return BnbInt8Format("bnb-int8", keep)
    return None


def _gguf(qc: dict[str, Any]) -> QuantFormat | None:
    """kvcalc's own marker for a .gguf file: its `file_type`."""
    file_type = str(qc.get("file_type", "")).upper().removeprefix("MOSTLY_").removeprefix("ALL_")
    return GgufRecipe(file_type) if file_type in GGUF_FTYPES else None


#: quant_method (lower case, "_" as "-") -> the reader of its quantization_config.
_READERS: dict[str, Callable[[dict[str, Any]], QuantFormat | None]] = {
    "fp8": _fp8,
    "fbgemm-fp8": _fbgemm_fp8,
    "mxfp4": _mxfp4,
    "compressed-tensors": _compressed_tensors,
    "modelopt": _modelopt,
    "gptq": _gptq,
    "auto-round": _gptq,
    "autoround": _gptq,
    "gptq-marlin": _gptq,
    "awq": _awq,
    "awq-marlin": _awq,
    "bitsandbytes": _bitsandbytes,
    "gguf": _gguf,
}
