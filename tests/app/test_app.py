"""The dashboard, page by page, in Streamlit's AppTest (no browser): against the tiny fixture models,
plus one slow test on the real built-in `sentiment` model."""

from __future__ import annotations

import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from components.metrics_view import header
from explainers.methods import DEFAULT_METHODS, METHODS, explain
from explainers.metrics.faithfulness import METRICS, PLAUSIBILITY
from tests.support import ROOT

APP = ROOT / "dashboard" / "app.py"
TEXT = "a gripping , funny and beautifully acted film ."
LONG_TEXT = " ".join(["the film is long but the actors are wonderful and the story is moving ."] * 12)
TIMEOUT = 120


def set_text(at: AppTest, text: str) -> None:
    at.text_area(key="w_text").input(text)


def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception
    return at


def shown(markdown: str) -> str:
    """Markdown as read on the page: the app backslash-escapes user text."""
    return re.sub(r"\\(.)", r"\1", markdown)


def errors(at: AppTest) -> str:
    return shown("\n".join(e.value for e in at.error))


def load_custom_model(at: AppTest, path) -> AppTest:
    at.sidebar.selectbox(key="w_model").select("__custom__").run()
    at.sidebar.text_input(key="w_custom").input(str(path))
    return click(at, "Load model")


def sidebar_text(at: AppTest) -> str:
    return shown("\n".join(c.value for c in at.sidebar.caption))


# ---- Explain ----------------------------------------------------------------------------------------
def test_explain_shows_the_prediction_and_every_method(app):
    set_text(app, TEXT)
    app.sidebar.multiselect(key="w_methods").set_value(["integrated_gradients", "lime", "occlusion"])
    app.sidebar.number_input(key="w_seed").set_value(3)
    click(app, "Explain")

    assert not errors(app)
    titles = [s.value for s in app.subheader]
    assert titles == ["Prediction", "Integrated Gradients", "LIME", "Occlusion"]
    metric = app.metric[0]
    assert metric.label == "Explained label" and metric.value in ("negative", "positive")
    assert metric.delta.startswith("p = 0.")
    # probability chart + LIME's word bars; one heatmap (legend + text) per method
    assert len(app.get("plotly_chart")) == 2
    heatmaps = [h for h in app.get("html") if "whybox-heatmap" in h.proto.body]
    assert len(heatmaps) == 3 and all("gripping" in h.proto.body for h in heatmaps)
    captions = " ".join(c.value for c in app.main.caption)
    assert "computed in" in captions and "surrogate R²" in captions and "seed 3" in captions
    assert any(b.label.startswith("Prepare downloads") for b in app.button)  # prepared when asked (test_share.py)
    # The settings live in the URL, methods as one comma list.
    assert app.query_params["text"] == TEXT
    assert app.query_params["methods"] == "integrated_gradients,lime,occlusion"
    assert app.query_params["seed"] == "3"


def test_word_and_token_levels_share_one_toggle(app):
    set_text(app, "unbelievably wonderful")
    app.sidebar.multiselect(key="w_methods").set_value(["saliency", "leave_one_out"])
    click(app, "Explain")
    app.button_group(key="w_level").set_value("token").run()
    bodies = [h.proto.body for h in app.get("html") if "whybox-heatmap" in h.proto.body]
    assert len(bodies) == 2 and all("[CLS]" in b for b in bodies)  # special tokens shown at token level


def test_times_are_estimated_before_running_and_long_runs_warned(app, monkeypatch):
    import dashboard.sidebar

    app.sidebar.multiselect(key="w_methods").set_value(["integrated_gradients", "lime"]).run()
    text = sidebar_text(app)
    assert "Estimated time for" in text and "forward" in text and "All together" in text
    assert not app.sidebar.warning
    monkeypatch.setattr(dashboard.sidebar, "SLOW_SECONDS", 0.0)  # whatever this machine's speed
    set_text(app, LONG_TEXT)
    app.sidebar.number_input(key="w_p_lime_n_samples").set_value(5000).run()
    assert "This will take about" in " ".join(w.value for w in app.sidebar.warning)
    assert app.sidebar.warning  # warned before anything runs


def test_presets_set_steps_and_samples(app):
    app.sidebar.multiselect(key="w_methods").set_value(["integrated_gradients", "lime", "occlusion"]).run()
    app.sidebar.segmented_control(key="w_preset").set_value("quick").run()
    assert app.session_state["w_p_integrated_gradients_n_steps"] == 16
    assert app.session_state["w_p_lime_n_samples"] == 300
    assert app.session_state.params["lime"] == {"n_samples": 300}
    app.sidebar.segmented_control(key="w_preset").set_value("default").run()
    assert app.session_state["w_p_lime_n_samples"] == 1000 and "n_samples" not in app.session_state.params["lime"]


def test_empty_text_gives_an_error_and_keeps_the_text(app):
    set_text(app, "   ")
    click(app, "Explain")
    assert "The text is empty" in errors(app)
    assert app.text_area(key="w_text").value == "   "


def test_too_long_text_is_truncated_with_a_warning(app):
    set_text(app, LONG_TEXT)
    app.sidebar.multiselect(key="w_methods").set_value(["saliency"])
    click(app, "Explain")
    assert "longer than the model's limit of 128 tokens" in " ".join(w.value for w in app.warning)
    assert [s.value for s in app.subheader] == ["Prediction", "Saliency"]


def test_a_method_that_does_not_fit_fails_alone(app):
    app.sidebar.multiselect(key="w_methods").set_value(["gradient_x_activation", "saliency"]).run()
    app.sidebar.number_input(key="w_p_gradient_x_activation_layer").set_value(20)
    click(app, "Explain")
    assert "Layer 20 does not exist" in errors(app)
    assert "Saliency" in [s.value for s in app.subheader]


def test_unknown_model_folder_keeps_the_previous_model(app, tiny_bert_dir, tmp_path):
    missing = tmp_path / "no-such-model"
    load_custom_model(app, missing)
    assert "No model folder" in errors(app) and f"Still using **{tiny_bert_dir}**" in errors(app)
    assert app.session_state.model == str(tiny_bert_dir)
    assert app.sidebar.text_input(key="w_custom").value == str(missing)  # what was typed stays
    set_text(app, TEXT)
    click(app, "Explain")
    assert app.metric[0].value in ("negative", "positive")


def test_a_built_in_that_fails_to_build_keeps_the_previous_model(app, tiny_bert_dir, monkeypatch):
    import explainers.models.builtin

    def broken(name, progress=None, rebuild=False):
        progress(0.5, "dequantizing")
        raise OSError("No space left on device")

    monkeypatch.setattr(explainers.models.builtin, "builtin_path", broken)
    app.sidebar.selectbox(key="w_model").select("smollm2").run()
    assert "Could not prepare the built-in model 'smollm2': No space left on device" in errors(app)
    assert app.sidebar.selectbox(key="w_model").value == "__custom__"  # back on the loaded model
    assert app.session_state.model == str(tiny_bert_dir)
    assert str(tiny_bert_dir) in sidebar_text(app)


def test_wrong_model_type_is_refused(app, tiny_bert_dir, tmp_path):
    from transformers import BertConfig, BertModel

    headless = tmp_path / "headless-bert"
    BertModel(
        BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ).save_pretrained(headless)
    load_custom_model(app, headless)
    assert "no classification or language-model head" in errors(app)
    assert app.session_state.model == str(tiny_bert_dir)


def test_switching_to_a_causal_lm_explains_a_continuation(app, tiny_gpt2_dir):
    load_custom_model(app, tiny_gpt2_dir)
    assert not errors(app)
    assert "Causal language model" in sidebar_text(app) and str(tiny_gpt2_dir) in sidebar_text(app)
    app.sidebar.multiselect(key="w_methods").set_value(["input_x_gradient", "leave_one_out"])
    app.sidebar.text_input(key="w_target_text").input("Paris")
    set_text(app, "The capital of France is")
    click(app, "Explain")
    assert not errors(app)
    assert app.metric[0].label == "Explained continuation" and "Paris" in app.metric[0].value
    assert app.query_params["model"] == str(tiny_gpt2_dir) and app.query_params["target"] == "Paris"


def test_target_label_can_be_chosen(app):
    set_text(app, TEXT)
    app.sidebar.multiselect(key="w_methods").set_value(["saliency"])
    app.sidebar.selectbox(key="w_target_label").select("negative")
    click(app, "Explain")
    assert app.metric[0].value == "negative"


def test_a_shared_link_reopens_the_same_view(tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(
        {
            "text": "dull , lifeless and far too long .",
            "methods": "saliency,leave_one_out",
            "seed": "7",
            "target": "positive",
        }
    )
    at.run()
    assert not at.exception
    assert at.text_area(key="w_text").value == "dull , lifeless and far too long ."
    assert at.sidebar.multiselect(key="w_methods").value == ["saliency", "leave_one_out"]
    assert at.sidebar.number_input(key="w_seed").value == 7
    assert [s.value for s in at.subheader] == ["Prediction", "Saliency", "Leave-one-out"]  # explained at once
    assert at.metric[0].value == "positive"


def test_custom_models_can_be_switched_off(tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    monkeypatch.setenv("WHYBOX_ALLOW_CUSTOM_MODELS", "0")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["model"] = "/somewhere/else"
    at.run()
    assert "__custom__" not in at.sidebar.selectbox(key="w_model").options
    assert at.session_state.model == str(tiny_bert_dir)  # the operator's default, not the link's folder


# ---- Faithfulness ---------------------------------------------------------------------------------
def test_faithfulness_page(app):
    set_text(app, TEXT)
    app.sidebar.multiselect(key="w_methods").set_value(["integrated_gradients", "occlusion", "attention"]).run()
    app.switch_page("app_pages/faithfulness.py").run()
    assert not app.exception
    assert app.text_area(key="w_text").value == TEXT  # the text followed the user
    click(app, "Explain and check")
    assert not errors(app)
    assert "Trust:" in shown(app.info[0].value)
    table = app.dataframe[0].value
    assert list(table.index) == ["Integrated Gradients", "Occlusion", "Attention weights"]
    assert [header(m) for m in METRICS.values()] == list(table.columns)
    assert "Comprehensiveness ↑" in table.columns and "Sufficiency ↓" in table.columns
    assert len(app.get("plotly_chart")) == 5  # 4 curves + agreement
    captions = " ".join(c.value for c in app.caption)
    assert "delete: tokens are deleted" in captions and "normaliser" in captions

    app.button_group(key="w_mode").set_value("mask").run()
    assert "mask: tokens are replaced" in " ".join(c.value for c in app.caption)
    masked = app.dataframe[0].value
    assert not masked.equals(table)

    marks = next(b for b in app.button_group if b.key and b.key.startswith("w_marks"))
    marks.set_value([1, 2]).run()  # "gripping", ","
    plausible = app.dataframe[1].value
    assert list(plausible.columns) == [m.title for m in PLAUSIBILITY.values()]
    assert ((plausible >= 0) & (plausible <= 1)).all().all()
    assert {d.proto.label for d in app.get("download_button")} == {
        "Download JSON (explanations + metrics)",
        "Download HTML report",
    }


# ---- Attention -----------------------------------------------------------------------------------
def test_attention_page(app):
    app.switch_page("app_pages/attention.py").run()
    assert not app.exception and not errors(app)
    assert "Attention is a view of the model, not an explanation" in app.warning[0].value
    assert len(app.get("iframe")) == 3  # BertViz head view, model view, neuron view (a BERT folder)
    assert len(app.get("plotly_chart")) == 1  # rollout
    assert not app.info

    set_text(app, LONG_TEXT[:400])  # ~80 tokens: too many for the model view, fine for the head view
    app.run()
    notices = " ".join(i.value for i in app.info)
    assert "the model view shows the first 64 only" in notices and "head view" not in notices
    assert "at most 40 tokens" in notices  # the neuron view draws every query and key


def test_attention_rollout_can_leave_out_special_and_first_tokens(app):
    set_text(app, "a gripping film")
    app.switch_page("app_pages/attention.py").run()

    def columns() -> list[str]:
        return json.loads(app.get("plotly_chart")[0].proto.spec)["data"][0]["x"]

    assert not any("[CLS]" in x or "[SEP]" in x for x in columns())  # special tokens are left out at first
    app.toggle(key="w_att_hide_special").set_value(False).run()
    assert columns()[0] == "0·[CLS]" and columns()[-1].endswith("[SEP]")
    app.toggle(key="w_att_hide_first").set_value(True).run()
    assert columns()[0].startswith("1·")


# ---- Compare --------------------------------------------------------------------------------------
def test_compare_two_texts(app):
    app.switch_page("app_pages/compare.py").run()
    text_a = app.text_area(key="w_cmp_a").value
    assert "loved" in text_a and "hated" in app.text_area(key="w_cmp_b").value  # the example's edit
    click(app, "Compare")
    assert not errors(app)
    assert [s.value for s in app.subheader] == ["Text A", "Text B", "What changed"]
    assert len(app.get("plotly_chart")) == 3  # two probability charts + the difference
    frame = app.dataframe[0].value
    assert "changed" in set(frame["Change"]) and "Both heatmaps share one colour scale" in app.main.caption[-1].value


def test_compare_two_models(app, tiny_gpt2_dir):
    app.switch_page("app_pages/compare.py").run()
    app.button_group(key="w_cmp_kind").set_value("models").run()
    app.selectbox(key="w_cmp_model").select("__custom__").run()
    app.text_input(key="w_cmp_custom").input(str(tiny_gpt2_dir))
    click(app, "Compare")
    assert not errors(app)
    # a classifier against a causal LM: each side on its own, no shared axis and no difference chart
    assert len(app.get("plotly_chart")) == 2
    assert "do different tasks" in " ".join(w.value for w in app.warning)
    assert str(tiny_gpt2_dir) in shown(app.subheader[1].value)


def test_compare_with_a_missing_second_model(app, tmp_path):
    app.switch_page("app_pages/compare.py").run()
    app.button_group(key="w_cmp_kind").set_value("models").run()
    app.selectbox(key="w_cmp_model").select("__custom__").run()
    app.text_input(key="w_cmp_custom").input(str(tmp_path / "nothing"))
    click(app, "Compare")
    assert "Side B" in errors(app) and "No model folder" in errors(app)


# ---- Guide ----------------------------------------------------------------------------------------
def test_guide_lists_every_method_and_metric(app):
    app.switch_page("app_pages/guide.py").run()
    assert not app.exception
    text = " ".join(m.value for m in app.markdown) + " ".join(c.value for c in app.caption)
    for method in METHODS.values():
        assert method.title in text and method.summary in text
    for metric in list(METRICS.values()) + list(PLAUSIBILITY.values()):
        assert metric.title in text and metric.meaning in text
    for caveat in (
        "Attention is not explanation",
        "Deleting tokens creates inputs",
        "depends on its baseline",
        "surrogate may fit poorly",
        "DeepLift is experimental",
    ):
        assert caveat in text


# ---- the real default model ---------------------------------------------------------------------------
@pytest.mark.slow
def test_default_sentiment_model(monkeypatch):
    monkeypatch.delenv("WHYBOX_DEFAULT_MODEL", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=600)
    at.run()
    assert not at.exception and not errors(at)
    assert at.session_state.model == "sentiment"
    assert "negative" in sidebar_text(at) and "positive" in sidebar_text(at)
    assert at.sidebar.multiselect(key="w_methods").value == list(DEFAULT_METHODS)
    for text, label in (
        ("A gripping, funny and beautifully acted film.", "positive"),
        ("Dull, lifeless and far too long.", "negative"),
    ):
        at.text_area(key="w_text").input(text)
        next(b for b in at.button if b.label == "Explain").click().run(timeout=600)
        assert not at.exception and not errors(at)
        assert at.metric[0].value == label
        assert float(at.metric[0].delta.removeprefix("p = ")) > 0.5
        assert len([s for s in at.subheader if s.value != "Prediction"]) == len(DEFAULT_METHODS)


def test_a_page_that_raises_shows_an_error_id_and_no_traceback(app, monkeypatch, caplog):
    import components.charts

    def broken(*args, **kwargs):
        raise KeyError("a bug in a renderer")

    monkeypatch.setattr(components.charts, "probability_chart", broken)
    set_text(app, TEXT)
    click(app, "Explain")
    message = errors(app)
    assert "Internal error" in message and "KeyError" not in message and "Traceback" not in message
    error_id = re.search(r"Internal error (\w+)", message).group(1)
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None


def test_every_setting_that_changes_a_number_round_trips_through_the_link(app, tiny_bert_dir, monkeypatch):
    """Settings made in one session go into the URL; a new session opened on that URL has them all."""
    app.sidebar.multiselect(key="w_methods").set_value(["integrated_gradients", "lime"]).run()
    app.sidebar.number_input(key="w_p_integrated_gradients_n_steps").set_value(12).run()
    app.sidebar.selectbox(key="w_p_lime_removal").select("mask").run()
    set_text(app, TEXT)
    app.run()
    app.switch_page("app_pages/faithfulness.py").run()
    app.button_group(key="w_mode").set_value("mask").run()
    click(app, "Explain and check")
    marks = next(b for b in app.button_group if b.key and b.key.startswith("w_marks"))
    marks.set_value([1, 2]).run()
    link = {k: v[0] if isinstance(v, list) else v for k, v in dict(app.query_params).items()}
    assert link["mode"] == "mask" and link["marks"] == "1,2"
    assert json.loads(link["params"]) == {"integrated_gradients": {"n_steps": 12}, "lime": {"removal": "mask"}}

    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    fresh = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    fresh.query_params.update(link)
    fresh.run()
    assert not fresh.exception
    assert fresh.session_state.params == {"integrated_gradients": {"n_steps": 12}, "lime": {"removal": "mask"}}
    assert fresh.session_state.mode == "mask" and fresh.session_state.marks == [1, 2]
    assert fresh.sidebar.number_input(key="w_p_integrated_gradients_n_steps").value == 12
    fresh.switch_page("app_pages/faithfulness.py").run()
    assert fresh.button_group(key="w_mode").value == "mask"
    marks = next(b for b in fresh.button_group if b.key and b.key.startswith("w_marks"))
    assert list(marks.value) == [1, 2]


def test_near_ties_unlikely_targets_and_weak_signals_are_said():
    import dataclasses

    from dashboard import views
    from explainers.methods import METHODS
    from tests.engine.metrics.test_faithfulness import _explanation

    class Classifier:
        labels = ["negative", "positive"]
        task = type("Task", (), {"target_noun": "label", "score_name": staticmethod(lambda target: "p")})

    tie = views.prediction_warnings(
        {"probabilities": {"negative": 0.46, "positive": 0.54}, "target_prob": 0.54}, Classifier()
    )
    assert len(tie) == 1 and "54 % against 46 %" in tie[0]
    clear = {"probabilities": {"negative": 0.1, "positive": 0.9}, "target_prob": 0.9}
    assert views.prediction_warnings(clear, Classifier()) == []
    unlikely = views.prediction_warnings({**clear, "target_prob": 0.004}, Classifier())
    assert len(unlikely) == 1 and "p = 0.004" in unlikely[0]
    log_odds = type("Task", (), {"target_noun": "label", "score_name": staticmethod(lambda target: "log-odds")})
    prompted = type("Prompted", (Classifier,), {"task": log_odds})()
    assert views.prediction_warnings({**clear, "target_prob": 0.004}, prompted) == []  # log-odds: no probability
    low_mass = {**clear, "facts": {"label_mass": 0.05}}
    assert len(views.prediction_warnings(low_mass, Classifier())) == 1  # a prompt that does not fit the model

    exp = dataclasses.replace(_explanation([2e-6] * 10), properties=METHODS["integrated_gradients"].properties())
    assert "Weak signal" in views.weak_signal(exp) and "2.0e-06" in views.weak_signal(exp)
    strong = dataclasses.replace(exp, word_scores=[0.3] * 10)
    assert views.weak_signal(strong) is None
    unsigned = dataclasses.replace(exp, properties=METHODS["attention"].properties())
    assert views.weak_signal(unsigned) is None  # attention weights are not probability units


def test_one_colour_scale_for_all_cards(app):
    app.sidebar.multiselect(key="w_methods").set_value(["integrated_gradients", "occlusion"]).run()
    set_text(app, TEXT)
    click(app, "Explain")
    app.toggle(key="w_shared_scale").set_value(True).run()
    assert not app.exception
    legends = [h.proto.body for h in app.get("html") if "full colour" in h.proto.body]
    scales = {re.search(r"full colour = ±([\d.e-]+)", body).group(1) for body in legends}
    assert len(legends) >= 2 and len(scales) == 1  # every signed card on one scale


def test_a_first_visit_says_what_whybox_is_while_the_model_builds_then_shows_an_example(tiny_bert_dir, monkeypatch):
    import explainers.models.builtin

    built, drawn = [], []

    def build(name, progress=None, rebuild=False):
        if progress is not None and not built:
            progress(0.5, "fine-tuning the classifier")
            drawn.append(name)
        if fail:
            raise OSError("disk full")
        built.append(name)
        return tiny_bert_dir

    monkeypatch.delenv("WHYBOX_DEFAULT_MODEL", raising=False)
    monkeypatch.setattr(explainers.models.builtin, "builtin_path", build)
    monkeypatch.setattr(explainers.models.builtin, "is_built", lambda name: bool(built))
    fail = True  # the page while the build runs stays up when it fails: what whybox is, and why it stopped
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception and set(drawn) == {"sentiment"}
    assert any("being prepared for its first use" in m.value for m in at.main.markdown)
    fail = False
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception and set(built) == {"sentiment"}
    # ready: the example is explained at once, without pressing anything
    titles = {s.value for s in at.subheader}
    assert {METHODS[m].title for m in DEFAULT_METHODS} <= titles


def test_the_neuron_view_says_why_it_cannot_show_a_model(app, tiny_gpt2_dir):
    load_custom_model(app, tiny_gpt2_dir)
    app.switch_page("app_pages/attention.py").run()
    assert not app.exception and not errors(app)
    assert len(app.get("iframe")) == 2  # head and model views only
    assert "exists for BERT only" in " ".join(i.value for i in app.info)


def test_presentation_mode_shows_the_finished_explanations_large(app):
    set_text(app, "a gripping , funny film <b>bold</b> .")
    app.sidebar.multiselect(key="w_methods").set_value(["occlusion", "leave_one_out"]).run()
    click(app, "Explain")
    app.switch_page("app_pages/present.py").run()
    assert not app.exception and not errors(app)
    bodies = [h.proto.body for h in app.get("html")]
    assert any("font-size:2rem" in b and "gripping" in b for b in bodies)  # the text, large
    assert all("<b>" not in b for b in bodies) and any("&lt;" in b for b in bodies)  # user text escaped
    assert any("Trust:" in b for b in bodies)  # the verdict, two methods compared


def test_the_guide_loads_a_teaching_example_into_explain_and_compare(app):
    from dashboard.examples import EXAMPLES

    text, edited = list(EXAMPLES.items())[1]
    app.switch_page("app_pages/guide.py").run()
    assert not app.exception and any("Which method when" in m.value for m in app.markdown)
    next(b for b in app.button if b.key == "learn_explain_1").click().run()
    assert not app.exception
    assert app.text_area(key="w_text").value == text
    app.switch_page("app_pages/guide.py").run()
    next(b for b in app.button if b.key == "learn_compare_1").click().run()
    assert not app.exception
    assert app.text_area(key="w_cmp_a").value == text and app.text_area(key="w_cmp_b").value == edited


def test_presentation_mode_shows_a_contrast_as_a_difference_not_a_percentage(app, tiny_bert):
    set_text(app, "a gripping , funny film .")
    app.sidebar.multiselect(key="w_methods").set_value(["occlusion"]).run()
    app.selectbox(key="w_target_label").set_value("positive").run()
    app.selectbox(key="w_contrast_label").set_value("negative").run()
    click(app, "Explain")
    app.switch_page("app_pages/present.py").run()
    assert not app.exception and not errors(app)
    direct = explain(tiny_bert, "a gripping , funny film .", "occlusion", target="positive", contrast="negative")
    headline = app.get("html")[0].proto.body
    assert f"p(A) − p(B) = {direct.target_prob:.3g}" in headline and " %" not in headline
