"""Printing: data to stdout (one JSON document, or Rich tables for people), talk to stderr."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from kvcalc.report.explain import Derivation


def warn(message: str) -> None:
    """A warning line on stderr (never stdout)."""
    print(f"warning: {message}", file=sys.stderr)


def console(stderr: bool = False) -> Any:
    """A Rich console; honours NO_COLOR (Rich reads it) and never colours a pipe."""
    from rich.console import Console

    return Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=False)


def emit(report: Any, *, as_json: bool, explain: bool, render: str) -> None:
    """Print `report` as one JSON document (`--json`) or through `render(console, report)`, where `render`
    names the renderer as `module:function` (imported only for human output).

    With `--explain` the derivations follow the tables (human output) or stay in the JSON's `explain` list.
    """
    if as_json:
        from kvcalc.spec.base import to_jsonable

        data = to_jsonable(report)
        if not explain:
            data.pop("explain", None)
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    import importlib

    module, function = render.split(":")
    out = console()
    getattr(importlib.import_module(module), function)(out, report)
    if explain:
        derivations: list[Derivation] = getattr(report, "explain", [])
        out.print("\n[bold]How each figure was computed[/bold]")
        for d in derivations:
            out.print(d.line(), markup=False)
