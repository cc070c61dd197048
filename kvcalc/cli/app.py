"""The `kvcalc` command line: parse options -> build specs -> call the API -> render. No arithmetic here.

Each command lives in its own module under `kvcalc/cli/commands/` and defines `command(...)` (its docstring is
the help text) and, when it prints a report with `--json`, `SCHEMA = ("module", "RecordName")`. A new command is
a new module plus one line in `COMMANDS`. Only the module of the command asked for is imported: Typer
introspects every registered command's signature on each call, so building just one keeps start-up fast.
"""

import importlib
import sys
from types import ModuleType

import typer

from kvcalc.errors import EXIT_INPUT, KvcalcError

#: command name -> module under kvcalc.cli.commands, in the order `kvcalc --help` lists them.
COMMANDS: dict[str, str] = {
    "inspect": "inspect",
    "fit": "fit",
    "quant": "quant",
    "local": "local",
    "attention-variants": "attention_variants",
    "perf": "perf",
    "batch": "batch",
    "serve": "serve",
    "plan": "plan",
    "models": "models",
    "gpus": "gpus",
    "schema": "schema",
}

HELP = "Capacity and cost calculator for LLM inference."


def command_module(name: str) -> ModuleType:
    """The module that implements command `name` (imported on demand)."""
    return importlib.import_module(f"kvcalc.cli.commands.{COMMANDS[name]}")


def _group() -> None:
    """Capacity and cost calculator for LLM inference."""


def build_app(names: list[str]) -> typer.Typer:
    """A Typer app holding the commands `names`."""
    app = typer.Typer(
        name="kvcalc", help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
    )
    app.callback()(_group)
    for name in names:
        app.command(name)(command_module(name).command)
    return app


def _app_for(argv: list[str]) -> typer.Typer:
    """Just the command `argv` names, or every command (for `kvcalc --help` and unknown names)."""
    wanted = argv[0] if argv else ""
    return build_app([wanted] if wanted in COMMANDS else list(COMMANDS))


def main() -> None:
    """Entry point: run the app, turning kvcalc errors into one stderr line and an exit code."""
    try:
        code = _app_for(sys.argv[1:])(standalone_mode=False)
    except KvcalcError as err:
        print(f"kvcalc: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as err:
        if hasattr(err, "format_message"):  # click usage errors (typer vendors click)
            print(f"kvcalc: error: {err.format_message()}", file=sys.stderr)
            sys.exit(EXIT_INPUT)
        raise
    sys.exit(code if isinstance(code, int) else 0)
