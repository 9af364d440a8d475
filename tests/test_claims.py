"""The claim checker: planted wrong claims are caught, correct ones pass, prose without claims is not checkable."""

from __future__ import annotations

import pytest
from explainers.models.tasks import Target
from explainers.whatif.claims import SUPPORTED, UNCHECKABLE, UNSUPPORTED, Facts, check_narrative, split_sentences
from explainers.whatif.counterfactual import Counterfactual, Edit
from explainers.whatif.narration import AUDIENCES, narrate, template_narration

from explainers.explanation import Explanation
from explainers.methods import METHODS

WORDS = ["a", "gripping", "funny", "but", "overlong", "film", "with", "dull", "dialogue"]
# towards 'positive': gripping > funny > film > with > a; against: dull < overlong < dialogue < but
SCORES = [0.01, 0.50, 0.30, -0.02, -0.25, 0.05, 0.03, -0.40, -0.10]


def _explanation(method: str = "integrated_gradients", scores=SCORES, probabilities=None) -> Explanation:
    text = " ".join(WORDS)
    spans, start = [], 0
    for w in WORDS:
        spans.append((start, start + len(w)))
        start += len(w) + 1
    n = len(WORDS)
    return Explanation(
        method=method,
        model="hand",
        text=text,
        tokens=["[CLS]", *WORDS, "[SEP]"],
        token_ids=list(range(n + 2)),
        special=[True] + [False] * n + [True],
        word_of_token=[None, *range(n), None],
        words=list(WORDS),
        word_spans=spans,
        token_scores=[0.0, *scores, 0.0],
        word_scores=list(scores),
        target=Target("positive", class_index=1),
        target_prob=0.87,
        probabilities=probabilities or {"negative": 0.13, "positive": 0.87},
        params={},
        seed=None,
        properties=METHODS[method].properties(),  # what explain() attaches: title, signed, family
    )


FLIP = Counterfactual(
    "removal",
    "a funny but overlong film with dull dialogue",
    [Edit(1, "gripping")],
    "negative",
    0.31,
    -0.56,
    True,
    {"negative": 0.69, "positive": 0.31},
    "leave_one_out",
)
SWAP = Counterfactual(
    "substitution",
    "a gripping funny but overlong film with sharp dialogue",
    [Edit(7, "dull", "sharp")],
    "positive",
    0.95,
    0.08,
    False,
    {"negative": 0.05, "positive": 0.95},
    "embedding",
)


@pytest.fixture
def facts():
    return Facts([_explanation(), _explanation("attention", [abs(s) for s in SCORES])], [FLIP, SWAP])


def verdict(sentence: str, facts) -> str:
    verdicts = check_narrative(sentence, facts)
    assert len(verdicts) == 1, [v.sentence for v in verdicts]
    return verdicts[0].verdict


@pytest.mark.parametrize(
    "sentence",
    [
        "The model predicts 'positive' (87 %).",
        "The model predicts positive with a probability of 0.87.",
        "The model is about 90 % confident that the review is positive.",
        "The model does not predict 'negative'.",
        "Words pushing towards it most: 'gripping', 'funny', 'film'.",
        "Against: 'dull', 'overlong'.",
        "'gripping' pushes the model towards positive, while 'dull' pushes against it.",
        "The word 'dull' pushes towards 'negative'.",
        "The prediction is positive mainly because of gripping and funny.",
        "Removing 'gripping' flips the prediction to 'negative'.",
        "Replacing 'dull' with 'sharp' raises the positive probability to 95 %, but does not flip it.",
        "Attention weights give 'gripping' the most weight.",
    ],
)
def test_correct_claims_pass(sentence, facts):
    assert verdict(sentence, facts) == SUPPORTED


@pytest.mark.parametrize(
    "sentence, why",
    [
        ("The model predicts 'negative' (87 %).", "wrong label"),
        ("The model predicts 'positive' (78 %).", "wrong probability"),
        ("The model predicts positive with probability 0.8.", "wrong probability, decimal"),
        ("The model predicts 'gripping' with probability 87 %.", "a word is not a label"),
        ("Words pushing towards it most: 'gripping', 'dull'.", "dull pushes against"),
        ("'funny' pushes against the positive label.", "wrong sign"),
        ("The word 'gripping' pushes towards 'negative'.", "towards the other label = against the target"),
        ("The prediction is positive mainly because of 'dull'.", "dull is against positive"),
        ("Removing 'funny' flips the prediction.", "no verified counterfactual removes funny"),
        ("Removing 'gripping' and 'funny' flips the prediction to 'negative'.", "not the verified edit"),
        ("Replacing 'dull' with 'sharp' flips the prediction.", "verified, but not a flip"),
        ("Removing 'gripping' flips the prediction to 'positive'.", "the flip goes to negative"),
        ("According to Attention weights, 'gripping' pushes towards positive.", "attention is unsigned"),
    ],
)
def test_planted_wrong_claims_are_caught(sentence, why, facts):
    assert verdict(sentence, facts) == UNSUPPORTED, why


@pytest.mark.parametrize(
    "sentence",
    [
        "Attention is a view of what the model looks at, not an explanation of why it decided.",
        "Perturbation methods remove words and watch the answer move.",
        "(Integrated Gradients; convergence delta 0.002: small, the attribution adds up.)",
    ],
)
def test_prose_without_claims_is_not_checkable(sentence, facts):
    assert verdict(sentence, facts) == UNCHECKABLE


def test_a_sentence_with_one_wrong_claim_among_right_ones_is_unsupported(facts):
    [v] = check_narrative("The model predicts 'positive' (87 %) because of 'gripping', 'funny' and 'dull'.", facts)
    assert v.verdict == UNSUPPORTED
    failed = [c for c in v.claims if not c.holds]
    assert [c.text for c in failed] == ["'dull' pushes towards 'positive'"]
    assert sum(c.holds for c in v.claims) == 4  # the label, the probability, gripping, funny


def test_narrative_is_split_into_sentences_with_verdicts_each(facts):
    text = (
        "The model predicts 'positive' (87 %). 'dull' pushes towards positive. Models can be wrong.\n"
        "Removing 'gripping' flips the prediction to 'negative'."
    )
    assert split_sentences(text) == [
        "The model predicts 'positive' (87 %).",
        "'dull' pushes towards positive.",
        "Models can be wrong.",
        "Removing 'gripping' flips the prediction to 'negative'.",
    ]
    assert [v.verdict for v in check_narrative(text, facts)] == [SUPPORTED, UNSUPPORTED, UNCHECKABLE, SUPPORTED]


def test_a_method_named_in_the_sentence_is_the_one_checked():
    lime = _explanation("lime", [-s for s in SCORES])  # the opposite story
    facts = Facts([_explanation(), lime])
    assert verdict("'gripping' pushes towards positive.", facts) == SUPPORTED  # the primary (IG)
    assert verdict("LIME says 'gripping' pushes towards positive.", facts) == UNSUPPORTED
    assert verdict("LIME says 'dull' pushes towards positive.", facts) == SUPPORTED


def test_unverified_counterfactuals_support_nothing():
    unverified = Counterfactual(
        "llm", "a funny film", [Edit(1, "gripping")], "negative", 0.3, -0.5, True, verified=False
    )
    facts = Facts([_explanation()], [unverified])
    assert verdict("Removing 'gripping' flips the prediction.", facts) == UNSUPPORTED


@pytest.mark.parametrize("method", ["leave_one_out", "occlusion", "integrated_gradients", "attention", "lime"])
def test_template_narrations_never_hold_an_unsupported_sentence(tiny_bert, method):
    """The template is the fallback: everything it says must be backed by the numbers, for each audience."""
    from explainers.whatif.counterfactual import minimal_flips

    from explainers.methods import explain

    text = "a gripping , funny and beautifully acted film ."
    exp = explain(tiny_bert, text, method, n_samples=200) if method == "lime" else explain(tiny_bert, text, method)
    # a threshold halfway to the lowest single-word removal: the search finds a verified flip for sure
    lowest = minimal_flips(tiny_bert, text, threshold=1e-9, max_size=1).closest[0].target_prob
    flips = minimal_flips(tiny_bert, text, threshold=(lowest + exp.target_prob) / 2).flips
    assert flips
    for audience in AUDIENCES:
        narration = narrate(exp, audience, counterfactuals=flips)
        assert narration.source == "template"
        assert narration.text == template_narration(exp, audience, flips)
        assert narration.counts["unsupported"] == 0, [v.to_dict() for v in narration.verdicts]
        assert narration.counts["supported"] >= 1


class _Drafts:
    name = "fake-llm"

    def __init__(self, reply):
        self.reply = reply

    def generate(self, prompts):
        if isinstance(self.reply, Exception):
            raise self.reply
        return [self.reply for _ in prompts]


def test_a_drafted_narration_is_checked_and_a_failing_drafter_falls_back_to_the_template():
    exp = _explanation()
    drafted = narrate(
        exp,
        "analyst",
        _Drafts("The model predicts 'positive' (87 %). It likes 'dull' because 'dull' pushes towards positive."),
    )
    assert drafted.source == "fake-llm"
    assert [v.verdict for v in drafted.verdicts] == [SUPPORTED, UNSUPPORTED]
    failed = narrate(exp, "stakeholder", _Drafts(RuntimeError("out of memory")))
    assert failed.source == "template" and "out of memory" in failed.fallback_reason
    assert failed.text == template_narration(exp, "stakeholder")
    empty = narrate(exp, "teaching", _Drafts("  "))
    assert empty.source == "template" and empty.fallback_reason


def test_template_flip_sentences_are_checked_both_ways():
    """A threshold flip keeps its label: the template says the probability fell, and the checker agrees."""
    exp = _explanation()
    by_threshold = Counterfactual(
        "removal",
        "a funny but overlong film with dull dialogue",
        [Edit(1, "gripping")],
        "positive",
        0.61,
        -0.26,
        True,
        {"negative": 0.39, "positive": 0.61},
    )
    text = template_narration(exp, "analyst", [by_threshold])
    assert "Removing 'gripping' lowers the probability of 'positive' to p = 0.610 (checked with the model)." in text
    facts = Facts([exp], [by_threshold])
    assert verdict("Removing 'gripping' lowers the probability of 'positive' to p = 0.610.", facts) == SUPPORTED
    assert verdict("Removing 'gripping' lowers the probability of 'positive' to p = 0.450.", facts) == UNSUPPORTED
    text = template_narration(exp, "analyst", [FLIP])
    assert "Removing 'gripping' flips the prediction to 'negative' (checked with the model)." in text
