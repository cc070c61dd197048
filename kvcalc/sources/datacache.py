"""The shipped YAML data (`profiles/`, `hardware/`), parsed once and then read back from a JSON cache.

Importing PyYAML alone costs about as much as the rest of a `kvcalc fit` start-up (its reader compiles a
large regular expression on import), so each shipped file's parse is kept as JSON in
`$KVCALC_CACHE_DIR` (default `$XDG_CACHE_HOME/kvcalc`, else `~/.cache/kvcalc`), keyed by the file's path,
size and modification time: an edited file is parsed again. Name indexes over a folder (aliases -> file) are
kept the same way (`cached_index`), keyed by every file's size and time, so a look-up stats the files
instead of reading them. The cache is written atomically and is only an
optimisation: an unwritable or corrupt cache is ignored, and `KVCALC_NO_CACHE=1` turns it off. Only data that
survives a JSON round trip unchanged is cached (YAML dates or integer keys would not).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kvcalc.bounds import MAX_YAML_FILE_BYTES
from kvcalc.sources.untrusted import parse_yaml, read_text

_FORMAT = 1  # bump when the cached entry's layout changes


def cache_dir() -> Path | None:
    """Where parsed data is cached, or None when caching is off."""
    if os.environ.get("KVCALC_NO_CACHE"):
        return None
    explicit = os.environ.get("KVCALC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kvcalc"


def _entry_path(folder: Path, source: Path) -> Path:
    """One cache file per source path: `<folder>-<stem>-<FNV-1a 64 of the path>.json` (hashlib's import
    alone would cost a tenth of the start-up this cache saves)."""
    digest = 0xCBF29CE484222325
    for byte in str(source).encode("utf-8", "surrogatepass"):
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return folder / f"{source.parent.name[:20]}-{source.stem[:40]}-{digest:016x}.json"


def load_yaml_file(path: Path, what: str = "YAML file") -> Any:
    """The parsed YAML of `path` (safe loader, bounded: `untrusted.parse_yaml`), from the cache when its
    entry matches the file's size and modification time."""
    source = path.resolve()
    folder = cache_dir()
    stamp = None
    if folder is not None:
        try:
            stamp = [str(source), *_size_and_time(source), _FORMAT]
            entry = json.loads(_entry_path(folder, source).read_bytes())
            if entry.get("stamp") == stamp:
                return entry["data"]
        except (OSError, ValueError, AttributeError, KeyError):
            pass
    data = parse_yaml(read_text(path, MAX_YAML_FILE_BYTES, what), str(path))
    if folder is not None and stamp is not None:
        _store(_entry_path(folder, source), stamp, data)
    return data


def cached_index(name: str, paths: list[Path], build: Callable[[], Any]) -> Any:
    """`build()` (a JSON-able index over the files `paths`, e.g. alias -> file name), from the cache while
    no file was added, removed or changed (a stat of each, no read), else built and stored."""
    folder = cache_dir()
    if folder is None or not paths:
        return build()
    target = _entry_path(folder, paths[0].parent / f"index-{name}")
    try:
        stamp: list[Any] = [[str(p), *_size_and_time(p)] for p in paths] + [_FORMAT]
    except OSError:
        return build()
    try:
        entry = json.loads(target.read_bytes())
        if entry.get("stamp") == stamp:
            return entry["data"]
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    data = build()
    _store(target, stamp, data)
    return data


def _size_and_time(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


def _store(target: Path, stamp: list[Any], data: Any) -> None:
    try:
        text = json.dumps({"stamp": stamp, "data": data}, allow_nan=False)
        if json.loads(text)["data"] != data:
            return
    except (TypeError, ValueError):
        return
    from kvcalc.sources.atomic import write_atomic

    with contextlib.suppress(OSError):
        write_atomic(target, text)
