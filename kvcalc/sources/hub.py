"""Hugging Face Hub repos: `config.json` through huggingface_hub's own cache, and exact checkpoint counts.

`hf_hub_download` does the work and honours the usual environment by itself: HF_TOKEN (gated and private
repos), HF_HOME / HF_HUB_CACHE (cache location, layout `models--owner--name/{blobs,refs,snapshots}`),
HF_HUB_OFFLINE=1 (cache only, no network), HF_ENDPOINT (mirrors), and revisions (branch, tag, commit hash).
huggingface_hub is imported inside the functions so commands that never touch the Hub do not pay for it.
The config is parsed as JSON data only; no code from the repo is ever run (`auto_map` is ignored).

Failing fast: online, kvcalc first asks the Hub for config.json's metadata once (one HEAD, a short timeout,
no retries: `_probe`). huggingface_hub's own download retries network errors and server errors five times
with backoff (about 23 s with no network); kvcalc only downloads once the Hub has answered. When the Hub
cannot be reached, times out or answers 5xx, the local cache is used if it holds the file, else the error
says which of the four it was.

Errors become one line: gated repo (401/403), rejected token, no network, timeout or server error (5xx, 429)
-> EnvironmentProblem (exit 3); unknown repo (404), revision or file, or a malformed config -> InputError
(exit 2). Exception classes: `huggingface_hub.errors`. Tokens never appear in a message (`cli.app.redact`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kvcalc.bounds import MAX_CONFIG_FILE_BYTES
from kvcalc.errors import EnvironmentProblem, InputError, KvcalcError
from kvcalc.sources.checkpoint import CheckpointStats, read_safetensors_dir, stats_from_tensors
from kvcalc.spec.model import ModelSpec

_COMMIT = re.compile(r"^[0-9a-f]{40}$")

#: Seconds to connect to the Hub, and to get its answer once connected, for the metadata request (the answer
#: limit is HF_HUB_ETAG_TIMEOUT when the user sets it).
CONNECT_TIMEOUT_S = 1.5
ANSWER_TIMEOUT_S = 5.0

#: Set when this process found the Hub unreachable: later Hub calls (remote safetensors headers) are skipped
#: instead of waiting for timeouts again.
_unreachable = False

#: Packages whose exceptions mean "no network" (huggingface_hub 0.x uses requests; 1.x+ httpx / httpx2).
_NETWORK_MODULES = ("requests", "urllib3", "httpx", "httpx2", "httpcore", "socket", "ssl")


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise EnvironmentProblem("Hub repos need huggingface_hub: pip install huggingface_hub") from exc
    return huggingface_hub


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


class HubUnavailable(EnvironmentProblem):
    """The Hub gave no usable answer (no network, timeout, 5xx, 429): a cached copy may still serve."""


def _hub_error(exc: Exception, repo_id: str, revision: str | None) -> KvcalcError | None:
    """The one-line kvcalc error for a huggingface_hub failure, or None for an unexpected exception."""
    where = f"{repo_id}@{revision}" if revision else repo_id
    return (
        _repo_error(exc, repo_id, revision, where)
        or _transport_error(exc, where)
        or _http_error(exc, repo_id, where)
        or _local_error(exc, where)
    )


def _repo_error(exc: Exception, repo_id: str, revision: str | None, where: str) -> KvcalcError | None:
    """Answers about the repo itself: gated, missing, bad revision or file, disabled, invalid id."""
    from huggingface_hub import errors

    if isinstance(exc, errors.GatedRepoError):  # subclass of RepositoryNotFoundError: test it first
        return EnvironmentProblem(
            f"{repo_id}: gated repo: accept the licence on https://huggingface.co/{repo_id} and set HF_TOKEN"
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return InputError(
            f"{repo_id}: no such repo on the Hub, or it is private (set HF_TOKEN to a token that can read it)"
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return InputError(f"{repo_id}: revision '{revision}' not found on the Hub")
    if isinstance(exc, errors.DisabledRepoError):
        return InputError(f"{repo_id}: the repo has been disabled on the Hub")
    if isinstance(exc, errors.LocalEntryNotFoundError):  # subclass of EntryNotFoundError: test it first
        if _offline():
            return EnvironmentProblem(
                f"{where}: config.json is not in the local Hub cache and HF_HUB_OFFLINE=1; "
                "unset HF_HUB_OFFLINE or download the repo first"
            )
        return HubUnavailable(f"{where}: cannot reach the Hub and config.json is not in the local Hub cache")
    if isinstance(exc, errors.EntryNotFoundError):
        return InputError(
            f"{where}: the repo has no config.json (GGUF-only repo? download the .gguf and pass its path)"
        )
    if isinstance(exc, errors.HFValidationError):
        return InputError(f"'{repo_id}' is not a valid Hub repo id or revision: {str(exc).splitlines()[0]}")
    return None


def _transport_error(exc: Exception, where: str) -> KvcalcError | None:
    """No answer at all: a timeout, or a network error (DNS, refused connection, TLS, offline mode)."""
    from huggingface_hub import errors

    if any("Timeout" in k.__name__ for k in type(exc).__mro__):  # httpx Connect/ReadTimeout, TimeoutError
        return HubUnavailable(
            f"{where}: the Hub did not answer in time (timeout: {min(CONNECT_TIMEOUT_S, _timeout()):g} s to "
            f"connect, {_timeout():g} s to answer); check the network, or set HF_HUB_OFFLINE=1 to use the cache"
        )
    network = type(exc).__module__.split(".")[0] in _NETWORK_MODULES or isinstance(exc, ConnectionError)
    if isinstance(exc, errors.OfflineModeIsEnabled) or network:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return HubUnavailable(f"{where}: cannot reach the Hub ({detail}); check the network, or set "
                              "HF_HUB_OFFLINE=1 to use the local cache")
    return None


def _http_error(exc: Exception, repo_id: str, where: str) -> KvcalcError | None:
    """An HTTP status without the Hub's own error code: 401, 403, 404, 429, 5xx."""
    from huggingface_hub import errors

    if not isinstance(exc, errors.HfHubHTTPError):
        return None
    status = exc.response.status_code if getattr(exc, "response", None) is not None else None
    if status == 401:
        return EnvironmentProblem(f"{repo_id}: the Hub rejected the token (HTTP 401); check HF_TOKEN")
    if status == 403:
        return EnvironmentProblem(f"{repo_id}: the Hub refused access (HTTP 403); check HF_TOKEN's permissions")
    if status == 404:
        return InputError(f"{where}: not found on the Hub (HTTP 404); check the repo id and revision")
    if status == 429:
        return HubUnavailable(f"{where}: the Hub is rate-limiting requests (HTTP 429); try again later")
    if status is not None and status >= 500:
        return HubUnavailable(f"{where}: the Hub answered HTTP {status} (server error); try again later")
    return EnvironmentProblem(f"{where}: Hub error: {(str(exc).splitlines() or ['HTTP error'])[0]}")


def _local_error(exc: Exception, where: str) -> KvcalcError | None:
    if isinstance(exc, OSError):  # e.g. an unwritable HF_HUB_CACHE
        return EnvironmentProblem(f"{where}: Hub cache: {exc}")
    return None


def _read_config(path: Path, repo_id: str) -> dict[str, Any]:
    """A downloaded config.json, read as untrusted data (bounded size and depth)."""
    from kvcalc.sources.untrusted import parse_json, read_text

    where = f"{repo_id}: config.json ({path})"
    data = parse_json(read_text(path, MAX_CONFIG_FILE_BYTES, "config.json"), where)
    if not isinstance(data, dict):
        raise InputError(f"{where} must be a JSON object")
    return data


def _timeout() -> float:
    """Seconds the Hub may take to answer: ANSWER_TIMEOUT_S, or HF_HUB_ETAG_TIMEOUT when the user set it."""
    import os

    try:
        return max(0.1, float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or ANSWER_TIMEOUT_S))
    except ValueError:
        return ANSWER_TIMEOUT_S


def _request_timeout() -> Any:
    """The HTTP client's timeout: CONNECT_TIMEOUT_S to connect, `_timeout()` for the rest (httpx `Timeout`
    for huggingface_hub 1.x+, a (connect, read) pair for the requests-based 0.x)."""
    for module in ("httpx2", "httpx"):
        try:
            timeout_type = __import__(module).Timeout
        except (ImportError, AttributeError):
            continue
        return timeout_type(_timeout(), connect=min(CONNECT_TIMEOUT_S, _timeout()))
    return (min(CONNECT_TIMEOUT_S, _timeout()), _timeout())


def _probe(repo_id: str, revision: str | None) -> None:
    """One HEAD request for config.json's metadata: no retries, short timeouts (`_request_timeout`).
    Raises what huggingface_hub raises (classified by `_hub_error`)."""
    hub = _hub()
    url = hub.hf_hub_url(repo_id, "config.json", revision=revision)
    hub.get_hf_file_metadata(url, timeout=_request_timeout(), retry_on_errors=False)


def _download(repo_id: str, revision: str | None, *, cache_only: bool) -> Path:
    hub = _hub()
    try:
        return Path(hub.hf_hub_download(repo_id, "config.json", revision=revision, local_files_only=cache_only))
    except Exception as exc:
        error = _hub_error(exc, repo_id, revision)
        if error is None:
            raise
        raise error from exc


def fetch_config(repo_id: str, revision: str | None) -> tuple[dict[str, Any], Path | None]:
    """(parsed config.json, snapshot folder) of a Hub repo at `revision` (None = the default branch).

    The snapshot folder (`.../models--owner--name/snapshots/<commit>/`, its name the resolved commit hash)
    holds whatever else of the repo is already cached, so safetensors headers there can be read.
    Online, the Hub is asked once first (`_probe`); if it cannot answer, the cached copy is used when there
    is one, else the classified error is raised within about `_timeout()` seconds.
    """
    global _unreachable
    if not _offline():
        try:
            _probe(repo_id, revision)
        except Exception as exc:
            error = _hub_error(exc, repo_id, revision)
            if error is None:
                raise
            if not isinstance(error, HubUnavailable):
                raise error from exc
            _unreachable = True
            try:
                local = _download(repo_id, revision, cache_only=True)
            except KvcalcError:
                raise error from exc
            return _read_config(local, repo_id), local.parent
    local = _download(repo_id, revision, cache_only=False)
    return _read_config(local, repo_id), local.parent


def remote_checkpoint_stats(repo_id: str, revision: str | None) -> CheckpointStats | None:
    """Exact counts from the repo's safetensors headers read over HTTP (range requests, no weights
    downloaded), via `huggingface_hub.get_safetensors_metadata`. None when offline, when the repo has no
    safetensors, or on any failure: the caller then keeps config-derived counts.

    Costs one request per shard (a 163-shard repo is 163 small requests, run in parallel by huggingface_hub).
    Pass the snapshot's commit hash (`fetch_config(...)[1].name`) as `revision` to read the same commit.
    """
    hub = _hub()
    if _offline() or _unreachable:
        return None
    from huggingface_hub.utils.tqdm import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()  # no "Parse safetensors files" bar on the CLI's stderr
    try:
        meta = hub.get_safetensors_metadata(repo_id, revision=revision)
        tensors = [
            (info.dtype, info.shape, info.data_offsets)
            for file_meta in meta.files_metadata.values()
            for info in file_meta.tensors.values()
        ]
        files = len(meta.files_metadata)
    except Exception:
        return None
    finally:
        if not bars_were_off:
            enable_progress_bars()
    return stats_from_tensors(tensors, files=files) if tensors else None


def hub_checkpoint_stats(repo_id: str, revision: str | None, snapshot: Path | None) -> CheckpointStats | None:
    """Exact counts for a Hub repo: from the safetensors already in the local snapshot when the whole
    checkpoint is there, else from the Hub's headers (`remote_checkpoint_stats`, at the snapshot's commit)."""
    stats = read_safetensors_dir(snapshot) if snapshot is not None else None
    if stats is not None:
        return stats
    commit = snapshot.name if snapshot is not None and _COMMIT.match(snapshot.name) else revision
    return remote_checkpoint_stats(repo_id, commit)


def with_hub_checkpoint(
    model: ModelSpec, repo_id: str, revision: str | None, snapshot: Path | None
) -> ModelSpec:
    """`model` made exact with the checkpoint counts, when `hub_checkpoint_stats` finds them."""
    from kvcalc.sources.checkpoint import with_checkpoint_stats

    return with_checkpoint_stats(model, hub_checkpoint_stats(repo_id, revision, snapshot))
