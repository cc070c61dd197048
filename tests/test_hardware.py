"""Accelerator files (hardware/*.yaml), GpuSpec validation and GPU name lookup.

Expected values are worked by hand in the comments; the shipped files are checked for sources and sanity.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from kvcalc.errors import InputError
from kvcalc.sources import hardware
from kvcalc.sources.hardware import find_gpu, hardware_dirs, list_gpus, load_gpu_file
from kvcalc.spec.gpu import GpuSpec

GIB = 1 << 30
MIB = 1 << 20

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "hardware").glob("*.yaml"))

REQUIRED_KEYS = {
    "h100-sxm", "h100-pcie", "h100-nvl", "h200", "b200", "gb200", "a100-40gb", "a100-80gb", "l40s", "l4",
    "a10g", "rtx-3090", "rtx-4090", "rtx-5090", "rtx-6000-ada", "mi300x", "mi325x",
}  # fmt: skip


def _minimal(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Test GPU 16GB",
        "aliases": ["testgpu"],
        "vendor": "Test",
        "kind": "datacenter",
        "memory_bytes": 16 * GIB,
        "usable_memory_bytes": 15 * GIB,
        "memory_bandwidth_bytes_per_s": 1_000_000_000_000,
        "peak_flops": {"bf16": 100.0e12},
        "sources": ["hand-written test fixture"],
    }
    data.update(overrides)
    return data


def _write(directory: Path, stem: str, data: Any) -> Path:
    path = directory / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# --- hand-worked values -------------------------------------------------------------------------------------


def test_h100_sxm_ridge_point_bf16() -> None:
    gpu = find_gpu("h100-sxm")
    # dense bf16 989.4e12 FLOP/s (datasheet 1,979 TF is with 2:4 sparsity) / 3.35e12 B/s = 295.34 FLOP/byte
    assert gpu.ridge_point("bf16") == pytest.approx(295.34, abs=0.01)
    # fp8: 1978.9e12 / 3.35e12 = 590.7 FLOP/byte
    assert gpu.ridge_point("fp8") == pytest.approx(590.72, abs=0.01)


def test_h100_sxm_memory() -> None:
    gpu = find_gpu("h100-sxm")
    assert gpu.memory_bytes == 80 * GIB == 85_899_345_920  # "80 GB" HBM3 = 5 stacks x 16 GiB
    # torch total_memory on a real card: 81,079 MiB = 81,079 * 1,048,576 = 85,017,493,504 B (79.18 GiB)
    assert gpu.usable_memory_bytes == 81_079 * MIB == 85_017_493_504
    # usable / nominal = 81,079 / 81,920 MiB = 0.98973
    assert gpu.usable_memory_bytes / gpu.memory_bytes == pytest.approx(0.98973, abs=1e-5)
    assert gpu.interconnect is not None
    # NVLink 4 "900 GB/s" is the bidirectional total: 450e9 B/s each way
    assert gpu.interconnect.bytes_per_s_per_direction == 450_000_000_000


def test_h200_same_compute_more_bandwidth() -> None:
    h100, h200 = find_gpu("h100"), find_gpu("h200")
    assert h200.flops("bf16") == h100.flops("bf16") == 989.4e12
    # 989.4e12 / 4.8e12 = 206.1 FLOP/byte: more bandwidth lowers the ridge point
    assert h200.ridge_point() == pytest.approx(206.125, abs=1e-3)
    # torch measured 150,109,880,320 B = 143,155.94 MiB = 139.80 GiB; 141 - 139.80 = 1.2 GiB unseen
    assert h200.usable_memory_bytes == 150_109_880_320
    assert (h200.memory_bytes - h200.usable_memory_bytes) / GIB == pytest.approx(1.20, abs=0.005)


def test_apple_usable_is_the_default_wired_limit() -> None:
    gpu = find_gpu("m3-max")
    assert gpu.key == "m3-max-128"
    # 3/4 of 128 GiB = 96 GiB = 103,079,215,104 B (llama.cpp prints recommendedMaxWorkingSetSize 103079.22 MB)
    assert gpu.usable_memory_bytes == 96 * GIB == 103_079_215_104
    # fp16 = fp32 on Apple GPUs: 27.2e12 / 800e9 = 34.0 FLOP/byte on M2 Ultra
    assert find_gpu("m2-ultra").ridge_point("fp16") == pytest.approx(34.0)
    assert find_gpu("m2-ultra").interconnect is None


def test_flops_accepts_torch_dtype_names() -> None:
    gpu = find_gpu("h100")
    assert gpu.flops("bfloat16") == gpu.flops("BF16") == 989.4e12
    assert gpu.flops("torch.float16") == 989.4e12
    assert gpu.flops("fp8_e4m3") == 1978.9e12
    assert gpu.flops("float32") == 66.9e12  # vector FP32, not TF32


def test_flops_missing_dtype_names_what_exists() -> None:
    with pytest.raises(InputError, match=r"no dense fp4 peak.*available: bf16, fp16, fp8, int8, tf32, fp32"):
        find_gpu("h100").flops("fp4")
    with pytest.raises(InputError, match=r"available: bf16, fp8$"):
        find_gpu("gaudi2").ridge_point("fp16")


# --- name lookup --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("h100", "h100-sxm"),
        ("H100", "h100-sxm"),
        (" h100-SXM5 ", "h100-sxm"),
        ("H100-SXM", "h100-sxm"),
        ("NVIDIA H100 SXM5 80GB", "h100-sxm"),  # display name
        ("a100", "a100-80gb"),
        ("h200-sxm", "h200"),
        ("4090", "rtx-4090"),
        ("M4-Max", "m4-max-128"),
    ],
)
def test_find_gpu_resolves_keys_aliases_and_names(name: str, key: str) -> None:
    assert find_gpu(name).key == key


@pytest.mark.parametrize(
    ("typo", "suggested"), [("rtx4090", "rtx-4090"), ("h10", "h100"), ("mi300", "mi300x")]
)
def test_unknown_gpu_suggests_nearest(typo: str, suggested: str) -> None:
    with pytest.raises(InputError) as err:
        find_gpu(typo)
    message = str(err.value)
    assert message.startswith(f"unknown GPU '{typo}'")
    assert suggested in message
    assert "\n" not in message


def test_find_gpu_accepts_a_yaml_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "my-gpu", _minimal())
    gpu = find_gpu(str(path))
    assert gpu.key == "my-gpu"
    # 100e12 FLOP/s / 1e12 B/s = 100 FLOP/byte
    assert gpu.ridge_point() == pytest.approx(100.0)


def test_lookup_parses_only_the_file_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "good", _minimal(aliases=["good-alias"]))
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    monkeypatch.setattr(hardware, "hardware_dirs", lambda: [tmp_path])
    # a stem and an alias both resolve without touching broken.yaml ...
    assert find_gpu("good").name == "Test GPU 16GB"
    assert find_gpu("GOOD-ALIAS").key == "good"
    # ... while loading everything reports the broken file by name
    with pytest.raises(InputError, match=r"broken\.yaml"):
        hardware.list_gpus()


def test_alias_in_block_style_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = yaml.safe_dump(_minimal(aliases=["blocky", "blocky-2"]), default_flow_style=False)
    assert "- blocky" in text  # block list: the one-line alias scan falls back to parsing this file
    (tmp_path / "block.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setattr(hardware, "hardware_dirs", lambda: [tmp_path])
    assert find_gpu("blocky-2").key == "block"


# --- malformed files ----------------------------------------------------------------------------------------


def test_malformed_yaml_is_one_input_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad-gpu.yaml"
    path.write_text("name: ok\nmemory_bytes: [1, 2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad-gpu\.yaml: not valid YAML at line \d+") as err:
        load_gpu_file(path)
    assert "\n" not in str(err.value)


def test_non_mapping_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "listy", [1, 2, 3])
    with pytest.raises(InputError, match=r"listy\.yaml: expected a mapping.*got list"):
        load_gpu_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cannot read GPU file .*nope\.yaml"):
        load_gpu_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (
            {"memory_bytes": -80 * GIB},
            r"field 'memory_bytes': Input should be greater than 0 \(got -85899345920\)",
        ),
        ({"memory_bandwidth_bytes_per_s": 0}, r"field 'memory_bandwidth_bytes_per_s'"),
        ({"peak_flops": {"bf16": -1.0}}, r"field 'peak_flops\.bf16'"),
        ({"peak_flops": {"fp64": 1.0e12}}, r"field 'peak_flops\.fp64"),
        # 20 GiB usable > 16 GiB * 1.1 = 17.6 GiB
        ({"usable_memory_bytes": 20 * GIB}, r"usable_memory_bytes 21474836480 exceeds memory_bytes"),
        ({"aliases": ["TestGPU"]}, r"field 'aliases': alias 'TestGPU' must be lower-case"),
        ({"memory_gb": 16}, r"field 'memory_gb': Extra inputs are not permitted"),
        ({"kind": "phone"}, r"field 'kind'"),
        ({"sources": []}, r"field 'sources'"),
        (
            {"price": {"usd_per_gpu_hour": 2.0, "date": "June 2026", "source": "x"}},
            r"field 'price\.date'.*ISO",
        ),
        ({"key": "other"}, r"field 'key': 'other' differs from the file name"),
    ],
)
def test_invalid_values_are_one_input_error(tmp_path: Path, overrides: dict[str, Any], pattern: str) -> None:
    path = _write(tmp_path, "test-gpu", _minimal(**overrides))
    with pytest.raises(InputError, match=pattern) as err:
        load_gpu_file(path)
    message = str(err.value)
    assert message.startswith(str(path))
    assert "\n" not in message


def test_a_bad_value_is_reported_before_missing_fields(tmp_path: Path) -> None:
    path = _write(tmp_path, "neg", {"name": "x", "memory_bytes": -5})
    with pytest.raises(
        InputError, match=r"neg\.yaml: field 'memory_bytes': .* \(got -5\) \(and 6 more problems\)"
    ):
        load_gpu_file(path)


def test_empty_name() -> None:
    with pytest.raises(InputError, match="GPU name is empty"):
        find_gpu("  ")


def test_missing_fields_are_counted(tmp_path: Path) -> None:
    path = _write(tmp_path, "empty-ish", {"name": "x"})
    pattern = r"empty-ish\.yaml: field '\w+': Field required \(and \d+ more problems\)"
    with pytest.raises(InputError, match=pattern):
        load_gpu_file(path)


def test_spec_is_frozen() -> None:
    gpu = find_gpu("h100")
    with pytest.raises(dataclasses.FrozenInstanceError):
        gpu.memory_bytes = 1  # type: ignore[misc]


# --- the shipped files --------------------------------------------------------------------------------------


def test_shipped_directory_is_found() -> None:
    assert hardware_dirs() == [SHIPPED[0].parent]
    assert {gpu.key for gpu in list_gpus()} >= REQUIRED_KEYS
    assert [gpu.key for gpu in list_gpus()] == sorted(path.stem for path in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_file_is_valid_and_sourced(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# "), "each file opens with a comment line saying what it is"
    gpu = load_gpu_file(path)
    assert isinstance(gpu, GpuSpec)
    assert gpu.key == path.stem
    assert gpu.sources and all(source.strip() for source in gpu.sources)
    assert any("http" in source for source in gpu.sources)
    assert gpu.usable_memory_bytes <= gpu.memory_bytes
    assert gpu.usable_memory_bytes >= 0.7 * gpu.memory_bytes  # Apple's 2/3 default is the lowest share
    assert gpu.peak_flops, "at least one dense peak"
    # raw YAML types: byte counts are ints and peaks floats, not strings a lax parser would coerce
    raw = yaml.safe_load(text)
    for field in ("memory_bytes", "usable_memory_bytes", "memory_bandwidth_bytes_per_s"):
        assert type(raw[field]) is int, field
    assert all(type(value) is float for value in raw["peak_flops"].values())
    assert all(isinstance(alias, str) for alias in raw["aliases"])
    # dense tensor peaks never sit below the vector fp32 rate; fp8 is never slower than bf16
    if "bf16" in gpu.peak_flops and "fp32" in gpu.peak_flops:
        assert gpu.peak_flops["bf16"] >= gpu.peak_flops["fp32"]
    if "fp8" in gpu.peak_flops and "bf16" in gpu.peak_flops:
        assert gpu.peak_flops["fp8"] >= gpu.peak_flops["bf16"]
    if gpu.price is not None:
        assert gpu.price.source and gpu.price.date
    for item in gpu.measured:
        assert 0 < item.value < 1.5


def test_names_are_unambiguous() -> None:
    gpus = list_gpus()
    keys = {gpu.key for gpu in gpus}
    aliases = [alias for gpu in gpus for alias in gpu.aliases]
    assert len(aliases) == len(set(aliases)), "an alias points at two files"
    assert not keys & set(aliases), "an alias shadows another file's key"
    names = [gpu.name.lower() for gpu in gpus]
    assert len(names) == len(set(names))
