"""Speculative decoding formulas (Leviathan et al. 2023; per-position acceptance) and draft networks, by hand."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcalc.calc import speculative as sd
from kvcalc.calc.drafts import METHODS, draft_network, eagle3_head, eagle_head, mtp_module
from kvcalc.errors import InputError
from kvcalc.report.spec import resolve_acceptance
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


def test_per_position_acceptance() -> None:
    # 1 + 0.8 + 0.8 x 0.6 + 0.8 x 0.6 x 0.4 = 1 + 0.8 + 0.48 + 0.192 = 2.472
    assert sd.expected_tokens_from_rates((0.8, 0.6, 0.4), 3) == pytest.approx(2.472)
    # fewer drafts than rates: gamma 2 stops at 1 + 0.8 + 0.48 = 2.28
    assert sd.expected_tokens_from_rates((0.8, 0.6, 0.4), 2) == pytest.approx(2.28)
    # the last rate repeats: [0.8, 0.5] at gamma 4: 1 + 0.8 + 0.4 + 0.2 + 0.1 = 2.5
    assert sd.expected_tokens_from_rates((0.8, 0.5), 4) == pytest.approx(2.5)
    # one constant rate is Leviathan's eq. 1
    assert sd.expected_tokens_from_rates((0.8,), 4) == pytest.approx(3.3616)


def test_vllm_unconditional_rates_to_conditional() -> None:
    # vLLM logs r_i = P(first i drafts accepted): 0.63, 0.28, 0.11 -> a = 0.63, 0.28/0.63, 0.11/0.28
    a = sd.conditional_from_unconditional((0.63, 0.28, 0.11))
    assert a == pytest.approx((0.63, 0.444444, 0.392857), rel=1e-5)
    # and the mean acceptance length is 1 + sum r_i = 2.02 either way
    assert sd.expected_tokens_from_rates(a, 3) == pytest.approx(2.02)
    with pytest.raises(InputError, match="must not increase"):
        sd.conditional_from_unconditional((0.5, 0.6))


def test_alpha_for_acceptance_length_inverts_eq_1() -> None:
    # E(0.8, 4) = 3.3616, so a measured 3.3616 at gamma 4 is alpha 0.8
    assert sd.alpha_for_acceptance_length(3.3616, 4) == pytest.approx(0.8, abs=1e-9)
    assert sd.alpha_for_acceptance_length(1.0, 3) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InputError, match="from 1 to gamma"):
        sd.alpha_for_acceptance_length(5.5, 4)


def test_speedup_with_c_005() -> None:
    # 3.3616 / (4 x 0.05 + 1) = 3.3616 / 1.2 = 2.80133
    assert sd.speedup(0.8, 4, 0.05) == pytest.approx(2.801333, rel=1e-6)


def test_step_and_end_to_end_speedup() -> None:
    # 2.472 tokens per 15 ms step against one per 10 ms: 2.472 x 10 / 15 = 1.648
    assert sd.step_speedup(2.472, 10e-3, 15e-3) == pytest.approx(1.648)
    # prefill 0.1 s, 100 tokens: plain 0.1 + 100 x 0.01 = 1.1 s; speculative 0.1 + 100 / 2 x 0.015 = 0.85 s
    assert sd.end_to_end_speedup(0.1, 100, 2.0, 10e-3, 15e-3) == pytest.approx(1.1 / 0.85)


def test_limits() -> None:
    assert sd.expected_tokens_per_pass(1.0, 4) == 5  # every draft accepted: gamma + 1
    assert sd.expected_tokens_per_pass(0.0, 4) == 1  # none: the target's own token
    assert sd.speedup(0.0, 3, 0.1) == pytest.approx(1 / 1.3)  # pure cost, no gain


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
        resolve_acceptance("medusa")
    with pytest.raises(InputError, match="acceptance rate"):
        sd.expected_tokens_from_rates((0.8, 1.5), 2)
    with pytest.raises(InputError, match="give one of"):
        resolve_acceptance("eagle", alpha=0.7, acceptance_length=2.0)


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 1), st.integers(1, 32), st.floats(0, 2))
def test_speedup_never_exceeds_gamma_plus_one(alpha: float, gamma: int, c: float) -> None:
    assert sd.speedup(alpha, gamma, c) <= gamma + 1 + 1e-9
    assert 1 - 1e-9 <= sd.expected_tokens_per_pass(alpha, gamma) <= gamma + 1 + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=6), st.integers(1, 12), st.integers(0, 5),
       st.floats(0, 1))
def test_expected_tokens_bounded_and_monotone(rates: list[float], gamma: int, which: int, bump: float) -> None:
    e = sd.expected_tokens_from_rates(rates, gamma)
    assert 1 - 1e-12 <= e <= gamma + 1 + 1e-12
    assert e <= sd.expected_tokens_from_rates(rates, gamma + 1) + 1e-12  # a longer draft never accepts less
    higher = list(rates)
    i = which % len(higher)
    higher[i] = max(higher[i], bump)
    assert e <= sd.expected_tokens_from_rates(higher, gamma) + 1e-12  # a better rate never accepts less


def test_default_acceptance_is_sourced_and_reproduces_its_measurement() -> None:
    # EAGLE-3 in vLLM (#20780) at K = 3: AL 2.79; rates 0.78, 0.74, 0.74:
    # 1 + 0.78 + 0.5772 + 0.427128 = 2.784328
    assert sd.expected_tokens_from_rates(METHODS["eagle3"].rates, 3) == pytest.approx(2.7843, abs=1e-4)
    assert "20780" in METHODS["eagle3"].rates_source
    # EAGLE-1 at K = 2: 1 + 0.73 + 0.73 x 0.51 = 2.1023 (measured 2.10)
    assert sd.expected_tokens_from_rates(METHODS["eagle"].rates, 2) == pytest.approx(2.1023)
    assert METHODS["mtp"].rates[0] == 0.85 and "85%" in METHODS["mtp"].rates_source
    assert METHODS["ngram"].proposal_rate == 0.30 and METHODS["eagle"].proposal_rate == 1.0
    assert resolve_acceptance("eagle").rates == METHODS["eagle"].rates
    assert resolve_acceptance("eagle", alpha=0.6).rates == (0.6,)
    assert resolve_acceptance("eagle", rates=(0.9, 0.5)).rates == (0.9, 0.5)
    # a measured mean of 3.3616 at gamma 4 is a constant 0.8
    assert resolve_acceptance("eagle", acceptance_length=3.3616, gamma=4).rates[0] == pytest.approx(0.8)


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
