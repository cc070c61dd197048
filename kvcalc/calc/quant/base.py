"""The quantized-format base: which tensors a format quantizes (roles kept 16-bit), how a shard gets its
share of a tensor's bytes, and whole-model totals (bytes, bits per weight)."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from kvcalc.calc.weights import WeightFormat
from kvcalc.errors import InputError
from kvcalc.spec.layers import TensorSpec
from kvcalc.spec.model import ModelSpec
from kvcalc.units import ceil_div

#: Bytes of a value kept in high precision (bf16 / fp16) by the safetensors formats.
HIGH_PRECISION_BYTES = 2

#: Roles no engine quantizes, whatever the format: norms, routers, position embeddings, SSM kernels.
ALWAYS_HIGH_PRECISION_ROLES = frozenset({
    "norm", "ssm_norm", "ffn_gate_inp", "ffn_gate_inp_shexp", "pos_embd", "attn_sinks", "ssm_conv1d", "ssm_a",
    "ssm_d",
})

#: Roles kvcalc's model families emit (what `--keep-fp16` accepts, besides the aliases and globs).
KNOWN_ROLES = (
    "token_embd", "output", "pos_embd", "norm", "attn_q", "attn_k", "attn_v", "attn_qkv", "attn_output",
    "attn_q_a", "attn_q_b", "attn_kv_a_mqa", "attn_kv_b", "attn_sinks", "ffn_gate", "ffn_up", "ffn_down",
    "ffn_gate_up", "ffn_gate_inp", "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps", "ffn_gate_up_exps",
    "ffn_gate_shexp", "ffn_up_shexp", "ffn_down_shexp", "ffn_gate_inp_shexp", "ssm_in", "ssm_out", "ssm_x",
    "ssm_dt", "ssm_a", "ssm_d", "ssm_conv1d", "ssm_norm", "ssm_ba", "ssm_alpha", "ssm_beta", "ssm_in_qkv",
    "ssm_in_z",
)

#: `--keep-fp16` aliases -> role names or globs.
KEEP_ALIASES: dict[str, tuple[str, ...]] = {
    "lm_head": ("output",),
    "head": ("output",),
    "embed": ("token_embd",),
    "embeddings": ("token_embd",),
    "embed_tokens": ("token_embd",),
    "attn": ("attn_*",),
    "attention": ("attn_*",),
    "experts": ("ffn_*_exps",),
    "shared_experts": ("ffn_*_shexp",),
    "mlp": ("ffn_*",),
    "router": ("ffn_gate_inp",),
    "ssm": ("ssm_*",),
}


def parse_keep(text: str | Iterable[str] | None) -> frozenset[str] | None:
    """Parse `--keep-fp16 lm_head,embed` into role names: `lm_head` -> `output`, `embed` -> `token_embd`,
    `attn` -> `attn_*` (a glob), `none` -> the empty set; role names (`attn_v`), globs (`ffn_*_exps`) and
    single layers (`blk.0.ffn_down`) pass through. None or '' -> None (the format's default)."""
    if text is None:
        return None
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    items = [s for s in items if s]
    if not items:
        return None
    roles: set[str] = set()
    for item in items:
        key = item.lower()
        if key == "none":
            continue
        if key in KEEP_ALIASES:
            roles.update(KEEP_ALIASES[key])
        elif key in KNOWN_ROLES or "*" in key or key.startswith("blk."):
            roles.add(key)
        else:
            raise InputError(
                f"--keep-fp16: unknown tensor role '{item}'; use {', '.join(sorted(KEEP_ALIASES))}, none, "
                f"a role ({', '.join(KNOWN_ROLES)}), a glob like ffn_*_exps, or blk.N.ROLE"
            )
    return frozenset(roles)


def _matches(t: TensorSpec, patterns: Iterable[str]) -> bool:
    for p in patterns:
        if p.startswith("blk."):
            if t.layer is not None and fnmatchcase(f"blk.{t.layer}.{t.role}", p):
                return True
        elif fnmatchcase(t.role, p):
            return True
    return False


def matrix_dims(t: TensorSpec) -> tuple[int, int, int]:
    """(E, N, K): stacked matrices, output rows, input columns (K = the quantized, contiguous dim)."""
    shape = t.shape
    if len(shape) == 1:
        return 1, 1, shape[0]
    e = 1
    for d in shape[:-2]:
        e *= d
    return e, shape[-2], shape[-1]


def is_linear_weight(t: TensorSpec) -> bool:
    """A matrix a weight-quantization kernel can take: a `.weight` of >= 2 dims, not a norm/router/..."""
    return (
        t.name.endswith(".weight")
        and sum(1 for d in t.shape if d > 1) >= 2
        and t.role not in ALWAYS_HIGH_PRECISION_ROLES
    )


def _share(full: int, t: TensorSpec, numel: int) -> int:
    """Bytes of a `numel`-element shard of a tensor whose whole takes `full` bytes."""
    if numel == t.numel or t.numel == 0:
        return full
    return ceil_div(full * numel, t.numel)


# --------------------------------------------------------------------------------------------------------
# Safetensors-style formats (one class per layout)
# --------------------------------------------------------------------------------------------------------


class QuantFormat:
    """Base: quantizes every Linear weight except the kept roles; the rest is 16-bit.

    Subclasses set `name`, `family`, `source` and implement `matrix_bytes(e, n, k)` (bytes of `e` stacked
    [n, k] matrices with all their metadata).
    """

    family = "quantized"
    source = ""
    #: Roles kept 16-bit unless overridden (the lm_head; the embedding is never a Linear).
    default_keep: frozenset[str] = frozenset({"output"})
    quantizes_embedding = False

    def __init__(self, name: str, keep_high_precision: Iterable[str] | None = None) -> None:
        self.name = name
        self.keep = frozenset(keep_high_precision) if keep_high_precision is not None else self.default_keep

    def bind(self, model: ModelSpec) -> QuantFormat:
        """The format specialised to `model` (only GGUF recipes depend on the model; others return self)."""
        return self

    def quantizes(self, t: TensorSpec) -> bool:
        if not is_linear_weight(t) or _matches(t, self.keep):
            return False
        return self.quantizes_embedding or t.role != "token_embd"

    def matrix_bytes(self, e: int, n: int, k: int) -> int:
        raise NotImplementedError

    def storage(self, t: TensorSpec) -> str:
        """What a tensor is stored as: the format's name, or `bf16` for kept tensors."""
        return self.name if self.quantizes(t) else "bf16"

    def full_bytes(self, t: TensorSpec) -> int:
        if self.quantizes(t):
            return self.matrix_bytes(*matrix_dims(t))
        return t.numel * HIGH_PRECISION_BYTES

    def tensor_bytes(self, t: TensorSpec, numel: int) -> int:
        return _share(self.full_bytes(t), t, numel)

    def describe(self) -> str:
        return self.name

    def bits_per_weight(self, model: ModelSpec) -> float:
        """Effective bits per weight of `model` in this format (module-level `bits_per_weight`)."""
        return bits_per_weight(model, self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, keep={sorted(self.keep)})"





def bind_format(fmt: WeightFormat, model: ModelSpec) -> WeightFormat:
    """`fmt.bind(model)` where the format has one (GGUF recipes), else `fmt` itself."""
    bind = getattr(fmt, "bind", None)
    return bind(model) if callable(bind) else fmt


def model_weights_bytes(model: ModelSpec, fmt: WeightFormat) -> int:
    """Bytes of every tensor of the text model (`all_tensors`) in `fmt`, unsharded."""
    bound = bind_format(fmt, model)
    return sum(bound.tensor_bytes(t, t.numel) for t in model.all_tensors())


def bits_per_weight(model: ModelSpec, fmt: WeightFormat) -> float:
    """Effective bits per weight over the whole model: 8 x weight bytes / parameters (metadata, 16-bit
    embeddings and head included)."""
    params = sum(t.numel for t in model.all_tensors())
    return 8 * model_weights_bytes(model, fmt) / params if params else 0.0


def tensor_storage(model: ModelSpec, fmt: QuantFormat) -> dict[str, str]:
    """Tensor name -> what it is stored as (`Q6_K`, `gptq:4:128`, `bf16`, `F32` ...) for `model`."""
    bound = fmt.bind(model)
    return {t.name: bound.storage(t) for t in model.all_tensors()}
