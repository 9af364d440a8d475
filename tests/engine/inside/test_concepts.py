"""Concepts: sets, pooled activations, probes, directions, TCAV and steering, each against an independent
computation (transformers' hidden states, scikit-learn and scipy called directly, hooks written here)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from explainers.errors import InputError
from explainers.inside import concepts, probes, steering, tcav
from explainers.inside.concepts import ConceptSets

WORDS = "film plot cast story music scene actor ending script pace humour camera".split()
GOOD = "great superb moving brilliant lovely fine".split()
BAD = "awful dull boring clumsy weak flat".split()


def varied(words_a, words_b, n):
    """n texts per set, each a different mix of words (so that a probe has something to learn and to miss)."""
    rng = np.random.default_rng(1)
    a = [f"the {rng.choice(WORDS)} was {rng.choice(words_a)} and the {rng.choice(WORDS)} {i}" for i in range(n)]
    b = [f"the {rng.choice(WORDS)} was {rng.choice(words_b)} and the {rng.choice(WORDS)} {i}" for i in range(n)]
    return a, b


def hidden_states(handle, texts):
    """Per text: transformers' own hidden states (layers, T, H), no whybox hooks."""
    out = []
    for t in texts:
        with torch.no_grad():
            hs = handle.model(input_ids=torch.tensor([handle.encode(t).ids]), output_hidden_states=True).hidden_states
        out.append(torch.stack([h[0] for h in hs]).float().numpy())
    return out


# ---- sets ------------------------------------------------------------------------------------------------


def test_bad_sets_get_one_clear_message():
    with pytest.raises(InputError, match="is empty"):
        ConceptSets.from_lines("", "a\nb")
    with pytest.raises(InputError, match="has 1 text"):
        ConceptSets.from_lines("only one", "a\nb")
    with pytest.raises(InputError, match="in both sets"):
        ConceptSets.from_lines("same\nother", "same\nthird")
    with pytest.raises(InputError, match="as many"):
        ConceptSets(("a", "b", "c"), ("d", "e"), paired=True).checked()
    with pytest.raises(InputError, match="No rows labelled 'neutral'"):
        ConceptSets.from_table(["x", "y"], ["pos", "neg"], "pos", "neutral")


def test_pairs_stay_pairs_and_sources():
    sets = ConceptSets.from_substitution(
        ["he liked it", "he left early", "the film ended", "his plan failed"], "he -> she, his -> her"
    )
    assert sets.paired and sets.a == ("he liked it", "he left early", "his plan failed")
    assert sets.b == ("she liked it", "she left early", "her plan failed")
    table = ConceptSets.from_table(["a", "b", "c", "d", "e"], [1, 0, 1, 0, 2], 1, 0)
    assert (table.a, table.b) == (("a", "c"), ("b", "d"))
    builtin = ConceptSets.from_builtin(limit=5)
    assert len(builtin.a) == len(builtin.b) == 5 and builtin.name_a == "positive"
    from explainers.models.builtin import sentiment_splits

    positives = {t for t, y in sentiment_splits()[1] if y == 1}
    assert set(builtin.a) <= positives and not set(builtin.b) & positives


# ---- activations ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "pooling"), [("tiny_bert", "mean"), ("tiny_bert", "first"), ("tiny_gpt2", "last")])
def test_pooled_activations_equal_transformers_hidden_states(request, fixture, pooling):
    handle = request.getfixturevalue(fixture)
    a, b = varied(GOOD, BAD, 3)
    sets = ConceptSets(tuple(a), tuple(b))
    layers = [0, 1]
    acts = concepts.concept_activations(handle, sets, layers, pooling)
    assert acts.pooling == pooling
    for i, hs in enumerate(hidden_states(handle, a + b)):
        pick = {"mean": hs.mean(axis=1), "first": hs[:, 0], "last": hs[:, -1]}[pooling]
        got = (acts.a if i < 3 else acts.b)[:, i % 3]
        np.testing.assert_allclose(got, pick[layers], atol=1e-5, rtol=1e-4)


def test_default_pooling_is_said_and_a_missing_layer_is_an_input_error(tiny_bert, tiny_gpt2):
    sets = ConceptSets(("a b", "c d"), ("e f", "g h"))
    assert concepts.concept_activations(tiny_gpt2, sets, [0]).pooling == "last"
    assert "mean" in concepts.concept_activations(tiny_bert, sets, [0]).pooling_text
    with pytest.raises(InputError, match="does not exist"):
        concepts.concept_activations(tiny_bert, sets, [3])
    with pytest.raises(InputError, match="Unknown pooling"):
        concepts.concept_activations(tiny_bert, sets, [0], pooling="max")


# ---- probes ------------------------------------------------------------------------------------------------


def test_probe_accuracy_and_control_equal_scikit_learn_run_directly(tiny_bert):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, b = varied(GOOD, BAD, 15)
    acts = concepts.concept_activations(tiny_bert, ConceptSets(tuple(a), tuple(b)))
    report = probes.probe_layers(acts, folds=5, seed=3)
    hs = hidden_states(tiny_bert, a + b)
    y = np.r_[np.ones(15, int), np.zeros(15, int)]
    for probe in report.layers:
        x = np.stack([h[probe.layer].mean(axis=0) for h in hs])
        cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=3)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        groups = np.arange(30)
        right = (cross_val_predict(model, x, y, groups=groups, cv=cv) == y).mean()
        rng = np.random.default_rng(3)
        shuffles = [rng.permutation(y) for _ in range(5)]
        control = np.mean([(cross_val_predict(model, x, s, groups=groups, cv=cv) == s).mean() for s in shuffles])
        assert probe.accuracy == pytest.approx(right) and probe.control == pytest.approx(control)
        assert probe.selectivity == pytest.approx(right - control)
        assert probe.interval[0] <= probe.accuracy <= probe.interval[1]
    assert report.notes == []  # 30 texts: no small-set warning
    small = probes.probe_layers(concepts.concept_activations(tiny_bert, ConceptSets(tuple(a[:4]), tuple(b[:4]))))
    assert "too wide" in small.notes[0]


def test_wilson_interval_matches_statsmodels_formula():
    low, high = probes.wilson(8, 10)
    # Wilson (1927) for 8/10 at 95 %: 0.4902 .. 0.9433 (textbook value)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)


# ---- a planted concept -------------------------------------------------------------------------------------


@contextlib.contextmanager
def planted(handle, marker: int, vector: torch.Tensor):
    """The model with a concept planted by hand: block 1's output gets `vector` at the last position of
    every row that ends with the `marker` token."""

    def hook(_module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        ids = planted.ids
        rows = [i for i in range(hidden.shape[0]) if ids[i][planted.lengths[i] - 1] == marker]
        hidden = hidden.clone()
        for i in rows:
            hidden[i, planted.lengths[i] - 1] += vector
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    def remember(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        planted.ids = ids.tolist()
        planted.lengths = mask.sum(1).tolist() if mask is not None else [ids.shape[1]] * ids.shape[0]

    pre = handle.model.register_forward_pre_hook(remember, with_kwargs=True)
    post = handle.blocks[0].register_forward_hook(hook)
    try:
        yield
    finally:
        pre.remove()
        post.remove()


def test_a_planted_direction_is_found_by_probe_and_directions_at_its_layer(tiny_gpt2):
    tok = tiny_gpt2.tokenizer
    x_id, y_id = (
        tok(" Paris", add_special_tokens=False)["input_ids"],
        tok(" Rome", add_special_tokens=False)["input_ids"],
    )
    assert len(x_id) == len(y_id) == 1
    vector = torch.randn(32, generator=torch.Generator().manual_seed(5)) * 20
    stems = [f"The capital of {w} is" for w in ["France", "Italy", "the film", "the plot", "a year", "the best"]]
    stems += [f"{s} one" for s in stems]
    sets = ConceptSets.from_pairs([(s + " Paris", s + " Rome") for s in stems])
    with planted(tiny_gpt2, x_id[0], vector):
        acts = concepts.concept_activations(tiny_gpt2, sets)
    unit = (vector / vector.norm()).numpy()
    for method in ("mean_diff", "pca_diff"):
        report = concepts.directions(acts, method)
        cos = {d.layer: float(d.unit @ unit) for d in report.layers}
        assert cos[1] >= 0.9, (method, cos)
        assert abs(cos[0]) < 0.9  # before the block that plants it, the direction is not there
        assert report.at(1).auroc == 1.0
    assert probes.probe_layers(acts).layers[1].accuracy == 1.0


def test_directions_against_numpy_and_sklearn(tiny_bert):
    from sklearn.decomposition import PCA
    from sklearn.metrics import roc_auc_score

    a, b = varied(GOOD, BAD, 10)
    acts = concepts.concept_activations(tiny_bert, ConceptSets(tuple(a), tuple(b), paired=True), [1])
    xa, xb = acts.layer(1)
    train, test = concepts.holdout_split(10, 0)
    mean = concepts.directions(acts, "mean_diff").at(1)
    gap = xa[train].mean(0) - xb[train].mean(0)
    np.testing.assert_allclose(mean.vector, gap, rtol=1e-5)
    truth = np.r_[np.ones(len(test)), np.zeros(len(test))]
    unit = gap / np.linalg.norm(gap)
    assert mean.auroc == pytest.approx(roc_auc_score(truth, np.r_[xa[test] @ unit, xb[test] @ unit]))
    d = xa[train] - xb[train]
    cos = (d / np.linalg.norm(d, axis=1, keepdims=True)) @ (d / np.linalg.norm(d, axis=1, keepdims=True)).T
    assert mean.consistency == pytest.approx((cos.sum() - len(d)) / (len(d) * (len(d) - 1)), rel=1e-5)
    pc = PCA(n_components=1).fit(np.r_[d, -d]).components_[0]  # both pair orders: the axis through zero
    pca = concepts.directions(acts, "pca_diff").at(1)
    assert abs(float(pca.unit @ pc)) == pytest.approx(1.0, abs=1e-5)
    assert float((xa[train] - xb[train]).mean(0) @ pca.unit) > 0  # signed toward A
    with pytest.raises(InputError, match="needs pairs"):
        concepts.directions(concepts.concept_activations(tiny_bert, ConceptSets(tuple(a), tuple(b)), [1]), "pca_diff")


# ---- TCAV ------------------------------------------------------------------------------------------------


def test_tcav_scores_and_p_value_equal_a_hand_computation(tiny_bert):
    from scipy.stats import ttest_ind
    from sklearn.linear_model import LogisticRegression

    concept, random = varied(GOOD, BAD, 8)[0], [f"some {w} text {i}" for i, w in enumerate(WORDS + WORDS[:4])]
    class_texts = varied(["nice", "good"], ["bad"], 6)[0] + varied(["bad"], ["poor"], 6)[0]
    layer, runs = 1, 6
    result = tcav.tcav(tiny_bert, concept, random, class_texts, "positive", layer, runs=runs, seed=2)

    # by hand: activations from transformers' hidden states, gradients from a hook written here
    acts = {t: h[layer].mean(axis=0) for t, h in zip(concept + random, hidden_states(tiny_bert, concept + random))}
    grads = []
    for text in class_texts:
        kept = {}

        def hook(_m, _a, output, kept=kept):
            hidden = (output[0] if isinstance(output, tuple) else output).detach().requires_grad_(True)
            kept["h"] = hidden
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        handle = tiny_bert.blocks[layer - 1].register_forward_hook(hook)
        try:
            logits = tiny_bert.model(input_ids=torch.tensor([tiny_bert.encode(text).ids])).logits
            logits[0, tiny_bert.labels.index("positive")].backward()
        finally:
            handle.remove()
        grads.append(kept["h"].grad[0].sum(0).numpy())
    grads = np.stack(grads)
    scores, random_scores = [], []
    for run, (c, r, r2) in enumerate(tcav.splits(len(concept), len(random), runs, 2)):
        for pos, out in (([acts[concept[i]] for i in c], scores), ([acts[random[i]] for i in r2], random_scores)):
            neg = [acts[random[i]] for i in r]
            w = (
                LogisticRegression(max_iter=2000, random_state=2 + run)
                .fit(np.stack(pos + neg), np.r_[np.ones(len(pos)), np.zeros(len(neg))])
                .coef_[0]
            )
            out.append(np.mean(grads @ w > 0))
    np.testing.assert_allclose(result.scores, scores)
    np.testing.assert_allclose(result.random_scores, random_scores)
    expected = ttest_ind(scores, random_scores).pvalue
    assert result.p_value == pytest.approx(expected) and result.significant == (expected < 0.05)
    assert ("not significant" in result.verdict) == (expected >= 0.05)


def test_tcav_bad_input(tiny_bert, tiny_gpt2):
    with pytest.raises(InputError, match="at least 2 concept texts and 4 random"):
        tcav.tcav(tiny_bert, ["a b"], ["c", "d", "e", "f"], ["x"], "positive", 1)
    with pytest.raises(InputError, match="both concept and random"):
        tcav.tcav(tiny_bert, ["a", "b"], ["a", "d", "e", "f"], ["x"], "positive", 1)
    with pytest.raises(InputError, match="does not exist"):
        tcav.tcav(tiny_bert, ["a", "b"], ["c", "d", "e", "f"], ["x"], "positive", 7)
    with pytest.raises(InputError, match="classifier"):
        tcav.tcav(tiny_gpt2, ["a", "b"], ["c", "d", "e", "f"], ["x"], "Paris", 1)


# ---- steering ----------------------------------------------------------------------------------------------


def hand_log_odds(handle, prompts, layer, vector, logodds):
    """The metric of each prompt with `vector` added at every position after block `layer`, by a hook here."""

    def hook(_m, _a, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden + vector
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    hooked = handle.blocks[layer - 1].register_forward_hook(hook)
    try:
        with torch.no_grad():
            return np.array(
                [logodds(handle.model(input_ids=torch.tensor([handle.encode(p).ids])).logits) for p in prompts]
            )
    finally:
        hooked.remove()


def test_steering_a_language_model_moves_the_metric_by_the_hand_computed_amount(tiny_gpt2):
    tok = tiny_gpt2.tokenizer
    paris, rome = (tok(w, add_special_tokens=False)["input_ids"][0] for w in (" Paris", " Rome"))
    vector = torch.randn(32, generator=torch.Generator().manual_seed(1))
    prompts = ["The capital of France is", "The capital of Italy is", "one of the best", "the plot is"]
    report = steering.steer(
        tiny_gpt2,
        vector.numpy(),
        1,
        prompts,
        "Paris",
        contrast="Rome",
        alphas=[-2, 3],
        neutral=["a gripping , funny film ."],
        instruction="Answer Paris.",
        generate=3,
    )

    def logodds(logits):
        logp = torch.log_softmax(logits[0, -1].double(), -1)
        return float(logp[paris] - logp[rome])

    for j, alpha in enumerate(report.alphas):
        np.testing.assert_allclose(
            report.values[:, j], hand_log_odds(tiny_gpt2, prompts, 1, alpha * vector, logodds), atol=1e-4
        )
    x = np.array(report.alphas)
    by_hand = [np.polyfit(x, row, 1)[0] for row in report.values]
    np.testing.assert_allclose(report.slopes, by_hand, atol=1e-8)
    assert report.wrong_way_share == np.mean(np.array(by_hand) < 0)
    out = report.to_dict()
    from scipy import stats

    half = stats.t.ppf(0.975, 3) * np.std(by_hand, ddof=1) / 2
    assert out["slope_low"] == pytest.approx(np.mean(by_hand) - half)
    assert [g["alpha"] for g in out["generations"]] == [-2.0, 0.0, 3.0]
    assert len(out["off_target_loglik_change"]) == 3 and out["off_target_loglik_change"][1] == 0.0
    instructed = hand_log_odds(tiny_gpt2, [f"Answer Paris.\n{p}" for p in prompts], 1, 0 * vector, logodds)
    np.testing.assert_allclose(report.baseline.effects, instructed - report.values[:, 1], atol=1e-4)


def test_steering_a_classifier_moves_the_label_log_odds_as_by_hand(tiny_bert):
    vector = torch.randn(32, generator=torch.Generator().manual_seed(2)) * 3
    prompts = ["a gripping film", "dull and long", "the plot is thin"]
    report = steering.steer(tiny_bert, vector.numpy(), 2, prompts, "positive", alphas=[1])
    i = tiny_bert.labels.index("positive")

    def logodds(logits):
        p = torch.softmax(logits[0].double(), -1)[i]
        return float(torch.log(p) - torch.log1p(-p))

    np.testing.assert_allclose(report.values[:, 1], hand_log_odds(tiny_bert, prompts, 2, vector, logodds), atol=1e-4)
    assert report.off_target is None and report.baseline is None  # no language to score or to ask


def test_steering_bad_input_and_degenerate_strengths(tiny_gpt2):
    v = np.random.default_rng(0).normal(size=32).astype(np.float32)  # not constant: LayerNorm removes that
    prompts = ["The capital of France is", "the plot is"]
    with pytest.raises(InputError, match="other than 0"):
        steering.steer(tiny_gpt2, v, 1, prompts, "Paris", alphas=[0])
    with pytest.raises(InputError, match="at least 2"):
        steering.steer(tiny_gpt2, v, 1, prompts[:1], "Paris")
    with pytest.raises(InputError, match="does not exist"):
        steering.steer(tiny_gpt2, v, 9, prompts, "Paris")
    with pytest.raises(InputError, match="width"):
        steering.steer(tiny_gpt2, np.ones(5), 1, prompts, "Paris")
    huge = steering.steer(tiny_gpt2, v, 1, prompts, "Paris", alphas=[0.01, 1e4], neutral=["a gripping , funny film ."])
    assert huge.degenerate_alphas == [1e4] and any("degenerates" in n for n in huge.notes)


def test_texts_too_long_are_cut_and_counted(tiny_bert):
    long = " ".join(["word"] * (tiny_bert.max_tokens + 50))
    sets = ConceptSets((long, "short text"), ("another one", "and more"))
    acts = concepts.concept_activations(tiny_bert, sets, [1])
    assert acts.truncated == 1  # said on the page and in the CLI's JSON, not a crash
