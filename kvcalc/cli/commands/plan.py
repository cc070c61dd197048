"""`kvcalc plan`."""

from typing import TYPE_CHECKING, Annotated, cast

import typer

from kvcalc.cli.commands.serve import (
    HeadroomOpt,
    InputOpt,
    MixOpt,
    OutputOpt,
    PriceOpt,
    RpsOpt,
    TpotOpt,
    TtftOpt,
    workload_from_options,
)
from kvcalc.cli.options import (
    ExplainOpt,
    JsonOpt,
    KvDtypeOpt,
    ModelArg,
    RevisionOpt,
    kv_dtype_arg,
    tokens_arg,
)

if TYPE_CHECKING:
    from kvcalc.calc.weights import WeightFormat
    from kvcalc.spec.deployment import EngineName, EngineSettings
    from kvcalc.spec.model import ModelSpec

SCHEMA = ("kvcalc.report.plan", "PlanReport")


def _formats(spec: "ModelSpec", quants: list[str] | None) -> "list[tuple[str, WeightFormat | None]]":
    """(name, format) per --quant entry; `auto` is the checkpoint's own format."""
    from kvcalc.calc.quant import parse_quant

    return [(q, None if q == "auto" else parse_quant(q, None, model=spec)) for q in (quants or ["auto"])]


def _settings(kv_dtype: str | None, max_num_batched_tokens: int | None) -> "object":
    from kvcalc.spec.deployment import EngineSettings

    def settings_for(engine: str) -> "EngineSettings":
        return EngineSettings(name=cast("EngineName", engine), kv_cache_dtype=kv_dtype_arg(kv_dtype),
                              max_num_batched_tokens=max_num_batched_tokens)

    return settings_for


def command(
    model: ModelArg,
    rps: RpsOpt,
    input_tokens: InputOpt = None,
    output_tokens: OutputOpt = None,
    mix: MixOpt = None,
    ttft_slo: TtftOpt = "2s",
    tpot_slo: TpotOpt = "200ms",
    headroom: HeadroomOpt = 0.2,
    price: PriceOpt = None,
    gpus: Annotated[
        str | None, typer.Option("--gpus", help="GPUs to search (default h100,h200,a100-80gb,l40s,mi300x).")
    ] = None,
    quant: Annotated[
        str | None, typer.Option("--quant", help="Weight formats to search: bf16,fp8,awq (default: the checkpoint's).")
    ] = None,
    engines: Annotated[str, typer.Option("--engines", help="Engines to search: vllm,sglang.")] = "vllm,sglang",
    max_gpus: Annotated[int, typer.Option("--max-gpus", min=1, max=64, help="Most GPUs in one replica.")] = 16,
    context: Annotated[
        str | None, typer.Option("--context", help="max_model_len (default: the longest request).")
    ] = None,
    kv_dtype: KvDtypeOpt = None,
    max_num_batched_tokens: Annotated[int | None, typer.Option("--max-num-batched-tokens", min=1)] = None,
    revision: RevisionOpt = None,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """The cheapest way to serve a load within TTFT/TPOT targets: searches GPU x GPUs per replica x TP/PP/EP x
    weight format x engine, prints the Pareto front ($ per million tokens vs TPOT) and the cheapest plan's
    launch command.

    Exit code 0 when some plan meets the targets, 1 when none does, 2 for bad input."""
    from kvcalc.cli.output import emit, warn
    from kvcalc.cli.serving_options import parse_list
    from kvcalc.errors import EXIT_DOES_NOT_FIT, InputError
    from kvcalc.report.plan import DEFAULT_GPUS, plan_search
    from kvcalc.sources.hardware import find_gpu
    from kvcalc.sources.resolve import load_model

    work = workload_from_options(rps, input_tokens, output_tokens, mix, ttft_slo, tpot_slo, headroom, price)
    engine_names = parse_list(engines, "--engines") or []
    bad = [e for e in engine_names if e not in ("vllm", "sglang")]
    if bad:
        raise InputError(f"--engines: {', '.join(bad)} not searchable; use vllm and/or sglang")
    gpu_specs = list({g.key: g for g in map(find_gpu, parse_list(gpus, "--gpus") or DEFAULT_GPUS)}.values())
    spec = load_model(model, revision=revision, warn=warn)
    report = plan_search(spec, gpu_specs, _formats(spec, parse_list(quant, "--quant")), engine_names,
                         _settings(kv_dtype, max_num_batched_tokens), work, max_gpus=max_gpus,
                         context=tokens_arg(context, "--context"), explain=explain)
    for why in report.skipped.values():
        warn(why)
    emit(report, as_json=json_out, explain=explain, render="kvcalc.report.serve_render:render_plan")
    if report.best is None:
        raise typer.Exit(EXIT_DOES_NOT_FIT)
