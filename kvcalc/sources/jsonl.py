"""JSON lines from a file or stdin, bounded: a line longer than `max_line_bytes` or past `max_lines` is not
parsed. Malformed lines are counted (with the first one's line number and reason), never fatal."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

from kvcalc.errors import InputError
from kvcalc.inputs import user_path

T = TypeVar("T")


class BadLine(ValueError):
    """A line that parsed as JSON but does not have the expected shape."""


@dataclass
class Skipped:
    """Lines not used: counts per reason, the first bad line, and whether reading stopped at max_lines."""

    malformed: int = 0
    too_long: int = 0
    ignored: int = 0
    truncated: bool = False
    first: str = ""
    reasons: dict[str, int] = field(default_factory=dict)

    def note(self, line_no: int, reason: str, kind: str = "malformed") -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if not self.first:
            self.first = f"line {line_no}: {reason}"

    @property
    def bad(self) -> int:
        return self.malformed + self.too_long

    def message(self, what: str) -> str | None:
        """One stderr line, or None when every line was used."""
        parts = []
        if self.bad:
            parts.append(f"skipped {self.bad:,} malformed {what} line(s) (first: {self.first})")
        if self.ignored:
            parts.append(f"ignored {self.ignored:,} line(s) without a usage object")
        if self.truncated:
            parts.append("stopped at the line limit")
        return "; ".join(parts) or None


def _open(source: str) -> IO[bytes]:
    if source == "-":
        return sys.stdin.buffer
    path = user_path(source, "file")
    if not path.is_file():
        what = "not a regular file; give a JSON-lines file or - for stdin" if path.exists() else "no such file"
        raise InputError(f"{source}: {what}")
    return path.open("rb")


def _lines(stream: IO[bytes], max_line_bytes: int) -> Iterator[bytes | None]:
    """Yield each line, or None for one longer than max_line_bytes (its rest is read and dropped)."""
    while True:
        line = stream.readline(max_line_bytes + 1)
        if not line:
            return
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            while True:
                rest = stream.readline(1 << 16)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
        else:
            yield line


def read_json_lines(
    source: str, parse: Callable[[Any, int], T | None], *, max_line_bytes: int, max_lines: int
) -> tuple[list[T], Skipped]:
    """Parse each non-blank line of `source` (a path, or - for stdin) with `parse(obj, line_no)`, which
    returns a record, None to ignore the line, or raises BadLine."""
    out: list[T] = []
    skipped = Skipped()
    stream = _open(source)
    try:
        for line_no, raw in enumerate(_lines(stream, max_line_bytes), start=1):
            if line_no > max_lines:
                skipped.truncated = True
                break
            if raw is None:
                skipped.note(line_no, f"longer than {max_line_bytes:,} bytes", "too_long")
                continue
            if not raw.strip():
                continue
            try:
                record = parse(json.loads(raw.decode("utf-8", errors="replace")), line_no)
            except (ValueError, BadLine) as err:  # json.JSONDecodeError is a ValueError
                skipped.note(line_no, str(err).splitlines()[0][:120] if str(err) else "not JSON")
                continue
            if record is None:
                skipped.note(line_no, "no usage object", "ignored")
            else:
                out.append(record)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return out, skipped
