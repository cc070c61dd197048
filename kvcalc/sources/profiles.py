"""Shipped model profiles (`profiles/*.yaml`): a Hub repo id plus its embedded config.json, for offline use.

A profile file starts with a short header (`name`, `aliases`, `hf_repo`, `source`) before `config:`. Name
look-ups read only the first lines of each file (the one-line `aliases: [...]` and `hf_repo:`); only the
matching file is parsed whole (through `datacache`). A name resolves through this index only, so a name can
never reach a file outside `profiles/`.
"""

from __future__ import annotations

import itertools
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from kvcalc.errors import InputError
from kvcalc.sources.aliases import aliases_line

#: The header keys `kvcalc models` lists.
HEADER_KEYS = ("name", "aliases", "hf_repo", "source")
_HF_REPO_LINE = r"(?m)^hf_repo:[ \t]*['\"]?([\w.\-]+/[\w.\-]+)['\"]?[ \t]*(?:#.*)?$"  # compiled on first use
_HEAD_LINES = 8


def data_dir(name: str) -> Path:
    """The top-level data folder `name` (`profiles`, `hardware`): the source tree's, else the installed copy."""
    here = Path(__file__).resolve().parents[2] / name
    if here.is_dir():
        return here
    return Path(sys.prefix) / "share" / "kvcalc" / name


@lru_cache(maxsize=1)
def _scan() -> list[dict[str, str]]:
    """[lower-case profile name and every alias -> file, lower-case Hub repo id -> file], from each file's
    first lines (a file whose aliases line is not a simple flow list is parsed whole); the index is kept by
    `datacache.cached_index` until a profile file changes."""
    from kvcalc.sources.datacache import cached_index

    paths = sorted(data_dir("profiles").glob("*.yaml"))
    index: list[dict[str, str]] = cached_index("profiles", paths, lambda: _build_index(paths))
    return index


def _build_index(paths: list[Path]) -> list[dict[str, str]]:
    names: dict[str, str] = {}
    repos: dict[str, str] = {}
    for path in paths:
        names[path.stem.lower()] = str(path)
        with path.open(encoding="utf-8") as handle:
            head = "".join(itertools.islice(handle, _HEAD_LINES))
        aliases = aliases_line(head)
        if aliases is None:
            aliases = [str(alias).lower() for alias in _header(path).get("aliases") or []]
        for alias in aliases:
            names[alias] = str(path)
        repo = re.search(_HF_REPO_LINE, head)
        if repo is not None:
            repos[repo.group(1).lower()] = str(path)
    return [names, repos]  # a list: the cache stores only what a JSON round trip keeps


def profile_index() -> dict[str, Path]:
    """Lower-case profile name and every alias -> profile file."""
    return {name: Path(path) for name, path in _scan()[0].items()}


def _header(path: Path) -> dict[str, Any]:
    data = load_profile(path)
    return {key: data.get(key) for key in HEADER_KEYS if key in data}


def profile_headers() -> list[dict[str, Any]]:
    """Every profile's header (name, aliases, hf_repo, source), sorted by file name."""
    return [_header(p) for p in sorted(set(profile_index().values()))]


def find_profile(name: str) -> Path | None:
    """The profile file for a name or alias (case-insensitive), or None."""
    path = _scan()[0].get(name.strip().lower())
    return None if path is None else Path(path)


def find_profile_by_repo(repo_id: str) -> Path | None:
    """The profile whose `hf_repo` is `repo_id` (case-insensitive, as the Hub treats ids), or None."""
    path = _scan()[1].get(repo_id.strip().lower())
    return None if path is None else Path(path)


def load_profile(path: Path) -> dict[str, Any]:
    """Parse a whole profile file (data only: yaml's safe loader, bounded; cached by `datacache`)."""
    from kvcalc.sources.datacache import load_yaml_file

    data = load_yaml_file(path, "profile")
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise InputError(f"profile {path.name} must be a mapping with a 'config' mapping")
    return data
