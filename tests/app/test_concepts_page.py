"""The Concepts page in Streamlit's AppTest on the tiny fixture models: the figures it shows equal the
engine's, bad sets are one st.error that keeps what was typed, and the settings go into the link."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from explainers.inside import concepts, probes, steering
from explainers.inside.concepts import ConceptSets
from tests.support import ROOT

APP = ROOT / "dashboard" / "app.py"
A = "a great and moving film\nsuperb acting , lovely story\nbrilliant and funny\na fine , warm script"
B = "an awful and dull film\nboring acting , weak story\nclumsy and flat\na tedious , cold script"


def open_page(model_dir, monkeypatch, tmp_path, query=None):
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(model_dir))
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(APP), default_timeout=300)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    at.switch_page("app_pages/concepts.py").run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def page(tiny_bert_dir, monkeypatch, tmp_path):
    at = open_page(tiny_bert_dir, monkeypatch, tmp_path)
    at.radio(key="w_cn_source").set_value("typed").run()
    at.text_area(key="w_cn_a").set_value(A).run()
    at.text_area(key="w_cn_b").set_value(B).run()
    assert not at.exception, at.exception
    return at


def test_probe_tcav_and_steering_shown_as_the_engine_computes_them(page, tiny_bert):
    next(b for b in page.button if b.label == "Read the layers").click().run()
    assert not page.exception, page.exception
    sets = ConceptSets.from_lines(A, B)
    acts = concepts.concept_activations(tiny_bert, sets)
    best = probes.probe_layers(acts).best
    said = next(m.value for m in page.markdown if "best layer for a probe" in m.value)
    assert f"**{best.layer}**" in said and f"accuracy {best.accuracy:.0%}" in said
    assert any("too wide" in w.value for w in page.warning)  # 8 texts: the interval is said to be too wide

    next(b for b in page.button if b.label == "Run TCAV").click().run()
    assert not page.exception, page.exception
    assert any("significant" in x.value for x in [*page.success, *page.info])

    page.text_area(key="w_cn_prompts").set_value("a film\nthe plot\nit was").run()
    page.text_input(key="w_cn_target").set_value("positive").run()
    next(b for b in page.button if b.label == "Steer").click().run()
    assert not page.exception, page.exception
    layer = page.session_state["cn_layer"]
    direction = concepts.directions(acts).at(layer)
    expected = steering.steer(
        tiny_bert, direction.vector, layer, ["a film", "the plot", "it was"], "positive", alphas=[-4, -2, 2, 4]
    ).to_dict()
    slope = next(m for m in page.metric if m.label.startswith("Steerability"))
    assert slope.value == f"{expected['slope']:+.3f}"
    wrong = next(m for m in page.metric if m.label.startswith("Prompts moved"))
    assert wrong.value == f"{expected['wrong_way_share']:.0%}"
    assert page.query_params["cn_source"] == "typed" and page.query_params["cn_target"] == "positive"


def test_bad_sets_are_one_error_and_keep_the_text(page):
    page.text_area(key="w_cn_b").set_value("a great and moving film\nsomething else").run()
    from dashboard.widgets import plain

    message = "1 text(s) are in both sets (e.g. 'a great and moving film'): a text cannot have and lack the concept"
    assert [e.value for e in page.error] == [plain(message + "; remove them from one set.")]
    assert page.text_area(key="w_cn_a").value == A  # nothing the user typed is lost


def test_a_link_reopens_the_settings(tiny_gpt2_dir, monkeypatch, tmp_path):
    query = {"cn_source": "typed", "cn_a": "x one\nx two", "cn_b": "y one\ny two", "cn_alpha": "-1,1", "cn_limit": "z"}
    at = open_page(tiny_gpt2_dir, monkeypatch, tmp_path, query)
    assert at.text_area(key="w_cn_a").value == "x one\nx two"
    assert at.session_state["cn_alpha"] == "-1,1"  # its widget is drawn once the layers are read
    assert at.session_state["cn_limit"] == 50  # an unreadable number: the default, and the link still opens
    assert json.loads(json.dumps(at.session_state["cn_pooling"])) == "last"  # a language model: the last token


def test_substitution_pairs_show_the_flip_rate_beside_the_probe(tiny_bert_dir, tiny_bert, monkeypatch, tmp_path):
    from explainers.whatif.counterfactual import probe

    at = open_page(tiny_bert_dir, monkeypatch, tmp_path)
    at.radio(key="w_cn_source").set_value("substitution").run()
    texts = ["he liked the film", "he left early , bored", "his plan was great", "he said it was dull"]
    at.text_area(key="w_cn_a").set_value("\n".join(texts)).run()
    at.text_input(key="w_cn_sub").set_value("he -> she, his -> her").run()
    next(b for b in at.button if b.label == "Read the layers").click().run()
    assert not at.exception, at.exception
    expected = probe(tiny_bert, texts, "he -> she, his -> her")
    table = at.dataframe[-1].value
    row = table[table["evidence"] == "Substitution (What if)"].iloc[0]
    assert row["figure"].startswith(f"flip rate {expected.flip_rate:.0%}, mean change of p {expected.mean_change:+.3f}")
    assert at.selectbox(key="w_cn_method").options == [
        "difference of the sets' means (CAA)",
        "first principal component of the pairs' differences, about zero (repeng's pca_diff)",
    ]  # pairs: both methods offered


def test_steering_a_language_model_shows_cost_baseline_and_generations(tiny_gpt2_dir, tiny_gpt2, monkeypatch, tmp_path):
    a = "The capital of France is Paris\nThe capital of Italy is Paris\nthe best is Paris"
    b = "The capital of France is Rome\nThe capital of Italy is Rome\nthe best is Rome"
    query = {"cn_source": "typed", "cn_a": a, "cn_b": b, "cn_pairs": "True", "cn_alpha": "-1,1"}
    at = open_page(tiny_gpt2_dir, monkeypatch, tmp_path, query)
    assert at.checkbox(key="w_cn_pairs").value is True
    next(x for x in at.button if x.label == "Read the layers").click().run()
    assert not at.exception, at.exception
    assert not [h for h in at.header if "TCAV" in h.value]  # a language model: no TCAV section
    at.text_area(key="w_cn_prompts").set_value("The capital of France is\nthe plot is").run()
    at.text_input(key="w_cn_target").set_value("Paris").run()
    at.text_input(key="w_cn_contrast").set_value("Rome").run()
    at.text_area(key="w_cn_neutral").set_value("one of the best movies of the year .").run()
    at.text_input(key="w_cn_instruction").set_value("Say Paris.").run()
    next(x for x in at.button if x.label == "Steer").click().run()
    assert not at.exception, at.exception
    layer = at.session_state["cn_layer"]
    sets = ConceptSets.from_lines(a, b, paired=True)
    direction = concepts.directions(concepts.concept_activations(tiny_gpt2, sets), "mean_diff").at(layer)
    expected = steering.steer(
        tiny_gpt2, direction.vector, layer, ["The capital of France is", "the plot is"], "Paris", "Rome", [-1, 1],
        ["one of the best movies of the year ."], "Say Paris.",
    )  # fmt: skip
    cost = next(m for m in at.metric if m.label.startswith("Off-target"))
    assert cost.value == f"{expected.off_target[-1]:+.3f} nat/token"
    baseline = next(i.value for i in at.info if "Prompting baseline" in i.value)
    assert f"mean change {expected.baseline.to_dict()['mean_effect']:+.2f}" in baseline
    generations = at.dataframe[0].value
    assert list(generations["α"]) == [-1.0, 0.0, 1.0]
