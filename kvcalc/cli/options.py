"""Options and argument helpers shared by the commands (parsing only; no arithmetic).

Every command's options are bounded centrally (`bound_params`, applied by `cli.app` to whatever command
runs): an integer option is at most `bounds.MAX_CLI_INT` (or its own bounds in `bounds.CLI_OPTION_MAX` and
`CLI_OPTION_MIN`, for options whose work grows with their value or as it shrinks), a float option finite and
within `bounds.MAX_CLI_FLOAT`, and a text option non-empty and at most `bounds.MAX_TEXT_CHARS` characters. A
new command gets this for free; its own ranges (`min=1` ...) still apply.
"""

from typing import TYPE_CHECKING, Annotated, Any

import click
import typer

if TYPE_CHECKING:
    from kvcalc.calc.weights import WeightFormat
    from kvcalc.spec.gpu import GpuSpec
    from kvcalc.spec.model import ModelSpec

ModelArg = Annotated[
    str,
    typer.Argument(
        help="Profile alias (kvcalc models), config.json / model folder / .gguf, or Hub repo id[@revision]."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout, nothing else.")]
ExplainOpt = Annotated[
    bool, typer.Option("--explain", help="Show each figure's formula with the numbers substituted.")
]
KvDtypeOpt = Annotated[
    str | None,
    typer.Option(
        "--kv-dtype",
        help="KV-cache dtype: auto (model dtype), bf16, fp16, fp8, fp8_e4m3, fp8_e5m2, int8, q8_0, q4_0 ...",
    ),
]
RevisionOpt = Annotated[str | None, typer.Option("--revision", help="Hub revision (branch, tag or commit).")]


def kv_dtype_arg(value: str | None) -> str | None:
    """--kv-dtype: None for the model's dtype (`auto` or not given), else a known dtype name (checked here,
    once, so that commands which try several engines or formats reject a typo up front)."""
    if value is None or value.strip().lower() == "auto":
        return None
    from kvcalc.spec.dtypes import storage_type

    storage_type(value)  # InputError naming the known dtypes
    return value


def version_arg(value: str | None, what: str = "--engine-version") -> str | None:
    """An engine release as written (`0.19.0`, `v0.21`, `0.10.1.1`): one to four dot-separated numbers of at
    most four digits each. Syntax only: the engine's own table decides whether it knows the release."""
    import re

    from kvcalc.errors import InputError

    if value is None:
        return None
    if not re.fullmatch(r"v?\d{1,4}(\.\d{1,4}){0,3}", value.strip()):
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise InputError(f"{what} '{shown}' is not a release number; write it as 0.19.0 or v0.21")
    return value.strip()


GpuOpt = Annotated[
    str, typer.Option("--gpu", help="GPU key or alias (kvcalc gpus), or a path to your own GPU .yaml.")
]
GpuFileOpt = Annotated[
    str | None,
    typer.Option("--gpu-file", help="Your own GPU .yaml (same fields as hardware/*.yaml); overrides --gpu."),
]


def gpu_arg(name: str, gpu_file: str | None) -> "GpuSpec":
    """--gpu-file when given (validated like the shipped files), else --gpu resolved by key or alias."""
    from kvcalc.sources.hardware import find_gpu, load_gpu_file

    return load_gpu_file(gpu_file) if gpu_file else find_gpu(name)


QuantOpt = Annotated[
    str | None,
    typer.Option(
        "--quant",
        help="Weight format: bf16, fp8[:channel|:block], int8, gptq:4:128[:act], awq:4:128, nf4[:dq], nvfp4, "
        "mxfp4, or a GGUF type (Q4_K_M, Q8_0, IQ4_XS ...). Default: as the checkpoint's quantization_config "
        "stores it, else the model dtype.",
    ),
]
KeepFp16Opt = Annotated[
    str | None,
    typer.Option(
        "--keep-fp16",
        help="Tensors kept 16-bit instead of the format's default: lm_head, embed, none, attn, experts or a role.",
    ),
]


def weight_format_arg(spec: "ModelSpec", quant: str | None, keep_fp16: str | None) -> "WeightFormat | None":
    """--quant parsed and bound to the model; None (the checkpoint's own format) without it."""
    from kvcalc.errors import InputError

    if quant is None:
        if keep_fp16 is not None:
            raise InputError("--keep-fp16 needs --quant FORMAT (it changes which tensors that format quantizes)")
        return None
    from kvcalc.calc.quant import parse_quant

    return parse_quant(quant, keep_fp16, model=spec)


def tokens_arg(value: str | None, what: str) -> int | None:
    from kvcalc.units import parse_tokens

    return None if value is None else parse_tokens(value, what)


def bytes_arg(value: str | None, what: str, *, minimum: int = 1) -> int | None:
    """A size option (`80GB`, `64G`, `512MiB`): positive unless `minimum=0` (an override that may be zero)."""
    from kvcalc.units import parse_bytes

    return None if value is None else parse_bytes(value, what, minimum=minimum)


# --- central bounds on every option's value (applied by cli.app to the command that runs) ----------------


def _fail(message: str, param: Any, ctx: Any) -> None:
    raise click.BadParameter(message, ctx=ctx, param=param)


class _BoundedText(click.types.StringParamType):
    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, str):
            from kvcalc.bounds import MAX_TEXT_CHARS

            if not value.strip():
                _fail("is empty; give a value or leave the option out", param, ctx)
            if len(value) > MAX_TEXT_CHARS or "\x00" in value:
                _fail(f"is {len(value):,} characters long (limit {MAX_TEXT_CHARS:,}) or holds a NUL", param, ctx)
        return super().convert(value, param, ctx)


def _check_number(value: Any, param: Any, ctx: Any, limit: float | None, floor: float | None = None) -> Any:
    import math

    from kvcalc.bounds import MAX_CLI_FLOAT, MAX_CLI_INT

    if isinstance(value, float) and not math.isfinite(value):
        _fail(f"{value} is not a finite number", param, ctx)
    if floor is not None and isinstance(value, (int, float)) and value < floor:
        _fail(f"{value:,} is below the sane bound {floor:,}", param, ctx)
    if limit is None:
        limit = MAX_CLI_INT if isinstance(value, int) else MAX_CLI_FLOAT
    if isinstance(value, (int, float)) and abs(value) > limit:
        shown = f"{value:,}" if isinstance(value, int) and abs(value) < 10**30 else f"{value:.4g}"
        _fail(f"{shown} is beyond the sane bound {limit:,}", param, ctx)
    return value


class _NumberBound:
    """Mixin for click's number types: the value is finite, within `limit` (the option's own bound in
    `bounds.CLI_OPTION_MAX`, else MAX_CLI_INT / MAX_CLI_FLOAT) and at least `floor` (`bounds.CLI_OPTION_MIN`);
    text over 64 characters is no number."""

    limit: float | None = None
    floor: float | None = None

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, str) and len(value) > 64:
            _fail(f"'{value[:20]}...' is not a number", param, ctx)
        converted = super().convert(value, param, ctx)  # type: ignore[misc]
        return _check_number(converted, param, ctx, self.limit, self.floor)


class _BoundedInt(_NumberBound, click.types.IntParamType):
    pass


class _BoundedIntRange(_NumberBound, click.IntRange):
    pass


class _BoundedFloat(_NumberBound, click.types.FloatParamType):
    pass


class _BoundedFloatRange(_NumberBound, click.FloatRange):
    pass


def _bounded_type(kind: Any, limit: float | None, floor: float | None = None) -> Any:
    """The bounded twin of a click parameter type (None when it needs none: flags, choices, our own)."""
    if isinstance(kind, (_BoundedText, _NumberBound)):
        return None
    bounded: Any = None
    if isinstance(kind, click.IntRange):
        bounded = _BoundedIntRange(kind.min, kind.max, min_open=kind.min_open, max_open=kind.max_open,
                                   clamp=kind.clamp)
    elif isinstance(kind, click.FloatRange):
        bounded = _BoundedFloatRange(kind.min, kind.max, min_open=kind.min_open, max_open=kind.max_open,
                                     clamp=kind.clamp)
    elif type(kind) is click.types.IntParamType:
        bounded = _BoundedInt()
    elif type(kind) is click.types.FloatParamType:
        bounded = _BoundedFloat()
    elif type(kind) is click.types.StringParamType:
        return _BoundedText()
    if bounded is not None:
        bounded.limit, bounded.floor = limit, floor
    return bounded


def bound_params(command: click.Command) -> click.Command:
    """Give every option and argument of `command` (and of its subcommands) a bounded type, in place."""
    from kvcalc.bounds import CLI_OPTION_MAX, CLI_OPTION_MIN

    for param in command.params:
        limit = next((CLI_OPTION_MAX[o] for o in param.opts if o in CLI_OPTION_MAX), None)
        floor = next((CLI_OPTION_MIN[o] for o in param.opts if o in CLI_OPTION_MIN), None)
        bounded = None if getattr(param, "is_flag", False) else _bounded_type(param.type, limit, floor)
        if bounded is not None:
            param.type = bounded
    for sub in getattr(command, "commands", {}).values():
        bound_params(sub)
    return command


