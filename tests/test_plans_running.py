"""`fit`'s "requests running at once": min(whole requests of max_model_len the pool holds, max_num_seqs), with the
limit that binds named (issue #8: 1,024 "binding memory" was printed where 3 requests fit)."""

from __future__ import annotations

from kvcalc.calc.deploy import plan_deployment
from kvcalc.report.fit import fit_deployment
from kvcalc.sources.hardware import find_gpu
from kvcalc.sources.resolve import load_model
from kvcalc.spec.deployment import EngineSettings, Parallel


def test_long_context_is_bound_by_memory() -> None:
    # Llama-3.1-70B, 4 x H100, 131,072 tokens: a full-attention request holds 131,072 / 16 = 8,192 blocks, so
    # the whole requests are usable_blocks // 8,192 (3 of them: "3.54x"), far below max_num_seqs 1,024.
    model, gpu = load_model("llama-3.1-70b"), find_gpu("h100")
    plan = plan_deployment(model, gpu, Parallel(tp=4), EngineSettings(), context=131_072)
    report = fit_deployment(model, gpu, Parallel(tp=4), EngineSettings(), context=131_072, advise=False)
    cap = report.capacity
    assert cap.max_num_seqs == 1024
    assert cap.requests_at_max_model_len == plan.kv_pool.usable_blocks // 8192 == 3
    assert cap.binding == "memory"


def test_short_context_is_bound_by_max_num_seqs() -> None:
    # Qwen2.5-1.5B on one H100 at 2,048 tokens holds more than a thousand requests (28 KiB per token, ~70 GiB
    # of pool): the scheduler runs max_num_seqs = 1,024 of them, and says so.
    report = fit_deployment(load_model("qwen2.5-1.5b"), find_gpu("h100"), Parallel(), EngineSettings(),
                            context=2048, advise=False)
    cap = report.capacity
    assert cap.max_concurrency > 1024
    assert cap.requests_at_max_model_len == 1024
    assert cap.binding == "max_num_seqs"


def test_explicit_max_num_seqs_caps_running_requests() -> None:
    # --max-num-seqs 3 with room for more than 3 requests of 8,192 tokens: 3, bound by max_num_seqs.
    report = fit_deployment(load_model("llama-3.1-8b"), find_gpu("h100"), Parallel(),
                            EngineSettings(max_num_seqs=3), context=8192, advise=False)
    assert report.capacity.requests_at_max_model_len == 3
    assert report.capacity.binding == "max_num_seqs"
