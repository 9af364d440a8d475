"""The sidebar's framing widgets (issue 11): "rather than…", the unit, the chat template; they reach the
Request, the numbers shown, the cost estimate and the link. Numbers against the engine called directly
(the engine's own numbers are checked against the model in test_contrast.py, test_units.py, test_chat.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from explainers.methods.units import segment, unit_cost
from streamlit.testing.v1 import AppTest

from explainers.methods import METHODS, explain

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
PROMPT = "The capital of France is Paris. It is big. The food is good"
TEMPLATE = (
    "{% for m in messages %}<|endoftext|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}"
)


def _app(model_dir, monkeypatch, query: dict | None = None) -> AppTest:
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(model_dir))
    at = AppTest.from_file(str(APP), default_timeout=120)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def _explain(at) -> None:
    next(b for b in at.button if b.label == "Explain").click().run()
    assert not at.exception, at.exception


def _prediction(at):
    (metric,) = at.metric
    return metric


@pytest.fixture
def lm_app(tiny_gpt2_dir, monkeypatch):
    at = _app(tiny_gpt2_dir, monkeypatch)
    at.text_area(key="w_text").input(PROMPT).run()
    at.multiselect(key="w_methods").set_value(["occlusion"]).run()
    return at


def test_rather_than_reaches_the_prediction_and_the_link(lm_app, tiny_gpt2):
    assert not [t for t in lm_app.toggle if t.key == "w_chat"]  # this tokenizer has no chat template
    lm_app.text_input(key="w_target_text").input("Rome").run()
    lm_app.text_input(key="w_contrast_text").input("Lyon").run()
    _explain(lm_app)
    direct = explain(tiny_gpt2, PROMPT, "occlusion", target="Rome", contrast="Lyon")
    shown = _prediction(lm_app)
    assert shown.value == tiny_gpt2.task.display(direct.target) and "rather than" in shown.value
    assert shown.delta == f"log p(A) − log p(B) = {direct.target_prob:.3g}"
    assert lm_app.query_params["contrast"] == "Lyon"


def test_the_unit_changes_the_cost_estimate_and_the_explanation(lm_app, tiny_gpt2):
    lm_app.segmented_control(key="w_unit").set_value("sentence").run()
    enc = tiny_gpt2.encode(PROMPT)
    units = segment(enc, "sentence")
    cost = unit_cost(METHODS["occlusion"], enc, units)
    estimate = next(c.value for c in lm_app.sidebar.caption if c.value.startswith("Estimated time"))
    assert f"{cost.describe()}; {len(units)} sentences as features" in estimate
    assert cost.rows < METHODS["occlusion"].estimate(enc.n_tokens).rows
    _explain(lm_app)
    assert lm_app.query_params["unit"] == "sentence"
    direct = explain(tiny_gpt2, PROMPT, "occlusion", unit="sentence")
    plain = explain(tiny_gpt2, PROMPT, "occlusion")
    caption = next(c.value for c in lm_app.caption if "scores sum to" in c.value)
    largest = max(map(abs, direct.word_scores))
    assert f"largest {largest:.3g}" in caption and f"{largest:.3g}" != f"{max(map(abs, plain.word_scores)):.3g}"
    assert not lm_app.error


def test_a_separator_is_typed_with_escapes_and_carried_by_the_link(tiny_gpt2_dir, monkeypatch, tiny_gpt2):
    at = _app(tiny_gpt2_dir, monkeypatch, {"text": "apples\npears\nplums", "methods": "occlusion", "sep": "\n"})
    assert at.segmented_control(key="w_unit").value == "separator"
    assert at.text_input(key="w_separator").value == "\\n"
    enc = tiny_gpt2.encode("apples\npears\nplums")
    units = segment(enc, separator="\n")
    estimate = next(c.value for c in at.sidebar.caption if c.value.startswith("Estimated time"))
    assert f"{len(units)} pieces as features" in estimate and len(units) == 3


def test_the_chat_toggle_shows_with_a_template_and_wraps_the_prompt(tiny_gpt2_dir, tmp_path, monkeypatch):
    from explainers.models.loading import load_model

    model_dir = tmp_path / "chat-gpt2"
    shutil.copytree(tiny_gpt2_dir, model_dir)
    handle = load_model(str(model_dir), device="cpu")
    handle.tokenizer.chat_template = TEMPLATE
    handle.tokenizer.save_pretrained(model_dir)
    at = _app(model_dir, monkeypatch)
    at.text_area(key="w_text").input("The capital of France is").run()
    at.multiselect(key="w_methods").set_value(["leave_one_out"]).run()
    at.toggle(key="w_chat").set_value(True).run()
    _explain(at)
    direct = explain(load_model(str(model_dir), device="cpu"), "The capital of France is", "leave_one_out", chat=True)
    shown = _prediction(at)
    assert shown.delta == f"p = {direct.target_prob:.3g}" and shown.value == handle.task.display(direct.target)
    unwrapped = explain(handle, "The capital of France is", "leave_one_out")
    assert f"{unwrapped.target_prob:.3g}" != f"{direct.target_prob:.3g}"  # the template changes the prediction
    assert at.query_params["chat"] == "1"


def test_a_classifier_offers_its_labels_to_contrast_with(tiny_bert_dir, monkeypatch, tiny_bert):
    at = _app(tiny_bert_dir, monkeypatch)
    box = at.selectbox(key="w_contrast_label")
    assert box.options == ["no contrast", "negative", "positive"]
    at.text_area(key="w_text").input("a fine film").run()
    at.multiselect(key="w_methods").set_value(["saliency"]).run()
    at.selectbox(key="w_target_label").set_value("positive").run()
    at.selectbox(key="w_contrast_label").set_value("negative").run()
    _explain(at)
    direct = explain(tiny_bert, "a fine film", "saliency", target="positive", contrast="negative")
    shown = _prediction(at)
    assert shown.value == "positive rather than negative" == tiny_bert.task.display(direct.target)
    assert shown.delta == f"p(A) − p(B) = {direct.target_prob:.3g}"


def test_compare_shows_the_plain_and_the_contrastive_explanation_side_by_side(lm_app, tiny_gpt2):
    from scipy.stats import spearmanr

    lm_app.text_input(key="w_target_text").input("Rome").run()
    lm_app.switch_page("app_pages/compare.py").run()
    lm_app.segmented_control(key="w_cmp_kind").set_value("contrast").run()
    lm_app.text_input(key="w_cmp_contrast").input("Lyon").run()
    next(b for b in lm_app.button if b.label == "Compare").click().run()
    assert not lm_app.exception and not lm_app.error
    plain = explain(tiny_gpt2, PROMPT, "occlusion", target="Rome")
    versus = explain(tiny_gpt2, PROMPT, "occlusion", target="Rome", contrast="Lyon")
    titles = [s.value for s in lm_app.subheader]
    assert titles[-2:] == [
        f"Why {tiny_gpt2.task.display(plain.target)}?",
        f"Why {tiny_gpt2.task.display(versus.target)}?",
    ]
    scores = [c.value for c in lm_app.caption if "each side on its own colour scale" in c.value]
    assert scores == [f"p = {plain.target_prob:.3g} · each side on its own colour scale"] + [
        f"log p(A) − log p(B) = {versus.target_prob:.3g} · each side on its own colour scale"
    ]
    rho = spearmanr(plain.word_scores, versus.word_scores).statistic
    assert lm_app.metric[-1].value == f"{rho:+.2f}"
