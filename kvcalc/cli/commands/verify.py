"""`kvcalc verify`."""

from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

if TYPE_CHECKING:
    from kvcalc.spec.deployment import EngineName

from kvcalc.cli.options import (
    ExplainOpt,
    GpuFileOpt,
    JsonOpt,
    KvDtypeOpt,
    ModelArg,
    RevisionOpt,
    kv_dtype_arg,
)
from kvcalc.cli.plan_options import BLOCK_HELP, GMU_HELP

SCHEMA = ("kvcalc.report.verify", "VerifyReport")


def _ints(value: str | None, what: str) -> tuple[int, ...] | None:
    from kvcalc.errors import InputError
    from kvcalc.units import parse_tokens

    if value is None:
        return None
    try:
        numbers = tuple(parse_tokens(v.strip(), what) for v in value.split(",") if v.strip())
    except InputError:
        raise
    if not numbers or min(numbers) <= 0:
        raise InputError(f"{what} needs positive whole numbers separated by commas, e.g. 1,8,32; got '{value}'")
    return numbers


def command(
    model: ModelArg,
    gpu: Annotated[
        str, typer.Option("--gpu", help="GPU key or alias whose hardware file the predictions use; "
                          "'auto' (default) picks it from the device name.")
    ] = "auto",
    gpu_file: GpuFileOpt = None,
    engine: Annotated[str, typer.Option("--engine", help="Engine whose KV layout and plan to verify.")] = "vllm",
    engine_version: Annotated[
        str | None,
        typer.Option("--engine-version", help="Engine release whose plan to verify (default: the newest modelled)."),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="max_model_len of the plan (default: the model's).")
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="Weight and activation dtype: bf16 or fp16.")] = "bf16",
    kv_dtype: KvDtypeOpt = None,
    block_size: Annotated[int | None, typer.Option("--block-size", min=1, help=BLOCK_HELP)] = None,
    gpu_memory_utilization: Annotated[float | None, typer.Option("--gpu-memory-utilization", help=GMU_HELP)] = None,
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
    revision: RevisionOpt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Measure on this machine's GPU what kvcalc predicts (ceilings, weights, KV cache, decode and prefill
    times, attention memory), print each beside its prediction, and fit the perf model's coefficients.

    Needs torch (pip install torch, or '.\\[bench]' in a checkout) and a CUDA GPU, else exit 3."""
    from kvcalc.cli.output import emit, warn
    from kvcalc.errors import InputError
    from kvcalc.sources.resolve import load_model
    from kvcalc.spec.deployment import EngineSettings

    if dtype not in ("bf16", "fp16"):
        raise InputError(f"--dtype {dtype}: verify builds random weights in bf16 or fp16")
    spec = load_model(model, revision=revision, warn=warn)
    settings = EngineSettings(name=cast("EngineName", engine), version=engine_version, block_size=block_size,
                              gpu_memory_utilization=gpu_memory_utilization, kv_cache_dtype=kv_dtype_arg(kv_dtype))
    sizes = dict(batches=_ints(batches, "--batches"), contexts=_ints(contexts, "--contexts"),
                 prompts=_ints(prompts, "--prompts"))
    if from_raw:
        raw = _read_raw(from_raw, spec.id)
        gpu_spec = _gpu(gpu if gpu != "auto" else raw.get("gpu", "auto"), gpu_file, raw.get("card", {}))
    else:
        from kvcalc.bench.env import card_info, require_cuda

        require_cuda()
        card = card_info()
        gpu_spec = _gpu(gpu, gpu_file, card)
    plan = _plan(spec, gpu_spec, settings, dtype, context)
    if gpus is not None:
        raw = _measure_comm(spec, gpus, card if not from_raw else raw.get("card", {}), sizes)
    elif not from_raw:
        raw = _measure(plan, card, model, dtype, layers, quick, sizes)
    if raw_out:
        _write_json(raw_out, raw)
    report = _report(raw, plan, calibration_out, explain)
    for note in report.notes:
        warn(note)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.verify:render_verify")


def _gpu(name: str, gpu_file: str | None, card: dict[str, Any]) -> Any:
    from kvcalc.bench.env import hardware_key_for
    from kvcalc.cli.options import gpu_arg
    from kvcalc.errors import InputError

    if gpu_file or name != "auto":
        return gpu_arg(name, gpu_file)
    key = hardware_key_for(card.get("name", ""))
    if key is None:
        raise InputError(f"no hardware file matches the device '{card.get('name', '?')}'; give --gpu KEY or "
                         "--gpu-file FILE")
    return gpu_arg(key, None)


def _plan(spec: Any, gpu: Any, settings: Any, dtype: str, context: str | None) -> Any:
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.calc.weights import PlainFormat
    from kvcalc.cli.options import tokens_arg
    from kvcalc.spec.deployment import Parallel

    return plan_deployment(spec, gpu, Parallel(), settings, weight_format=PlainFormat(dtype),
                           context=tokens_arg(context, "--context"))


def _config_for(model: str) -> dict[str, Any] | None:
    """The config.json of a profile or local folder/file (for the transformers cross-check)."""
    from pathlib import Path

    from kvcalc.sources.profiles import find_profile, load_profile
    from kvcalc.sources.resolve import read_config_file

    profile = find_profile(model)
    if profile is not None:
        return dict(load_profile(profile)["config"])
    path = Path(model).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return read_config_file(path / "config.json")
    if path.is_file() and path.suffix == ".json":
        return read_config_file(path)
    return None


def _measure(plan: Any, card: dict[str, Any], model: str, dtype: str, layers: int | None, quick: bool,
             sizes: dict[str, Any]) -> dict[str, Any]:
    import sys

    from kvcalc.bench.suite import SuiteOptions, run_suite

    changes: dict[str, Any] = {"dtype": dtype, **{k: v for k, v in sizes.items() if v}}
    if layers is not None:
        changes["stack"] = layers
    options = SuiteOptions.quick(**changes) if quick else SuiteOptions(**changes)

    def progress(message: str) -> None:
        print(f"verify: {message}", file=sys.stderr, flush=True)

    raw = run_suite(plan, options, device="cuda", card=card, config=_config_for(model), progress=progress)
    raw["command"] = "kvcalc " + " ".join(sys.argv[1:])
    return raw


def _measure_comm(spec: Any, ranks: int, card: dict[str, Any], sizes: dict[str, Any]) -> dict[str, Any]:
    import torch

    from kvcalc.bench.comm import launch, message_sizes
    from kvcalc.errors import EnvironmentProblem

    if torch.cuda.device_count() < ranks:
        raise EnvironmentProblem(f"--gpus {ranks}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    messages = message_sizes(spec.hidden_size, list(sizes["batches"] or (1, 8, 64, 256)),
                             list(sizes["prompts"] or (2048, 16384)))
    return {"card": card, "model": spec.id, "comm": launch(ranks, messages)}


def _read_raw(path: str, model_id: str) -> dict[str, Any]:
    """A raw record saved by --raw-out, or this model's entry in a docs/dev/gpu_verify.py record."""
    import json

    from kvcalc.errors import InputError

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise InputError(f"--from-raw {path}: cannot read raw measurements: {exc}") from None
    if not isinstance(data, dict) or "card" not in data:
        raise InputError(f"--from-raw {path}: not a kvcalc verify raw record (no 'card')")
    if "models" in data:
        found = [m for m in data["models"] if m.get("model") == model_id and "skipped" not in m]
        if not found:
            names = ", ".join(m.get("model", "?") for m in data["models"])
            raise InputError(f"--from-raw {path}: no measurement of {model_id}; it holds {names}")
        return {**found[0], "card": data["card"]}
    return data


def _write_json(path: str, data: dict[str, Any]) -> None:
    import json
    import os
    import tempfile
    from pathlib import Path

    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent if str(target.parent) else ".")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
    os.replace(tmp, target)


def _report(raw: dict[str, Any], plan: Any, calibration_out: str | None, explain: bool) -> Any:
    from kvcalc.calc.perf.defaults import default_coefficients
    from kvcalc.report.verify import verify_report

    base = default_coefficients(plan.gpu, plan.engine, cuda_graphs=True, online=False)
    report, _fit = verify_report(raw, plan, base, explain=explain)
    if calibration_out:
        report = _write_calibration(report, raw, plan, calibration_out)
    return report


def _write_calibration(report: Any, raw: dict[str, Any], plan: Any, path: str) -> Any:
    """Write the card's fitted coefficients (atomically, through sources.calibration) and say so."""
    from kvcalc.errors import InputError
    from kvcalc.report.verify import calibration_values
    from kvcalc.sources.calibration import Calibration, write_calibration
    from kvcalc.spec.base import replace

    values = calibration_values(report)
    if not values:
        raise InputError("--calibration-out: no timing was measured, so there is nothing to calibrate")
    card = raw.get("card", {})
    calibration = Calibration(
        card=card.get("name") or "unknown", driver=card.get("driver") or "unknown",
        torch=card.get("torch") or "unknown", date=card.get("date") or "1970-01-01", values=values,
        gpu=plan.gpu.key, command=raw.get("command"),
    )
    write_calibration(path, calibration)
    return replace(report, calibration=replace(report.calibration, file=path))
