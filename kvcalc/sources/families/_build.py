"""Shared pieces for the per-family config mappers: reading config fields and building tensor lists.

Tensor names follow GGUF's naming (`token_embd.weight`, `blk.N.attn_q.weight`, gguf-py
`gguf/constants.py::TENSOR_NAMES`) so llama.cpp's per-tensor quantization rules can key on them. Shapes are
(out_features, in_features) as in PyTorch's `nn.Linear.weight`.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from kvcalc.bounds import MAX_LAYERS, check_int, config_int_max
from kvcalc.errors import InputError
from kvcalc.spec.layers import MoEMLP, TensorSpec


class Cfg:
    """Read fields of one config dict; a missing or bad field is an InputError naming it."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where
        self._sets: dict[str, frozenset[builtins.int]] = {}

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key)
        return default if value is None else value

    def int(self, key: str, default: int | None = None, *, minimum: int = 1) -> int:
        """A finite whole number in [minimum, the key's sane bound] (`kvcalc.bounds.config_int_max`)."""
        value = self.data.get(key)
        if value is None:  # absent or an explicit null (transformers writes head_dim: null) -> the default
            value = default
        if value is None:
            raise InputError(f"{self.where}: config field '{key}' is missing")
        return check_int(value, f"{self.where}: config field '{key}'", minimum=minimum, maximum=config_int_max(key))

    def optional_int(self, keys: tuple[str, ...], *, minimum: builtins.int = 1) -> builtins.int | None:
        """The first of `keys` present, checked as `int` does; None when none is."""
        for key in keys:
            if self.data.get(key) is not None:
                return self.int(key, minimum=minimum)
        return None

    def first_int(
        self, keys: tuple[str, ...], default: builtins.int | None = None, *, minimum: builtins.int = 1
    ) -> builtins.int:
        """The first of `keys` present (configs name the same thing differently: n_embd / hidden_size)."""
        for key in keys:
            if self.data.get(key) is not None:
                return self.int(key, minimum=minimum)
        if default is None:
            raise InputError(f"{self.where}: config field '{keys[0]}' (or {', '.join(keys[1:])}) is missing")
        return default

    def layer_set(self, key: str) -> frozenset[builtins.int]:
        """A list of layer indices (`mlp_only_layers`, `moe_layers` ...) as a set; [] or absent -> empty."""
        if key not in self._sets:
            value = self.get(key, [])
            if not isinstance(value, list):
                raise InputError(f"{self.where}: config field '{key}' must be a list of layer indices")
            what = f"{self.where}: config field '{key}' entry"
            self._sets[key] = frozenset(check_int(v, what, minimum=0, maximum=MAX_LAYERS) for v in value)
        return self._sets[key]

    def bool(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        return bool(default if value is None else value)


@dataclass
class Parts:
    """What a family mapper returns; `sources.hf_config` turns it into a ModelSpec."""

    layers: list[Any]
    global_tensors: list[TensorSpec]
    mtp_tensors: list[TensorSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def tensor(name: str, shape: tuple[int, ...], role: str, layer: int | None = None) -> TensorSpec:
    prefix = f"blk.{layer}." if layer is not None else ""
    return TensorSpec(name=f"{prefix}{name}", shape=shape, role=role, layer=layer)


def linear(
    name: str, out_features: int, in_features: int, layer: int | None, *, bias: bool = False
) -> list[TensorSpec]:
    """An nn.Linear: weight [out, in] and, with `bias`, a bias [out] (same role, name `.bias`)."""
    out = [tensor(f"{name}.weight", (out_features, in_features), name, layer)]
    if bias:
        out.append(tensor(f"{name}.bias", (out_features,), name, layer))
    return out


def norm(name: str, size: int, layer: int | None, *, bias: bool = False) -> list[TensorSpec]:
    """RMSNorm (weight) or LayerNorm (weight and bias) over `size` features; role `norm`."""
    out = [tensor(f"{name}.weight", (size,), "norm", layer)]
    if bias:
        out.append(tensor(f"{name}.bias", (size,), "norm", layer))
    return out


def attention(
    layer: int,
    hidden: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    *,
    qkv_bias: bool = False,
    o_bias: bool = False,
    fused_qkv: bool = False,
    qk_norm: bool = False,
    q_gate: bool = False,
    v_head_dim: int | None = None,
) -> list[TensorSpec]:
    """q/k/v/o projections of softmax attention.

    q [n_h*d (x2 with an output gate, Qwen3-Next), H], k [n_kv*d, H], v [n_kv*d_v, H], o [H, n_h*d_v];
    `fused_qkv` stores q, k, v as one matrix (Phi-3 `qkv_proj`, Falcon `query_key_value`); `qk_norm` adds
    per-head RMSNorm weights [d] on q and k (Qwen3, Gemma 3).
    """
    d_v = v_head_dim or head_dim
    q_rows = num_heads * head_dim * (2 if q_gate else 1)
    k_rows = num_kv_heads * head_dim
    v_rows = num_kv_heads * d_v
    if fused_qkv:
        out = linear("attn_qkv", q_rows + k_rows + v_rows, hidden, layer, bias=qkv_bias)
    else:
        out = (
            linear("attn_q", q_rows, hidden, layer, bias=qkv_bias)
            + linear("attn_k", k_rows, hidden, layer, bias=qkv_bias)
            + linear("attn_v", v_rows, hidden, layer, bias=qkv_bias)
        )
    out += linear("attn_output", hidden, num_heads * d_v, layer, bias=o_bias)
    if qk_norm:
        out += norm("attn_q_norm", head_dim, layer) + norm("attn_k_norm", head_dim, layer)
    return out


def mlp(
    layer: int,
    hidden: int,
    intermediate: int,
    *,
    gated: bool = True,
    bias: bool = False,
    fused_gate_up: bool = False,
    suffix: str = "",
) -> list[TensorSpec]:
    """Feed-forward: gated 3 x (H*I) (gate, up, down) or plain 2 x (H*I) (up, down).

    `suffix` `_shexp` = shared expert.
    """
    out: list[TensorSpec] = []
    if gated and fused_gate_up:
        out += linear(f"ffn_gate_up{suffix}", 2 * intermediate, hidden, layer, bias=bias)
    else:
        if gated:
            out += linear(f"ffn_gate{suffix}", intermediate, hidden, layer, bias=bias)
        out += linear(f"ffn_up{suffix}", intermediate, hidden, layer, bias=bias)
    out += linear(f"ffn_down{suffix}", hidden, intermediate, layer, bias=bias)
    return out


def experts(
    layer: int,
    hidden: int,
    num_experts: int,
    intermediate: int,
    *,
    gated: bool = True,
    bias: bool = False,
    router_bias: bool = False,
    fused_gate_up: bool = False,
) -> list[TensorSpec]:
    """Routed experts stored as 3-D tensors [E, out, in] (GGUF `ffn_*_exps`) plus the router [E, H].

    Gated: gate and up [E, I, H], down [E, H, I]; biases [E, out] where the model has them (gpt-oss).
    `fused_gate_up` keeps gate and up as one [E, 2I, H] tensor `ffn_gate_up_exps` (gpt-oss's `gate_up_proj`).
    """
    out = linear("ffn_gate_inp", num_experts, hidden, layer, bias=router_bias)
    if gated and fused_gate_up:
        up_parts = [("ffn_gate_up_exps", 2 * intermediate)]
    elif gated:
        up_parts = [("ffn_gate_exps", intermediate), ("ffn_up_exps", intermediate)]
    else:
        up_parts = [("ffn_up_exps", intermediate)]
    for name, rows in up_parts:
        out.append(tensor(f"{name}.weight", (num_experts, rows, hidden), name, layer))
        if bias:
            out.append(tensor(f"{name}.bias", (num_experts, rows), name, layer))
    out.append(tensor("ffn_down_exps.weight", (num_experts, hidden, intermediate), "ffn_down_exps", layer))
    if bias:
        out.append(tensor("ffn_down_exps.bias", (num_experts, hidden), "ffn_down_exps", layer))
    return out


def routed(cfg: Cfg, num_experts: int, expert_inter: int, shared_inter: int = 0, *, gated: bool = True) -> MoEMLP:
    """A MoE block's spec: `num_experts` routed experts of `expert_inter`, `num_experts_per_tok` of them per
    token, beside a shared MLP of `shared_inter` (0: none)."""
    return MoEMLP(num_experts=num_experts, top_k=cfg.int("num_experts_per_tok"), expert_intermediate_size=expert_inter,
                  shared_intermediate_size=shared_inter, gated=gated)


def embeddings(vocab: int, hidden: int, *, tied: bool, final_norm_bias: bool = False) -> list[TensorSpec]:
    """Token embedding [V, H], final norm [H], and an untied lm_head [V, H] (`output.weight`)."""
    out = [tensor("token_embd.weight", (vocab, hidden), "token_embd")]
    out += norm("output_norm", hidden, None, bias=final_norm_bias)
    if not tied:
        out.append(tensor("output.weight", (vocab, hidden), "output"))
    return out


def layer_types(cfg: Cfg, num_layers: int) -> list[str] | None:
    """The config's explicit per-layer attention types (`layer_types`), checked for length."""
    types = cfg.get("layer_types")
    if types is None:
        return None
    if not isinstance(types, list) or len(types) != num_layers:
        raise InputError(f"{cfg.where}: 'layer_types' must list {num_layers} entries")
    return [str(t) for t in types]
