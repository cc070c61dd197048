"""One exception family; each class maps to a process exit code and prints as one line.

Exit codes (README "Exit codes"): 0 ok / fits, 1 does not fit, 2 usage or input error,
3 environment (no network, no GPU, no torch), 70 a kvcalc bug (never 1, which CI gates read as "does not fit").
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_DOES_NOT_FIT = 1
EXIT_INPUT = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERNAL = 70  # sysexits.h EX_SOFTWARE


class KvcalcError(Exception):
    """Base error: `str(err)` is the one line the CLI prints on stderr."""

    exit_code: int = EXIT_INPUT


class InputError(KvcalcError):
    """Bad user input: unknown names, malformed files, impossible or absurd values (exit 2)."""

    exit_code = EXIT_INPUT


class ParallelismError(InputError):
    """A parallel layout that the engines reject; the message names the failing rule (exit 2)."""


class EnvironmentProblem(KvcalcError):
    """Something outside the input is missing: network, GPU, torch, Hub access (exit 3)."""

    exit_code = EXIT_ENVIRONMENT


def nearest_names(name: str, candidates: list[str], limit: int = 3) -> list[str]:
    """The candidates closest to `name` (difflib ratio on lower-case text), best first."""
    import difflib

    lowered = {c.lower(): c for c in candidates}
    query = name.lower()[:100]  # a hostile 4,000-character name must not make the comparison slow
    close = difflib.get_close_matches(query, list(lowered), n=limit, cutoff=0.4)
    if not close:
        close = [c for c in lowered if query in c or c in query][:limit]
    return [lowered[c] for c in close]


def unknown_name_error(kind: str, name: str, candidates: list[str]) -> InputError:
    """An InputError for an unknown `kind` (model, GPU ...) that suggests the nearest names."""
    near = nearest_names(name, candidates)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    shown = name if len(name) <= 80 else name[:77] + "..."
    return InputError(f"unknown {kind} '{shown}'{hint}")
