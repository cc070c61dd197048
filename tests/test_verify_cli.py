"""`kvcalc verify` as a user runs it: the environment checks (no torch, no GPU: exit 3), the report re-read from
the committed H100 measurements (--from-raw, no GPU), the JSON contract, and the calibration file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "docs" / "validation-h100.json"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}

#: Runs the CLI with torch unimportable, as on a machine without the `bench` extra.
NO_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return None
sys.meta_path.insert(0, Block())
from kvcalc.cli.app import main
sys.argv = ["kvcalc", *sys.argv[1:]]
main()
"""


def kvcalc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvcalc", *args], capture_output=True, text=True, env=ENV,
                          timeout=300, cwd=ROOT)


def test_without_torch_one_line_and_exit_3() -> None:
    r = subprocess.run([sys.executable, "-c", NO_TORCH, "verify", "llama-3.1-8b", "--gpu", "h100"],
                       capture_output=True, text=True, env=ENV, timeout=120, cwd=ROOT)
    assert r.returncode == 3
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "torch" in r.stderr and "pip install torch" in r.stderr


def test_without_a_gpu_one_line_and_exit_3() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible")
    r = kvcalc("verify", "llama-3.1-8b", "--gpu", "h100")
    assert r.returncode == 3 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "needs a CUDA GPU" in r.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--batches", "1,0"), "--batches"),
    (("--dtype", "fp8"), "--dtype"),
    (("--from-raw", "no/such/file.json"), "cannot read"),
])
def test_bad_input_exit_2(args: tuple[str, ...], message: str) -> None:
    r = kvcalc("verify", "llama-3.1-8b", "--gpu", "h100", *args)
    assert r.returncode == 2 and r.stdout == "" and message in r.stderr


def test_a_model_not_in_the_raw_record_is_named() -> None:
    r = kvcalc("verify", "qwen3-32b", "--from-raw", str(RAW))
    assert r.returncode == 2 and "no measurement of Qwen" in r.stderr.replace("qwen", "Qwen")


@pytest.fixture(scope="module")
def llama_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("cal") / "h100.yaml"
    r = kvcalc("verify", "llama-3.1-8b", "--from-raw", str(RAW), "--json", "--calibration-out", str(out))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), out


def test_json_contract(llama_report: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    doc, _ = llama_report
    assert doc["card"] == "NVIDIA H100 80GB HBM3" and doc["driver"] == "580.159.04"
    assert doc["torch"].startswith("2.11")
    assert doc["records"]
    for r in doc["records"]:
        assert set(r) >= {"quantity", "predicted", "measured", "unit", "error_pct", "settings"}
    cal = doc["calibration"]
    assert cal["fitted"] and cal["residuals"] and cal["median_abs_error_pct"] < 10
    assert "explain" not in doc  # only with --explain


def test_bytes_agree_exactly(llama_report: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    doc, _ = llama_report
    by = {}
    for r in doc["records"]:
        by.setdefault(r["quantity"], []).append(r)
    # Llama-3.1-8B in bf16: 8,030,261,248 parameters x 2 B, every layer built on the card
    assert by["weights_bytes"][0]["measured"] == by["weights_bytes"][0]["predicted"] == 16_060_522_496
    # KV of the decode runs: 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 B = 131,072 B per token
    kv = by["kv_cache_bytes"]
    assert kv and all(r["measured"] == r["predicted"] for r in kv)
    first = kv[0]
    assert first["predicted"] == 131_072 * first["settings"]["batch"] * first["settings"]["context"]
    assert by["transformers_params"][0]["measured"] == by["transformers_params"][0]["predicted"]


def test_calibration_file_written_and_readable(llama_report: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    from kvcalc.sources.calibration import load_calibration

    doc, path = llama_report
    cal = load_calibration(path)
    assert cal.card == doc["card"] and cal.driver == doc["driver"] and cal.gpu == "h100-sxm"
    assert set(cal.values) <= {"weight_bw_eff", "kv_bw_eff", "gemm_eff", "attention_eff"}
    assert cal.values["kv_bw_eff"] == pytest.approx(doc["calibration"]["coefficients"]["kv_bw_eff"], rel=1e-3)
    assert doc["calibration"]["file"] == str(path)


def test_human_output_and_explain() -> None:
    r = kvcalc("verify", "deepseek-v2-lite", "--from-raw", str(RAW), "--explain")
    assert r.returncode == 0, r.stderr
    assert "decode_step_s" in r.stdout and "Calibration" in r.stdout
    assert "max(t_weights, t_gemm)" in r.stdout  # --explain: each predicted step with its terms


def test_schema() -> None:
    r = kvcalc("schema", "verify")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert {"card", "driver", "torch", "records", "calibration"} <= set(schema["properties"])


def test_decode_gemm_rows_carry_their_own_m(llama_report: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    doc, _ = llama_report
    fp8 = [r for r in doc["records"] if r["quantity"] == "gemm_fp8_decode"]
    # one row per decode batch (1, 4, 16, 64, 256), each labelled with its own M; FP8 ran M padded to 16
    assert [r["settings"]["m"] for r in fp8] == [1, 4, 16, 64, 256]
    assert [r["settings"].get("padded_m") for r in fp8] == [16, 16, None, None, None]
    one = fp8[0]
    # batch 1 run as 16 x 4096 FP8 against the 14336 x 4096 weight: its bytes 14336 x 4096 x 1 = 58,720,256 at
    # 3.35e12 B/s x weight_bw_eff 0.902 (the hardware file's copy rate) = 19.433 us, above its FLOPs
    # 2 x 16 x 14336 x 4096 = 1.879e9 at 1978.9e12 x FP8 gemm_eff (0.785 x 0.8) x s(16) 0.556 x d(4096) 0.850
    # = 3.2 us; plus one kernel's fixed cost, 35 us / 9 = 3.889 us: 23.322 us. The batch's FLOPs
    # 2 x 1 x 14336 x 4096 = 117,440,512 / 23.322 us = 5.0357e12
    t = 58_720_256 / (3.35e12 * 0.902) + 35e-6 / 9
    assert one["predicted"] == pytest.approx(117_440_512 / t, rel=1e-9)
    assert one["predicted"] == pytest.approx(5.0357e12, rel=1e-4)


def test_one_model_fit_keeps_the_weight_prior(llama_report: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    doc, _ = llama_report
    cal = doc["calibration"]
    # one dense model: every decode step reads the same weights, so weight reads and the per-layer cost trade;
    # weight_bw_eff stays the hardware file's hbm_copy 0.902 instead of running to 1.0
    assert cal["coefficients"]["weight_bw_eff"] == 0.902
    assert "weight_bw_eff" not in cal["fitted"]
    assert any("weight_bw_eff" in note and "layer_overhead_s" in note for note in cal["notes"])


def test_one_moe_model_on_a_real_gpu_calibrates_within_physical_bounds(tmp_path: Path) -> None:
    """`kvcalc verify qwen3-30b-a3b --gpu auto --layers 2 --raw-out ...` on an H100 (2026-12-07): before the
    single-model rules it wrote gemm_eff 0.33 with moe_gemm_eff 1.43. Now gemm_eff is the card's measured
    8192^3 GEMM (790.6 TFLOP/s there: 0.799 of 989.4, over s(8192) d(8192) 0.912 = 0.876) and is written with
    moe_gemm_eff, which stays at most 1."""
    raw = ROOT / "docs" / "validation-h100-cli-qwen3-raw.json"
    out = tmp_path / "qwen3.yaml"
    r = kvcalc("verify", "qwen3-30b-a3b", "--from-raw", str(raw), "--json", "--calibration-out", str(out))
    assert r.returncode == 0, r.stderr
    cal = json.loads(r.stdout)["calibration"]
    assert "gemm_eff" not in cal["fitted"] and "gemm_eff" in cal["written"]
    assert 0.87 < cal["coefficients"]["gemm_eff"]["bf16"] < 0.89
    assert cal["coefficients"]["moe_gemm_eff"] <= 1.0
    assert cal["median_abs_error_pct"] < 3.0
    text = out.read_text()
    assert "moe_gemm_eff" in text and "bf16: 0.876" in text


def test_empty_kernel_cost_is_measured_not_predicted() -> None:
    raw = ROOT / "docs" / "validation-h100-cli-qwen3-raw.json"
    r = kvcalc("verify", "qwen3-30b-a3b", "--from-raw", str(raw), "--json")
    assert r.returncode == 0, r.stderr
    (kernel,) = [x for x in json.loads(r.stdout)["records"] if x["quantity"] == "kernel_fixed_s"]
    # an empty kernel is not what an engine's per-layer cost (35 us / 9 kernels) describes: no error is claimed
    assert kernel["predicted"] is None and kernel["error_pct"] is None
    assert 0 < kernel["measured"] < 5e-6


def test_flash_attention_time_against_fa2(llama_report: tuple[dict, Path]) -> None:  # type: ignore[type-arg]
    doc, _ = llama_report
    rows = {r["settings"]["tokens"]: r for r in doc["records"] if r["quantity"] == "attention_flash_s"}
    # causal, 32 heads x 128 at N = 8,192, FA2's 128 x 64 tiles: query tile i (of 64) visits 2 (i + 1) KV tiles
    # plus 2.3 of setup; 2048 CTAs in launch order on 132 SMs, each SM taking the next when it frees up.
    costs = [2 * (i + 1) + 2.3 for i in range(64)] * 32
    finish = [0.0] * 132
    for c in costs:
        k = finish.index(min(finish))
        finish[k] += c
    iteration = 2 * 128 * 64 * 256 * 132 / (989.4e12 * 0.392)
    assert rows[8192]["predicted"] == pytest.approx(max(finish) * iteration, rel=1e-12)
    # between the perfect split W / 132 = 137,830.4 / 132 and that plus the longest CTA (130.3)
    assert 137_830.4 / 132 * iteration < rows[8192]["predicted"] < (137_830.4 / 132 + 130.3) * iteration
    math = [r for r in doc["records"] if r["quantity"] == "attention_math_s"]
    assert math and all(r["predicted"] is None for r in math)  # kvcalc gives only a lower bound there


def test_raw_out_is_written_whole_and_readable_like_any_output(tmp_path: Path) -> None:
    import json
    import stat

    from kvcalc.bench.run import write_json

    target = tmp_path / "raw.json"
    write_json(str(target), {"records": [1, 2]})
    assert json.loads(target.read_text()) == {"records": [1, 2]}
    # a temporary file's 0600 must not leak into the result: rw-r--r--, as the calibration file is written
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["raw.json"]
