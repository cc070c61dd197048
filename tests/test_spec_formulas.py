"""Speculative decoding formulas (Leviathan et al. 2023) and draft networks, worked by hand."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.calc import speculative as sd
from kvcalc.calc.drafts import METHODS, draft_network, eagle3_head, eagle_head, mtp_module
from kvcalc.errors import InputError
from kvcalc.report.spec import RatioTimer, resolve_alpha, speculation
from kvcalc.sources.hf_config import model_from_config
from kvcalc.sources.resolve import load_model

# Llama-2-7B (meta-llama/Llama-2-7b-hf config.json): 32 layers, hidden 4096, 32 heads (MHA), MLP 11008,
# vocab 32000.
LLAMA_2_7B = {
    "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 32, "intermediate_size": 11008, "vocab_size": 32000, "torch_dtype": "float16",
    "max_position_embeddings": 4096,
}


def test_expected_tokens_alpha_08_gamma_4() -> None:
    # (1 - 0.8^5) / (1 - 0.8) = (1 - 0.32768) / 0.2 = 3.3616
    assert sd.expected_tokens_per_pass(0.8, 4) == pytest.approx(3.3616)


def test_speedup_with_c_005() -> None:
    # 3.3616 / (4 x 0.05 + 1) = 3.3616 / 1.2 = 2.80133
    assert sd.speedup(0.8, 4, 0.05) == pytest.approx(2.801333, rel=1e-6)


def test_limits() -> None:
    assert sd.expected_tokens_per_pass(1.0, 4) == 5  # every draft accepted: gamma + 1
    assert sd.expected_tokens_per_pass(0.0, 4) == 1  # none: the target's own token
    assert sd.speedup(0.0, 3, 0.1) == pytest.approx(1 / 1.3)  # pure cost, no gain


def test_step_speedup_is_leviathan_when_verification_costs_one_step() -> None:
    # t_target 10 ms, t_draft 0.5 ms (c = 0.05), t_verify 10 ms: E / (gamma c + 1)
    assert sd.step_speedup(0.8, 4, 10e-3, 0.5e-3, 10e-3) == pytest.approx(sd.speedup(0.8, 4, 0.05))
    # a verification twice as dear: 3.3616 x 10 / (4 x 0.5 + 20) = 1.528
    assert sd.step_speedup(0.8, 4, 10e-3, 0.5e-3, 20e-3) == pytest.approx(3.3616 * 10 / 22)


def test_best_gamma_by_hand() -> None:
    # alpha 0.8, c 0.05: speedup(g) = (1 - 0.8^(g+1)) / 0.2 / (1 + 0.05 g)
    # g=6: 3.9514 / 1.30 = 3.0395; g=7: 4.1611 / 1.35 = 3.0823; g=8: 4.3289 / 1.40 = 3.0921;
    # g=9: 4.4631 / 1.45 = 3.0780: best 8
    gamma, value = sd.best_gamma(lambda g: sd.speedup(0.8, g, 0.05))
    assert gamma == 8 and value == pytest.approx(4.32891 / 1.4, rel=1e-5)


def test_crossover_batch() -> None:
    # speedup(B) = 3 - B / 10 drops below 1 at B = 21
    assert sd.crossover_batch(lambda b: 3 - b / 10, 1024) == 21
    assert sd.crossover_batch(lambda b: 2.0, 64) is None
    assert sd.crossover_batch(lambda b: 0.5, 64) == 1
    assert sd.crossover_batch(lambda b: 3 - b / 10, 20) is None


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="alpha"):
        sd.expected_tokens_per_pass(1.2, 4)
    with pytest.raises(InputError, match="cost-ratio"):
        sd.speedup(0.7, 4, -1)
    with pytest.raises(InputError, match="unknown --method"):
        resolve_alpha("medusa", None)


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 1), st.integers(1, 32), st.floats(0, 2))
def test_speedup_never_exceeds_gamma_plus_one(alpha: float, gamma: int, c: float) -> None:
    assert sd.speedup(alpha, gamma, c) <= gamma + 1 + 1e-9
    assert 1 - 1e-9 <= sd.expected_tokens_per_pass(alpha, gamma) <= gamma + 1 + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 0.99), st.floats(0, 0.99), st.integers(1, 32))
def test_expected_tokens_increase_in_alpha_and_gamma(a: float, b: float, gamma: int) -> None:
    lo, hi = sorted((a, b))
    assert sd.expected_tokens_per_pass(lo, gamma) <= sd.expected_tokens_per_pass(hi, gamma) + 1e-12
    assert sd.expected_tokens_per_pass(a, gamma) <= sd.expected_tokens_per_pass(a, gamma + 1) + 1e-12


def test_default_alphas_are_sourced() -> None:
    assert METHODS["mtp"].alpha == 0.85 and "85%" in METHODS["mtp"].alpha_source
    assert METHODS["eagle3"].alpha == 0.79 and "2503.01840" in METHODS["eagle3"].alpha_source
    assert resolve_alpha("eagle", None) == (0.71, METHODS["eagle"].alpha_source)
    assert resolve_alpha("eagle", 0.6) == (0.6, "--alpha")


def test_ratio_timer_reproduces_leviathan() -> None:
    at, gammas, _batches, cross, _ = speculation(RatioTimer(0.05), alpha=0.8, gamma=4, batch=1, max_batch=64)
    assert at.speedup == pytest.approx(2.801333, rel=1e-6)
    assert gammas[3].expected_tokens_per_pass == pytest.approx(3.3616)
    assert cross is None  # verification never gets dearer in Leviathan's model


def test_eagle_head_matches_published_size() -> None:
    # one Llama-2-7B layer: 4 x 4096^2 (attention) + 3 x 4096 x 11008 (MLP) + 2 norms x 4096, + FC 2 x 4096^2
    # = 67,108,864 + 135,266,304 + 8,192 + 33,554,432 = 235,937,792: "0.24B" (SafeAILab/EAGLE README)
    head = eagle_head(model_from_config(LLAMA_2_7B, model_id="llama-2-7b"))
    assert head.extra_params == 235_937_792
    assert head.model.num_layers == 1 and head.model.global_tensors[0].shape == (32000, 4096)


def test_eagle3_head_shape() -> None:
    head = eagle3_head(load_model("llama-3.1-8b"))
    # q (4096 x 8192) + k, v (1024 x 8192 each) + o (4096^2) + MLP 3 x 4096 x 14336 + norms 8192 + 4096
    # + FC 4096 x 12288 + head 32,000 x 4096
    expected = (4096 * 8192 + 2 * 1024 * 8192 + 4096**2 + 3 * 4096 * 14336 + 8192 + 4096 + 4096 * 12288
                + 32000 * 4096)
    assert head.extra_params == expected == 424_685_568


def test_mtp_needs_mtp_layers() -> None:
    with pytest.raises(InputError, match="no MTP layers"):
        mtp_module(load_model("llama-3.1-8b"))
    mtp = mtp_module(load_model("deepseek-v3"))
    assert mtp.model.layers[0].kind == "mla" and mtp.model.layers[0].mlp is not None
    assert 11e9 < mtp.extra_params < 12e9  # one MoE layer + eh_proj; embedding and head shared
    assert draft_network("ngram", load_model("llama-3.1-8b")) is None
