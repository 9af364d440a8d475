"""Issue 22, point 5: the audit's shortcut words need enough texts and carry an interval; the label column of an
upload defaults to the one holding the model's labels."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from explainers.audit.columns import label_column_guess
from explainers.audit.shortcuts import MIN_TEXTS, SHORTCUT_SHARE, judge, wilson


@pytest.mark.parametrize("k,n", [(0, 1), (1, 2), (3, 3), (7, 10), (40, 200), (200, 200)])
def test_wilson_interval_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_a_word_in_two_texts_is_no_shortcut_however_lopsided():
    """Before: with 10 texts, 'hate' in 2 texts, both of the other label, was flagged (100 %)."""
    few = judge({"word": "hate", "score": 0.8, "texts": 2, "other_label_share": 1.0})
    assert not few["shortcut"]  # too few texts, whatever the share
    # a large share on enough texts whose interval clears the threshold is flagged
    many = judge({"word": "film", "score": 0.5, "texts": 40, "other_label_share": 0.6})
    low, high = wilson(24, 40)
    assert many["shortcut"] and many["other_label_interval"] == pytest.approx([low, high])
    # enough texts, but the interval reaches below the threshold: not yet
    unsure = judge({"word": "so", "score": 0.5, "texts": MIN_TEXTS, "other_label_share": 0.4})
    assert not unsure["shortcut"] and unsure["other_label_interval"][0] < SHORTCUT_SHARE
    assert not judge({"word": "bad", "score": -0.1, "texts": 40, "other_label_share": 0.9})["shortcut"]


def test_the_label_column_defaults_to_the_one_holding_the_models_labels(tmp_path):
    data = tmp_path / "reviews.csv"
    data.write_text(
        "id,review,stars,verdict\n1,great film,5,Positive\n2,dull,1,negative\n3,fine,4,positive\n", encoding="utf-8"
    )
    assert label_column_guess(str(data), ["id", "review", "stars", "verdict"], ["negative", "positive"]) == "verdict"
    named = tmp_path / "numbers.csv"
    named.write_text("text,label\ngreat,1\ndull,0\n", encoding="utf-8")
    assert label_column_guess(str(named), ["text", "label"], ["negative", "positive"]) == "label"
    assert label_column_guess(str(named), ["text"], ["negative", "positive"]) is None
