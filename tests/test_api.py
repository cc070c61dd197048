"""The public API (kvcalc/api.py): every command, the CLI's inputs, kvcalc's own errors for bad ones."""

from __future__ import annotations

import pytest

import kvcalc
from kvcalc.calc.plan import DeploymentPlan
from kvcalc.errors import InputError


@pytest.mark.parametrize(("context", "tokens"), [(1e6, 1_000_000), ("1M", 1_048_576), ("1m", 1_000_000),
                                                 ("32K", 32_768), ("32k", 32_000), (8192, 8192), (8192.0, 8192)])
def test_context_takes_the_cli_forms(context: object, tokens: int) -> None:
    # vLLM's parser: K/M are binary (32K = 32 x 1024), k/m decimal; a float must be whole
    plan = kvcalc.plan("llama-3.1-8b", gpu="h100", context=context)
    assert isinstance(plan, DeploymentPlan) and plan.max_model_len == tokens


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"context": [8192]}, "context must be a token count"),
        ({"context": 1.5}, "not a whole number of tokens"),
        ({"context": True}, "context must be a token count"),
        ({"tp": "two"}, "tp must be a whole number"),
        ({"tp": 2.5}, "tp must be a whole number"),
        ({"gpu": 100}, "gpu must be a non-empty string"),
        ({"gpu_memory_utilization": "high"}, "gpu_memory_utilization must be a number in (0, 1]"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization must be a number in (0, 1]"),
        ({"enforce_eager": "yes"}, "enforce_eager must be True or False"),
        ({"warp_speed": 9}, "unknown engine option 'warp_speed'"),
        ({"engine": "magic"}, "unknown engine 'magic'"),
        ({"cuda_graph_memory": 1.5}, "cuda_graph_memory must be bytes"),
    ],
)
def test_bad_inputs_raise_input_error_never_type_error(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InputError) as err:
        kvcalc.fit("llama-3.1-8b", **kwargs)  # type: ignore[arg-type]
    assert needle in str(err.value)


def test_every_command_is_in_the_api() -> None:
    assert kvcalc.fit("llama-70b", gpu="h100", tp="4", context="8K").fits  # tp as the CLI's text works too
    assert kvcalc.inspect("llama-3.1-8b").model.params_total == 8_030_261_248
    quant = kvcalc.quant("llama-3.1-8b", gpu="h100", formats="bf16,fp8", context="8K")
    assert [row.format for row in quant.rows] == ["bf16", "fp8"]
    local = kvcalc.local("llama-3.1-8b", gpu="rtx-4090", quant="Q4_K_M", context="8K")
    assert local.fits_on_gpu
    variants = kvcalc.attention_variants("llama-3.1-8b", memory="10GiB")
    assert variants.memory.bytes == 10 * 2**30
    with pytest.raises(InputError, match="exactly one of"):
        kvcalc.local("llama-3.1-8b")


def test_engine_options_are_the_cli_flags() -> None:
    # version and memory overrides as the CLI takes them ("0.5GiB"), mapped to the engine's own settings
    plan = kvcalc.plan("llama-3.1-8b", gpu="h100", version="0.19.0", cuda_graph_memory="0.5GiB",
                       non_torch_memory=2**28)
    assert plan.engine_version == "0.19.0" and plan.binding_device.non_torch_bytes == 2**28
    assert plan.binding_device.cuda_graph_bytes == 0  # v0.19 does not subtract graphs
    sglang = kvcalc.plan("llama-3.1-8b", gpu="h100", engine="sglang", gpu_memory_utilization=0.8)
    assert any("--gpu-memory-utilization applies to vllm, not sglang" in w for w in sglang.warnings)


# --- one test per command's function (the CLI's inputs; numbers worked by hand where cheap) ----------------------


def test_perf_takes_cli_text_and_reads_the_weights_once_per_step() -> None:
    r = kvcalc.perf("llama-3.1-8b", gpu="h100", batch=1, input_tokens="128", output_tokens=2)
    # bf16 weights read per decode step: (8,030,261,248 params - 128,256 x 4,096 embedding rows, a lookup not a
    # read) x 2 B = 15,009,849,344 B; the KV of ~130 tokens (131,072 B each) is on top
    assert 15_009_849_344 < r.decode.bytes < 15_009_849_344 + 200 * 131_072
    assert r.decode.bound == "memory"
    with pytest.raises(InputError, match="request-rate"):
        kvcalc.perf("llama-3.1-8b", request_rate="fast")
    with pytest.raises(InputError, match="input-dist"):
        kvcalc.perf("llama-3.1-8b", request_rate=5, input_dist="zipf")


def test_perf_calibration_file_replaces_what_it_holds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "a100.yaml"
    path.write_text("kind: kvcalc-calibration\nversion: 1\ncard: A100\ngpu: a100-80gb\ndriver: '1'\ntorch: '2'\n"
                    "date: '2026-12-01'\ncoefficients:\n  weight_bw_eff: 0.5\n")
    seen: list[str] = []
    r = kvcalc.perf("llama-3.1-8b", gpu="h100", concurrency=2, calibration=str(path), warn=seen.append)
    assert r.efficiencies["weight_bw_eff"].value == 0.5 and str(path) in r.efficiencies["weight_bw_eff"].source
    assert r.efficiencies["kv_bw_eff"].value == 0.9349  # not in the file: the H100's shipped calibration
    assert any("measured on a100-80gb" in w for w in seen)


def test_batch_takes_durations_as_text_or_seconds() -> None:
    a = kvcalc.batch("llama-3.1-8b", ttft_slo="500ms", tpot_slo="20ms", input_tokens=1000, output_tokens=128)
    b = kvcalc.batch("llama-3.1-8b", ttft_slo=0.5, tpot_slo=0.02, input_tokens="1000", output_tokens="128")
    assert (a.ttft_slo_s, a.tpot_slo_s) == (0.5, 0.02) and a.max_concurrency == b.max_concurrency >= 1
    with pytest.raises(InputError, match="not a duration"):
        kvcalc.batch("llama-3.1-8b", ttft_slo="fast")


def test_attention_by_head_shape() -> None:
    r = kvcalc.attention(seq="8K", heads=32, head_dim=128, causal=False)
    # textbook naive attention holds S and P: 2 x 32 heads x 8192^2 x 2 B = 8 GiB
    assert r.naive_extra_bytes == 2 * 32 * 8192**2 * 2 == 8 * 2**30
    with pytest.raises(InputError, match="not both"):
        kvcalc.attention("llama-3.1-8b", seq=1024, heads=32)


def test_speculative_leviathan_tokens_per_pass() -> None:
    r = kvcalc.speculative("llama-3.1-8b", method="eagle", alpha=0.7, gamma=4)
    # (1 - 0.7^5) / (1 - 0.7) = (1 - 0.16807) / 0.3 = 2.7731
    assert r.expected_tokens_per_pass == pytest.approx(2.7731, abs=1e-4)
    with pytest.raises(InputError, match="exactly one of"):
        kvcalc.speculative("llama-3.1-8b", method="eagle", cost_ratio=0.1)


def test_paged_blocks_and_trace_stream() -> None:
    r = kvcalc.paged("llama-3.1-8b", requests="1,16,17,90:10", context="8K")
    # block size 16: 1 and 16 tokens take 1 block, 17 take 2, 90 + 10 = 100 take ceil(100 / 16) = 7
    assert [row.blocks for row in r.requests] == [1, 1, 2, 7]  # type: ignore[union-attr]
    from kvcalc.spec.workload import TraceRequest

    trace = [TraceRequest(id="a", arrival_s=0.0, prompt_tokens=100, output_tokens=4)]
    start, events, _ = kvcalc.paged_trace("llama-3.1-8b", trace=trace, context=8192, step_ms=5)
    assert start.step_s == 0.005 and list(events)[-1].event == "summary"


def test_prefix_prices_as_cli_text() -> None:
    r = kvcalc.prefix("llama-3.1-8b", prefix_tokens=3000, requests_per_s=20, price="input=3,cached=0.3")
    assert (r.prices.input_per_mtok, r.prices.cached_per_mtok) == (3.0, 0.3)  # type: ignore[union-attr]
    with pytest.raises(InputError, match="input= and cached="):
        kvcalc.prefix("llama-3.1-8b", prefix_tokens=3000, requests_per_s=20, price="input=3")


def test_serve_cost_at_an_overridden_price() -> None:
    r = kvcalc.serve("llama-3.1-8b", rps=2, input_tokens="1k", output_tokens=128, price="h100=2.0")
    # one H100 replica carries 2 requests/s: cost per hour = 1 GPU x $2.00
    assert r.meets_slo and r.gpus_total == 1 and r.cost is not None and r.cost.per_hour == pytest.approx(2.0)
    with pytest.raises(InputError, match="--ttft-slo"):
        kvcalc.serve("llama-3.1-8b", rps=2, input_tokens=100, output_tokens=10, ttft_slo="soon")


def test_plan_fleet_searches_and_refuses_a_fixed_layout() -> None:
    r = kvcalc.plan_fleet("llama-3.1-8b", rps=2, input_tokens="1k", output_tokens=128, gpus="h100",
                          engines="vllm", max_gpus=2)
    assert r.best is not None and r.best.gpu == "h100-sxm"
    with pytest.raises(InputError, match="not tp="):
        kvcalc.plan_fleet("llama-3.1-8b", rps=2, input_tokens=100, output_tokens=10, tp=2)


def test_verify_needs_a_gpu_or_saved_measurements() -> None:
    from kvcalc.errors import KvcalcError

    with pytest.raises(InputError, match="bf16 or fp16"):
        kvcalc.verify("llama-3.1-8b", dtype="fp8")
    with pytest.raises(KvcalcError):  # no saved record: InputError; no torch or no GPU: EnvironmentProblem
        kvcalc.verify("llama-3.1-8b", from_raw="/no/such/raw.json")


def test_every_function_is_exported() -> None:
    from kvcalc import api

    assert sorted(kvcalc.__all__) == sorted(api.__all__)
    for name in kvcalc.__all__:
        assert callable(getattr(kvcalc, name))
