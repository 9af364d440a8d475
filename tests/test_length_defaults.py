"""Parameter defaults chosen by the input's length (explainers/length_defaults.py): the rules, their use by
explain() and the cost estimate, a value the user sets winning, and LIME's kernel width reaching LIME."""

from __future__ import annotations

import numpy as np
import pytest
from explainers.methods.length_defaults import SHORT_TOKENS, params_for_length

from explainers.methods import explain, get_method

SHORT = "a gripping , funny film"  # 5 words, 7 tokens with [CLS] and [SEP]
LONG = " ".join(["the film is long but the actors are wonderful ."] * 3)


def test_the_rules_pick_by_length_and_fall_back_without_one():
    assert params_for_length("occlusion", 5) == {"window": 1}
    assert params_for_length("occlusion", SHORT_TOKENS + 1) == {"window": 3}
    assert params_for_length("occlusion", None) == {"window": 3}  # unknown length: the old default
    assert params_for_length("lime", 16)["kernel_width"] < params_for_length("lime", 200)["kernel_width"]
    assert params_for_length("integrated_gradients", 5) == {}


def test_validate_fills_length_defaults_and_an_explicit_value_wins():
    occlusion = get_method("occlusion")
    assert occlusion.validate({}, 5)["window"] == 1
    assert occlusion.validate({"window": 3}, 5)["window"] == 3  # the user's 3 is kept, although 3 is "usual"
    assert occlusion.validate({})["window"] == 3
    # the cost follows the window actually used: 5 tokens, window 1 -> 5 windows; window 3 -> 3
    assert occlusion.estimate(5).forward_rows == 5
    assert occlusion.estimate(5, {"window": 3}).forward_rows == 3


def test_explain_uses_window_one_on_a_short_text(tiny_bert):
    short = explain(tiny_bert, SHORT, "occlusion")
    assert short.encoded.n_tokens <= SHORT_TOKENS and short.params["window"] == 1
    # window 1 = each token's own drop when replaced by the baseline token (computed here directly)
    ids = short.token_ids
    for i in short.encoded.content_positions:
        masked = ids[:i] + [tiny_bert.baseline_token_id()] + ids[i + 1 :]
        p_full, p_masked = tiny_bert.score_ids([ids, masked], short.target)
        assert short.token_scores[i] == pytest.approx(p_full - p_masked, abs=1e-6)
    long = explain(tiny_bert, LONG, "occlusion")
    assert long.params["window"] == 3


def test_lime_kernel_width_reaches_lime(tiny_bert):
    """Our LIME with a kernel width gives what the lime library gives, called directly with that width."""
    from lime.lime_text import LimeTextExplainer

    width = 7.0
    exp = explain(tiny_bert, SHORT, "lime", n_samples=120, kernel_width=width, seed=0)
    enc = exp.encoded
    explainer = LimeTextExplainer(
        class_names=list(tiny_bert.labels),
        split_expression=lambda s: [s[a:b] for a, b in enc.word_spans],
        bow=False,
        mask_string="",
        kernel_width=width,
        random_state=0,
    )
    label = exp.target.class_index
    reference = explainer.explain_instance(
        SHORT,
        lambda texts: tiny_bert.predict_proba(list(texts), exp.target),
        labels=(label,),
        num_features=len(enc.words),
        num_samples=120,
    )
    expected = np.zeros(len(enc.words))
    for position, weight in reference.local_exp[label]:
        expected[position] = weight
    np.testing.assert_allclose(exp.word_scores, expected, atol=1e-9)
    assert exp.extras["surrogate_r2"] == pytest.approx(reference.score)


def test_lime_default_kernel_width_follows_the_word_count(tiny_bert):
    exp = explain(tiny_bert, SHORT, "lime", n_samples=60)
    assert exp.params["kernel_width"] == params_for_length("lime", len(exp.words))["kernel_width"]
    same = explain(tiny_bert, SHORT, "lime", n_samples=60, kernel_width=exp.params["kernel_width"])
    assert same.word_scores == exp.word_scores
