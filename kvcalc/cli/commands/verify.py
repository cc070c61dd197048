"""`kvcalc verify`."""

from typing import Annotated, Any

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt, ModelArg
from kvcalc.cli.plan_options import deployment_options

SCHEMA = ("kvcalc.report.verify", "VerifyReport")


@deployment_options(("gpu", "gpu_file", "context", "engine", "engine_version", "gpu_memory_utilization",
                     "block_size", "kv_dtype", "revision"),
                    defaults={"gpu": "auto"},
                    help={"gpu": "GPU key or alias whose hardware file the predictions use; 'auto' (default) picks "
                          "it from the device name.", "engine": "Engine whose KV layout and plan to verify.",
                          "context": "max_model_len of the plan (default: the model's)."})
def command(
    model: ModelArg,
    deployment: dict[str, Any],
    dtype: Annotated[str, typer.Option("--dtype", help="Weight and activation dtype: bf16 or fp16.")] = "bf16",
    layers: Annotated[
        int | None, typer.Option("--layers", min=1, help="K: layers of each kind built and timed (default 4; "
                                 "2 with --quick); the whole model is extrapolated from them.")
    ] = None,
    batches: Annotated[str | None, typer.Option("--batches", help="Decode batch sizes, e.g. 1,8,32,128.")] = None,
    contexts: Annotated[str | None, typer.Option("--contexts", help="Decode contexts, e.g. 1024,8192.")] = None,
    prompts: Annotated[str | None, typer.Option("--prompts", help="Prefill lengths, e.g. 512,2048,8192.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A short run (about two minutes on an H100).")] = False,
    calibration_out: Annotated[
        str | None, typer.Option("--calibration-out", help="Write the fitted coefficients to this YAML file.")
    ] = None,
    raw_out: Annotated[
        str | None, typer.Option("--raw-out", help="Also save the raw measurements (JSON) to this file.")
    ] = None,
    from_raw: Annotated[
        str | None, typer.Option("--from-raw", help="Re-read saved raw measurements instead of measuring "
                                 "(no GPU needed).")
    ] = None,
    gpus: Annotated[
        int | None, typer.Option("--gpus", min=2, help="Time all-reduce and all-to-all over N GPUs of this "
                                 "machine (torchrun, NCCL) instead of the one-GPU measurements.")
    ] = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Measure on this machine's GPU what kvcalc predicts (ceilings, weights, KV cache, decode and prefill
    times, attention memory), print each beside its prediction, and fit the perf model's coefficients.

    Needs torch (pip install torch, or '.\\[bench]' in a checkout) and a CUDA GPU, else exit 3."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn

    report = api.verify(model, dtype=dtype, layers=layers, batches=batches, contexts=contexts, prompts=prompts,
                        quick=quick, calibration_out=calibration_out, raw_out=raw_out, from_raw=from_raw, gpus=gpus,
                        explain=explain, warn=warn, **deployment)
    for note in report.notes:
        warn(note)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.verify_render:render_verify")
