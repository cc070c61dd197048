"""The deployment options a command needs to build a DeploymentPlan (the same flags as `kvcalc fit`), and
`build_plan` to turn them into one. Parsing only: the plan comes from calc/deploy.plan_deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

if TYPE_CHECKING:
    from kvcalc.calc.plan import DeploymentPlan
    from kvcalc.spec.deployment import EngineName

TpOpt = Annotated[int, typer.Option("--tp", min=1, help="Tensor-parallel degree.")]
PpOpt = Annotated[int, typer.Option("--pp", min=1, help="Pipeline-parallel degree.")]
EpOpt = Annotated[int, typer.Option("--ep", min=1, help="Expert-parallel degree (= tp x dp when used).")]
CpOpt = Annotated[int, typer.Option("--cp", min=1, help="Decode context-parallel degree (divides --tp).")]
ContextOpt = Annotated[
    str | None,
    typer.Option("--context", help="max_model_len: 8192, 32k (=32,000), 32K (=32,768). Default: the model's."),
]
EngineOpt = Annotated[str, typer.Option("--engine", help="vllm, sglang, trtllm or llamacpp.")]
EngineVersionOpt = Annotated[
    str | None, typer.Option("--engine-version", help="Engine release whose accounting to apply.")
]
GmuOpt = Annotated[float | None, typer.Option("--gpu-memory-utilization", help="vLLM utilization.")]
MnbtOpt = Annotated[int | None, typer.Option("--max-num-batched-tokens", min=1)]
MaxSeqsOpt = Annotated[int | None, typer.Option("--max-num-seqs", min=1)]
BlockSizeOpt = Annotated[int | None, typer.Option("--block-size", min=1, help="vLLM block size (default 16).")]
EagerOpt = Annotated[bool, typer.Option("--enforce-eager", help="No CUDA graphs (no graph reservation).")]
MemFractionOpt = Annotated[
    float | None, typer.Option("--mem-fraction-static", help="SGLang's fraction for weights + KV.")
]
NonTorchOpt = Annotated[str | None, typer.Option("--non-torch-memory", help="Override non-torch memory, e.g. 0.5GiB.")]
ActivationOpt = Annotated[str | None, typer.Option("--activation-memory", help="Override the activation peak.")]
CudaGraphOpt = Annotated[str | None, typer.Option("--cuda-graph-memory", help="Override the CUDA-graph memory.")]


def build_plan(model: str, options: dict[str, Any], warn: Any) -> DeploymentPlan:
    """The DeploymentPlan for `model` and the fit-style `options` (a command's keyword arguments)."""
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.cli.options import bytes_arg, gpu_arg, kv_dtype_arg, tokens_arg, weight_format_arg
    from kvcalc.sources.resolve import load_model
    from kvcalc.spec.deployment import EngineSettings, Parallel

    spec = load_model(model, revision=options.get("revision"), warn=warn)
    settings = EngineSettings(
        name=cast("EngineName", options["engine"]),
        version=options.get("engine_version"),
        gpu_memory_utilization=options.get("gpu_memory_utilization"),
        max_num_batched_tokens=options.get("max_num_batched_tokens"),
        max_num_seqs=options.get("max_num_seqs"),
        block_size=options.get("block_size"),
        enforce_eager=bool(options.get("enforce_eager")),
        kv_cache_dtype=kv_dtype_arg(options.get("kv_dtype")),
        mem_fraction_static=options.get("mem_fraction_static"),
        non_torch_bytes=bytes_arg(options.get("non_torch_memory"), "--non-torch-memory"),
        activation_bytes=bytes_arg(options.get("activation_memory"), "--activation-memory"),
        cuda_graph_bytes=bytes_arg(options.get("cuda_graph_memory"), "--cuda-graph-memory"),
    )
    parallel = Parallel(tp=options.get("tp", 1), pp=options.get("pp", 1), ep=options.get("ep", 1),
                        cp=options.get("cp", 1))
    return plan_deployment(
        spec, gpu_arg(options["gpu"], options.get("gpu_file")), parallel, settings,
        weight_format=weight_format_arg(spec, options.get("quant"), options.get("keep_fp16")),
        context=tokens_arg(options.get("context"), "--context"),
    )
