"""The deployment options every command that plans a deployment shares, declared once.

`@deployment_options(...)` adds them to a command's signature (Typer builds the options from it) and hands
their values to the command as one `deployment` dict: the keywords `kvcalc.api` takes (its module docstring),
so the same flag means the same thing in every command and reaches the same `kvcalc.api.deployment`. A new
engine option is one entry in OPTIONS (and its kind in `api._ENGINE_OPTIONS`). Parsing only: no arithmetic.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from copy import copy
from typing import Annotated, Any

import typer

from kvcalc.cli.options import GpuFileOpt, GpuOpt, KeepFp16Opt, KvDtypeOpt, QuantOpt, RevisionOpt

TpOpt = Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel degree.")]
PpOpt = Annotated[int, typer.Option("--pp", min=1, help="Pipeline-parallel degree.")]
DpOpt = Annotated[int, typer.Option("--dp", min=1, help="Data-parallel replicas (each a whole engine).")]
EpOpt = Annotated[int, typer.Option("--ep", min=1, help="Expert-parallel degree (= tp x dp when used).")]
CpOpt = Annotated[
    int,
    typer.Option("--cp", min=1, help="Decode context-parallel degree: each sequence's KV split over cp ranks of the "
                 "TP group (divides --tp; adds no GPUs)."),
]
ContextOpt = Annotated[
    str | None,
    typer.Option("--context", help="Tokens per request (max_model_len): 8192, 32k (=32,000), 32K (=32,768), 1M. "
                 "Default: the model's (the engine's default)."),
]
EngineOpt = Annotated[str, typer.Option("--engine", help="vllm, sglang, trtllm or llamacpp.")]
EngineVersionOpt = Annotated[
    str | None,
    typer.Option("--engine-version", help="Engine release whose accounting to apply (vLLM 0.10 to 0.33, default "
                 "0.33.0; other engines: their modelled release)."),
]
GmuOpt = Annotated[
    float | None,
    typer.Option("--gpu-memory-utilization", "--device-memory-utilization",
                 help="vLLM utilization (default 0.92 from v0.20, 0.9 before; the second name is v0.31's alias)."),
]
MnbtOpt = Annotated[
    int | None,
    typer.Option("--max-num-batched-tokens", min=1,
                 help="Chunked-prefill token budget per engine step (default: the engine's for the release and GPU)."),
]
MaxSeqsOpt = Annotated[
    int | None,
    typer.Option("--max-num-seqs", min=1,
                 help="Most requests running at once (vLLM max_num_seqs; caps concurrency and the profiled sampler)."),
]
BlockSizeOpt = Annotated[
    int | None,
    typer.Option("--block-size", min=1,
                 help="KV block size in tokens (vLLM 16, or the engine's choice for MLA and hybrid models)."),
]
EagerOpt = Annotated[bool, typer.Option("--enforce-eager", help="No CUDA graphs (no graph reservation; a launch "
                                        "per kernel).")]
LmOnlyOpt = Annotated[bool, typer.Option("--language-model-only", help="A multimodal model served text-only (vLLM "
                                         "--language-model-only): its vision tower is not loaded.")]
MmEncoderTpOpt = Annotated[
    str | None, typer.Option("--mm-encoder-tp-mode", help="vLLM: a multimodal tower's linears split over TP "
                             "('weights', the default) or whole on every GPU ('data': Qwen-VL, Kimi-VL, Llama 4).")]
MemFractionOpt = Annotated[
    float | None,
    typer.Option("--mem-fraction-static",
                 help="SGLang's fraction of GPU memory for weights + KV (default: SGLang's formula for the GPU)."),
]
NonTorchOpt = Annotated[
    str | None, typer.Option("--non-torch-memory", help="Override non-torch memory per GPU, e.g. 0.5GiB.")
]
ActivationOpt = Annotated[
    str | None, typer.Option("--activation-memory", help="Override the activation peak per GPU, e.g. 2GiB.")
]
CudaGraphOpt = Annotated[
    str | None, typer.Option("--cuda-graph-memory", help="Override the CUDA-graph reservation, e.g. 0.5GiB.")
]
CalibrationOpt = Annotated[
    str | None,
    typer.Option("--calibration", help="Calibration YAML (kvcalc verify --calibration-out): every coefficient it "
                 "holds replaces the default. Default: kvcalc's efficiencies for the card and engine, which take "
                 "only the KV read rate of a shipped calibration (hardware/calibration/<key>.yaml, H100)."),
]

RpsOpt = Annotated[float, typer.Option("--rps", help="Mean requests per second to serve.")]
ServeInputOpt = Annotated[str | None, typer.Option("--input", help="Input tokens per request: 2000, 2k, 2K.")]
ServeOutputOpt = Annotated[str | None, typer.Option("--output", help="Output tokens per request: 300, 1k.")]
MixOpt = Annotated[
    str | None,
    typer.Option("--mix", help="CSV or JSON-lines file of request lengths (input_tokens, output_tokens[, weight]); "
                 "replaces --input/--output."),
]
TtftOpt = Annotated[
    str, typer.Option("--ttft-slo", help="Time-to-first-token target: 1s, 500ms (default: MLPerf Llama-2-70B server).")
]
TpotOpt = Annotated[str, typer.Option("--tpot-slo", help="Time-per-output-token target: 60ms, 0.2s.")]
HeadroomOpt = Annotated[float, typer.Option("--headroom", help="Spare capacity kept above the mean load: 0.2 = 20%.")]
PriceOpt = Annotated[
    list[str] | None,
    typer.Option("--price", help="USD per GPU-hour overriding the catalogue, GPU=USD (repeatable): h100=2.49."),
]

#: Every shared option: parameter name -> (its Annotated type, its default; REQUIRED for none).
OPTIONS: dict[str, tuple[Any, Any]] = {
    "gpu": (GpuOpt, "h100"), "gpu_file": (GpuFileOpt, None), "tp": (TpOpt, 1), "pp": (PpOpt, 1),
    "dp": (DpOpt, 1), "ep": (EpOpt, 1), "cp": (CpOpt, 1), "context": (ContextOpt, None),
    "engine": (EngineOpt, "vllm"), "engine_version": (EngineVersionOpt, None),
    "gpu_memory_utilization": (GmuOpt, None), "max_num_batched_tokens": (MnbtOpt, None),
    "max_num_seqs": (MaxSeqsOpt, None), "block_size": (BlockSizeOpt, None), "enforce_eager": (EagerOpt, False),
    "language_model_only": (LmOnlyOpt, False), "mm_encoder_tp_mode": (MmEncoderTpOpt, None),
    "kv_dtype": (KvDtypeOpt, None),
    "mem_fraction_static": (MemFractionOpt, None),
    "non_torch_memory": (NonTorchOpt, None), "activation_memory": (ActivationOpt, None),
    "cuda_graph_memory": (CudaGraphOpt, None), "quant": (QuantOpt, None), "keep_fp16": (KeepFp16Opt, None),
    "revision": (RevisionOpt, None), "calibration": (CalibrationOpt, None),
    "rps": (RpsOpt, inspect.Parameter.empty), "input_tokens": (ServeInputOpt, None),
    "output_tokens": (ServeOutputOpt, None), "mix": (MixOpt, None), "ttft_slo": (TtftOpt, "2s"),
    "tpot_slo": (TpotOpt, "200ms"), "headroom": (HeadroomOpt, 0.2), "price": (PriceOpt, None),
}
LAYOUT = ("gpu", "gpu_file", "tp", "pp", "dp", "ep", "cp")
ENGINE = ("engine", "engine_version", "gpu_memory_utilization", "max_num_batched_tokens", "max_num_seqs",
          "block_size", "enforce_eager", "language_model_only", "mm_encoder_tp_mode", "kv_dtype",
          "mem_fraction_static", "non_torch_memory", "activation_memory", "cuda_graph_memory")
#: What `kvcalc fit` takes (the plan); commands that predict time add "calibration".
DEPLOYMENT = (*LAYOUT, "context", *ENGINE, "quant", "keep_fp16", "revision")
#: The load and targets of the serving commands (`serve`, `plan`).
WORKLOAD = ("rps", "input_tokens", "output_tokens", "mix", "ttft_slo", "tpot_slo", "headroom", "price")
#: Output options kept last in every command's option list.
_LAST = ("json_out", "explain")


def _option(name: str, help_text: str | None) -> Any:
    kind = OPTIONS[name][0]
    if help_text is None:
        return kind
    base, info = typing.get_args(kind)
    info = copy(info)
    info.help = help_text
    return Annotated[base, info]


def deployment_options(
    names: tuple[str, ...] = DEPLOYMENT, *, without: tuple[str, ...] = (), calibration: bool = False,
    help: dict[str, str] | None = None, defaults: dict[str, Any] | None = None, workload: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the shared options `names` (less `without`, plus --calibration when it predicts time),
    with per-command `help` and `defaults` where its meaning is narrower; the command receives their values as
    its `deployment` keyword (a dict of api keywords). They follow the command's own options, `workload` (the
    serving commands' load and targets) first."""
    chosen = [*(WORKLOAD if workload else ()), *(n for n in names if n not in without),
              *(("calibration",) if calibration else ())]
    helps, values = help or {}, defaults or {}

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "deployment"]
        shared = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=_option(n, helps.get(n)),
                                    default=values.get(n, OPTIONS[n][1])) for n in chosen]
        last = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p.name in _LAST]
        first = [p for p in own if p.name not in _LAST and p.default is inspect.Parameter.empty]
        rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own
                if p.name not in _LAST and p.default is not inspect.Parameter.empty]
        params = first + shared + rest + last

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            return func(deployment={n: kwargs.pop(n) for n in chosen}, **kwargs)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate
