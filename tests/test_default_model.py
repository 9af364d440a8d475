"""The built-in default model, `sentiment`, through every method and the faithfulness suite."""

import numpy as np
import pytest
from explainers.metrics.faithfulness import evaluate_many, rank_explanations

from explainers.methods import METHODS, explain

pytestmark = pytest.mark.slow

PATH_OR_PERTURBATION = {
    "integrated_gradients",
    "gradient_shap",
    "layer_conductance",
    "occlusion",
    "leave_one_out",
    "shapley_sampling",
    "kernel_shap",
    "lime",
}
REVIEW = "a gripping , funny and beautifully acted film , though the ending is far too long ."


@pytest.fixture(scope="module")
def sentiment():
    from explainers.models.loading import load_model

    return load_model("sentiment", device="cpu")


def test_it_reads_sentiment(sentiment):
    for text, label in [
        ("a wonderful , moving and funny film .", "positive"),
        ("a dull , lifeless mess that wastes its cast .", "negative"),
    ]:
        dist = sentiment.distribution(sentiment.encode(text))
        assert max(dist, key=dist.get) == label and dist[label] > 0.8


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_on_the_default_model(sentiment, method):
    exp = explain(sentiment, REVIEW, method, target="positive", seed=1)
    scores = exp.scores("word")
    assert np.all(np.isfinite(scores)) and np.abs(scores).sum() > 0
    if method in PATH_OR_PERTURBATION:
        # what a faithful method must find: praise pushes towards "positive". Single-gradient
        # methods (saliency, input x gradient, gradient x activation, DeepLift's fallback) read the
        # local slope of a saturated p = 0.99 and may miss it: that is their known weakness.
        praise = sum(scores[exp.words.index(w)] for w in ("funny", "beautifully"))
        assert praise > 0, f"{method}: {dict(zip(exp.words, np.round(scores, 4)))}"


def test_faithfulness_suite_on_the_default_model(sentiment):
    exps = [
        explain(sentiment, REVIEW, m, target="positive") for m in ("integrated_gradients", "occlusion", "attention")
    ]
    reports = evaluate_many(sentiment, exps)
    by_method = {r.method: r.values for r in reports}
    # removing the tokens IG finds most positive must lower p(positive)
    assert by_method["integrated_gradients"]["comprehensiveness"] > 0.05
    ranking = [m for m, _ in rank_explanations(reports)]
    assert ranking[-1] == "attention", "attention weights should not beat attributions on faithfulness"
