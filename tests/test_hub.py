"""Hub repo ids resolved through a real on-disk Hugging Face cache, in a subprocess (no mocks, no network).

huggingface_hub reads HF_HUB_CACHE / HF_HUB_OFFLINE / HF_ENDPOINT once, at import time
(`huggingface_hub/constants.py`), so each case runs `load_model` in a fresh interpreter with the environment
set, as the CLI would run. The cache is built in the layout huggingface_hub writes:
`models--owner--name/blobs/<etag>` (git blob sha1 for small files, sha256 for LFS files such as safetensors),
`snapshots/<commit>/<file>` as relative symlinks to the blobs, and `refs/<branch>` holding the commit hash
(no trailing newline: huggingface_hub reads it verbatim).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

COMMIT_MAIN = "a" * 40
COMMIT_OLD = "b" * 40

# Tiny llama: hidden 64, 2 layers, 4 heads (head_dim 16), 2 KV heads, FFN 128, vocab 256, untied head.
#   per layer: q 64*64 = 4,096 + k 32*64 = 2,048 + v 2,048 + o 4,096 = 12,288 attention
#              + gate/up/down 3 * 64*128 = 24,576 MLP + 2 norms * 64 = 128  -> 36,992
#   2 layers 73,984 + embed 256*64 = 16,384 + lm_head 16,384 + final norm 64 = 106,816
TINY_LLAMA: dict[str, Any] = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 256,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
TINY_LLAMA_PARAMS = 106_816

#: Run in a fresh interpreter as `-c _DRIVER MODE NAME`: prints one JSON value (model summary, stats, error).
#: MODE `load` is the CLI path (resolve.load_model); `hub` is fetch_config + with_hub_checkpoint (local
#: snapshot, then remote headers); `remote` is remote_checkpoint_stats alone.
_DRIVER = """
import dataclasses, json, sys
from kvcalc.calc.params import params_total
from kvcalc.errors import KvcalcError
from kvcalc.sources import hub
from kvcalc.sources.hf_config import model_from_config
from kvcalc.sources.resolve import load_model


def describe(m):
    return {"model_type": m.model_type, "hf_repo": m.hf_repo, "num_layers": m.num_layers,
            "params_total": params_total(m), "params_source": m.params_source,
            "exact_params_total": m.exact_params_total, "exact_weights_bytes": m.exact_weights_bytes}


mode, name = sys.argv[1:3]
try:
    if mode == "load":
        result = describe(load_model(name))
    elif mode == "hub":
        config, snapshot = hub.fetch_config(name, None)
        model = model_from_config(config, model_id=name, hf_repo=name)
        result = describe(hub.with_hub_checkpoint(model, name, None, snapshot))
    else:
        stats = hub.remote_checkpoint_stats(name, None)
        result = None if stats is None else dataclasses.asdict(stats)
except KvcalcError as exc:
    result = {"error": type(exc).__name__, "exit_code": exc.exit_code, "message": str(exc)}
print(json.dumps(result))
"""


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def add_snapshot(
    cache: Path, repo_id: str, commit: str, files: dict[str, bytes], ref: str | None = "main"
) -> Path:
    """Write `files` into the cache as huggingface_hub does; point refs/<ref> at `commit`."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    blobs = repo / "blobs"
    snapshot = repo / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        etag = hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else _git_blob_sha1(data)
        (blobs / etag).write_bytes(data)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", etag))
    if ref is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_CACHE=str(tmp_path / "hub"),
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
    )
    env.update(extra)
    return env


def run(mode: str, name: str, env: dict[str, str]) -> Any:
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, mode, name], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load(name: str, env: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = run("load", name, env)
    return result


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    hub = tmp_path / "hub"
    add_snapshot(hub, "owner/tiny", COMMIT_MAIN, {"config.json": json.dumps(TINY_LLAMA).encode()})
    old = {**TINY_LLAMA, "num_hidden_layers": 3}  # 3 layers: 106,816 + 36,992 = 143,808
    add_snapshot(hub, "owner/tiny", COMMIT_OLD, {"config.json": json.dumps(old).encode()}, ref="dev")
    return hub


def test_repo_id_from_offline_cache(tmp_path: Path, cache: Path) -> None:
    out = load("owner/tiny", _env(tmp_path))
    assert out == {
        "model_type": "llama",
        "hf_repo": "owner/tiny",
        "num_layers": 2,
        "params_total": TINY_LLAMA_PARAMS,
        "params_source": "derived",
        "exact_params_total": None,
        "exact_weights_bytes": None,
    }


def test_pinned_revisions(tmp_path: Path, cache: Path) -> None:
    env = _env(tmp_path)
    by_commit = load(f"owner/tiny@{COMMIT_OLD}", env)
    by_branch = load("owner/tiny@dev", env)
    assert by_commit["num_layers"] == by_branch["num_layers"] == 3
    assert by_commit["params_total"] == by_branch["params_total"] == 143_808
    assert load(f"owner/tiny@{COMMIT_MAIN}", env)["num_layers"] == 2


def test_offline_miss_is_an_environment_problem(tmp_path: Path, cache: Path) -> None:
    out = load("owner/absent", _env(tmp_path))
    assert out["error"] == "EnvironmentProblem" and out["exit_code"] == 3
    assert "not in the local Hub cache and HF_HUB_OFFLINE=1" in out["message"]
    unknown_branch = load("owner/tiny@nope", _env(tmp_path))
    assert unknown_branch["exit_code"] == 3 and unknown_branch["message"].startswith("owner/tiny@nope:")


def test_malformed_config_is_an_input_error(tmp_path: Path) -> None:
    add_snapshot(tmp_path / "hub", "owner/broken", COMMIT_MAIN, {"config.json": b'{"model_type": "llama",'})
    out = load("owner/broken", _env(tmp_path))
    assert out["error"] == "InputError" and out["exit_code"] == 2
    assert "owner/broken: config.json" in out["message"] and "malformed JSON at line 1" in out["message"]


def _tiny_llama_safetensors() -> dict[str, bytes]:
    """The tiny llama in HF tensor names, two shards and an index: norms F32, everything else F16."""
    from safetensors.numpy import save

    def f16(*shape: int) -> np.ndarray:
        return np.zeros(shape, dtype=np.float16)

    def f32(*shape: int) -> np.ndarray:
        return np.ones(shape, dtype=np.float32)

    shards: list[dict[str, np.ndarray]] = [
        {"model.embed_tokens.weight": f16(256, 64)},
        {"model.norm.weight": f32(64), "lm_head.weight": f16(256, 64)},
    ]
    for i in range(2):
        p = f"model.layers.{i}."
        shards[i].update(
            {
                p + "self_attn.q_proj.weight": f16(64, 64),
                p + "self_attn.k_proj.weight": f16(32, 64),
                p + "self_attn.v_proj.weight": f16(32, 64),
                p + "self_attn.o_proj.weight": f16(64, 64),
                p + "mlp.gate_proj.weight": f16(128, 64),
                p + "mlp.up_proj.weight": f16(128, 64),
                p + "mlp.down_proj.weight": f16(64, 128),
                p + "input_layernorm.weight": f32(64),
                p + "post_attention_layernorm.weight": f32(64),
            }
        )
    names = [f"model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    files = {name: save(tensors) for name, tensors in zip(names, shards, strict=True)}
    weight_map = {t: name for name, tensors in zip(names, shards, strict=True) for t in tensors}
    files["model.safetensors.index.json"] = json.dumps({"metadata": {}, "weight_map": weight_map}).encode()
    return files


def test_cached_safetensors_give_exact_counts(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    # Elements: 106,816 (the same tensors as the config). F32 norms: 2 layers * 2 * 64 + 64 = 320 elements
    # -> 1,280 bytes; the other 106,496 elements are F16 -> 212,992 bytes; total 214,272 bytes.
    files = {"config.json": json.dumps(TINY_LLAMA).encode(), **_tiny_llama_safetensors()}
    add_snapshot(tmp_path / "hub", "owner/tiny-st", COMMIT_MAIN, files)
    out = load("owner/tiny-st", _env(tmp_path))
    assert out["params_source"] == "exact"
    assert out["exact_params_total"] == out["params_total"] == TINY_LLAMA_PARAMS
    assert out["exact_weights_bytes"] == 214_272


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_hub_falls_back_to_cache(tmp_path: Path, cache: Path) -> None:
    # Online mode with a Hub that refuses connections: the cached config is used, and the remote
    # safetensors lookup fails softly (None), leaving derived counts.
    env = _env(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}")
    del env["HF_HUB_OFFLINE"]
    out = load("owner/tiny", env)
    assert out["num_layers"] == 2 and out["params_source"] == "derived"
    assert run("remote", "owner/tiny", env) is None
    assert run("hub", "owner/tiny", env)["params_source"] == "derived"


def test_hub_checkpoint_prefers_the_local_snapshot(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    files = {"config.json": json.dumps(TINY_LLAMA).encode(), **_tiny_llama_safetensors()}
    add_snapshot(tmp_path / "hub", "owner/tiny-st", COMMIT_MAIN, files)
    out = run("hub", "owner/tiny-st", _env(tmp_path))
    assert (out["params_source"], out["exact_weights_bytes"]) == ("exact", 214_272)


def test_offline_remote_stats_is_none(tmp_path: Path, cache: Path) -> None:
    assert run("remote", "owner/tiny", _env(tmp_path)) is None


# --- Online error paths against a local Hub stand-in (127.0.0.1 only) --------------------------------------
#
# `hf_hub_download(repo, "config.json", revision=None)` (huggingface_hub 2.x, file_download.py) first sends
# `HEAD {HF_ENDPOINT}/{repo}/resolve/main/config.json`. Its metadata comes from the response headers
# (`X-Repo-Commit`: the commit the revision resolves to; `ETag` (or `X-Linked-Etag`): the blob id;
# `Content-Length` (or `X-Linked-Size`): the size); it then sends `GET` on the same URL for the body.
# A 4xx HEAD is turned into an exception by `hf_raise_for_status` (utils/_http.py) from `X-Error-Code`:
# `GatedRepo` -> GatedRepoError, `RepoNotFound` -> RepositoryNotFoundError, `RevisionNotFound` ->
# RevisionNotFoundError, `EntryNotFound` -> RemoteEntryNotFoundError. kvcalc sends its own HEAD first
# (`hub._probe`, no retries), so 5xx and 429 are answered once (tests at the end). kvcalc's `inspect` then asks
# `get_safetensors_metadata`, whose
# `file_exists` HEADs `model.safetensors` and `model.safetensors.index.json` at the resolved commit: the
# stand-in answers those with 404 `EntryNotFound`, as the Hub does for a repo without safetensors.

ROOT = Path(__file__).resolve().parents[1]

#: A Hub response: status, headers, body (the body is sent on GET only; HEAD gets the headers alone).
Reply = tuple[int, dict[str, str], bytes]


class _FakeHub:
    """A threaded http.server on 127.0.0.1: `routes` maps a path to a Reply; other paths are 404
    EntryNotFound. Every request is recorded in `requests` as (method, path)."""

    def __init__(self) -> None:
        import http.server
        import threading

        hub = self
        self.routes: dict[str, Reply] = {}
        self.requests: list[tuple[str, str]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10  # a stuck client connection cannot hold a handler thread longer than this

            def _reply(self, with_body: bool) -> None:
                hub.requests.append((self.command, self.path))
                status, headers, body = hub.routes.get(
                    self.path.split("?")[0],
                    (404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"}, b""),
                )
                if not body and status >= 400:
                    body = json.dumps({"error": headers.get("X-Error-Message", "error")}).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                if status >= 400 or "Content-Type" not in headers:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_HEAD(self) -> None:  # http.server's method naming
                self._reply(with_body=False)

            def do_GET(self) -> None:
                self._reply(with_body=True)

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output clean
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def serve_file(self, repo_id: str, revision: str, filename: str, data: bytes, commit: str) -> None:
        """Serve `filename` as the Hub serves a small (non-LFS) file: ETag is its git blob sha1."""
        self.routes[f"/{repo_id}/resolve/{revision}/{filename}"] = (
            200,
            {"ETag": f'"{_git_blob_sha1(data)}"', "X-Repo-Commit": commit, "Content-Type": "text/plain"},
            data,
        )

    def fail(self, repo_id: str, revision: str, filename: str, status: int, code: str, message: str) -> None:
        self.routes[f"/{repo_id}/resolve/{revision}/{filename}"] = (
            status,
            {"X-Error-Code": code, "X-Error-Message": message},
            b"",
        )


@pytest.fixture
def fake_hub() -> Iterator[_FakeHub]:
    hub = _FakeHub()
    try:
        yield hub
    finally:
        hub.stop()


def _online_env(tmp_path: Path, hub: _FakeHub) -> dict[str, str]:
    """Online mode against the stand-in, an empty cache, no token, short timeouts, no proxy."""
    (tmp_path / "hub").mkdir(exist_ok=True)
    env = _env(
        tmp_path,
        HF_ENDPOINT=hub.endpoint,
        HF_HUB_OFFLINE="0",
        HF_HUB_ETAG_TIMEOUT="5",
        HF_HUB_DOWNLOAD_TIMEOUT="5",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_XET="1",
    )
    for key in [k for k in env if k.lower() in ("http_proxy", "https_proxy", "all_proxy")]:
        del env[key]
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def kvcalc_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvcalc", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def _assert_one_error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kvcalc: error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("status", [401, 403])  # 401: no token sent; 403: a token without licence access
def test_online_gated_repo_is_an_environment_problem(tmp_path: Path, fake_hub: _FakeHub, status: int) -> None:
    message = "Access to model owner/gated-model is restricted. You must be authenticated to access it."
    fake_hub.fail("owner/gated-model", "main", "config.json", status, "GatedRepo", message)
    proc = kvcalc_cli(["inspect", "owner/gated-model", "--json"], _online_env(tmp_path, fake_hub))
    line = _assert_one_error_line(proc, 3)
    assert "owner/gated-model: gated repo" in line and "licence" in line and "HF_TOKEN" in line
    assert ("HEAD", "/owner/gated-model/resolve/main/config.json") in fake_hub.requests
    assert not any(method == "GET" for method, _ in fake_hub.requests)


@pytest.mark.parametrize("status", [401, 404])  # the Hub answers 401 to anonymous callers, 404 otherwise
def test_online_missing_repo_is_an_input_error(tmp_path: Path, fake_hub: _FakeHub, status: int) -> None:
    fake_hub.fail("owner/missing", "main", "config.json", status, "RepoNotFound", "Repository not found")
    proc = kvcalc_cli(["inspect", "owner/missing", "--json"], _online_env(tmp_path, fake_hub))
    line = _assert_one_error_line(proc, 2)
    assert "owner/missing: no such repo on the Hub" in line
    assert fake_hub.requests == [("HEAD", "/owner/missing/resolve/main/config.json")]


def test_online_missing_revision_and_file_are_input_errors(tmp_path: Path, fake_hub: _FakeHub) -> None:
    env = _online_env(tmp_path, fake_hub)
    fake_hub.fail("owner/tiny", "nope", "config.json", 404, "RevisionNotFound", "Invalid rev id: nope")
    line = _assert_one_error_line(kvcalc_cli(["inspect", "owner/tiny@nope", "--json"], env), 2)
    assert "owner/tiny: revision 'nope' not found on the Hub" in line
    # A repo without config.json (the stand-in's default 404 EntryNotFound), e.g. a GGUF-only repo.
    line = _assert_one_error_line(kvcalc_cli(["inspect", "owner/gguf-only", "--json"], env), 2)
    assert "owner/gguf-only: the repo has no config.json" in line


def test_online_download_of_config(tmp_path: Path, fake_hub: _FakeHub) -> None:
    # params_total of TINY_LLAMA, by hand (see TINY_LLAMA_PARAMS above):
    #   per layer: attention q 64*64 + k 32*64 + v 32*64 + o 64*64 = 4,096 + 2,048 + 2,048 + 4,096 = 12,288
    #              MLP gate/up/down 3 * 64*128 = 24,576; norms 2 * 64 = 128      -> 36,992
    #   2 layers 73,984 + embed 256*64 = 16,384 + lm_head (untied) 16,384 + final norm 64 = 106,816
    config = json.dumps(TINY_LLAMA).encode()
    fake_hub.serve_file("owner/tiny", "main", "config.json", config, COMMIT_MAIN)
    env = _online_env(tmp_path, fake_hub)
    proc = kvcalc_cli(["inspect", "owner/tiny", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    model = json.loads(proc.stdout)["model"]
    assert model["params_total"] == 106_816 == TINY_LLAMA_PARAMS
    assert (model["hf_repo"], model["num_layers"], model["params_source"]) == ("owner/tiny", 2, "derived")
    # kvcalc's one HEAD (no retries), then huggingface_hub's HEAD and GET of config.json; then the safetensors
    # lookup at the resolved commit finds none (404s).
    assert fake_hub.requests[:3] == [
        ("HEAD", "/owner/tiny/resolve/main/config.json"),
        ("HEAD", "/owner/tiny/resolve/main/config.json"),
        ("GET", "/owner/tiny/resolve/main/config.json"),
    ]
    assert ("HEAD", f"/owner/tiny/resolve/{COMMIT_MAIN}/model.safetensors") in fake_hub.requests
    # The download landed in the cache in huggingface_hub's layout, so an offline run now finds it.
    repo = tmp_path / "hub" / "models--owner--tiny"
    assert (repo / "refs" / "main").read_text() == COMMIT_MAIN
    assert (repo / "snapshots" / COMMIT_MAIN / "config.json").read_bytes() == config
    offline = kvcalc_cli(["inspect", "owner/tiny", "--json"], _env(tmp_path))
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["model"]["params_total"] == TINY_LLAMA_PARAMS


# --- Failing fast, and telling the failures apart ---------------------------------------------------------
#
# Online, kvcalc asks for config.json's metadata once (HEAD, no retries, 1.5 s to connect, 5 s or
# HF_HUB_ETAG_TIMEOUT to answer) before huggingface_hub's download, whose own retry loop takes ~23 s with no
# network. Each case below checks the exit code, the one-line message and that the Hub saw one request.


def _silent_server() -> tuple[socket.socket, str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a hung Hub)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    return server, f"http://127.0.0.1:{server.getsockname()[1]}"


def _timed_cli(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    import time

    start = time.perf_counter()
    proc = kvcalc_cli(args, env)
    return proc, time.perf_counter() - start


def test_no_network_fails_fast(tmp_path: Path) -> None:
    # Nothing listens on the port (connection refused, as with no route): exit 3 in well under the 23 s of
    # huggingface_hub's retry loop; the bound allows for this slow shared machine's interpreter start-up.
    env = _env(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", HF_HUB_OFFLINE="0")
    proc, seconds = _timed_cli(["inspect", "owner/absent", "--json"], env)
    line = _assert_one_error_line(proc, 3)
    assert "cannot reach the Hub" in line and "HF_HUB_OFFLINE=1" in line
    assert seconds < 5, seconds


def test_hung_hub_is_a_timeout(tmp_path: Path) -> None:
    server, endpoint = _silent_server()
    try:
        env = _env(tmp_path, HF_ENDPOINT=endpoint, HF_HUB_OFFLINE="0", HF_HUB_ETAG_TIMEOUT="1")
        proc, seconds = _timed_cli(["inspect", "owner/absent", "--json"], env)
    finally:
        server.close()
    line = _assert_one_error_line(proc, 3)
    assert "did not answer in time (timeout" in line
    assert seconds < 6, seconds  # one 1 s attempt, no retries


@pytest.mark.parametrize(("status", "needle"), [(500, "HTTP 500 (server error)"), (503, "HTTP 503 (server error)"),
                                                (429, "rate-limiting")])
def test_server_errors_are_environment_problems(
    tmp_path: Path, fake_hub: _FakeHub, status: int, needle: str
) -> None:
    fake_hub.fail("owner/tiny", "main", "config.json", status, "", "Internal Error")
    proc, seconds = _timed_cli(["inspect", "owner/tiny", "--json"], _online_env(tmp_path, fake_hub))
    line = _assert_one_error_line(proc, 3)
    assert needle in line
    assert fake_hub.requests == [("HEAD", "/owner/tiny/resolve/main/config.json")]  # asked once, no retries
    assert seconds < 5, seconds


def test_server_error_with_a_cached_config_uses_the_cache(tmp_path: Path, fake_hub: _FakeHub, cache: Path) -> None:
    fake_hub.fail("owner/tiny", "main", "config.json", 503, "", "Service Unavailable")
    proc = kvcalc_cli(["inspect", "owner/tiny", "--json"], _online_env(tmp_path, fake_hub))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"]["params_total"] == TINY_LLAMA_PARAMS
    assert fake_hub.requests == [("HEAD", "/owner/tiny/resolve/main/config.json")]  # no safetensors lookups


def test_plain_404_is_a_missing_repo(tmp_path: Path, fake_hub: _FakeHub) -> None:
    # A mirror that answers 404 without the Hub's X-Error-Code header.
    fake_hub.routes["/owner/gone/resolve/main/config.json"] = (404, {}, b"not found")
    line = _assert_one_error_line(kvcalc_cli(["inspect", "owner/gone", "--json"], _online_env(tmp_path, fake_hub)), 2)
    assert "owner/gone: not found on the Hub (HTTP 404)" in line


def test_token_is_never_printed(tmp_path: Path, fake_hub: _FakeHub) -> None:
    token = "hf_" + "Secret0123456789abcdefXYZ"
    # A Hub that echoes the token back in its error message: kvcalc must still not print it.
    message = f"Invalid credentials in Authorization header {token}"
    fake_hub.fail("owner/private", "main", "config.json", 401, "", message)
    env = {**_online_env(tmp_path, fake_hub), "HF_TOKEN": token}
    proc = kvcalc_cli(["inspect", "owner/private", "--json"], env)
    assert proc.returncode == 3, proc.stderr
    assert token not in proc.stderr and token not in proc.stdout
    assert "rejected the token (HTTP 401)" in proc.stderr


@pytest.mark.parametrize("repo", ["meta-llama/Llama-3.1-8B", "META-LLAMA/llama-3.1-8b", "deepseek-ai/DeepSeek-V3"])
def test_shipped_profiles_resolve_by_hub_id_without_the_network(
    tmp_path: Path, fake_hub: _FakeHub, repo: str
) -> None:
    # Online (against the stand-in) and offline with an empty cache: the shipped profile answers, no request.
    for env in (_online_env(tmp_path, fake_hub), _env(tmp_path)):
        proc = kvcalc_cli(["inspect", repo, "--json"], env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["model"]["hf_repo"].lower() == repo.lower()
    assert fake_hub.requests == []


def test_a_revision_is_a_ref_name_not_a_path(tmp_path: Path, cache: Path) -> None:
    """huggingface_hub joins the revision onto its cache folder (`refs/<revision>`): an absolute path or '..'
    read any file on the machine (found by the long CLI fuzz: a binary file as --revision was exit 70)."""
    env = _env(tmp_path)
    binary = tmp_path / "bin.gguf"
    binary.write_bytes(b"GGUF\x03\x00\x00\x00\xff\xfe")
    for args in (["owner/tiny", "--revision", str(binary)], ["owner/tiny", "--revision", "../../x"],
                 ["owner/tiny@../../../x"]):
        r = kvcalc_cli(["inspect", *args], env)
        assert r.returncode == 2 and r.stdout == "", (args, r.stderr)
        assert "not a Hub revision" in r.stderr and len(r.stderr.strip().splitlines()) <= 4
    assert kvcalc_cli(["inspect", "owner/tiny", "--revision", "dev"], env).returncode == 0
