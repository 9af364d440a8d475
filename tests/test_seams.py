"""Regression tests for the seams between parts: each reproduces a defect found as a new user would
(shared handle under concurrency, errors blamed on the input, LIME weights filed under the wrong
words, two meanings of τ, NaN in the CLI's JSON)."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading

import numpy as np
import pytest
from explainers.metrics import faithfulness as F

from explainers.cli import main
from explainers.errors import InputError, InternalError, WhyboxError
from explainers.methods import METHODS, explain

TEXT = "a gripping , funny film , though far too long ."


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


# ---- 1. one handle, four threads ----------------------------------------------------------------
def test_faithfulness_layer_methods_and_lime_on_one_handle_give_the_serial_results(tiny_bert):
    """Two threads of faithfulness checks, one of layer methods (Captum hooks on a block) and one of
    LIME, all on one handle: no failures, and every result equals the serial one. Before the gateway,
    a layer method's hooks captured the other threads' forwards and about one explain in four failed."""
    exp = explain(tiny_bert, TEXT, "occlusion")
    work = {
        "checks 1": lambda: [list(F.evaluate(tiny_bert, exp, "delete").values.values())],
        "checks 2": lambda: [list(F.evaluate(tiny_bert, exp, "mask").values.values())],
        "layers": lambda: [
            explain(tiny_bert, TEXT, "gradient_x_activation").token_scores,
            explain(tiny_bert, TEXT, "layer_conductance", n_steps=6).token_scores,
        ],
        "lime": lambda: [explain(tiny_bert, TEXT, "lime", n_samples=40, seed=1).token_scores],
    }
    serial = {name: fn() for name, fn in work.items()}
    rounds = 25
    results: dict[str, list] = {name: [] for name in work}
    failures: list[BaseException] = []
    start = threading.Barrier(len(work))

    def run(name):
        start.wait()
        for _ in range(rounds):
            try:
                results[name].append(work[name]())
            except BaseException as exc:  # noqa: BLE001 - the test counts every failure
                failures.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    for name, expected in serial.items():
        assert len(results[name]) == rounds
        for got in results[name]:
            for a, b in zip(got, expected):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, equal_nan=True)


# ---- 2. our bugs are internal errors, not the user's fault ------------------------------------------
def test_a_bug_inside_a_method_is_an_internal_error_logged_with_its_traceback(tiny_bert, monkeypatch, caplog):
    def broken(ctx):
        raise RuntimeError("index 7 is out of bounds")  # what a bug in our code looks like

    monkeypatch.setitem(METHODS, "saliency", dataclasses.replace(METHODS["saliency"], run=broken))
    with caplog.at_level(logging.ERROR, logger="whybox"):
        with pytest.raises(InternalError) as caught:
            explain(tiny_bert, TEXT, "saliency")
    assert not isinstance(caught.value, InputError)
    assert caught.value.error_id and caught.value.error_id in str(caught.value)
    assert "internal error" in str(caught.value).lower()
    logged = [r for r in caplog.records if caught.value.error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is kept in the log


def test_the_cli_exits_1_on_an_internal_error_and_2_on_bad_input(capsys, tiny_bert_dir, monkeypatch):
    def broken(ctx):
        raise TypeError("unsupported operand")

    monkeypatch.setitem(METHODS, "saliency", dataclasses.replace(METHODS["saliency"], run=broken))
    code = main(["explain", "--model", str(tiny_bert_dir), "--text", "a funny film", "--method", "saliency"])
    err = capsys.readouterr().err
    assert code == 1 and "internal error" in err.lower() and "Traceback" not in err
    code = main(["explain", "--model", str(tiny_bert_dir), "--text", "a funny film", "--method", "nope"])
    assert code == 2


def test_every_error_a_user_can_meet_is_a_whybox_error():
    assert issubclass(InternalError, WhyboxError) and issubclass(InputError, WhyboxError)


# ---- 3. LIME's weights under the right words ------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "Loved it!!! 😍🔥 Best. Movie. Ever... 10/10 (would watch again) :-)",
        "A won\u00adderful, \u00ad witty film\u200b with a dull end.",
    ],
)
def test_lime_weights_land_on_the_words_lime_gave_them(tiny_bert, text):
    """Each shown word carries the weight that lime itself reports for that word's string, even
    when one token covers several words (😍🔥 -> [UNK]) or the tokenizer drops a character."""
    from lime.lime_text import LimeTextExplainer

    exp = explain(tiny_bert, text, "lime", n_samples=300, seed=5)
    enc = tiny_bert.encode(text)
    explainer = LimeTextExplainer(
        class_names=tiny_bert.labels,
        bow=False,
        mask_string="",
        random_state=5,
        split_expression=lambda s: [s[a:b] for a, b in enc.word_spans],
        kernel_width=exp.params["kernel_width"],  # chosen by the text's length
    )
    direct = explainer.explain_instance(
        text,
        lambda texts: tiny_bert.predict_proba(list(texts)),
        labels=(exp.target.class_index,),
        num_features=len(enc.words),
        num_samples=300,
    )
    features = direct.domain_mapper.indexed_string
    shown_at = {start: k for k, (start, _) in enumerate(exp.word_spans)}
    weights = direct.local_exp[exp.target.class_index]
    assert len(weights) == len(exp.words)
    for feature, weight in weights:
        start = int(features.string_position(feature)[0])  # where lime's feature sits in the text
        k = shown_at[start]
        assert exp.words[k] == features.word(feature)
        assert exp.word_scores[k] == pytest.approx(weight, abs=1e-12), exp.words[k]


# ---- 4. one leave-one-out per mode; no method rates itself ---------------------------------------
def test_tau_against_leave_one_out_means_the_same_in_evaluate_and_evaluate_many(tiny_bert):
    """Occlusion with window 1 in mask mode *is* masked leave-one-out: τ = 1 from both paths."""
    exp = explain(tiny_bert, TEXT, "occlusion", window=1)
    alone = F.evaluate(tiny_bert, exp, "mask").values["kendall_tau_loo"]
    many = F.evaluate_many(tiny_bert, [exp, explain(tiny_bert, TEXT, "saliency")], "mask")[0]
    assert alone == pytest.approx(1.0) and many.values["kendall_tau_loo"] == pytest.approx(1.0)
    deleted = explain(tiny_bert, TEXT, "leave_one_out")
    assert F.evaluate(tiny_bert, deleted, "delete").values["kendall_tau_loo"] == pytest.approx(1.0)


def test_the_ranking_leaves_out_metrics_that_compare_with_a_ranked_method(tiny_bert):
    ranked = F.ranking_metrics()
    assert "kendall_tau_loo" not in [m.name for m in ranked]
    assert all(m.faithfulness for m in ranked)
    exps = [explain(tiny_bert, TEXT, m) for m in ("leave_one_out", "saliency", "occlusion")]
    reports = F.evaluate_many(tiny_bert, exps, "delete")
    ranking = F.rank_explanations(reports)
    by_hand = {}
    for metric in ranked:
        values = np.array([r.values[metric.name] for r in reports])
        from scipy.stats import rankdata

        order = rankdata(-values if metric.direction == "higher" else values)
        for r, rank in zip(reports, order):
            by_hand[r.method] = by_hand.get(r.method, 0) + rank / len(ranked)
    assert dict(ranking) == pytest.approx(by_hand)


# ---- 5. strict JSON from the CLI -------------------------------------------------------------------
def test_evaluate_json_is_strict_json_for_a_one_word_text(capsys, tiny_bert_dir):
    code = main(
        [
            "evaluate",
            "--model",
            str(tiny_bert_dir),
            "--text",
            "wonderful",
            "--method",
            "occlusion",
            "--method",
            "saliency",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    data = _strict_json(out)
    assert data["reports"][0]["values"]["kendall_tau_loo"] is None  # undefined for one token: null


def test_explanation_json_checks_its_schema_version(tiny_bert):
    from explainers.explanation import Explanation

    d = explain(tiny_bert, TEXT, "saliency").to_dict()
    d["schema"] = 999
    with pytest.raises(InputError, match="schema"):
        Explanation.from_dict(d)
