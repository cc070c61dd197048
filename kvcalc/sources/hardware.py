"""Accelerator files: `hardware/<key>.yaml` -> GpuSpec, and name lookup by key, alias or display name.

Lookups are cheap: a name that is a file stem parses that one file; an alias is found from the one-line
`aliases: [...]` of each file without parsing the rest; only a display name (or an unknown name) parses
every file. A name resolves through this index only (never a path built from it), so it cannot reach a file
outside `hardware/`. Shipped files are parsed through `datacache`; a user's `--gpu-file` is read bounded
(`untrusted.read_text`, at most 1 MiB) with yaml's safe loader, and every size in it is checked against
`kvcalc.bounds` by the GpuSpec field types.
"""

from __future__ import annotations

import functools
from pathlib import Path

from kvcalc.bounds import MAX_YAML_FILE_BYTES, check_text, short_repr
from kvcalc.errors import InputError, unknown_name_error
from kvcalc.inputs import user_path
from kvcalc.sources.aliases import aliases_line
from kvcalc.sources.profiles import data_dir
from kvcalc.spec.gpu import GpuSpec
from kvcalc.spec.validate import RecordError, build


def hardware_dirs() -> list[Path]:
    """Where accelerator files live: the source tree's `hardware/`, else the installed
    `<sys.prefix>/share/kvcalc/hardware` (pyproject's data-files); empty when neither exists."""
    folder = data_dir("hardware")
    return [folder] if folder.is_dir() else []


def _one_line(path: Path, err: RecordError) -> str:
    """The first problem as `file: field 'a.b': message (got X)`, counting the rest (value errors first)."""
    first = err.problems[0]
    got = first.value
    shown = f" (got {short_repr(got)})" if isinstance(got, (int, float, str)) and first.loc else ""
    field = f"field '{first.loc}': " if first.loc else ""
    count = len(err.problems) - 1
    more = f" (and {count} more problem{'s' * (count > 1)})" if count else ""
    return f"{path}: {field}{first.message}{shown}{more}"


def load_gpu_file(path: str | Path, *, shipped: bool = False) -> GpuSpec:
    """Parse and validate one accelerator file; its key is the file stem.

    Every failure (unreadable, binary or oversized file, malformed YAML, not a mapping, a bad, missing or
    absurd field) is one InputError line that names the file and, where there is one, the field.
    `shipped` files (hardware/) are parsed through the data cache.
    """
    path = Path(check_text(str(path), "GPU file"))
    if shipped:
        from kvcalc.sources.datacache import load_yaml_file

        data = load_yaml_file(path, "GPU file")
    else:
        from kvcalc.sources.untrusted import parse_yaml, read_text

        data = parse_yaml(read_text(path, MAX_YAML_FILE_BYTES, "GPU file"), str(path))
    if not isinstance(data, dict):
        raise InputError(
            f"{path}: expected a mapping of GPU fields (name, memory_bytes ...), got {type(data).__name__}"
        )
    stem = path.stem.lower()
    if "key" in data and data["key"] != stem:
        raise InputError(
            f"{path}: field 'key': '{str(data['key'])[:60]}' differs from the file name; omit it or use '{stem}'"
        )
    try:
        return build(GpuSpec, {**data, "key": stem})
    except RecordError as exc:
        raise InputError(_one_line(path, exc)) from None


@functools.cache
def _load_cached(path: Path) -> GpuSpec:
    """A shipped card, with its shipped calibration (`hardware/calibration/<key>.yaml`) when there is one."""
    gpu = load_gpu_file(path, shipped=True)
    from kvcalc.sources.calibration import card_calibration, shipped_calibration

    calibration = shipped_calibration(gpu.key)
    if calibration is None:
        return gpu
    from kvcalc.spec.base import replace

    return replace(gpu, calibration=card_calibration(calibration))


@functools.cache
def _files(dirs: tuple[Path, ...]) -> dict[str, Path]:
    """File stem (lower-case) -> path; an earlier directory wins."""
    found: dict[str, Path] = {}
    for directory in dirs:
        for path in sorted(directory.glob("*.yaml")):
            found.setdefault(path.stem.lower(), path)
    return found


def _aliases_of(path: Path) -> list[str]:
    """A file's aliases from its `aliases:` line alone; the whole file is parsed only if that line is not
    a simple flow list (e.g. a block list on the following lines)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []  # list_gpus() reports it
    names = aliases_line(text)
    if names is None:
        try:
            names = [alias.lower() for alias in _load_cached(path).aliases]
        except InputError:
            return []  # a broken file must not hide the others; list_gpus() reports it
    return names


@functools.cache
def _alias_index(dirs: tuple[Path, ...]) -> dict[str, str]:
    """Alias -> file path, over every file (an earlier directory wins); cached by `datacache.cached_index`."""
    from kvcalc.sources.datacache import cached_index

    files = _files(dirs)

    def build() -> dict[str, str]:
        index: dict[str, str] = {}
        for path in files.values():
            for alias in _aliases_of(path):
                index.setdefault(alias, str(path))
        return index

    by_name: dict[str, str] = cached_index("gpu-aliases", list(files.values()), build)
    return by_name


@functools.cache
def _all(dirs: tuple[Path, ...]) -> tuple[GpuSpec, ...]:
    return tuple(_load_cached(path) for _, path in sorted(_files(dirs).items()))


def list_gpus() -> list[GpuSpec]:
    """Every shipped accelerator, sorted by key (parsed once per process)."""
    return list(_all(tuple(hardware_dirs())))


def find_gpu(name: str) -> GpuSpec:
    """Resolve `name` case-insensitively: a file stem (`h100-sxm`), an alias (`h100`), a display name
    (`NVIDIA H100 SXM5 80GB`), or a path to a `.yaml` file of the same format.

    Unknown names raise InputError suggesting the nearest keys and aliases.
    """
    query = name.strip()
    if not query:
        raise InputError("GPU name is empty; give a key or alias such as h100, a100, mi300x or m4-max")
    check_text(query, "GPU name")
    if query.lower().endswith((".yaml", ".yml")):
        return load_gpu_file(user_path(query, "GPU file"))  # a path to the user's own file
    wanted = query.lower()
    dirs = tuple(hardware_dirs())
    files = _files(dirs)
    if wanted in files:
        return _load_cached(files[wanted])
    aliases = _alias_index(dirs)
    if wanted in aliases:
        return _load_cached(Path(aliases[wanted]))
    for gpu in _all(dirs):
        if gpu.name.lower() == wanted:
            return gpu
    raise unknown_name_error("GPU", name, sorted(files) + sorted(aliases))
