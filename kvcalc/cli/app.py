"""The `kvcalc` command line: parse options -> build specs -> call the API -> render. No arithmetic here.

Each command lives in its own module under `kvcalc/cli/commands/` and defines `command(...)` (its docstring is
the help text) and, when it prints a report with `--json`, `SCHEMA = ("module", "RecordName")`. A new command is
a new module plus one line in `COMMANDS`. Only the module of the command asked for is imported: Typer
introspects every registered command's signature on each call, so building just one keeps start-up fast.

`main` holds the contract for every command: each option value is bounded (`options.bound_params`); a kvcalc
error prints one line and exits with its code (2 input, 3 environment); a usage error exits 2; a reader that
closes the pipe early (`kvcalc fit ... | head -1`) is not an error (exit 0, nothing printed); tokens never
reach the terminal; and an unexpected exception (a kvcalc bug) prints one line and exits 70, never 1, which
means "does not fit".
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer

from kvcalc.errors import EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, KvcalcError

if TYPE_CHECKING:
    import click

#: command name -> module under kvcalc.cli.commands, in the order `kvcalc --help` lists them.
COMMANDS: dict[str, str] = {
    "inspect": "inspect",
    "fit": "fit",
    "quant": "quant",
    "local": "local",
    "attention-variants": "attention_variants",
    "perf": "perf",
    "batch": "batch",
    "paged": "paged",
    "prefix": "prefix",
    "attention": "attention",
    "spec": "spec",
    "serve": "serve",
    "plan": "plan",
    "models": "models",
    "gpus": "gpus",
    "verify": "verify",
    "schema": "schema",
}

HELP = (
    "Sizing calculator for LLM inference, from model configs and GPU specs. Each command below answers one "
    "question; `kvcalc COMMAND --help` shows its options. MODEL is a profile alias (`kvcalc models`), a "
    "config.json, model folder or .gguf file, or a Hugging Face repo id (owner/name, optionally @revision)."
)

#: Lines of an error message kept on stderr (the contract: one to four), and characters per line.
_MAX_ERROR_LINES = 4
_MAX_ERROR_CHARS = 400


def command_module(name: str) -> ModuleType:
    """The module that implements command `name` (imported on demand)."""
    return importlib.import_module(f"kvcalc.cli.commands.{COMMANDS[name]}")


def _print_version(value: bool) -> None:
    if value:
        from kvcalc import __version__

        sys.stdout.write(f"kvcalc {__version__}\n")
        raise typer.Exit(EXIT_OK)


def _group(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print kvcalc's version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    """Sizing calculator for LLM inference."""


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


def click_command(argv: list[str]) -> click.Command:
    """The click command for `argv` (the one command it names, else all), every option bounded."""
    from kvcalc.cli.options import bound_params

    group = bound_params(typer.main.get_command(_app_for(argv)))
    for sub in getattr(group, "commands", {}).values():
        _name_command_in_usage_errors(sub)
    return group


def _name_command_in_usage_errors(command: click.Command) -> None:
    """Usage errors click's parser raises without a context (an option missing its value, a value given to a
    flag) get the context of the command that was parsing them, so that the hint names it
    (`kvcalc verify --help`, not `kvcalc --help`)."""
    import click

    parse = command.parse_args

    def parse_args(ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return parse(ctx, args)
        except click.UsageError as err:
            if err.ctx is None:
                err.ctx = ctx
            raise

    command.parse_args = parse_args  # type: ignore[method-assign]


def _wants_help(argv: list[str]) -> bool:
    return not argv or "--help" in argv


def _use_terminal_width() -> None:
    """Typer's help: the width `output.terminal_width` chooses (wide when piped, never a fixed 80), and
    option tables that wrap (a long option name folds onto the next line instead of ending in "…")."""
    from typer import rich_utils

    from kvcalc.cli.output import fold_tables, quiet_broken_pipe, terminal_width

    class _FoldingTable(rich_utils.Table):
        def add_row(self, *renderables: object, **kwargs: object) -> None:
            super().add_row(*renderables, **kwargs)  # type: ignore[arg-type]
            fold_tables([self])

    rich_utils.MAX_WIDTH = terminal_width()
    rich_utils.Table = _FoldingTable  # type: ignore[misc]
    quiet_broken_pipe()


def redact(text: str) -> str:
    """`text` with Hugging Face tokens (the values of HF_TOKEN and kin, and anything shaped `hf_...`) hidden."""
    import re

    for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN"):
        secret = os.environ.get(key, "")
        if len(secret) >= 8:
            text = text.replace(secret, "***")
    return re.sub(r"\bhf_[A-Za-z0-9]{8,}", "hf_***", text)


def error(message: str, hint: str | None = None) -> None:
    """`kvcalc: error: ...` on stderr: at most four lines, each cut to a readable length, tokens hidden."""
    lines = [line for line in redact(message).splitlines() if line.strip()] or ["(no message)"]
    if hint:
        lines.append(hint)
    shown = [line if len(line) <= _MAX_ERROR_CHARS else line[: _MAX_ERROR_CHARS - 3] + "..." for line in lines]
    shown = shown[:_MAX_ERROR_LINES]
    shown[0] = f"kvcalc: error: {shown[0]}"
    sys.stderr.write("\n".join(shown) + "\n")


def _settle_warnings(*, failed: bool) -> None:
    """Held warnings (cli/output.py): printed when the command answered, dropped when it failed."""
    output = sys.modules.get("kvcalc.cli.output")
    if output is None:
        return
    if failed:
        output.drop_warnings()
    else:
        output.flush_warnings()


def run(argv: list[str]) -> int:
    """Run kvcalc on `argv` (without the program name) and return the exit code; errors go to stderr."""
    import click

    try:
        if _wants_help(argv):
            _use_terminal_width()
        command = click_command(argv)
        if not argv:  # bare `kvcalc`: the help, as an answer (stdout, exit 0)
            with command.make_context("kvcalc", ["--help"]) as ctx:
                command.invoke(ctx)
        with command.make_context("kvcalc", list(argv)) as ctx:
            result = command.invoke(ctx)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handlers below, not at exit
        _settle_warnings(failed=False)
        return result if isinstance(result, int) else EXIT_OK
    except click.exceptions.Exit as stop:
        sys.stdout.flush()
        _settle_warnings(failed=False)
        return stop.exit_code
    except KvcalcError as err:
        _settle_warnings(failed=True)
        error(str(err))
        return err.exit_code
    except click.ClickException as err:  # usage: unknown option, bad value, missing argument
        _settle_warnings(failed=True)
        where = getattr(getattr(err, "ctx", None), "command_path", "kvcalc")
        error(err.format_message(), f"Try '{where} --help' for help.")
        return EXIT_INPUT
    except (click.exceptions.Abort, KeyboardInterrupt):
        return 130
    except BrokenPipeError:
        raise
    except (RecursionError, MemoryError):
        _settle_warnings(failed=True)
        error("the input is too large or too deeply nested for kvcalc to read")
        return EXIT_INPUT
    except Exception as err:  # a kvcalc bug: one line, and never exit 1 ("does not fit")
        if os.environ.get("KVCALC_DEBUG"):
            raise
        _settle_warnings(failed=True)
        error(
            f"internal error: {type(err).__name__}: {err}",
            "This is a kvcalc bug; please report it with the command line (KVCALC_DEBUG=1 shows the traceback).",
        )
        return EXIT_INTERNAL


def _silence_stdout() -> None:
    """After the reader closed the pipe: point stdout at /dev/null so the interpreter's final flush is quiet."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _exit_now(code: int) -> None:
    """End the process: atexit handlers run and the streams are flushed, but the interpreter's teardown (freeing
    every module and object, about 15 ms of a 100 ms `kvcalc fit`) is skipped. Start-up time is a standard."""
    import atexit

    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_functions is not None:
        run_exit_functions()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def main() -> None:
    """Entry point (`kvcalc` console script and `python -m kvcalc`): the process ends here. In-process callers
    (tests, scripts) use `run`, which returns the exit code."""
    try:
        code = run(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        code = EXIT_OK
    _exit_now(code)
