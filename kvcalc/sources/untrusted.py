"""Reading files kvcalc did not write: bounded in size, parsed as data only, every failure one InputError.

A file is read only when it is a regular file no larger than its limit (`kvcalc.bounds`), decoded as UTF-8,
parsed with `json` or yaml's *safe* loader (no tags that build Python objects), and the result checked for
depth and size (`bounds.check_tree`) before any code looks at it.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from kvcalc.bounds import check_tree
from kvcalc.errors import InputError


def read_text(path: Path, limit: int, what: str = "file") -> str:
    """The UTF-8 text of regular file `path`, at most `limit` bytes."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise InputError(f"{path}: {kind}; give a {what}")
        if info.st_size > limit:
            raise InputError(f"{path}: {info.st_size:,} bytes; a {what} is at most {limit:,} bytes")
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"cannot read {what} {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise InputError(f"{path}: more than {limit:,} bytes; a {what} is at most {limit:,} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (bad byte at offset {exc.start}); is it a binary file?") from None


def parse_json(text: str | bytes, where: str) -> Any:
    """Parse JSON text, then `check_tree` it (depth, size)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{where}: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # e.g. an integer of more than 4,300 digits
        raise InputError(f"{where}: not valid JSON: {str(exc).splitlines()[0][:120]}") from None
    check_tree(data, where)
    return data


def yaml_loader() -> Any:
    """yaml's safe loader class (the C one when libyaml is there): plain data, no Python object tags."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML with the safe loader, then `check_tree` it (depth, alias bombs)."""
    import yaml

    try:
        data = yaml.load(text, Loader=yaml_loader())
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML{_yaml_position(exc)}") from None
    except RecursionError:
        raise InputError(f"{where}: YAML nested too deeply") from None
    check_tree(data, where)
    return data


def _yaml_position(exc: Any) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["error"])[0]
    if mark is None:
        return f": {problem}"
    return f" at line {mark.line + 1}, column {mark.column + 1}: {problem}"
