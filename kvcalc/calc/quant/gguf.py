"""GGUF / llama.cpp: the ggml type table and llama.cpp's per-tensor recipe rules (`llama-quantize <ftype>`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from kvcalc.calc.quant.base import QuantFormat, _matches
from kvcalc.errors import InputError
from kvcalc.spec.layers import FullAttention, MLAAttention, MoEMLP, TensorSpec
from kvcalc.spec.model import ModelSpec
from kvcalc.units import ceil_div

#: llama.cpp file types (gguf-py `LlamaFileType`, minus MOSTLY_/ALL_) -> default tensor type, as
#: src/llama-quant.cpp `llama_ftype_get_default_type` maps them. Names only; sizes come from gguf.
GGUF_FTYPES: dict[str, str] = {
    "F32": "F32", "F16": "F16", "BF16": "BF16", "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1",
    "Q8_0": "Q8_0", "Q2_K": "Q2_K", "Q2_K_S": "Q2_K", "Q3_K_S": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_S": "Q5_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K",
    "IQ2_XXS": "IQ2_XXS", "IQ2_XS": "IQ2_XS", "IQ2_S": "IQ2_XS", "IQ2_M": "IQ2_S", "IQ3_XXS": "IQ3_XXS",
    "IQ3_XS": "IQ3_S", "IQ3_S": "IQ3_S", "IQ3_M": "IQ3_S", "IQ1_S": "IQ1_S", "IQ1_M": "IQ1_M",
    "IQ4_NL": "IQ4_NL", "IQ4_XS": "IQ4_XS", "TQ1_0": "TQ1_0", "TQ2_0": "TQ2_0", "MXFP4_MOE": "MXFP4",
    "NVFP4": "NVFP4", "Q1_0": "Q1_0",
}
#: llama-quantize's aliases (tools/quantize/quantize.cpp QUANT_OPTIONS).
GGUF_ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}
_UNQUANTIZED = ("F32", "F16", "BF16")
_IQ2_FAMILY = frozenset({"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"})
#: `tensor_type_fallback` (src/llama-quant.cpp): target type when ne[0] is not a multiple of its block.
_FALLBACK = {
    "IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_S": "IQ4_NL",
    "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL", "Q2_K": "Q4_0", "Q3_K": "Q4_0",
    "TQ1_0": "Q4_0", "TQ2_0": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
}
#: llama.cpp model types LLM_TYPE_70B (src/llama-model.cpp): 80-layer Llama with GQA, Qwen2, Deci.
_ARCH_70B = frozenset({"llama", "mistral", "qwen2", "deci", "nemotron-nas"})


def ggml_block(type_name: str) -> tuple[int, int]:
    """(values per block, bytes per block) of a ggml type, from `gguf.constants.GGML_QUANT_SIZES`."""
    try:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from kvcalc.errors import EnvironmentProblem

        raise EnvironmentProblem("GGUF formats need the gguf package for block sizes: pip install gguf") \
            from exc
    try:
        return tuple(GGML_QUANT_SIZES[GGMLQuantizationType[type_name]])  # type: ignore[return-value]
    except KeyError as exc:
        raise InputError(f"ggml type {type_name} is not in this gguf package's GGML_QUANT_SIZES") from exc


def ggml_bytes(type_name: str, numel: int, ne0: int) -> int:
    """ggml_nbytes: (ne0 / block) * type_size * rows, rows = numel / ne0 (ne0 a multiple of the block)."""
    block, size = ggml_block(type_name)
    return numel // ne0 * ceil_div(ne0, block) * size


@dataclass(frozen=True)
class _GgufContext:
    """The hyper-parameters llama.cpp's rules read (`llama_hparams`, `llm_arch`)."""

    arch: str
    n_layer: int
    n_expert: int
    n_gqa: int
    n_attention_wv: int
    tied: bool
    is_70b: bool
    mxfp4_experts: bool


def _gguf_context(model: ModelSpec) -> _GgufContext:
    n_expert = max((layer.mlp.num_experts for layer in model.layers if isinstance(layer.mlp, MoEMLP)), default=0)
    n_gqa = 0
    for layer in model.layers:
        if isinstance(layer.mixer, FullAttention):
            n_gqa = layer.mixer.num_heads // layer.mixer.num_kv_heads
            break
        if isinstance(layer.mixer, MLAAttention):  # MLA converts as MQA (head_count_kv = 1) since 2025
            n_gqa = layer.mixer.num_heads
            break
    tensors = model.all_tensors()
    wv = sum(1 for t in tensors if t.role in ("attn_v", "attn_qkv", "attn_kv_b") and t.name.endswith(".weight"))
    quant = model.quantization_config or {}
    kv = model.num_kv_heads
    return _GgufContext(
        arch=model.model_type,
        n_layer=model.num_layers,
        n_expert=n_expert,
        n_gqa=n_gqa,
        n_attention_wv=wv,
        tied=not any(t.role == "output" for t in tensors),
        is_70b=model.model_type in _ARCH_70B and model.num_layers == 80
        and not (model.model_type == "llama" and kv == model.num_attention_heads),
        mxfp4_experts=str(quant.get("quant_method", "")).lower() == "mxfp4",
    )


def _category(t: TensorSpec) -> str:
    """llama-quant.cpp `tensor_get_category` by kvcalc role (fused Phi-3 gate_up is GGUF's ffn_up)."""
    role = t.role
    if role in ("output", "token_embd", "attn_qkv", "attn_kv_b", "attn_v", "attn_k", "attn_q", "attn_output"):
        return role
    if role.startswith(("ffn_up", "ffn_gate_up")):
        return "ffn_up"
    if role.startswith("ffn_gate") and not role.startswith("ffn_gate_inp"):
        return "ffn_gate"
    if role.startswith("ffn_down"):
        return "ffn_down"
    return "other"


def _gguf_dims(t: TensorSpec) -> int:
    """ggml_n_dims: dims counted up to the last one > 1, in ggml order (ne0 = innermost)."""
    ne = list(reversed(t.shape))
    while len(ne) > 1 and ne[-1] == 1:
        ne.pop()
    return len(ne)


def _converter_f32(t: TensorSpec) -> bool:
    """convert_hf_to_gguf.py `prepare_tensors`: F32 for 1-D tensors, norms, every non-`.weight` tensor
    (biases, SSM A/D), routers, position embeddings, SSM conv1d."""
    return (
        _gguf_dims(t) <= 1
        or t.name.endswith("_norm.weight")
        or not t.name.endswith(".weight")
        or t.role in ("ffn_gate_inp", "pos_embd", "ssm_conv1d", "norm", "ssm_norm")
    )


def _allows_quantization(t: TensorSpec) -> bool:
    """llama-quant.cpp `tensor_allows_quantization`: >= 2 dims, name ends in `weight`, not a norm, router,
    position embedding or SSM conv1d."""
    return (
        _gguf_dims(t) >= 2
        and t.name.endswith("weight")
        and "_norm.weight" not in t.name
        and "ffn_gate_inp.weight" not in t.name
        and t.role not in ("pos_embd", "ssm_conv1d")
    )


def _more_bits(i: int, n: int) -> bool:
    """use_more_bits: the first and last eighth of the layers and every third one between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


_LAYER = re.compile(r"^blk\.(\d+)\.")


class GgufRecipe(QuantFormat):
    """A llama.cpp file type (`llama-quantize <ftype>`) applied tensor by tensor, as `src/llama-quant.cpp`
    (ggml-org/llama.cpp, blob 007dbbf3) decides: `tensor_allows_quantization`, `llama_tensor_get_type_impl`,
    `tensor_type_fallback`, `llama_ftype_get_default_type`; summary in quant_formats.md section 2.

    Rules (first match wins; `n` = layers, `i` = the tensor's running index among its kind, or for MoE
    models (n_expert > 1) the layer parsed from `blk.<i>.`; `use_more_bits(i, n)` = i < n/8 or i >= 7n/8
    or (i - n/8) % 3 == 2, i.e. about half of the layers):
    - 1-D tensors, norms, biases, routers, position embeddings, SSM conv1d stay F32 (converter) and are
      never requantized; stacked MXFP4 experts of gpt-oss stay MXFP4 ("requantizing from mxfp4 is disabled").
    - F16/BF16/F32 file types: every other tensor in that type, no mixture rules.
    - output.weight (and token_embd when the head is tied): Q8_0 for MXFP4_MOE, Falcon, or when ne0 is not a
      multiple of the default type's block; Q5_K for IQ1/IQ2/IQ3_XXS; else Q6_K (Q8_0 stays Q8_0).
    - token_embd (untied): the default type (Q2_K for IQ1/IQ2_XXS/XS, IQ3_S for IQ2_S/M and IQ3_XXS).
    - attn_v (also fused attn_qkv and MLA attn_kv_b): Q2_K -> Q4_K if n_head/n_head_kv >= 4 else Q3_K;
      Q3_K_M -> Q5_K for the first 2 else Q4_K; Q3_K_L -> Q5_K; Q4_K_M/Q5_K_M -> Q6_K where use_more_bits;
      Q4_K_S -> Q5_K for the first 4; IQ4_XS/NL -> Q5_K with GQA >= 4; 70B models (80-layer Llama/Qwen2)
      lift Q3_K/Q4_K to Q5_K; 8-expert models (Mixtral) -> Q8_0.
    - ffn_down (dense, shared and routed experts): Q2_K -> Q3_K; Q3_K_M -> Q5_K for i < n/16 else Q4_K;
      Q3_K_L -> Q5_K; Q4_K_M and Q5_K_M -> Q6_K where use_more_bits; Q4_K_S -> Q5_K for i < n/8; IQ4_XS/NL
      (no imatrix) -> Q5_K for i < n/8; Falcon has its own variants.
    - attn_output: Q2_K -> Q3_K, Q3_K_M -> Q4_K, Q3_K_L -> Q5_K (8-expert models: Q5_K for most k-quants);
      attn_k -> Q8_0 in 8-expert models; IQ2/IQ1/IQ3 mixes have their own branch.
    - then the fallback when ne0 is not a multiple of the block: IQ* and IQ4_XS -> IQ4_NL, Q2_K/Q3_K ->
      Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; F16 if still not a multiple of 32.
    `pure` (`llama-quantize --pure`) skips the mixture rules; `imatrix` selects the imatrix variants of the
    IQ3_XXS / IQ4 / Q4_0 / Q5_0 rules. Tensor bytes: `ggml_nbytes` with block sizes from gguf's
    GGML_QUANT_SIZES. Alignment padding (<= 31 B per tensor) and the GGUF header/tokenizer are not counted.

    The rules need the whole model (layer counts, GQA, tied head): call `bind(model)` (or pass `model=` to
    `parse_quant`) before `tensor_bytes`.
    """

    family = "gguf"
    source = "llama.cpp src/llama-quant.cpp (llama_tensor_get_type_impl); ggml GGML_QUANT_SIZES"
    default_keep: frozenset[str] = frozenset()

    def __init__(self, ftype: str, *, pure: bool = False, imatrix: bool = False,
                 keep_high_precision: Iterable[str] | None = None) -> None:
        name = ftype + (":pure" if pure else "") + (":imatrix" if imatrix else "")
        super().__init__(name, keep_high_precision)
        self.ftype, self.pure, self.imatrix = ftype, pure, imatrix
        self.default_type = GGUF_FTYPES[ftype]
        self.types: dict[str, str] | None = None
        self.bound_to: str | None = None
        self._model: ModelSpec | None = None

    def bind(self, model: ModelSpec) -> GgufRecipe:
        if self.types is not None and self._model is model:
            return self
        bound = GgufRecipe(self.ftype, pure=self.pure, imatrix=self.imatrix, keep_high_precision=self.keep)
        bound.types = self._assign(model)
        bound.bound_to = model.id
        bound._model = model
        return bound

    # ---- per-tensor type assignment -------------------------------------------------------------------

    def _assign(self, model: ModelSpec) -> dict[str, str]:
        ctx = _gguf_context(model)
        counters = {"attn_v": 0, "ffn_down": 0, "ffn_gate": 0, "ffn_up": 0}
        types: dict[str, str] = {}
        # llama_model_loader's weights_map order: by layer (global tensors first), then by name.
        ordered = sorted(model.all_tensors(), key=lambda t: (-1 if t.layer is None else t.layer, t.name))
        for t in ordered:
            types[t.name] = self._type_for(t, ctx, counters)
        return types

    def _type_for(self, t: TensorSpec, ctx: _GgufContext, counters: dict[str, int]) -> str:
        if _converter_f32(t):
            return "F32"
        if ctx.mxfp4_experts and t.role.endswith("_exps"):
            return "MXFP4"
        if not _allows_quantization(t):
            return "F16"
        if _matches(t, self.keep):
            return "F16"
        if self.default_type in _UNQUANTIZED:
            return self.default_type
        new = self.default_type
        if not self.pure:
            new = self._rules(t, ctx, counters, new)
        return self._fallback(t, new)

    def _fallback(self, t: TensorSpec, new: str) -> str:
        ne0 = t.shape[-1]
        if new in _UNQUANTIZED or ne0 % ggml_block(new)[0] == 0:
            return new
        if new not in _FALLBACK:
            raise InputError(f"{self.name}: {t.name} has ne0={ne0}, not a multiple of {new}'s block "
                             f"{ggml_block(new)[0]}, and llama.cpp defines no fallback for {new}")
        new = _FALLBACK[new]
        return new if ne0 % ggml_block(new)[0] == 0 else "F16"

    def _rules(self, t: TensorSpec, c: _GgufContext, counters: dict[str, int], new: str) -> str:
        """llama_tensor_get_type_impl, branch for branch."""
        f, cat = self.ftype, _category(t)
        moe8 = c.n_expert == 8

        def layer_info(kind: str) -> tuple[int, int]:
            if c.n_expert > 1:
                match = _LAYER.match(t.name)
                return (int(match.group(1)) if match else 0), c.n_layer
            return counters[kind], c.n_layer

        attn_v_like = cat in ("attn_v", "attn_qkv", "attn_kv_b")
        if cat == "output" or (c.tied and cat == "token_embd"):
            if f == "MXFP4_MOE" or c.arch == "falcon" or t.shape[-1] % ggml_block(new)[0]:
                new = "Q8_0"
            elif f in ("IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"):
                new = "Q5_K"
            elif new != "Q8_0":
                new = "Q6_K"
        elif f == "MXFP4_MOE":
            new = "MXFP4" if len(t.shape) == 3 and t.shape[0] > 1 else "Q8_0"
        elif cat == "token_embd":
            if f in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
                new = "Q2_K"
            elif f in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
                new = "IQ3_S"
            elif f in ("TQ1_0", "TQ2_0"):
                new = "Q4_K"
        elif f in _IQ2_FAMILY:
            if attn_v_like:
                low = "IQ3_S" if f in ("IQ2_S", "IQ2_M") else "Q2_K"
                new = "Q4_K" if c.n_gqa >= 4 or c.n_expert >= 4 else low
                counters["attn_v"] += 1
            elif moe8 and cat == "attn_k":
                new = "Q4_K"
            elif cat == "ffn_down":
                if counters["ffn_down"] < c.n_layer // 8:
                    new = "IQ3_S" if f in ("IQ2_S", "IQ2_M") else "Q2_K"
                counters["ffn_down"] += 1
            elif cat == "attn_output":
                if moe8:
                    new = "Q5_K"
                elif f in ("IQ1_S", "IQ1_M"):
                    new = "IQ2_XXS"
                elif f in ("IQ2_S", "IQ2_M"):
                    new = "IQ3_S"
        elif attn_v_like:
            i, n = counters["attn_v"], c.n_attention_wv
            if f == "Q2_K":
                new = "Q4_K" if c.n_gqa >= 4 else "Q3_K"
            elif f == "Q2_K_S" and c.n_gqa >= 4:
                new = "Q4_K"
            elif f == "IQ3_XXS":
                new = "Q4_K" if c.n_gqa >= 4 else ("IQ3_XXS" if self.imatrix else "IQ3_S")
            elif (f in ("IQ3_XS", "IQ3_S") and c.n_gqa >= 4) or f == "IQ3_M":
                new = "Q4_K"
            elif f == "Q3_K_M":
                new = "Q5_K" if i < 2 else "Q4_K"
            elif f == "Q3_K_L" or (f in ("IQ4_NL", "IQ4_XS") and c.n_gqa >= 4):
                new = "Q5_K"
            elif f in ("Q4_K_M", "Q5_K_M") and _more_bits(i, n):
                new = "Q6_K"
            elif f == "Q4_K_S" and i < 4:
                new = "Q5_K"
            if c.is_70b and new in ("Q3_K", "Q4_K"):
                new = "Q5_K"
            if moe8:
                new = "Q8_0"
            counters["attn_v"] += 1
        elif cat == "attn_k":
            if moe8:
                new = "Q8_0"
            elif f == "IQ3_XS":
                new = "IQ3_XXS"
            elif f == "IQ3_XXS":
                new = "IQ2_S"
        elif cat == "attn_q":
            if f == "IQ3_XS":
                new = "IQ3_XXS"
            elif f == "IQ3_XXS":
                new = "IQ2_S"
        elif cat == "ffn_down":
            i, n = layer_info("ffn_down")
            falcon = c.arch == "falcon"
            if f == "Q2_K":
                new = "Q3_K"
            elif f == "Q2_K_S":
                if i < n // 8:
                    new = "Q4_K"
            elif f == "IQ3_XXS" and not self.imatrix:
                new = "Q4_K" if i < n // 8 else "Q3_K"
            elif f == "Q3_K_M":
                new = "Q5_K" if i < n // 16 else ("Q4_K" if not falcon or _more_bits(i, n) else "Q3_K")
            elif f == "IQ3_M" and (i < n // 8 or (moe8 and _more_bits(i, n))):
                new = "Q4_K"
            elif f == "Q3_K_L":
                new = "Q4_K" if falcon else "Q5_K"
            elif f == "Q4_K_M":
                if falcon:
                    new = "Q6_K" if i < n // 16 else ("Q5_K" if _more_bits(i, n) else "Q4_K")
                elif _more_bits(i, n):
                    new = "Q6_K"
            elif i < n // 8 and f in ("IQ4_NL", "IQ4_XS") and not self.imatrix:
                new = "Q5_K"
            elif f == "Q5_K_M" and _more_bits(i, n):
                new = "Q6_K"
            elif f == "Q4_K_S" and not falcon and i < n // 8:
                new = "Q5_K"
            elif f in ("Q4_0", "Q5_0") and self.imatrix and i < n // 8:
                new = "Q4_1" if f == "Q4_0" else "Q5_1"
            counters["ffn_down"] += 1
        elif cat == "attn_output":
            if c.arch != "falcon":
                if moe8:
                    if f in ("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ3_S",
                             "IQ3_M", "IQ4_XS"):
                        new = "Q5_K"
                else:
                    new = {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K",
                           "IQ3_M": "Q4_K"}.get(f, new)
            elif f == "Q3_K_L":
                new = "Q4_K"
        elif cat in ("ffn_gate", "ffn_up"):
            i, n = layer_info(cat)
            if f == "IQ3_XS" and n // 8 <= i < 7 * n // 8:
                new = "IQ3_XXS"
            counters[cat] += 1
        return new

    # ---- WeightFormat ----------------------------------------------------------------------------------

    def storage(self, t: TensorSpec) -> str:
        if self.types is None:
            raise ValueError(f"GGUF recipe {self.name} is not bound to a model: call .bind(model) first "
                             "(or parse_quant(text, model=spec))")
        try:
            return self.types[t.name]
        except KeyError:
            raise ValueError(f"GGUF recipe {self.name} was bound to {self.bound_to}, which has no tensor "
                             f"{t.name}; bind it to this model") from None

    def quantizes(self, t: TensorSpec) -> bool:
        return self.storage(t) not in ("F32", "F16", "BF16")

    def full_bytes(self, t: TensorSpec) -> int:
        return ggml_bytes(self.storage(t), t.numel, t.shape[-1])

    def describe(self) -> str:
        if self.default_type in _UNQUANTIZED:
            return (f"llama.cpp {self.ftype}: every quantizable tensor {self.default_type}; 1-D, norms, biases, "
                    "routers F32")
        return (f"llama.cpp {self.ftype} mix (default {self.default_type}, output Q6_K, attn_v/ffn_down bumps "
                "by layer per llama-quant.cpp); 1-D, norms, biases, routers F32")
