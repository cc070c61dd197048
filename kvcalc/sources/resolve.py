"""The MODEL argument -> ModelSpec: a profile alias, a local config.json / model folder / .gguf file, or a
Hugging Face Hub repo id (`owner/name[@revision]`), in that order."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kvcalc.bounds import MAX_CONFIG_FILE_BYTES, check_text
from kvcalc.errors import InputError, unknown_name_error
from kvcalc.inputs import revision as hub_revision
from kvcalc.inputs import user_path
from kvcalc.sources.hf_config import model_from_config
from kvcalc.sources.profiles import find_profile, find_profile_by_repo, load_profile, profile_index
from kvcalc.sources.untrusted import parse_json, read_text
from kvcalc.spec.model import ModelSpec

_REPO_ID = r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+(@[\w.\-/]+)?$"  # compiled on first use


#: Suffixes that mark MODEL as a file path (so a missing one is "no such file", not "unknown model").
_FILE_SUFFIXES = (".json", ".gguf", ".safetensors", ".yaml", ".yml")


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a config.json as data (bounded size, `untrusted.parse_json`); malformed JSON is an InputError
    naming the file and position."""
    data = parse_json(read_text(path, MAX_CONFIG_FILE_BYTES, "config.json"), str(path))
    if not isinstance(data, dict):
        raise InputError(f"{path}: config.json must be a JSON object")
    return data


def _existing(path: Path) -> Path | None:
    """`path` when something is there; None when not, or when the name cannot be a path (too long ...)."""
    try:
        return path if path.exists() else None
    except (OSError, ValueError):  # ENAMETOOLONG, ELOOP, embedded NUL
        return None


def _with_checkpoint(model: ModelSpec, folder: Path) -> ModelSpec:
    """Attach exact counts from safetensors headers in `folder`, when there are any."""
    from kvcalc.sources.checkpoint import read_safetensors_dir, with_checkpoint_stats

    return with_checkpoint_stats(model, read_safetensors_dir(folder))


def load_model(
    name: str, *, revision: str | None = None, warn: Callable[[str], None] | None = None
) -> ModelSpec:
    """Resolve MODEL to a ModelSpec, or raise InputError / EnvironmentProblem with one clear line."""
    if not name.strip():
        raise InputError(
            "MODEL is empty; give a profile alias (kvcalc models), a config.json, or a Hub repo id"
        )
    text = check_text(name, "MODEL").strip()
    profile = find_profile(text)
    if profile is None and re.match(_REPO_ID, text) and not revision and "@" not in text:
        profile = find_profile_by_repo(text)  # a shipped profile's Hub id resolves offline
    if profile is not None:
        return _from_profile(profile, warn)
    path = _existing(user_path(text, "model"))
    if path is not None:
        if path.is_dir():
            if (path / "config.json").is_file():
                model = model_from_config(
                    read_config_file(path / "config.json"), model_id=path.name, warn=warn
                )
                return _with_checkpoint(model, path)
            ggufs = sorted(path.glob("*.gguf"))
            if ggufs:
                return _load_gguf(ggufs[0], warn)
            raise InputError(f"{path}: folder has no config.json and no .gguf file")
        if path.suffix == ".gguf":
            return _load_gguf(path, warn)
        return model_from_config(read_config_file(path), model_id=path.stem, warn=warn)
    if text.lower().endswith(_FILE_SUFFIXES) or text.startswith(("/", "./", "../", "~")):
        raise InputError(f"{text}: no such file")
    if re.match(_REPO_ID, text):
        repo, _, at_revision = text.partition("@")
        from kvcalc.sources.hub import fetch_config, with_hub_checkpoint

        pinned = revision or hub_revision(at_revision or None)
        config, snapshot = fetch_config(repo, pinned)
        model = model_from_config(config, model_id=repo, hf_repo=repo, warn=warn)
        return with_hub_checkpoint(model, repo, pinned, snapshot)
    raise unknown_name_error("model", text, sorted(profile_index()))


def _from_profile(profile: Path, warn: Callable[[str], None] | None) -> ModelSpec:
    data = load_profile(profile)
    return model_from_config(
        data["config"], model_id=str(data.get("name", profile.stem)), hf_repo=data.get("hf_repo"), warn=warn
    )


def _load_gguf(path: Path, warn: Callable[[str], None] | None) -> ModelSpec:
    from kvcalc.sources.gguf_file import model_from_gguf

    return model_from_gguf(path, warn=warn)
