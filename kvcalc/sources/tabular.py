"""Small, bounded readers for user tables (CSV with a header, or JSON lines): rows as dicts of strings/numbers.

Shared by the traffic-profile and request-mix readers. Files are size-capped before reading and every
failure is one InputError naming the file and line.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from kvcalc.errors import InputError
from kvcalc.inputs import user_path
from kvcalc.sources.untrusted import read_text as untrusted_read_text

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ROWS = 200_000


def read_text(path: str | Path, what: str) -> str:
    """The file's text, refusing a missing, unreadable, binary, oversized or non-regular file (`untrusted`'s
    bounded reader: /dev/zero or a FIFO is refused, not read forever)."""
    return untrusted_read_text(user_path(path, what), MAX_FILE_BYTES, what)


def read_rows(path: str | Path, what: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs from JSON lines (a file whose first non-blank character is '{') or CSV."""
    text = read_text(path, what)
    stripped = text.lstrip()
    rows = _json_lines(text, path, what) if stripped.startswith("{") else _csv_rows(text, path, what)
    if not rows:
        raise InputError(f"{what} {path} has no rows")
    if len(rows) > MAX_ROWS:
        raise InputError(f"{what} {path} has {len(rows):,} rows; the limit is {MAX_ROWS:,}")
    return rows


def _json_lines(text: str, path: str | Path, what: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise InputError(f"{what} {path}, line {number}: not a JSON object ({exc})") from None
        if not isinstance(row, dict):
            raise InputError(f"{what} {path}, line {number}: expected a JSON object, got {type(row).__name__}")
        rows.append((number, {str(k).strip().lower(): v for k, v in row.items()}))
        if len(rows) > MAX_ROWS:
            break
    return rows


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _csv_rows(text: str, path: str | Path, what: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise InputError(f"{what} {path}: not CSV ({exc})") from None
    names = [h.strip().lower() for h in header]
    rows = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(names):
                raise InputError(f"{what} {path}, line {reader.line_num}: {len(cells)} fields, header has "
                                 f"{len(names)}")
            rows.append((reader.line_num, dict(zip(names, (c.strip() for c in cells), strict=True))))
            if len(rows) > MAX_ROWS:
                break
    except csv.Error as exc:
        raise InputError(f"{what} {path}, line {reader.line_num}: not CSV ({exc})") from None
    return rows


def pick_column(row: dict[str, Any], names: tuple[str, ...]) -> str | None:
    """The first of `names` the row has."""
    return next((n for n in names if n in row), None)


def number(value: Any, what: str, where: str, *, minimum: float = 0.0, maximum: float = 1e12) -> float:
    """A finite number in [minimum, maximum] from a cell (string or JSON number), else InputError."""
    if isinstance(value, bool):
        raise InputError(f"{where}: {what} must be a number, got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {what} must be a number, got {value!r}") from None
    if not math.isfinite(result) or not minimum <= result <= maximum:
        raise InputError(f"{where}: {what} must be between {minimum:g} and {maximum:g}, got {value!r}")
    return result
