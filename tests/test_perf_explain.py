"""`kvcalc perf --explain`: every line substitutes its numbers, worked here by hand for Llama-3.1-8B on an H100."""

from __future__ import annotations

import pytest

from kvcalc import api


@pytest.fixture(scope="module")
def explained() -> dict[str, object]:
    report = api.perf("llama-3.1-8b", gpu="h100", input_tokens=2000, output_tokens=256, batch=8, explain=True)
    return {"report": report, **{d.figure: d for d in report.explain}}


def test_prefill_flops_formula_with_its_numbers(explained: dict[str, object]) -> None:
    # Llama-3.1-8B, one GPU: per layer q 4096 x 4096 + k, v 2 x 4096 x 1024 + o 4096 x 4096 + MLP 3 x 4096 x
    # 14336 = 16,777,216 + 8,388,608 + 16,777,216 + 176,160,768 = 218,103,808 GEMM params, x 32 layers =
    # 6,979,321,856; lm_head 4096 x 128,256 = 525,336,576 for the one sampled token; attention: causal pairs of
    # 2,000 tokens = 2,000 x 2,001 / 2 = 2,001,000 per layer, 2 x (128 + 128) x 32 heads = 16,384 FLOP per pair.
    d = explained["prefill FLOPs (one GPU of each stage)"]
    assert d.substituted == ("2 x 6,979,321,856 params x 2,000 tokens + 2 x 525,336,576 lm_head params x 1 sampled "
                             "token + 32 full layers x 2,001,000 pairs x 16,384 FLOP/pair")
    # 27,917,287,424,000 + 1,050,673,152 + 1,049,100,288,000 = 28,967,438,385,152 FLOP
    report = explained["report"]
    assert report.prefill.flops == pytest.approx(28_967_438_385_152, rel=1e-12)
    assert d.value == "2.897e+13 FLOP"


def test_decode_overheads_are_substituted(explained: dict[str, object]) -> None:
    # vLLM with CUDA graphs (calc/perf/defaults.py): 0.9 ms per step + 32 dense layers x 35 us + 8 requests x
    # 10 us = 0.9 + 1.12 + 0.08 = 2.100 ms
    d = explained["decode step"]
    assert "overheads 2.100 ms = 0.900 ms step + 32 layer units x 35.0 us + 8 requests x 10.0 us" in d.substituted


@pytest.mark.parametrize(("model", "gpu", "tp", "pp", "dp", "ep"), [
    ("qwen3-30b-a3b", "h100", 1, 1, 1, 1), ("gpt-oss-20b", "h100", 1, 1, 1, 1),
    ("qwen3-next-80b-a3b", "h100", 4, 1, 1, 1), ("llama-70b", "h100", 2, 2, 1, 1),
    ("deepseek-v3", "h200", 1, 1, 8, 8),
])
def test_prefill_flops_line_adds_up_to_the_step_model(model: str, gpu: str, tp: int, pp: int, dp: int,
                                                       ep: int) -> None:
    # the substituted line is built term by term from the PerfModel; its sum must be calc/perf/step.py's count
    # (MoE experts, sliding and recurrent layers, MLA, pipeline stages, EP across data-parallel replicas)
    from kvcalc.calc.deploy import plan_deployment
    from kvcalc.calc.perf.defaults import default_coefficients
    from kvcalc.calc.perf.model import perf_model
    from kvcalc.calc.perf.runs import prefill_step
    from kvcalc.report.perf import prefill_flops_terms
    from kvcalc.sources.hardware import find_gpu
    from kvcalc.sources.resolve import load_model
    from kvcalc.spec.deployment import EngineSettings, Parallel

    plan = plan_deployment(load_model(model), find_gpu(gpu), Parallel(tp=tp, pp=pp, dp=dp, ep=ep),
                           EngineSettings(), context=8192)
    pm = perf_model(plan)
    text, total = prefill_flops_terms(pm, 5000)
    assert total == pytest.approx(prefill_step(pm, default_coefficients(plan.gpu), 5000).flops, rel=1e-12)
    assert "5,000 tokens" in text
