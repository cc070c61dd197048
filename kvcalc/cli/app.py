"""The `kvcalc` command line: parse options -> build specs -> call calc -> render. No arithmetic here."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from kvcalc.errors import EXIT_INPUT, KvcalcError

app = typer.Typer(
    name="kvcalc",
    help="Capacity and cost calculator for LLM inference: does it fit, how many users, how fast, at what cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ModelArg = Annotated[str, typer.Argument(help="Profile alias (kvcalc models), config.json / model folder / .gguf, or Hub repo id[@revision].")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout, nothing else.")]
ExplainOpt = Annotated[bool, typer.Option("--explain", help="Show each figure's formula with the numbers substituted.")]
KvDtypeOpt = Annotated[str | None, typer.Option("--kv-dtype", help="KV-cache dtype: auto (model dtype), bf16, fp16, fp8, fp8_e4m3, fp8_e5m2, int8, q8_0, q4_0 ...")]
RevisionOpt = Annotated[str | None, typer.Option("--revision", help="Hub revision (branch, tag or commit).")]


def _kv_dtype(value: str | None) -> str | None:
    return None if value in (None, "auto") else value


@app.command()
def inspect(
    model: ModelArg,
    kv_dtype: KvDtypeOpt = None,
    revision: RevisionOpt = None,
    naive_mla: Annotated[bool, typer.Option("--naive-mla", help="Size MLA as full per-head K/V (HF eager cache) instead of the latent.")] = False,
    json_out: JsonOpt = False,
    explain: ExplainOpt = False,
) -> None:
    """Architecture summary, layer pattern, parameters, and KV bytes per token and per sequence."""
    from kvcalc.cli.output import emit, warn
    from kvcalc.report.inspect import inspect_model
    from kvcalc.report.render import render_inspect
    from kvcalc.sources.resolve import load_model

    spec = load_model(model, revision=revision, warn=warn)
    report = inspect_model(spec, _kv_dtype(kv_dtype), mla_naive=naive_mla)
    emit(report, as_json=json_out, explain=explain, render=render_inspect)


@app.command()
def models(json_out: JsonOpt = False) -> None:
    """The shipped model profiles, with aliases and Hub repo ids."""
    import json

    from kvcalc.cli.output import console
    from kvcalc.sources.profiles import profile_headers

    headers = profile_headers()
    if json_out:
        rows = [{"name": h["name"], "aliases": h.get("aliases") or [], "hf_repo": h.get("hf_repo")} for h in headers]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="Model profiles (work offline)", title_justify="left")
    for col in ("profile", "aliases", "Hub repo"):
        table.add_column(col)
    for h in headers:
        table.add_row(h["name"], ", ".join(h.get("aliases") or []), h.get("hf_repo") or "")
    console().print(table)


def main() -> None:
    """Entry point: run the app, turning kvcalc errors into one stderr line and an exit code."""
    try:
        app(standalone_mode=False)
    except KvcalcError as err:
        print(f"kvcalc: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except Exception as err:  # click usage errors and the like
        import click

        if isinstance(err, click.exceptions.Abort):
            sys.exit(130)
        if isinstance(err, click.ClickException):
            print(f"kvcalc: error: {err.format_message()}", file=sys.stderr)
            sys.exit(EXIT_INPUT)
        raise
    sys.exit(0)
