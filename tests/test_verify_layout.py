"""Pure parts of the bench package (no torch): layer signatures, extrapolation, device names, message sizes."""

from __future__ import annotations

import pytest

from kvcalc.bench.comm import message_sizes, wire_bytes
from kvcalc.bench.env import hardware_key_for
from kvcalc.calc.verify.layout import extrapolate, layer_signature, per_layer, signature_groups
from kvcalc.sources.resolve import load_model


def test_signatures_follow_the_layer_pattern() -> None:
    gpt_oss = signature_groups(load_model("gpt-oss-20b"))  # alternating sliding(128) / full, same tensors
    assert [len(v) for v in gpt_oss.values()] == [12, 12]
    sliding, full = gpt_oss
    assert sliding.startswith("sliding128/moe") and full.startswith("full/moe")
    assert gpt_oss[sliding][:3] == [0, 2, 4]
    deepseek = signature_groups(load_model("deepseek-v2-lite"))  # first layer dense, 26 MoE
    assert [(k.split("#")[0], len(v)) for k, v in deepseek.items()] == [("mla/dense", 1), ("mla/moe", 26)]
    assert len(signature_groups(load_model("llama-3.1-8b"))) == 1


def test_signature_is_stable_across_processes() -> None:
    # a digest of the tensor shapes, not Python's salted hash(): raw records are re-read in other processes
    layer = load_model("llama-3.1-8b").layers[0]
    assert layer_signature(layer) == layer_signature(load_model("llama-3.1-8b").layers[5])
    import subprocess
    import sys

    code = ("from kvcalc.calc.verify.layout import layer_signature; from kvcalc.sources.resolve import load_model; "
            "print(layer_signature(load_model('llama-3.1-8b').layers[0]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == layer_signature(layer)


def test_extrapolation_arithmetic() -> None:
    # DeepSeek-V2-Lite decode: the dense layer timed alone at 0.30 ms, 4 MoE layers at 1.60 ms (0.40 each),
    # head 0.25 ms: 1 x 0.30 + 26 x 0.40 + 0.25 = 10.95 ms
    each = per_layer([("dense", 0.30e-3, 1), ("moe", 1.60e-3, 4)])
    assert each == pytest.approx({"dense": 0.30e-3, "moe": 0.40e-3})
    assert extrapolate(each, {"dense": 1, "moe": 26}, 0.25e-3) == pytest.approx(10.95e-3)
    with pytest.raises(KeyError, match="moe"):
        extrapolate({"dense": 1.0}, {"dense": 1, "moe": 26})


@pytest.mark.parametrize(("name", "key"), [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"), ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA H100 NVL", "h100-nvl"),
    ("NVIDIA H200", "h200"), ("NVIDIA A100-SXM4-80GB", "a100-80gb"), ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
    ("NVIDIA L40S", "l40s"), ("NVIDIA L4", "l4"), ("NVIDIA GeForce RTX 4090", "rtx-4090"), ("Tesla T4", "t4"),
    ("NVIDIA A10G", "a10g"), ("Some Future GPU", None),
    # known cards that no shipped file describes: an error asking for --gpu, not the SXM or 32 GB file
    ("NVIDIA H200 NVL", None), ("NVIDIA GH200 480GB", None), ("Tesla V100-SXM2-16GB", None),
    ("Tesla V100-SXM2-32GB", "v100-sxm2-32gb"),
])
def test_device_names_map_to_hardware_files(name: str, key: str | None) -> None:
    assert hardware_key_for(name) == key


def test_collective_wire_bytes() -> None:
    # ring all-reduce puts 2 (n-1)/n of the message on each link: 8 MiB over 4 GPUs -> 12 MiB; all-to-all
    # (n-1)/n: 8 MiB -> 6 MiB; one rank moves nothing
    assert wire_bytes("all_reduce", 8 * 2**20, 4) == 12 * 2**20
    assert wire_bytes("all_to_all", 8 * 2**20, 4) == 6 * 2**20
    assert wire_bytes("all_reduce", 8 * 2**20, 1) == 0


def test_message_sizes_span_decode_to_prefill() -> None:
    # hidden 8192 in bf16: batch 1 -> 16 KiB, batch 256 -> 4 MiB, a 16k-token prefill -> 256 MiB
    assert message_sizes(8192, [1, 256], [16384]) == [16384, 4 * 2**20, 256 * 2**20]
