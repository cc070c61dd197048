"""The CLI contract for every command (issue #9): JSON against the published schemas, exit codes, stderr,
closed pipes, widths, --version, and each input seen to break it. Most runs are in-process
(`cli_contract.run_cli`); a few are real subprocesses where the process boundary matters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_contract import EXAMPLES, check_contract, examples, judges_fit, run_cli, schema_for, validate

from kvcalc.cli.app import COMMANDS, HELP, command_module

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
ENV.pop("COLUMNS", None)

def _takes(name: str, option: str) -> bool:
    from kvcalc.cli.app import click_command

    command = click_command([name]).commands[name]  # type: ignore[attr-defined]
    return any(option in param.opts for param in command.params)


WITH_SCHEMA = [name for name in COMMANDS if getattr(command_module(name), "SCHEMA", None)]
CASES = [
    (name, args, explain)
    for name in WITH_SCHEMA
    for args in examples(name)
    for explain in ((False, True) if _takes(name, "--explain") else (False,))
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("COLUMNS", raising=False)


def test_every_command_that_prints_json_publishes_a_schema() -> None:
    # Every command takes --json or is `schema`; each with --json has a SCHEMA (so the generic test covers it).
    for name in COMMANDS:
        if name != "schema":
            assert _takes(name, "--json"), f"{name} has no --json"
            assert name in WITH_SCHEMA, f"{name} prints --json but its module has no SCHEMA"


def _case_id(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value)


@pytest.mark.parametrize(("name", "args", "explain"), CASES, ids=_case_id)
def test_json_validates_against_the_published_schema(name: str, args: list[str], explain: bool) -> None:
    result = run_cli([name, *args, "--json", *(["--explain"] if explain else [])])
    if result.code == 3:  # the environment lacks what the command measures with (a GPU for `verify`)
        check_contract(result)
        pytest.skip(result.err.strip())
    assert result.code in ({0, 1} if judges_fit(name) else {0}), result.err
    check_contract(result)  # one document, schema_version, validates against `kvcalc schema NAME`
    if not explain:
        assert "explain" not in json.loads(result.out)


def test_generic_test_covers_both_fit_outcomes() -> None:
    codes = {run_cli(["fit", *args, "--json"]).code for args in EXAMPLES["fit"]}
    assert codes == {0, 1}


@pytest.mark.parametrize("name", WITH_SCHEMA)
def test_schemas_pin_schema_version_and_leave_explain_optional(name: str) -> None:
    schema = schema_for(name)
    assert schema is not None
    from kvcalc.spec.base import SCHEMA_VERSION

    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert "schema_version" in schema["required"] and "explain" not in schema["required"]


def test_schema_for_models_and_gpus() -> None:
    for name, key in (("models", "models"), ("gpus", "gpus")):
        schema = schema_for(name)
        assert schema is not None and key in schema["properties"] and key in schema["required"]
    unknown = run_cli(["schema", "nope"])
    assert unknown.code == 2 and "no schema for 'nope'; use" in unknown.err and "gpus" in unknown.err


def test_validator_can_fail() -> None:
    schema = schema_for("gpus")
    assert schema is not None
    good = json.loads(run_cli(["gpus", "--json"]).out)
    validate(good, schema)
    for broken in (
        {k: v for k, v in good.items() if k != "schema_version"},
        {**good, "schema_version": "0.0"},
        {**good, "gpus": [{**good["gpus"][0], "memory_bytes": "80GB"}]},
        {**good, "gpus": [{k: v for k, v in good["gpus"][0].items() if k != "name"}]},
    ):
        with pytest.raises(Exception):  # noqa: B017 - AssertionError here, jsonschema's ValidationError there
            validate(broken, schema)


# --- exit codes and stderr for the inputs seen to break them ---------------------------------------------

_LLAMA = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 256}


def _config(tmp_path: Path, text: str, name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (json.dumps(_LLAMA).replace('"hidden_size": 64', '"hidden_size": NaN'),
         "'hidden_size' must be a finite number"),
        (json.dumps(_LLAMA).replace('"hidden_size": 64', '"hidden_size": Infinity'), "must be a finite number"),
        (json.dumps(_LLAMA).replace('"hidden_size": 64', '"hidden_size": 1e999'), "must be a finite number"),
        (json.dumps({**_LLAMA, "num_attention_heads": 1e15}), "'num_attention_heads' = 1000000000000000 is beyond"),
        (json.dumps({**_LLAMA, "num_hidden_layers": 10**12}), "'num_hidden_layers' = 1000000000000 is beyond"),
        (json.dumps({**_LLAMA, "vocab_size": -5}), "'vocab_size' must be >= 1"),
        (json.dumps({**_LLAMA, "sliding_window": "wide", "layer_types": ["sliding_attention"] * 2}), "sliding_window"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (json.dumps({**_LLAMA, "x": json.loads("[" * 70 + "1" + "]" * 70)}), "nested deeper than 64"),
        ('{"model_type": "llama", "hidden_size": 1' + "0" * 5000 + "}", "not valid JSON"),
    ],
)
def test_hostile_config_values_exit_2_within_a_second(tmp_path: Path, raw: str, needle: str) -> None:
    start = time.perf_counter()
    result = run_cli(["inspect", _config(tmp_path, raw), "--json"])
    assert result.code == 2 and needle in result.err, result.err
    check_contract(result)
    assert time.perf_counter() - start < 1.0


def test_binary_gpu_file_and_absurd_gpu_memory(tmp_path: Path) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)) * 8)
    result = run_cli(["fit", "llama-70b", "--gpu-file", str(binary)])
    assert result.code == 2 and "not UTF-8 text" in result.err and "binary" in result.err
    shipped = (ROOT / "hardware" / "h100-sxm.yaml").read_text()
    huge = tmp_path / "huge.yaml"
    huge.write_text(shipped.replace("memory_bytes: 85899345920", "memory_bytes: 1.0e+40"))
    result = run_cli(["fit", "llama-70b", "--gpu-file", str(huge)])
    assert result.code == 2 and "field 'memory_bytes': Input should be at most 1.153e+18" in result.err
    check_contract(result)


def test_yaml_tags_and_alias_bombs_are_data_errors(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    tag = tmp_path / "tag.yaml"
    tag.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\n')
    result = run_cli(["fit", "llama-70b", "--gpu-file", str(tag)])
    assert result.code == 2 and "not valid YAML" in result.err and not marker.exists()
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"{c}: &{c} [{', '.join(['*' + p] * 10)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(bomb) + "\n")  # 10^9 leaves once expanded
    start = time.perf_counter()
    result = run_cli(["fit", "llama-70b", "--gpu-file", str(path)])
    assert result.code == 2 and "alias bomb" in result.err
    assert time.perf_counter() - start < 1.0
    for text in ("- just\n- a list\n", "42\n", ""):
        path.write_text(text)
        result = run_cli(["fit", "llama-70b", "--gpu-file", str(path)])
        assert result.code == 2 and "expected a mapping of GPU fields" in result.err


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["inspect", "a" * 300], 2, "unknown model 'aaaa"),
        (["inspect", "x" * 5000], 2, "characters long"),
        (["inspect", "/nonexistent/model.gguf"], 2, "/nonexistent/model.gguf: no such file"),
        (["inspect", "missing.gguf"], 2, "missing.gguf: no such file"),
        (["fit", "llama-70b", "--non-torch-memory", "99999999999999999999GiB"], 2, "absurd (more than 2^60 bytes"),
        (["fit", "llama-70b", "--tp", "99999999999999999999"], 2, "beyond the sane bound 2,147,483,647"),
        (["fit", "llama-70b", "--gpu-memory-utilization", "nan"], 2, "nan is not a finite number"),
        (["fit", "llama-70b", "--kv-dtype", ""], 2, "'--kv-dtype': is empty"),
        (["fit", "llama-70b", "--gpu-file", ""], 2, "'--gpu-file': is empty"),
        (["fit", "llama-70b", "--gpu", "../../etc/passwd"], 2, "unknown GPU"),
        (["fit", "llama-70b", "--tp", "4", "--engine-version", "1e999"], 2, "is not a release number"),
        (["fit", "llama-70b", "--tp", "4", "--engine-version", ""], 2, "is empty"),
        (["quant", "llama-70b", "--kv-dtype", "fp3"], 2, "unknown dtype 'fp3'"),
        (["local", "llama-70b", "--cpu", "--ram", "0"], 2, "ram must be positive, got 0"),
        (["attention-variants", "llama-70b", "--memory", "0"], 2, "memory must be positive"),
        (["quant", "llama-3.1-405b", "--gpu", "t4", "--formats", "bf16,fp8"], 1, ""),
        (["perf", "llama-3.1-8b", "--input", "2k", "--output", "256", "--concurrency", "65536"], 2,
         "65,536 is beyond the sane bound 4,096"),  # the simulation grows with it: once 5 s, 2^31 hung
        (["perf", "llama-3.1-8b", "--input", "2k", "--output", "300", "--request-rate", "2", "--num-prompts",
          "2147483647"], 2, "beyond the sane bound 10,000"),  # the open-loop arrays: 24 GB, killed by the kernel
        (["plan", "llama-3.1-8b", "--rps", "5", "--input", "2k", "--output", "300", "--max-num-batched-tokens",
          "4"], 2, "4 is below the sane bound 256"),  # P / budget simulated chunks: this took 87 s
        (["prefix", "llama-3.1-8b", "--requests-per-s", "10", "--prefix-tokens", "2147483647", "--explain"], 2,
         "longer than max_model_len (131,072)"),  # prefill timed chunk by chunk: this took 8-41 s
        # a warning held before a later input error is dropped: the error is stderr's first and only line
        (["prefix", "no-such-model-x", "--prefix-tokens", "2000", "--requests-per-s", "10", "--isolate"], 2,
         "unknown model 'no-such-model-x'"),
        (["serve", "llama-3.1-8b", "--rps", "2", "--mix", "/dev/zero"], 2, "/dev/zero: not a regular file"),
        (["perf", "llama-3.1-8b", "--request-rate", "2", "--lengths-file", "/dev/zero"], 2,
         "not a regular file"),  # the table reader once read /dev/zero until memory ran out
        (["paged", "llama-3.1-8b", "--trace", "/dev/zero"], 2, "/dev/zero: not a regular file"),
        (["prefix", "--usage", "/nonexistent.jsonl"], 2, "/nonexistent.jsonl: no such file"),
        (["inspect", "~0", "--explain"], 2, "no home directory for '~0'"),  # pathlib's RuntimeError: once exit 70
        (["fit", "llama-70b", "--gpu", "~nouser/g.yaml"], 2, "no home directory for '~nouser'"),
        (["fit", "llama-70b", "--no-such-option"], 2, "No such option"),
        (["nosuchcommand"], 2, "No such command"),
    ],
)
def test_exit_codes(args: list[str], code: int, needle: str) -> None:
    result = run_cli(args)
    assert result.code == code, (result.code, result.err)
    assert needle in result.err
    check_contract(result)


def test_engine_version_membership_is_the_engines_table() -> None:
    result = run_cli(["fit", "llama-70b", "--tp", "4", "--engine-version", "99"])
    assert result.code == 2 and "0.19" in result.err, result.err  # the known releases are listed
    assert run_cli(["fit", "llama-70b", "--tp", "4", "--engine-version", "0.19.0"]).code == 0


def test_nan_in_gguf_metadata(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    import numpy as np

    path = tmp_path / "nan.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_embedding_length(8)
    writer.add_head_count(2)
    writer.add_feed_forward_length(16)
    writer.add_float32("llama.rope.scaling.factor", float("nan"))
    writer.add_string("llama.rope.scaling.type", "linear")
    writer.add_float32("llama.attention.head_count_kv", float("nan"))
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    result = run_cli(["inspect", str(path)])
    assert result.code == 2 and "must be a finite number, got nan" in result.err, result.err


def test_version() -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = run_cli(["--version"])
    assert (result.code, result.out) == (0, f"kvcalc {version}\n")


def test_help_line_promises_only_what_exists() -> None:
    for promise in ("cost", "how fast", "throughput", "fleet", "latency"):
        assert promise not in HELP.lower()
    result = run_cli(["--help"])
    assert result.code == 0
    for name in COMMANDS:
        assert name in result.out


# --- real processes: closed pipes, widths --------------------------------------------------------------


def _closed_pipe(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run kvcalc with stdout a pipe whose reader has already gone (as `kvcalc ... | head -0` would)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "kvcalc", *args], stdout=write, stderr=subprocess.PIPE,
                              env=ENV, cwd=ROOT, timeout=120)
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args",
    [["fit", "llama-70b", "--tp", "4"], ["fit", "llama-70b", "--tp", "4", "--json"], ["gpus"], ["--help"],
     ["fit", "llama-3.1-405b"]],
)
def test_closed_pipe_exits_0_quietly(args: list[str]) -> None:
    proc = _closed_pipe(args)
    assert (proc.returncode, proc.stderr) == (0, b"")


def _kvcalc(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvcalc", *args], capture_output=True, text=True,
                          env={**ENV, **env}, cwd=ROOT, timeout=120)


def test_piped_output_is_wide_and_nothing_is_cut() -> None:
    proc = _kvcalc(["gpus"])
    widths = [len(line) for line in proc.stdout.splitlines()]
    assert 80 < max(widths) <= 140 and "…" not in proc.stdout
    assert "bf16 TFLOP/s" in proc.stdout and "$/h" in proc.stdout
    help_text = _kvcalc(["fit", "--help"]).stdout
    assert "…" not in help_text and "--max-num-batched-tokens" in help_text and "--gpu-memory-utilization" in help_text


@pytest.mark.parametrize("columns", ["40", "60"])
def test_narrow_output_wraps_instead_of_cutting(columns: str) -> None:
    for args in (["fit", "--help"], ["gpus"], ["attention-variants", "llama-70b"], ["inspect", "deepseek-v3"]):
        proc = _kvcalc(args, COLUMNS=columns)
        assert proc.returncode == 0, proc.stderr
        assert "…" not in proc.stdout, args
        assert max(len(line) for line in proc.stdout.splitlines()) <= int(columns), args


def test_subprocess_errors_are_one_to_four_lines_and_stdout_is_clean(tmp_path: Path) -> None:
    nan = _config(tmp_path, json.dumps(_LLAMA).replace('"hidden_size": 64', '"hidden_size": NaN'))
    for args in (["inspect", nan, "--json"], ["fit", "llama-70b", "--tp", "0", "--json"], ["schema", ""]):
        proc = _kvcalc(args)
        assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
        assert 1 <= len(proc.stderr.strip().splitlines()) <= 4


def test_unexpected_exception_is_exit_70_not_1(monkeypatch: pytest.MonkeyPatch) -> None:
    import kvcalc.cli.commands.models as models

    def broken(json_out: bool = False) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(models, "command", broken)
    result = run_cli(["models"])
    assert result.code == 70 and result.err.startswith("kvcalc: error: internal error: ZeroDivisionError")
    assert len(result.err.strip().splitlines()) == 2 and result.out == ""


# --- files kvcalc writes --------------------------------------------------------------------------------


def test_write_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kvcalc.sources import atomic

    target = tmp_path / "sub" / "calibration.json"
    atomic.write_atomic(target, '{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    atomic.write_atomic(target, b'{"a": 2}')
    assert target.read_bytes() == b'{"a": 2}'

    def fail(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_atomic(target, '{"a": 3}')
    assert target.read_bytes() == b'{"a": 2}'  # the old file is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["calibration.json"]  # no temp file left


def test_data_cache_follows_edits_and_survives_corruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kvcalc.sources import datacache

    monkeypatch.setenv("KVCALC_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "x.yaml"
    source.write_text("a: 1\n")
    assert datacache.load_yaml_file(source) == {"a": 1}
    (entry,) = (tmp_path / "cache").iterdir()
    source.write_text("a: 22\n")  # a different size: the entry's stamp no longer matches
    assert datacache.load_yaml_file(source) == {"a": 22}
    entry.write_text("{not json")
    assert datacache.load_yaml_file(source) == {"a": 22}
    monkeypatch.setenv("KVCALC_NO_CACHE", "1")
    assert datacache.cache_dir() is None and datacache.load_yaml_file(source) == {"a": 22}


def test_names_cannot_escape_their_folders() -> None:
    from kvcalc.sources.profiles import find_profile, find_profile_by_repo

    for name in ("../hardware/h100-sxm", "../../etc/passwd", "/etc/passwd", "llama-70b/../../x"):
        assert find_profile(name) is None and find_profile_by_repo(name) is None
    result = run_cli(["fit", "llama-70b", "--gpu", "../hardware/h100-sxm"])
    assert result.code == 2 and "unknown GPU" in result.err


# --- what a user's clone and install get --------------------------------------------------------------


def test_gguf_is_a_core_dependency_and_hints_name_real_packages() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("gguf") for dep in project["dependencies"])
    for path in [*(ROOT / "kvcalc").rglob("*.py"), ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        assert "kvcalc[" not in path.read_text(), f"{path} names an extra that is not on the package index"


def test_no_reference_to_files_a_clone_lacks() -> None:
    paths = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "docs").rglob("*.py"),
             *(ROOT / "kvcalc").rglob("*.py")]
    for path in paths:
        text = path.read_text()
        for needle in ("../shared", "/work/shared", "shared/reference", "design.md"):
            assert needle not in text, f"{path.relative_to(ROOT)} mentions {needle}"


def test_ndjson_stream_lines_each_validate(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(
        json.dumps({"id": f"r{i}", "arrival_s": i * 0.5, "prompt_tokens": 1000 + 100 * i, "output_tokens": 50})
        + "\n" for i in range(3)))
    for explain in (False, True):
        result = run_cli(["paged", "llama-3.1-8b", "--gpu", "h100", "--trace", str(trace), "--json",
                          *(["--explain"] if explain else [])])
        assert result.code == 0, result.err
        check_contract(result)  # every line: one compact document with schema_version, valid against the schema
        lines = result.out.splitlines()
        assert len(lines) > 3 and all(json.loads(line)["schema_version"] for line in lines)


def test_cached_index_is_rebuilt_when_a_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kvcalc.sources.datacache import cached_index

    monkeypatch.setenv("KVCALC_CACHE_DIR", str(tmp_path / "cache"))
    files = [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    for path in files:
        path.write_text("aliases: [x]\n")
    builds: list[int] = []

    def build() -> dict[str, int]:
        builds.append(1)
        return {"builds": len(builds)}

    assert cached_index("t", files, build) == {"builds": 1}
    assert cached_index("t", files, build) == {"builds": 1} and len(builds) == 1  # served from the cache
    files[1].write_text("aliases: [x, y]\n")  # a file changed: its size and time no longer match
    assert cached_index("t", files, build) == {"builds": 2}
    assert cached_index("t", files[:1], build) == {"builds": 3}  # a file removed


def test_hostile_calibration_files_are_input_errors(tmp_path: Path) -> None:
    binary = tmp_path / "cal.bin"
    binary.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 50_000 + "]" * 50_000)
    base = ["perf", "qwen2.5-1.5b", "--gpu", "h100", "--input", "2k", "--output", "256", "--concurrency", "16"]
    for path, needle in ((binary, "not UTF-8 text"), (deep, "nesting depth")):
        start = time.perf_counter()
        result = run_cli([*base, "--calibration", str(path)])
        assert result.code == 2 and needle in result.err, result.err
        assert time.perf_counter() - start < 1.0


def test_warnings_print_when_the_command_answers() -> None:
    """Held warnings (cli/output.py) reach stderr when the command succeeds, after validation."""
    result = run_cli(["prefix", "llama-3.1-8b", "--prefix-tokens", "2000", "--requests-per-s", "10", "--isolate"])
    assert result.code == 0, result.err
    assert result.err.strip() == "warning: --isolate with one tenant changes nothing; add --tenants N"
    failed = run_cli(["prefix", "no-such-model-x", "--prefix-tokens", "2000", "--requests-per-s", "10", "--isolate"])
    assert failed.err.count("\n") == 1 and "warning" not in failed.err
