"""Printing: data to stdout (one JSON document, or Rich tables for people), talk to stderr.

Every JSON document carries `schema_version` (SCHEMA_VERSION, first key) and validates against
`kvcalc schema <command>`, with or without `--explain`. Rich output uses the terminal's width, or COLUMNS,
or a wide page when piped (`terminal_width`), so tables wrap rather than lose columns.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from kvcalc.report.explain import Derivation
from kvcalc.spec.base import SCHEMA_VERSION

#: Width of Rich output sent to a pipe or file (Rich's own default there is 80, which cuts tables).
PIPE_WIDTH = 140


#: Warnings of the running command, printed when it answers (`flush_warnings`) and dropped when it fails, so a
#: failed command's stderr is its error alone (the contract: `kvcalc: error: ...`, one to four lines).
_PENDING: list[str] = []


def warn(message: str) -> None:
    """A warning line for stderr (never stdout), held until the command answers."""
    from kvcalc.cli.app import redact

    _PENDING.append(f"warning: {redact(message)}")


def flush_warnings() -> None:
    """Print the held warnings on stderr (before the answer, and when the command ends without error)."""
    while _PENDING:
        print(_PENDING.pop(0), file=sys.stderr)


def drop_warnings() -> None:
    """Forget the held warnings (the command failed: its error is what stderr says)."""
    _PENDING.clear()


def terminal_width() -> int:
    """Columns for Rich output: COLUMNS when set, else the terminal's width, else PIPE_WIDTH when piped."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and 20 <= int(columns) <= 1000:
        return int(columns)
    try:
        if sys.stdout.isatty():
            return max(20, os.get_terminal_size(sys.stdout.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        pass
    return PIPE_WIDTH


def quiet_broken_pipe() -> None:
    """Make Rich raise BrokenPipeError when the reader closes the pipe (its default exits with status 1);
    `cli.app.main` turns that into exit 0. Applies to Typer's help console too."""
    from rich.console import Console

    def on_broken_pipe(self: Any) -> None:
        self.quiet = True
        raise BrokenPipeError

    Console.on_broken_pipe = on_broken_pipe  # type: ignore[method-assign]


def fold_tables(renderables: Any) -> None:
    """Let every table among `renderables` (and inside panels or groups) wrap its cells, folding words
    that are too long, instead of cutting them with an ellipsis or dropping columns."""
    from rich.table import Table
    from rich.text import Text

    for item in renderables:
        if isinstance(item, Text):
            item.overflow = "fold"
        elif isinstance(item, Table):
            for column in item.columns:
                column.no_wrap = False
                column.overflow = "fold"
            fold_tables([cell for column in item.columns for cell in column.cells])
        inner = getattr(item, "renderables", None) or ([item.renderable] if hasattr(item, "renderable") else [])
        if inner:
            fold_tables(inner)


def console(stderr: bool = False) -> Any:
    """A Rich console; honours NO_COLOR (Rich reads it), never colours a pipe, `terminal_width()` wide, and
    its tables wrap rather than cut or drop a column (`fold_tables`)."""
    from rich.console import Console

    class _Console(Console):
        def print(self, *objects: Any, **kwargs: Any) -> None:
            fold_tables(objects)
            super().print(*objects, **kwargs)

    quiet_broken_pipe()
    return _Console(
        stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=False,
        width=terminal_width(),
    )


def print_json(data: Any, *, line: bool = False) -> None:
    """One JSON document on stdout, `schema_version` first; `line`: compact, one line (an NDJSON record)."""
    document = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in data.items() if k != "schema_version"}}
    sys.stdout.write(json.dumps(document, indent=None if line else 2) + "\n")


def emit_line(record: Any, *, explain: bool) -> None:
    """One record of an NDJSON stream (`--json` on a command that streams): one line, `schema_version` first,
    `explain` only with `--explain`; each line validates against `kvcalc schema <command>`."""
    from kvcalc.spec.base import to_jsonable

    flush_warnings()
    data = to_jsonable(record)
    if not explain:
        data.pop("explain", None)
    print_json(data, line=True)


def emit(report: Any, *, as_json: bool, explain: bool, render: str) -> None:
    """Print `report` as one JSON document (`--json`) or through `render(console, report)`, where `render`
    names the renderer as `module:function` (imported only for human output).

    With `--explain` the derivations follow the tables (human output) or stay in the JSON's `explain` list.
    """
    flush_warnings()
    if as_json:
        from kvcalc.spec.base import to_jsonable

        data = to_jsonable(report)
        if not explain:
            data.pop("explain", None)
        print_json(data)
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
