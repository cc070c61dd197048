"""Every usage error names the command that failed in its hint (`kvcalc verify --help`), including the ones
click's parser raises without a context: an option given no value, a value given to a flag."""

from __future__ import annotations

import click
import pytest

from kvcalc.cli.app import COMMANDS, click_command, run


def _misuse(name: str) -> tuple[list[str], str]:
    """Arguments misusing an option of command `name` as click's parser sees it, and the error's start: the
    first option that takes a value, given none; else the first flag (--help at least), given a value."""
    command = click_command([name])
    assert isinstance(command, click.Group)
    options = [p for p in command.commands[name].params if isinstance(p, click.Option)]
    for option in options:
        if not option.is_flag and option.nargs == 1:
            return [name, option.opts[0]], f"Option '{option.opts[0]}' requires an argument"
    flag = next((o.opts[0] for o in options if o.is_flag and o.opts[0].startswith("--")), "--help")
    return [name, f"{flag}=1"], f"Option '{flag}' does not take a value"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_option_misuse_names_the_command(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv, message = _misuse(name)
    assert run(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err
    assert err.rstrip().endswith(f"Try 'kvcalc {name} --help' for help.")


def test_the_reported_case_and_a_flag_given_a_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["verify", "llama-3.1-8b", "--calibration-out"]) == 2
    assert "Try 'kvcalc verify --help' for help." in capsys.readouterr().err
    assert run(["fit", "llama-3.1-8b", "--json=yes"]) == 2
    assert "Try 'kvcalc fit --help' for help." in capsys.readouterr().err


def test_errors_before_any_command_point_at_kvcalc(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["no-such-command"]) == 2
    assert "Try 'kvcalc --help' for help." in capsys.readouterr().err
