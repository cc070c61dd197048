"""Engine budgets worked by hand (vLLM gpu_worker.determine_available_memory and friends)."""

import pytest

from kvcalc.calc.engines.vllm_profile import PROFILE_SLACK, profile_peak_bytes
from kvcalc.calc.engines.vllm_profile import batch_defaults as vllm_batch_defaults
from kvcalc.calc.weights import PlainFormat
from kvcalc.errors import InputError
from kvcalc.report.fit import fit_deployment
from kvcalc.sources.hardware import find_gpu
from kvcalc.spec.deployment import EngineSettings, Parallel
from kvcalc.spec.dtypes import storage_type
from tests.conftest import CODELLAMA_7B, LLAMA_70B, build

GIB = 1 << 30
H100_TOTAL = 85_017_493_504  # torch total_memory of an H100 SXM 80GB (hardware/h100-sxm.yaml)


def codellama_fit(**engine: object):
    options: dict[str, object] = {
        "version": "0.19.0",
        "gpu_memory_utilization": 0.95,
        "activation_bytes": GIB,
        "non_torch_bytes": GIB // 4,
    }
    options.update(engine)
    settings = EngineSettings(**options)  # type: ignore[arg-type]
    return fit_deployment(build(CODELLAMA_7B), find_gpu("h100"), Parallel(), settings, context=8192)


def test_vllm_budget_codellama_7b_by_hand() -> None:
    r = codellama_fit()
    # weights: 32 layers x (4 x 4096^2 attention + 3 x 4096 x 11008 MLP + 2 x 4096 norms) = 6,476,267,520
    # + final norm 4,096 + embedding and head with the vocab padded to 32,064 rows: 2 x 32,064 x 4,096
    # = 6,738,939,904 params x 2 B = 13,477,879,808 B; plus vLLM's rotary cos/sin cache of
    # 16,384 positions x 128 dims x 2 B = 4,194,304 B -> 13,482,074,112 B
    assert r.per_gpu.weights_bytes == 13_477_879_808 + 4_194_304 == 13_482_074_112
    # requested = ceil(85,017,493,504 x 0.95) = 80,766,618,829; A = R - W - 1 GiB - 0.25 GiB
    # = 80,766,618,829 - 13,482,074,112 - 1,073,741,824 - 268,435,456 = 65,942,367,437
    assert r.per_gpu.kv_cache_bytes == 65_942_367_437
    # block = 32 layers x 16 tokens x 2 x 32 heads x 128 x 2 B = 8,388,608 B -> 7,860 blocks
    assert r.capacity.num_blocks == 7_860
    assert r.capacity.kv_cache_tokens == 7_860 * 16 == 125_760
    # concurrency at 8192 tokens: 7,860 / 512 blocks = 15.35x
    assert r.capacity.max_concurrency == pytest.approx(7_860 / 512, abs=1e-4)
    assert r.fits


def test_v021_subtracts_cuda_graphs_and_enforce_eager_does_not() -> None:
    graphs = codellama_fit(version="0.21.0", cuda_graph_bytes=GIB // 2)
    eager = codellama_fit(version="0.21.0", cuda_graph_bytes=GIB // 2, enforce_eager=True)
    # the only difference is the 0.5 GiB graph reservation
    assert eager.per_gpu.kv_cache_bytes - graphs.per_gpu.kv_cache_bytes == GIB // 2
    # v0.21 reports int(C x L): C = blocks / 512, L = 8192 -> blocks x 16, same as uniform before
    assert graphs.capacity.kv_cache_tokens == graphs.capacity.num_blocks * 16


def test_profile_peak_dense_by_hand() -> None:
    model = build(CODELLAMA_7B)
    peak, detail = profile_peak_bytes(
        model,
        Parallel(),
        range(32),
        tokens=8192,
        rows=1024,
        act=storage_type("bf16"),
        sampler_coefficient=14,
        last_stage=True,
        first_stage=True,
    )
    # MLP: 8192 tokens x 3 x 11008 x 2 B = 541,065,216 + hidden and residual 2 x 8192 x 4096 x 2 = 134,217,728
    assert detail["forward_bytes"] == 675_282_944
    # sampler v0.17+: 14 B x 1024 rows x 32,016 vocab = 458,981,376 (+ hidden 67,108,864 < forward)
    assert detail["sampler_bytes"] == 458_981_376
    assert peak == 675_282_944 + PROFILE_SLACK


def test_batch_defaults() -> None:
    # vLLM get_batch_defaults: >= 70 GiB and not A100 is "large"
    assert vllm_batch_defaults(H100_TOTAL, "NVIDIA H100 SXM5 80GB", "serve") == (8192, 1024)
    assert vllm_batch_defaults(84_000_000_000, "NVIDIA A100 80GB", "serve") == (2048, 256)
    assert vllm_batch_defaults(H100_TOTAL, "NVIDIA H100", "llm") == (16384, 1024)


def test_does_not_fit_when_weights_exceed_budget() -> None:
    # 70.55 B params x 2 B = 141 GB cannot fit one 80 GB GPU
    r = fit_deployment(build(LLAMA_70B), find_gpu("h100"), Parallel(), EngineSettings(), context=8192)
    assert not r.fits and "No available memory" in (r.reason or "")
    assert any(a.change.startswith("--tp") for a in r.advice)


def test_sglang_budget_by_hand() -> None:
    settings = EngineSettings(name="sglang", mem_fraction_static=0.9)
    r = fit_deployment(
        build(CODELLAMA_7B),
        find_gpu("h100"),
        Parallel(),
        settings,
        context=8192,
        weight_format=PlainFormat("bf16"),
    )
    # KV = int((T - 512 MiB CUDA context) x 0.9) - W = int(84,480,622,592 x 0.9) - 13,477,879,808
    #    = 76,032,560,332 - 13,477,879,808 = 62,554,680,524 B
    assert r.per_gpu.kv_cache_bytes == int((H100_TOTAL - 512 * 2**20) * 0.9) - 13_477_879_808 == 62_554_680_524
    # cell = 32 layers x 2 x 32 x 128 x 2 = 524,288 B -> floor(62,554,680,524 / 524,288) = 119,313 tokens
    assert r.capacity.kv_cache_tokens == 119_313


def test_llamacpp_no_paging() -> None:
    r = fit_deployment(
        build(CODELLAMA_7B), find_gpu("h100"), Parallel(), EngineSettings(name="llamacpp"), context=8192
    )
    assert r.fits and r.capacity.block_size is None


def test_advice_offers_fp8_weights_when_they_fit() -> None:
    # Llama-3.1-70B on one H100 at 8192 tokens: bf16 weights (131 GiB) cannot fit. FP8 weights are about
    # 70.6e9 x 1 B + embedding and head in bf16 (2 x 128,256 x 8192 x 2 B = 4.2 GB) = 66 GiB, leaving
    # ~4 GiB for a 2.5 GiB request (8192 x 327,680 B) in 79.18 x 0.92 GiB; so --quant fp8 must be offered.
    # (v0.21 rules: from v0.28 the 16,384-token default batch raises the profile peak by ~1.5 GiB and FP8 no longer
    # leaves room for the request)
    r = fit_deployment(build(LLAMA_70B), find_gpu("h100"), Parallel(), EngineSettings(version="0.21.0"), context=8192)
    changes = [a.change for a in r.advice]
    assert not r.fits and "--quant fp8" in changes and "--tp 2" in changes
    assert all(a.fits for a in r.advice)


def test_fp32_checkpoints_are_served_in_bf16() -> None:
    # vLLM dtype=auto casts fp32 to bf16: weights and KV at 2 bytes, as for the bf16 checkpoint
    fp32 = fit_deployment(build(dict(CODELLAMA_7B, torch_dtype="float32")), find_gpu("h100"), Parallel(),
                          EngineSettings(), context=8192)
    bf16 = fit_deployment(build(CODELLAMA_7B), find_gpu("h100"), Parallel(), EngineSettings(), context=8192)
    assert fp32.per_gpu.weights_bytes == bf16.per_gpu.weights_bytes
    assert fp32.capacity.kv_bytes_per_token == 32 * 2 * 32 * 128 * 2 == 524_288


@pytest.mark.parametrize(("engine", "kv"), [("vllm", "q4_0"), ("llamacpp", "fp8")])
def test_kv_dtype_must_exist_in_the_engine(engine: str, kv: str) -> None:
    with pytest.raises(InputError, match=f"--kv-dtype {kv} is not a {engine} KV-cache type"):
        fit_deployment(build(CODELLAMA_7B), find_gpu("h100"), Parallel(),
                       EngineSettings(name=engine, kv_cache_dtype=kv), context=8192)  # type: ignore[arg-type]


def test_unknown_vllm_version_is_refused() -> None:
    with pytest.raises(InputError, match="--engine-version latest"):
        fit_deployment(build(CODELLAMA_7B), find_gpu("h100"), Parallel(), EngineSettings(version="latest"))


def test_pipeline_stage_cells_for_flat_engines() -> None:
    # SGLang sizes each stage's pool by that stage's layers: with pp=2 a GPU holds 16 of CodeLlama's 32 layers,
    # so a token costs 16 x 2 x 32 x 128 x 2 = 262,144 B there, half the pp=1 figure
    one = fit_deployment(build(CODELLAMA_7B), find_gpu("h100"), Parallel(), EngineSettings(name="sglang"),
                         context=8192)
    two = fit_deployment(build(CODELLAMA_7B), find_gpu("h100"), Parallel(pp=2), EngineSettings(name="sglang"),
                         context=8192)
    assert one.capacity.kv_bytes_per_token == 524_288 and two.capacity.kv_bytes_per_token == 262_144
    assert two.capacity.kv_cache_tokens > 2 * one.capacity.kv_cache_tokens  # half the weights per GPU too


def test_engine_only_options_warn() -> None:
    r = fit_deployment(build(CODELLAMA_7B), find_gpu("h100"), Parallel(),
                       EngineSettings(name="sglang", gpu_memory_utilization=0.8), context=8192)
    assert any("--gpu-memory-utilization applies to vllm" in w for w in r.warnings)


def test_sglang_default_fraction() -> None:
    from kvcalc.calc.engines.sglang import default_mem_fraction_static, prefill_graph_sizes

    # prefill graph sizes up to 8192: 4..32/4 (8) + 48..256/16 (14) + 288..512/32 (8) + 576..1024/64 (8)
    # + 1280..4096/256 (12) + 4608..8192/512 (8) = 58; up to 4096: 50
    assert len(prefill_graph_sizes(8192)) == 58 and len(prefill_graph_sizes(4096)) == 50
    # H100: 85,017,493,504 B = 81,079 MiB (60-160 GiB class: chunked prefill 8192, decode graphs 256 at tp < 4)
    # reserved = 512 + 1.5 x 8192 + 1 x 1 / 8 x 1024 + 2 x 256 + 58 x 8 = 13,904 MiB
    # f = round((81,079 - 13,904) / 81,079, 3) = 0.829
    assert default_mem_fraction_static(H100_TOTAL, 1, 1) == (0.829, 8192, 256)
    # MLA at tp=8: decode graphs 512, prefill reserve 1,536: 512 + 12,288 + 1,024 + 1,024 + 1,536 = 16,384 MiB
    # -> (81,079 - 16,384) / 81,079 = 0.798
    assert default_mem_fraction_static(H100_TOTAL, 8, 1, mla=True)[0] == 0.798
    # a 24 GiB card (24,576 MiB; chunked prefill 4096, decode graphs 48): reserved = 512 + 6,144 + 128 + 96
    # + 50 x 8 = 7,280 -> (24,576 - 7,280) / 24,576 = 0.704 (below 60 GiB there is no 10 GiB floor)
    assert default_mem_fraction_static(24 * 2**30, 1, 1) == (0.704, 4096, 48)
