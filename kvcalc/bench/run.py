"""One `kvcalc verify` run end to end (what `kvcalc.api.verify` calls): find the card, plan the model on it,
measure (or re-read saved measurements), keep the raw record, build the report and write the calibration.
torch is imported only when measuring."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvcalc.errors import InputError
from kvcalc.inputs import user_path


@dataclass(frozen=True)
class VerifyRun:
    """What to verify and where to write (api.verify checks every value)."""

    model: str
    spec: Any
    gpu: str
    gpu_file: str | None
    settings: Any
    dtype: str
    context: int | None
    layers: int | None
    sizes: dict[str, tuple[int, ...] | None] = field(default_factory=dict)
    quick: bool = False
    gpus: int | None = None
    from_raw: str | None = None
    raw_out: str | None = None
    calibration_out: str | None = None


def run_verify(run: VerifyRun, *, explain: bool) -> Any:
    """The VerifyReport of `run` (its notes say what was skipped), written files recorded in it."""
    if run.from_raw:
        raw = read_raw(run.from_raw, run.spec.id)
        card = raw.get("card", {})
        gpu = resolve_gpu(run.gpu if run.gpu != "auto" else raw.get("gpu", "auto"), run.gpu_file, card)
    else:
        from kvcalc.bench.env import card_info, require_cuda

        require_cuda()
        card = card_info()
        gpu = resolve_gpu(run.gpu, run.gpu_file, card)
    plan = _plan(run, gpu)
    if run.gpus is not None:
        raw = measure_comm(run.spec, run.gpus, card, run.sizes)
    elif not run.from_raw:
        raw = measure(plan, card, run)
    if run.raw_out:
        write_json(run.raw_out, raw)
    return _report(raw, plan, run.calibration_out, explain)


def resolve_gpu(name: str, gpu_file: str | None, card: dict[str, Any]) -> Any:
    """--gpu-file, else --gpu, else ('auto') the hardware file matching the device's name."""
    from kvcalc.bench.env import hardware_key_for
    from kvcalc.sources.hardware import find_gpu, load_gpu_file

    if gpu_file:
        return load_gpu_file(gpu_file)
    if name != "auto":
        return find_gpu(name)
    key = hardware_key_for(card.get("name", ""))
    if key is None:
        raise InputError(f"no hardware file matches the device '{card.get('name', '?')}'; give --gpu KEY or "
                         "--gpu-file FILE")
    return find_gpu(key)


def _plan(run: VerifyRun, gpu: Any) -> Any:
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.calc.weights import PlainFormat
    from kvcalc.spec.deployment import Parallel

    return plan_deployment(run.spec, gpu, Parallel(), run.settings, weight_format=PlainFormat(run.dtype),
                           context=run.context)


def config_for(model: str) -> dict[str, Any] | None:
    """The config.json of a profile or local folder/file (for the transformers cross-check)."""

    from kvcalc.sources.profiles import find_profile, load_profile
    from kvcalc.sources.resolve import read_config_file

    profile = find_profile(model)
    if profile is not None:
        return dict(load_profile(profile)["config"])
    path = user_path(model, "model")
    if path.is_dir() and (path / "config.json").is_file():
        return read_config_file(path / "config.json")
    if path.is_file() and path.suffix == ".json":
        return read_config_file(path)
    return None


def measure(plan: Any, card: dict[str, Any], run: VerifyRun) -> dict[str, Any]:
    """The suite's raw record for `plan` on this GPU (progress on stderr)."""
    import sys

    from kvcalc.bench.suite import SuiteOptions, run_suite

    changes: dict[str, Any] = {"dtype": run.dtype, **{k: v for k, v in run.sizes.items() if v}}
    if run.layers is not None:
        changes["stack"] = run.layers
    options = SuiteOptions.quick(**changes) if run.quick else SuiteOptions(**changes)

    def progress(message: str) -> None:
        print(f"verify: {message}", file=sys.stderr, flush=True)

    raw = run_suite(plan, options, device="cuda", card=card, config=config_for(run.model), progress=progress)
    raw["command"] = "kvcalc " + " ".join(sys.argv[1:])
    return raw


def measure_comm(spec: Any, ranks: int, card: dict[str, Any], sizes: dict[str, Any]) -> dict[str, Any]:
    """All-reduce and all-to-all timings over `ranks` GPUs of this machine (torchrun, NCCL)."""
    import torch

    from kvcalc.bench.comm import launch, message_sizes
    from kvcalc.errors import EnvironmentProblem

    if torch.cuda.device_count() < ranks:
        raise EnvironmentProblem(f"--gpus {ranks}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    messages = message_sizes(spec.hidden_size, list(sizes.get("batches") or (1, 8, 64, 256)),
                             list(sizes.get("prompts") or (2048, 16384)))
    return {"card": card, "model": spec.id, "comm": launch(ranks, messages)}


def read_raw(path: str, model_id: str) -> dict[str, Any]:
    """A raw record saved by --raw-out, or this model's entry in a docs/dev/gpu_verify.py record."""
    import json

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


def write_json(path: str, data: dict[str, Any]) -> None:
    """`data` as JSON at `path`, atomically and readable as any file the user writes (`sources.atomic`)."""
    import json

    from kvcalc.sources.atomic import write_atomic

    write_atomic(path, json.dumps(data, indent=1))


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
    from kvcalc.calc.verify.calibration import calibration_values, fp8_ratio
    from kvcalc.sources.calibration import Calibration, write_calibration
    from kvcalc.spec.base import replace

    cal = report.calibration
    values = {} if cal is None else calibration_values(
        cal.coefficients, cal.written, report.dtype or "bf16", fp8_ratio(raw.get("ceilings") or {}, plan.gpu))
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
