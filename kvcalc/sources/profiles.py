"""Shipped model profiles (`profiles/*.yaml`): a Hub repo id plus its embedded config.json, for offline use.

A profile file starts with a short header (`name`, `aliases`, `hf_repo`, `source`) before `config:`, so
resolving an alias reads only the headers, and only the matching file is parsed whole.
"""

from __future__ import annotations

import itertools
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from kvcalc.errors import InputError
from kvcalc.sources.aliases import aliases_line

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def data_dir(name: str) -> Path:
    """The top-level data folder `name` (`profiles`, `hardware`): the source tree's, else the installed copy."""
    here = Path(__file__).resolve().parents[2] / name
    if here.is_dir():
        return here
    return Path(sys.prefix) / "share" / "kvcalc" / name


def _read_header(path: Path) -> dict[str, Any]:
    lines = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("config:"):
                break
            lines.append(line)
    header = yaml.load("".join(lines), Loader=_Loader) or {}
    if not isinstance(header, dict):
        raise InputError(f"profile {path.name}: header must be a mapping")
    return header


@lru_cache(maxsize=1)
def profile_index() -> dict[str, Path]:
    """Lower-case profile name and every alias -> profile file (aliases read from each header's one line)."""
    index: dict[str, Path] = {}
    for path in sorted(data_dir("profiles").glob("*.yaml")):
        index[path.stem.lower()] = path
        with path.open(encoding="utf-8") as handle:
            head = "".join(itertools.islice(handle, 8))
        names = aliases_line(head)
        if names is None:
            names = [str(alias).lower() for alias in _read_header(path).get("aliases") or []]
        for alias in names:
            index[alias] = path
    return index


def profile_headers() -> list[dict[str, Any]]:
    """Every profile's header (name, aliases, hf_repo, source), sorted by name."""
    return [_read_header(p) for p in sorted(set(profile_index().values()))]


def find_profile(name: str) -> Path | None:
    """The profile file for a name or alias (case-insensitive), or None."""
    return profile_index().get(name.strip().lower())


def load_profile(path: Path) -> dict[str, Any]:
    """Parse a whole profile file (data only: yaml safe loader)."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise InputError(f"profile {path.name} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise InputError(f"profile {path.name} must be a mapping with a 'config' mapping")
    return data
