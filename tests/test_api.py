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
