"""Compare with two models (side B's own target, the task warning), the examples following the model, and
the colour-by-class option with its link key: in Streamlit's AppTest, on the tiny fixture models."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from dashboard import examples
from tests.app.test_app import APP, TIMEOUT, click, errors, load_custom_model, set_text, shown


def two_models(at: AppTest, model_b) -> AppTest:
    at.switch_page("app_pages/compare.py").run()
    at.button_group(key="w_cmp_kind").set_value("models").run()
    at.selectbox(key="w_cmp_model").select("__custom__").run()
    at.text_input(key="w_cmp_custom").input(str(model_b)).run()
    assert not at.exception, at.exception
    return at


def test_side_b_sets_its_own_continuation(app, tiny_gpt2_dir, monkeypatch):
    monkeypatch.setenv("WHYBOX_ALLOWED_MODELS", str(tiny_gpt2_dir))  # the operator's: loads on sight
    two_models(app, tiny_gpt2_dir)
    warning = " ".join(w.value for w in app.warning)
    assert "Side B is a causal language model, side A a classifier" in warning  # said before running
    picker = app.text_input(key="w_cmp_target_b_text")
    assert picker.label == "Side B: explained continuation"
    picker.input("Paris").run()
    click(app, "Compare")
    assert not errors(app)
    summaries = [shown(m.value) for m in app.markdown if "' Paris'" in shown(m.value) or "Paris" in shown(m.value)]
    assert summaries, [m.value for m in app.markdown]
    assert app.session_state.compared[-1] == "Paris"  # the request carries side B's target
    assert len(app.get("plotly_chart")) == 2  # each side on its own, no shared axis


def test_side_b_label_picker_lists_b_labels(app, tiny_bert_dir):
    two_models(app, tiny_bert_dir)  # the default model: allowed
    picker = app.selectbox(key="w_cmp_target_b_label")
    assert picker.options[0].startswith("same as side A") and len(picker.options) == 3
    assert not [w for w in app.warning if "Side B is" in w.value]  # same task: no warning
    label = picker.options[1]
    picker.select(label).run()
    click(app, "Compare")
    assert not errors(app)
    assert app.session_state.compared[-1] == label


def test_the_example_follows_the_model_and_typed_text_stays(app, tiny_gpt2_dir, tiny_bert_dir):
    review = app.text_area(key="w_text").value
    assert review in examples.CLASSIFICATION
    load_custom_model(app, tiny_gpt2_dir)
    assert app.text_area(key="w_text").value == "The capital of France is"
    options = app.selectbox(key="w_example").options
    assert "The capital of France is" in options and review not in options
    set_text(app, "My own prompt about")
    app.run()
    load_custom_model(app, tiny_bert_dir)
    assert app.text_area(key="w_text").value == "My own prompt about"


def test_colour_by_class_goes_into_the_link(app, tiny_bert_dir, monkeypatch):
    set_text(app, "a gripping , funny film")
    app.sidebar.multiselect(key="w_methods").set_value(["occlusion"]).run()
    app.toggle(key="w_colour_by_class").set_value(True).run()
    click(app, "Explain")
    heatmap = next(h.proto.body for h in app.get("html") if "whybox-heatmap" in h.proto.body)
    assert "colours fixed per label" in heatmap
    link = {k: v[0] if isinstance(v, list) else v for k, v in dict(app.query_params).items()}
    assert link["colour"] == "class"

    fresh = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    fresh.query_params.update(link)
    fresh.run()
    assert fresh.session_state.colour_by_class and fresh.toggle(key="w_colour_by_class").value


def test_an_own_model_loads_for_side_b_only_when_compare_is_pressed(app, tiny_gpt2_dir, monkeypatch):
    from dashboard import models

    loaded = []
    real = models.get_model
    monkeypatch.setattr(models, "get_model", lambda name: loaded.append(name) or real(name))
    two_models(app, tiny_gpt2_dir)
    assert str(tiny_gpt2_dir) not in loaded  # typed (or from a link), not yet loaded
    assert "press Compare" in " ".join(c.value for c in app.caption)
    click(app, "Compare")
    assert not errors(app) and str(tiny_gpt2_dir) in loaded
    app.text_input(key="w_cmp_target_b_text").input("Paris").run()  # now B's own picker is there

    from tests.app.test_share import _fresh, _link

    link = _link(app)
    assert link["cmp_target_b"] == "Paris"
    monkeypatch.setenv("WHYBOX_ALLOWED_MODELS", str(tiny_gpt2_dir))
    fresh = _fresh(link)
    assert fresh.text_input(key="w_cmp_target_b_text").value == "Paris"  # side B's target from the link
