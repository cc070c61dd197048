"""The CLI as a user runs it: a real subprocess for exit codes, stdout purity and imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}


def kvcalc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvcalc", *args], capture_output=True, text=True, env=env or ENV, timeout=120
    )


def test_quick_start_fits_and_prints_one_json_document() -> None:
    r = kvcalc("fit", "llama-70b", "--gpu", "h100", "--tp", "4", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # the whole of stdout is one JSON document
    assert doc["fits"] is True
    assert doc["model"]["params_total"] == 70_553_706_496
    assert doc["gpu"]["count"] == 4 and doc["parallel"]["tp"] == 4
    for key in ("weights_bytes", "kv_cache_bytes", "activation_bytes", "overhead_bytes", "free_bytes"):
        assert isinstance(doc["per_gpu"][key], int)
    assert {"kv_cache_tokens", "max_concurrency", "context"} <= doc["capacity"].keys()
    assert doc["assumptions"]["gpu_memory_utilization"]["value"] > 0
    assert r.stderr == ""


def test_human_output() -> None:
    r = kvcalc("fit", "llama-70b", "--gpu", "h100", "--tp", "4", "--explain")
    assert r.returncode == 0 and "FITS" in r.stdout and "Maximum concurrency" in r.stdout


def test_does_not_fit_exit_1_with_json() -> None:
    r = kvcalc("fit", "llama-405b", "--gpu", "h100", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["fits"] is False and doc["advice"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("fit", "llama-70b", "--gpu", "h100", "--tp", "3"), "tp=3 does not divide 64 attention heads"),
        (("fit", "llama-70b", "--gpu", "h10"), "unknown GPU 'h10'"),
        (("fit", "llama-7o", "--gpu", "h100"), "unknown model 'llama-7o'"),
        (("fit", "llama-70b", "--context", "-5"), "context"),
        (("fit", "llama-70b", "--engine", "magic"), "unknown engine"),
        (("inspect", "llama-70b", "--kv-dtype", "fp7"), "unknown dtype 'fp7'"),
        (("fit", "llama-70b", "--tp", "0"), "--tp"),
    ],
)
def test_bad_input_exit_2_one_line(args: tuple[str, ...], needle: str) -> None:
    r = kvcalc(*args, "--json")
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert needle in r.stderr
    assert "Traceback" not in r.stderr and 1 <= len(r.stderr.strip().splitlines()) <= 4


def test_malformed_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text('{"model_type": "llama", "hidden_size": ')
    r = kvcalc("inspect", str(bad), "--json")
    assert r.returncode == 2 and "malformed JSON" in r.stderr and r.stdout == ""


def test_missing_field_and_negative_size(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": 64,
                "num_attention_heads": 4,
                "intermediate_size": 128,
                "vocab_size": 100,
            }
        )
    )
    r = kvcalc("inspect", str(cfg))
    assert r.returncode == 2 and "num_hidden_layers" in r.stderr
    cfg.write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": -64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 128,
                "vocab_size": 100,
            }
        )
    )
    r = kvcalc("inspect", str(cfg))
    assert r.returncode == 2 and "hidden_size" in r.stderr


def test_unknown_model_type_without_standard_fields(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model_type": "alien"}))
    r = kvcalc("inspect", str(cfg))
    assert r.returncode == 2 and "unknown model_type 'alien'" in r.stderr


def test_inspect_json_contract() -> None:
    r = kvcalc("inspect", "llama-70b", "--json")
    doc = json.loads(r.stdout)
    m = doc["model"]
    assert m["params_total"] == 70_553_706_496 and m["params_active_with_embedding"] == m["params_total"]
    # active per token: the 128,256 x 8,192 embedding table is a lookup, not a matmul
    assert m["params_active"] == 70_553_706_496 - 128_256 * 8192
    assert m["params_source"] == "derived" and m["num_layers"] == 80 and m["layer_kinds"] == {"full": 80}
    assert doc["kv_cache"]["bytes_per_token"] == 327_680 and doc["kv_cache"]["fixed_bytes_per_sequence"] == 0


def test_analytic_commands_import_no_heavy_modules(tmp_path: Path) -> None:
    # The first run parses the shipped YAML (and fills the data cache); from the second on, not even yaml.
    code = (
        "import sys, io, contextlib\nfrom kvcalc.cli.app import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    run(['fit','llama-70b','--gpu','h100','--tp','4','--json'])\n"
        "heavy=('torch','transformers','huggingface_hub','gguf','pydantic','numpy','yaml')\n"
        "sys.stderr.write(','.join(m for m in heavy if m in sys.modules))"
    )
    env = {**ENV, "KVCALC_CACHE_DIR": str(tmp_path / "cache")}
    first, second = (subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                    timeout=120) for _ in range(2))
    assert first.stderr in ("", "yaml"), f"imported: {first.stderr}"
    assert second.stderr == "", f"imported: {second.stderr}"


def test_schema_and_listings() -> None:
    schema = json.loads(kvcalc("schema", "fit").stdout)
    assert {"fits", "per_gpu", "capacity", "assumptions"} <= set(schema["properties"])
    models = json.loads(kvcalc("models", "--json").stdout)["models"]
    assert any("llama-70b" in m["aliases"] for m in models)
    gpus = json.loads(kvcalc("gpus", "--json").stdout)["gpus"]
    assert any(g["key"] == "h100-sxm" for g in gpus)
