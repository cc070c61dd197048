"""`kvcalc local`: llama.cpp layer split, decode speed from two bandwidths, Apple wired limit, CPU only, 2:4
sparsity, runtime rules, and the CLI (exit codes, JSON purity). Numbers are worked by hand in the comments."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import kvcalc
from kvcalc.calc.offload import (
    DecodeCosts,
    compute_buffer_bytes,
    global_bytes,
    gpu_overhead_bytes,
    host_input_buffer_bytes,
    kv_storage,
    layer_kv_bytes,
    layer_kv_cells,
    layer_weight_bytes,
    offload_plan,
    sparsity_footprint,
    wired_limit_mb_needed,
)
from kvcalc.calc.quant import parse_quant
from kvcalc.report.local import local_report
from kvcalc.report.runtimes import recommend_runtimes
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.hf_config import model_from_config
from kvcalc.sources.resolve import load_model
from kvcalc.spec.model import ModelSpec
from kvcalc.units import GIB, MIB

# A tiny Llama: 4 layers, hidden 256, 4 heads x 64 (2 KV heads), SwiGLU 512, vocab 1024, untied head.
TINY: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 512,
    "vocab_size": 1024,
    "tie_word_embeddings": False,
    "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16",
}

# Q8_0 = 34 B per 32 values (ggml type table); norms stay F32 (4 B per value). Per layer:
#   attn_q 256x256 65,536 values -> 69,632 B; attn_k, attn_v 128x256 -> 34,816 B each; attn_output 69,632 B;
#   ffn_gate, ffn_up 512x256 and ffn_down 256x512 -> 139,264 B each; attn_norm + ffn_norm 2 x 1,024 B
#   W = 2 x 69,632 + 2 x 34,816 + 3 x 139,264 + 2,048 = 628,736 B
W_LAYER = 628_736
# token_embd 1024x256 Q8_0 = 262,144 / 32 x 34 = 278,528 B (host); output 278,528 + output_norm 1,024 = 279,552 B
EMBD, OUTPUT = 278_528, 279_552
# KV f16 per token and layer: (K + V) 2 x 2 heads x 64 x 2 B = 512 B; at 1,024 tokens: 524,288 B
KV_LAYER = 524_288
# Compute buffer: n_ubatch x (n_vocab + 2 n_embd) x 4 = 512 x (1,024 + 512) x 4 = 3,145,728 B
COMPUTE = 3_145_728
# Host input buffer with layers on a GPU: 512 x (1,024 cells + 256) x 4 = 2,621,440 B
HOST_INPUT = 2_621_440


#: Bytes over bandwidth alone: efficiencies 1, no fixed costs (what the hand-worked speeds below assume).
RAW = DecodeCosts(gpu_efficiency=1.0, ram_efficiency=1.0, gpu_layer_s=0.0, step_s=0.0)


@pytest.fixture(scope="module")
def tiny() -> ModelSpec:
    return model_from_config(dict(TINY), model_id="tiny")


def test_tiny_model_building_blocks(tiny: ModelSpec) -> None:
    q8 = parse_quant("Q8_0", model=tiny)
    assert layer_weight_bytes(tiny, q8) == [W_LAYER] * 4
    g = global_bytes(tiny, q8)
    assert (g.input_bytes, g.output_bytes, g.tied_copy_bytes) == (EMBD, OUTPUT, 0)
    assert layer_kv_bytes(tiny, 1024, kv_storage("f16")) == [KV_LAYER] * 4
    # q8_0 KV: 128 values per K row = 4 blocks x 34 B = 136 B, K + V = 272 B per token and layer
    assert layer_kv_bytes(tiny, 1024, kv_storage("q8_0")) == [272 * 1024] * 4
    assert compute_buffer_bytes(tiny) == COMPUTE
    assert host_input_buffer_bytes(tiny, 1024) == HOST_INPUT


def test_budget_of_exactly_two_layers(tiny: ModelSpec) -> None:
    # gpu(2) = 2 x (628,736 + 524,288) + 3,145,728 = 5,451,776 <= 6,000,000 < gpu(3) = 6,604,800
    q8 = parse_quant("Q8_0", model=tiny)
    plan = offload_plan(tiny, q8, 6_000_000, None, 1024, gpu_overhead=0, gpu_bandwidth=1e9, ram_bandwidth=1e8,
                        costs=RAW)
    assert (plan.n_gpu_layers, plan.layers_on_gpu, plan.output_on_gpu, plan.fits_on_gpu) == (2, 2, False, False)
    assert plan.gpu_bytes == 5_451_776
    # host = token_embd + 2 CPU layers (W + KV) + output layer + input buffer + compute (output runs on the CPU)
    #      = 278,528 + 2,306,048 + 279,552 + 2,621,440 + 3,145,728 = 8,631,296
    assert plan.host_bytes == 8_631_296
    # read per token: GPU 2 x 1,153,024 = 2,306,048 B; RAM 2 x 1,153,024 + 279,552 = 2,585,600 B
    # time = 2,306,048 / 1e9 + 2,585,600 / 1e8 = 0.002306048 + 0.025856 = 0.028162048 s -> 35.5088 tokens/s
    assert plan.gpu_read_bytes_per_token == 2_306_048
    assert plan.host_read_bytes_per_token == 2_585_600
    assert plan.decode_tokens_per_s == pytest.approx(1 / 0.028162048)
    # an empty cache reads no KV: 1,257,472 / 1e9 + 1,537,024 / 1e8 -> 59.14 tokens/s
    assert plan.decode_tokens_per_s_empty == pytest.approx(1 / (2 * (W_LAYER + 512) / 1e9 + (2 * (W_LAYER + 512)
                                                                                             + OUTPUT) / 1e8))
    # RAM: 8,631,296 B needed; 8 MiB = 8,388,608 is too little -> does not fit at all
    assert plan.fits and not plan.ram_checked
    short = offload_plan(tiny, q8, 6_000_000, 8 * MIB, 1024, gpu_overhead=0, gpu_bandwidth=1e9)
    assert not short.fits and short.reason is not None and "host RAM" in short.reason


def test_output_layer_only_with_every_layer(tiny: ModelSpec) -> None:
    q8 = parse_quant("Q8_0", model=tiny)
    # gpu(4) = 4 x 1,153,024 + 3,145,728 = 7,757,824; gpu(5) = gpu(4) + 279,552 = 8,037,376
    four = offload_plan(tiny, q8, 8_000_000, None, 1024, gpu_overhead=0, gpu_bandwidth=1e9)
    assert (four.n_gpu_layers, four.output_on_gpu, four.gpu_bytes) == (4, False, 7_757_824)
    full = offload_plan(tiny, q8, 8_037_376, None, 1024, gpu_overhead=0, gpu_bandwidth=1e9)
    assert (full.n_gpu_layers, full.output_on_gpu, full.fits_on_gpu, full.gpu_bytes) == (5, True, True, 8_037_376)
    # the host keeps token_embd and the mask/embedding buffer
    assert full.host_bytes == EMBD + HOST_INPUT


def test_overheads_are_subtracted() -> None:
    # CUDA: 512 MiB context (assumption) + 1024 MiB llama.cpp --fit margin; Metal: the margin only
    assert gpu_overhead_bytes("gpu") == 1536 * MIB
    assert gpu_overhead_bytes("apple") == 1024 * MIB
    assert gpu_overhead_bytes("cpu") == 0


def test_cpu_only(tiny: ModelSpec) -> None:
    q8 = parse_quant("Q8_0", model=tiny)
    # host = 278,528 + 4 x 628,736 + 279,552 + 4 x 524,288 + 3,145,728 = 8,315,904 B
    plan = offload_plan(tiny, q8, 0, 16 * MIB, 1024, device="cpu", ram_bandwidth=1e8, costs=RAW)
    assert (plan.n_gpu_layers, plan.gpu_bytes, plan.host_bytes, plan.fits) == (0, 0, 8_315_904, True)
    # read 4 x 1,153,024 + 279,552 = 4,891,648 B at 1e8 B/s -> 20.443 tokens/s
    assert plan.decode_tokens_per_s == pytest.approx(1e8 / 4_891_648)
    small = offload_plan(tiny, q8, 0, 8_000_000, 1024, device="cpu", ram_bandwidth=1e8)
    assert not small.fits and small.reason is not None


def test_sliding_window_cells_follow_llama_cpp() -> None:
    gemma = load_model("gemma-2-9b")
    window_layer = next(layer for layer in gemma.layers if layer.mixer is not None and layer.mixer.window)
    # pad(min(32768, 4096 + 512), 256) = 4608 cells; a full layer holds all 32,768
    assert window_layer.mixer is not None and window_layer.mixer.window == 4096
    assert layer_kv_cells(window_layer, 32768) == 4608
    full_layer = next(layer for layer in gemma.layers if layer.mixer is not None and not layer.mixer.window)
    assert layer_kv_cells(full_layer, 32768) == 32768
    assert layer_kv_cells(full_layer, 8192, sequences=4) == 32768


def test_moe_reads_only_routed_experts() -> None:
    from kvcalc.calc.offload import layer_read_bytes

    moe = load_model("qwen3-30b-a3b")
    fmt = parse_quant("Q4_K_M", model=moe)
    stored, read = sum(layer_weight_bytes(moe, fmt)), sum(layer_read_bytes(moe, fmt))
    assert read < stored / 5  # 8 of 128 experts per token


def test_apple_wired_limit_is_the_gpu_share() -> None:
    m3 = find_gpu("m3-max-128")
    model = load_model("llama-3.1-8b")
    fmt = parse_quant("Q4_K_M", model=model)
    report = local_report(model, fmt, device="apple", gpu=m3, ram_bytes=None, context=4096)
    assert report.fits and report.fits_on_gpu and report.n_gpu_layers == 33
    # default wired limit 96 GiB of 128 GiB (3/4); the plan keeps 1 GiB (--fit margin) free
    assert report.gpu_usable_bytes == 96 * GIB and report.gpu_budget_bytes == 95 * GIB
    assert report.apple is not None and report.apple.default_share == 0.75 and report.apple.raise_command is None
    assert report.ram_bytes == 128 * GIB  # unified memory is the RAM
    assert report.ram_bandwidth_bytes_per_s == report.gpu_bandwidth_bytes_per_s == 400_000_000_000
    assert report.runtimes[0].verdict == "recommended"
    assert {r.runtime for r in report.runtimes if r.verdict == "recommended"} >= {"MLX", "llama.cpp"}
    assert next(r for r in report.runtimes if r.runtime == "vLLM").verdict == "not suitable"


def test_apple_over_the_wired_limit_suggests_the_sysctl() -> None:
    m3 = find_gpu("m3-max-128")
    model = load_model("llama-3.1-70b")
    fmt = parse_quant("Q8_0", model=model)
    # 70B Q8_0 (~70 GiB) + 40 GiB of f16 KV at 128K tokens > 95 GiB budget, < 128 GiB of RAM
    report = local_report(model, fmt, device="apple", gpu=m3, ram_bytes=None, context=131072)
    assert report.fits and not report.fits_on_gpu and 0 < report.layers_on_gpu < 80
    assert report.apple is not None and report.apple.raise_command is not None
    needed = wired_limit_mb_needed(model, fmt, 131072)
    assert report.apple.raise_command == f"sudo sysctl iogpu.wired_limit_mb={needed}"
    assert needed % 1024 == 0 and 96 * 1024 < needed <= 120 * 1024


def test_sparsity_footprint_hand_worked(tiny: ModelSpec) -> None:
    # 4 layers x (65,536 + 2 x 32,768 + 65,536 + 3 x 131,072) = 4 x 589,824 = 2,359,296 prunable weights.
    # FP8: each loses half of its 1-byte values and gains 1 bit of index: 1/2 - 1/8 = 3/8 B per weight
    fp8 = sparsity_footprint(tiny, parse_quant("fp8", model=tiny))
    assert fp8.prunable_params == 2_359_296
    assert fp8.dense_bytes - fp8.sparse_bytes == 2_359_296 * 3 // 8 == 884_736
    # BF16: 2/2 - 1/8 = 7/8 B per weight
    bf16 = sparsity_footprint(tiny, parse_quant("bf16", model=tiny))
    assert bf16.dense_bytes - bf16.sparse_bytes == 2_359_296 * 7 // 8
    uses = {e.engine: e.uses_it for e in fp8.engines}
    assert uses["vLLM (CUTLASS 2:4, W8A8)"] and not uses["llama.cpp / Ollama"]
    gptq = sparsity_footprint(tiny, parse_quant("gptq:4:128", model=tiny))
    assert {e.engine: e.uses_it for e in gptq.engines}["vLLM (Sparse-Marlin, W4A16)"]
    gguf = sparsity_footprint(tiny, parse_quant("Q4_K_M", model=tiny))
    assert not any(e.uses_it for e in gguf.engines)


def test_runtime_rules(tiny: ModelSpec) -> None:
    awq = parse_quant("awq:4:128", model=tiny)
    q4 = parse_quant("Q4_K_M", model=tiny)
    served = recommend_runtimes("gpu", awq, fits_on_gpu=True, n_gpu_layers=5, users=16)
    assert served[0].runtime in ("vLLM", "SGLang") and served[0].verdict == "recommended"
    split = {r.runtime: r for r in recommend_runtimes("gpu", q4, fits_on_gpu=False, n_gpu_layers=2)}
    assert split["llama.cpp"].verdict == "recommended" and "--n-gpu-layers 2" in split["llama.cpp"].reason
    assert split["vLLM"].verdict == "not suitable"
    cpu = {r.runtime: r.verdict for r in recommend_runtimes("cpu", q4, fits_on_gpu=False, n_gpu_layers=0)}
    assert cpu["llama.cpp"] == "recommended" and cpu["MLX"] == "not suitable"
    for r in served:
        assert r.reason


# ---- CLI --------------------------------------------------------------------------------------------------


def _kvcalc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kvcalc", *args], capture_output=True, text=True, timeout=120)


def test_cli_all_on_gpu_json_is_one_document() -> None:
    r = _kvcalc("local", "llama-3.1-8b", "--gpu", "rtx-4090", "--quant", "Q4_K_M", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)  # the whole stdout is one JSON document
    assert data["fits_on_gpu"] is True and data["n_gpu_layers"] == 33 and data["num_layers"] == 32
    assert "explain" not in data
    assert data["decode_tokens_per_s"] > 0 and data["command"].endswith("-ngl 33")


def test_cli_partial_offload_and_exit_codes() -> None:
    ok = _kvcalc("local", "llama-70b", "--gpu", "rtx-4090", "--quant", "Q4_K_M", "--context", "8K", "--ram", "64G",
                 "--json", "--explain")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["fits"] and not data["fits_on_gpu"] and 0 < data["n_gpu_layers"] < 80
    assert data["host_bytes"] <= 64 * GIB and data["explain"]
    short = _kvcalc("local", "llama-70b", "--gpu", "rtx-4090", "--quant", "Q4_K_M", "--ram", "8G")
    assert short.returncode == 1
    assert "DOES NOT FIT" in short.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("local", "llama-3.1-8b"),  # no device
        ("local", "llama-3.1-8b", "--cpu"),  # CPU only without --ram
        ("local", "llama-3.1-8b", "--gpu", "rtx-4090", "--cpu"),
        ("local", "llama-3.1-8b", "--apple", "rtx-4090"),
        ("local", "llama-3.1-8b", "--gpu", "rtx-4090", "--ram-bandwidth", "fast"),
        ("local", "llama-3.1-8b", "--gpu", "rtx-4090", "--quant", "Q9_X"),
    ],
)
def test_cli_bad_input_exits_2(args: tuple[str, ...]) -> None:
    r = _kvcalc(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""


def test_cli_cpu_only() -> None:
    r = _kvcalc("local", "llama-3.1-8b", "--cpu", "--ram", "16G", "--ram-bandwidth", "120", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["device"] == "cpu" and data["n_gpu_layers"] == 0 and data["ram_bandwidth_bytes_per_s"] == 120e9


def test_fit_points_to_the_offload_plan() -> None:
    r = _kvcalc("fit", "llama-70b", "--gpu", "rtx-4090", "--quant", "Q4_K_M", "--context", "8K", "--json")
    assert r.returncode == 1
    advice = {a["change"]: a for a in json.loads(r.stdout)["advice"]}
    note = advice["--engine llamacpp"]["note"]
    assert "of 80 layers on the GPU" in note and "kvcalc local llama-3.1-70b --gpu rtx-4090 --quant Q4_K_M" in note


def test_decode_pays_llama_cpp_fixed_costs(tiny: ModelSpec) -> None:
    # llama.cpp CUDA (the default costs): 0.3 ms per step + 20 us per GPU layer, weights at 0.85 of the bandwidth,
    # RAM at 0.65. Two GPU layers: 0.3e-3 + 2 x 20e-6 + 2,306,048 / (1e9 x 0.85) + 2,585,600 / (1e8 x 0.65)
    q8 = parse_quant("Q8_0", model=tiny)
    plan = offload_plan(tiny, q8, 6_000_000, None, 1024, gpu_overhead=0, gpu_bandwidth=1e9, ram_bandwidth=1e8)
    seconds = 0.3e-3 + 2 * 20e-6 + 2_306_048 / (1e9 * 0.85) + 2_585_600 / (1e8 * 0.65)
    assert plan.decode_tokens_per_s == pytest.approx(1 / seconds)


def test_local_and_perf_agree_on_a_model_the_gpu_holds() -> None:
    # one decode model: kvcalc local's empty-cache speed is kvcalc perf's llama.cpp step at batch 1 (Metal: 199 us
    # per layer, Apple streaming 0.907), so the two differ only by the few tokens of KV perf's step reads
    model = load_model("llama-2-7b")
    report = local_report(model, parse_quant("F16", model=model), device="apple", gpu=find_gpu("m2-ultra"),
                          ram_bytes=None, context=4096)
    perf = kvcalc.perf("llama-2-7b", gpu="m2-ultra", engine="llamacpp", quant="F16", batch=1, input_tokens=1,
                       output_tokens=2)
    assert report.decode_tokens_per_s_empty_context == pytest.approx(1 / perf.tpot_s, rel=2e-3)

