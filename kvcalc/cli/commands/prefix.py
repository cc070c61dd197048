"""`kvcalc prefix`."""

from typing import Annotated, Any

import typer

from kvcalc.cli.options import ExplainOpt, JsonOpt
from kvcalc.cli.plan_options import deployment_options

SCHEMA = ("kvcalc.report.prefix", "PrefixOutput")


@deployment_options(calibration=True)
def command(
    model: Annotated[
        str | None, typer.Argument(help="Profile alias, config.json / folder / .gguf, or Hub repo (not with --usage).")
    ] = None,
    deployment: dict[str, Any] | None = None,
    prefix_tokens: Annotated[
        int | None, typer.Option("--prefix-tokens", min=1, help="Shared prefix (system prompt, tools) in tokens.")
    ] = None,
    requests_per_s: Annotated[
        float | None, typer.Option("--requests-per-s", min=0.0, help="Requests per second sharing it.")
    ] = None,
    unique_tokens: Annotated[
        int, typer.Option("--unique-tokens", min=0, help="Unique prompt tokens per request.")
    ] = 400,
    output_tokens: Annotated[
        int, typer.Option("--output-tokens", min=0, help="Output tokens per request (sizes the KV it holds).")
    ] = 256,
    tenants: Annotated[int, typer.Option("--tenants", min=1, help="Tenants sending the same prefix.")] = 1,
    isolate: Annotated[bool, typer.Option("--isolate", help="A cache salt per tenant: nothing shared across.")] = False,
    price: Annotated[
        str | None,
        typer.Option("--price", help="USD per million tokens: input=3.0,cached=0.3[,write=3.75][,output=15]."),
    ] = None,
    change_at: Annotated[
        list[int] | None, typer.Option("--change-at", min=0, help="Also show a prefix change at this token (repeat).")
    ] = None,
    usage: Annotated[
        str | None,
        typer.Option("--usage", help="API responses (JSON lines; a file or - for stdin): report real hit rates."),
    ] = None,
    min_cacheable: Annotated[
        int, typer.Option("--min-cacheable", min=1, help="--usage: smallest prompt the provider caches.")
    ] = 1024,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Prefix caching: cacheable tokens, KV memory, prefill FLOPs, TTFT and money saved by a shared prefix,
    what tenant isolation and prompt changes cost; or, with --usage, real hit rates from API responses."""
    from kvcalc import api
    from kvcalc.cli.output import emit, warn

    report = api.prefix(model, prefix_tokens=prefix_tokens, requests_per_s=requests_per_s,
                        unique_tokens=unique_tokens, output_tokens=output_tokens, tenants=tenants, isolate=isolate,
                        price=price, change_at=change_at, usage=usage, min_cacheable=min_cacheable, explain=explain,
                        warn=warn, **(deployment or {} if usage is None else {}))
    for message in getattr(report, "warnings", []):
        warn(message)
    render = "render_usage" if usage is not None else "render_prefix"
    emit(report, as_json=json_out, explain=explain, render=f"kvcalc.report.prefix:{render}")
