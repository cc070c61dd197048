"""Options and argument helpers shared by the commands (parsing only; no arithmetic)."""

from typing import TYPE_CHECKING, Annotated

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
    return None if value in (None, "auto") else value


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


def bytes_arg(value: str | None, what: str) -> int | None:
    from kvcalc.units import parse_bytes

    return None if value is None else parse_bytes(value, what)


