"""The README's console examples against the commands they show: every figure an example prints must be one the
command prints today, so a change to a model or a shipped calibration cannot leave the README quoting old numbers.

The README shows tables as plain columns and cuts output with "...", so lines are not compared; each figure (a
number with a decimal point or thousands separators, or a percentage) is looked for among the figures of the
command's own output.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200"}
#: A figure worth checking: 1,402 / 239.26 / 0.3055 / 75.8 (not bare small integers such as "4", which any
#: output holds).
FIGURE = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.,])\d+\.\d+")


def console_examples() -> list[tuple[str, list[str]]]:
    """(command line after `$ `, the output lines the README shows) for each ```console block."""
    examples: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        lines = block.splitlines()
        assert lines[0].startswith("$ kvcalc "), lines[0]
        examples.append((lines[0][2:], lines[1:]))
    return examples


def run_example(command: str) -> str:
    """The command's stdout and stderr; `| grep WORD` keeps the lines holding WORD, as grep does."""
    command, _, grep = command.partition(" | grep ")
    argv = shlex.split(command)
    r = subprocess.run([sys.executable, "-m", "kvcalc", *argv[1:]], capture_output=True, text=True, env=ENV,
                       timeout=120, cwd=README.parent)
    assert r.returncode in (0, 1), r.stderr
    out = r.stdout + r.stderr
    return "\n".join(line for line in out.splitlines() if grep in line) if grep else out


def test_readme_has_console_examples() -> None:
    commands = [command.split()[1] for command, _ in console_examples()]
    assert {"fit", "perf", "batch", "serve", "plan", "verify", "paged"} <= set(commands)


@pytest.mark.parametrize("command, shown", console_examples(), ids=lambda v: v if isinstance(v, str) else "")
def test_readme_example_figures_are_what_the_command_prints(command: str, shown: list[str]) -> None:
    printed = set(FIGURE.findall(run_example(command)))
    quoted = [figure for line in shown for figure in FIGURE.findall(line)]
    assert quoted, f"no figures in the README's example of {command}"
    stale = [figure for figure in quoted if figure not in printed]
    assert not stale, f"README quotes {stale} for `{command}`, which no longer prints them"
