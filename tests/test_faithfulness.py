"""Faithfulness metrics on hand-made cases whose answers are known, and on a real tiny model."""

import math
import types

import numpy as np
import pytest
from explainers.metrics import faithfulness as F
from explainers.models.tasks import Target
from explainers.models.text import Encoded

from explainers.errors import InputError
from explainers.explanation import Explanation
from explainers.methods import explain

CLS, SEP, MASK, KEY = 101, 102, 103, 7
WORDS = ["w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9"]


class OneTokenReader:
    """A 'model' that reads only one token: p(target) = 0.9 if KEY is present, else 0.1."""

    def __init__(self):
        self.rows = 0
        self.calls = 0
        self.gateway = types.SimpleNamespace(recall=lambda key: None, remember=lambda key, value: value)

    def baseline_token_id(self, kind="auto"):
        return MASK

    def score_ids(self, sequences, target):
        self.calls += 1
        self.rows += len(sequences)
        return np.array([0.9 if KEY in s else 0.1 for s in sequences])


def _explanation(scores, key_position=3, method="handmade"):
    """[CLS] + 10 one-token words + [SEP]; KEY sits at content position `key_position`."""
    ids = [CLS] + [KEY if i == key_position else 20 + i for i in range(10)] + [SEP]
    text = " ".join(WORDS)
    spans, start = [], 0
    for w in WORDS:
        spans.append((start, start + len(w)))
        start += len(w) + 1
    enc = Encoded(
        text,
        ids,
        ["[CLS]", *WORDS, "[SEP]"],
        [True] + [False] * 10 + [True],
        [None, *range(10), None],
        list(WORDS),
        spans,
    )
    return Explanation.build(
        method=method,
        model="handmade",
        enc=enc,
        token_scores=[0.0, *scores, 0.0],
        target=Target("yes", class_index=1),
        target_prob=0.9,
        probabilities={"yes": 0.9},
        params={},
        seed=None,
        seconds=0.0,
    )


def _key_first(key_position=3):
    scores = np.linspace(0.5, 0.05, 10)  # descending, then move the top score onto KEY
    scores[[0, key_position]] = scores[[key_position, 0]]
    return scores


def test_an_explanation_that_finds_the_key_token_is_comprehensive_and_sufficient():
    model = OneTokenReader()
    report = F.evaluate(model, _explanation(_key_first()))
    v = report.values
    assert v["comprehensiveness"] == pytest.approx(0.8)  # removing KEY: 0.9 -> 0.1
    assert v["sufficiency"] == pytest.approx(0.0)  # KEY alone keeps 0.9
    assert v["aopc_comprehensiveness"] == pytest.approx(0.8)
    assert v["aopc_sufficiency"] == pytest.approx(0.0)
    assert report.curves["deletion_auc"]["y"][0] == pytest.approx(0.9)
    assert report.curves["deletion_auc"]["y"][1:] == pytest.approx(
        [0.1] * (len(report.curves["deletion_auc"]["y"]) - 1)
    )
    assert v["insertion_auc"] > 0.85 and v["deletion_auc"] < 0.15
    assert model.calls == 1, "all metrics of one explanation in one batched pass"


def test_an_explanation_that_ranks_the_key_token_last_scores_badly():
    scores = np.linspace(0.5, 0.05, 10)
    scores[[9, 3]] = scores[[3, 9]]  # KEY gets the smallest score
    v = F.evaluate(OneTokenReader(), _explanation(scores)).values
    assert v["comprehensiveness"] == pytest.approx(0.0)  # top 20 % = 2 tokens, KEY not among them
    assert v["sufficiency"] == pytest.approx(0.8)
    # bins 1, 5, 10, 20, 50 % of 10 tokens keep 1, 1, 1, 2, 5 tokens: KEY is never among them
    assert v["aopc_comprehensiveness"] == pytest.approx(0.0)
    assert v["aopc_sufficiency"] == pytest.approx(0.8)
    assert v["deletion_auc"] > 0.8 and v["insertion_auc"] < 0.2


def test_kendall_tau_against_leave_one_out():
    # leave-one-out of this model: 0.8 for KEY, 0 elsewhere
    loo = np.zeros(12)
    loo[1 + 3] = 0.8
    exp = _explanation(_key_first())
    np.testing.assert_allclose(F.leave_one_out(OneTokenReader(), exp.encoded, exp.target), loo)
    expected = F.kendall_tau(_key_first(), loo[1:11])
    report = F.evaluate(OneTokenReader(), exp)  # leave-one-out's rows ride in the metrics' one pass
    assert report.values["kendall_tau_loo"] == pytest.approx(expected)
    assert report.values["kendall_tau_loo"] > 0


def test_mask_mode_replaces_instead_of_deleting():
    model = OneTokenReader()
    batch = F.Perturbations(model, _explanation(_key_first()).encoded, "mask")
    batch.without([4])
    (sequence,) = batch.index
    assert len(sequence) == 12 and sequence[4] == MASK
    deleted = F.Perturbations(model, _explanation(_key_first()).encoded, "delete")
    deleted.without([4])
    assert len(next(iter(deleted.index))) == 11
    with pytest.raises(InputError):
        F.Perturbations(model, _explanation(_key_first()).encoded, "shuffle")


def test_sparsity_and_entropy_extremes():
    one_hot = np.array([0, 0, 1.0, 0])
    uniform = np.ones(4)
    assert F.gini(one_hot) == pytest.approx(0.75)  # (n - 1) / n
    assert F.gini(uniform) == pytest.approx(0.0)
    assert F.normalized_entropy(one_hot) == pytest.approx(0.0)
    assert F.normalized_entropy(uniform) == pytest.approx(1.0)
    assert math.isnan(F.gini(np.zeros(3)))


def test_plausibility_against_a_human_rationale():
    exp = _explanation(_key_first())
    perfect = F.plausibility(exp, {3})
    assert perfect == {"token_f1": 1.0, "iou": 1.0, "auprc": 1.0}
    wrong = F.plausibility(exp, {9})
    assert wrong["token_f1"] == 0.0 and wrong["iou"] == 0.0 and wrong["auprc"] < 0.2
    with pytest.raises(InputError):
        F.plausibility(exp, set())


def test_agreement_matrix_and_ranking():
    good = _explanation(_key_first(), method="good")
    reverse = _explanation(-_key_first(), method="reverse")
    names, matrix = F.agreement([good, reverse, good])
    assert names == ["good", "reverse", "good"]
    assert matrix[0, 1] == pytest.approx(-1.0) and matrix[0, 2] == pytest.approx(1.0)
    reports = [F.evaluate(OneTokenReader(), e) for e in (reverse, good)]
    ranking = F.rank_explanations(reports)
    assert ranking[0][0] == "good" and ranking[0][1] < ranking[1][1]


def test_every_metric_declares_direction_range_and_meaning():
    for metric in list(F.METRICS.values()) + list(F.PLAUSIBILITY.values()):
        assert metric.direction in ("higher", "lower")
        assert metric.low < metric.high and metric.meaning
    assert "normaliser" in F.AOPC_NORMALISER and set(F.MODES) == {"delete", "mask"}


def test_real_model_metrics_stay_in_range_and_cost_one_pass(tiny_bert, monkeypatch):
    exps = [
        explain(tiny_bert, "a gripping , funny film , though far too long .", m)
        for m in ("integrated_gradients", "occlusion", "attention")
    ]
    calls = []
    real = tiny_bert.score_ids
    monkeypatch.setattr(tiny_bert, "score_ids", lambda seqs, t: calls.append(len(seqs)) or real(seqs, t))
    reports = F.evaluate_many(tiny_bert, exps, mode="mask")
    # leave-one-out's rows ride in the first explanation's pass and are remembered for the others
    assert len(calls) == len(exps), "one pass per explanation"
    for report in reports:
        for name, value in report.values.items():
            metric = F.METRICS[name]
            assert math.isnan(value) or metric.low - 1e-9 <= value <= metric.high + 1e-9, name
        assert report.mode == "mask" and report.base_prob == pytest.approx(exps[0].target_prob, abs=1e-6)


def test_the_verdict_says_when_the_ranking_depends_on_the_mode():
    def report(method, better):
        values = {
            m.name: (0.9 if better else 0.1) if m.direction == "higher" else (0.1 if better else 0.9)
            for m in F.ranking_metrics()
        }
        return F.Report(method=method, mode="delete", base_prob=0.9, values=values, title=method.upper())

    same = {"delete": [report("a", True), report("b", False)], "mask": [report("a", True), report("b", False)]}
    assert F.mode_dependence(same).startswith("Both perturbation modes agree: A ranks first")
    flipped = {"delete": [report("a", True), report("b", False)], "mask": [report("a", False), report("b", True)]}
    text = F.mode_dependence(flipped)
    assert "depends on how tokens are removed" in text and "delete: A" in text and "mask: B" in text
