"""Colour by class in the heatmap (fixed colours per label) and the phone-friendly LIME bars: checked
against colours and positions computed here from the scores."""

from __future__ import annotations

import dataclasses
import html
import re

import pytest
from explainers.models.tasks import Target

from components import charts
from components.heatmap import (
    CLASS_COLOURS,
    NEGATIVE,
    OTHER_LABELS,
    POSITIVE,
    class_colours,
    heatmap_html,
    legend_html,
    mix,
)
from explainers.methods import explain

TEXT = "a gripping , funny film ."


def backgrounds(markup: str) -> list[tuple[int, int, int]]:
    return [
        tuple(int(h[i : i + 2], 16) for i in (0, 2, 4))
        for h in re.findall(r'<span style="background:#([0-9a-f]{6})', markup)
    ]


@pytest.fixture(scope="module")
def exp(tiny_bert):
    return explain(tiny_bert, TEXT, "leave_one_out")


def with_scores(exp, scores, target):
    return dataclasses.replace(exp, word_scores=[float(s) for s in scores], target=target)


@pytest.mark.parametrize("explained", [0, 1])
def test_each_label_keeps_its_colour_whichever_is_explained(exp, explained):
    labels = list(exp.probabilities)
    scores = [0.5, -1.0, 0.0, 0.25, -0.5, 0.1]
    shown = with_scores(exp, scores, Target(labels[explained], explained))
    scale = 1.0
    got = backgrounds(heatmap_html(shown, "word", scale=scale, by_class=True))
    mine, other = CLASS_COLOURS[explained], CLASS_COLOURS[1 - explained]
    expected = [mix(mine if s > 0 else other, abs(s) / scale) if s else (255, 255, 255) for s in scores]
    assert got == expected
    # towards/away (the default) keeps red and blue relative to the explained label
    relative = backgrounds(heatmap_html(shown, "word", scale=scale))
    assert relative == [mix(POSITIVE if s > 0 else NEGATIVE, abs(s)) if s else (255, 255, 255) for s in scores]
    legend = html.unescape(legend_html(shown, scale, by_class=True))
    assert f"'{labels[explained]}'" in legend and f"'{labels[1 - explained]}'" in legend
    assert "colours fixed per label" in legend


def test_a_word_pushing_towards_positive_has_one_colour_in_both_views(exp):
    """The point of colouring by class: 'positive' evidence looks the same whichever label is explained."""
    labels = list(exp.probabilities)
    for_0 = with_scores(exp, [-1.0] + [0.0] * 5, Target(labels[0], 0))  # against label 0 = towards label 1
    for_1 = with_scores(exp, [1.0] + [0.0] * 5, Target(labels[1], 1))  # towards label 1
    first = [backgrounds(heatmap_html(e, "word", scale=1.0, by_class=True))[0] for e in (for_0, for_1)]
    assert first[0] == first[1] == CLASS_COLOURS[1]


def test_no_class_colours_for_continuations_unsigned_methods_or_many_labels(exp, tiny_gpt2, tiny_bert):
    lm = explain(tiny_gpt2, "The capital of France is", "leave_one_out")
    assert class_colours(lm) is None  # a continuation is not one of a fixed set of labels
    assert class_colours(explain(tiny_bert, TEXT, "saliency")) is None  # unsigned: stays violet
    three = dataclasses.replace(exp, probabilities={"a": 0.2, "b": 0.5, "c": 0.3}, target=Target("b", 1))
    colours = class_colours(three)
    assert colours.towards == CLASS_COLOURS[1] and colours.away == OTHER_LABELS
    contrast = dataclasses.replace(three, target=Target("b", 1, contrast=Target("c", 2)))
    assert class_colours(contrast).away == CLASS_COLOURS[2]


def test_lime_bars_leave_punctuation_out_and_print_values_right_of_each_bar(exp):
    scores = [0.1, -0.3, 0.9, 0.2, 0.05, 0.8]  # "," (0.9) and "." (0.8) are the two largest
    shown = with_scores(exp, scores, exp.target)
    figure = charts.word_bars(shown, top_k=3)
    bars, values = figure.data
    assert list(bars.y) == ["gripping", "funny", "a"] and list(bars.x) == [-0.3, 0.2, 0.1]
    assert list(values.x) == [0.0, 0.2, 0.1]  # a negative bar's value sits right of zero, not over "gripping"
    assert list(values.text) == ["-0.3", "+0.2", "+0.1"]
    assert "punctuation left out (2)" in figure.layout.title.subtitle.text
    low, high = figure.layout.xaxis.range
    assert high >= 0.2 + 0.38 * 0.5 - 1e-9 and low < -0.3  # room for the values on the right
    everything = charts.word_bars(shown, top_k=3, punctuation=True)
    assert list(everything.data[0].y) == [",", ".", "gripping"] and not everything.layout.title.subtitle.text


def test_charts_keep_only_the_image_button(exp):
    figure = charts.probability_chart(exp.probabilities, exp.target.label)
    assert set(figure.layout.modebar.remove) == set(charts.MODEBAR_REMOVED)
    assert "toImage" not in charts.MODEBAR_REMOVED
