"""The What-if page in Streamlit's AppTest, on the tiny fixture classifier: numbers shown = the model's."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from explainers.whatif import counterfactual as cf
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
TEXT = "a gripping , funny and beautifully acted film ."
EDITED = "a gripping , dull and beautifully acted film ."


@pytest.fixture
def page(tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page("app_pages/what_if.py").run()
    at.text_area(key="w_text").input(TEXT).run()
    assert not at.exception, at.exception
    return at


def click(at, label):
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception
    return at


def _live_key(text: str) -> str:
    return "w_wi_edit_" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _live_box(at):
    """The live text box's component element and the data it was given."""
    element = next(e for e in at.main if getattr(e.proto, "component_name", "") == "whybox_live_text")
    proto = element.proto
    data = json.loads(proto.json) if proto.json else None
    return element, data


def _check_edit_metrics(at, tiny_bert):
    goal = cf.make_goal(tiny_bert, TEXT)
    metric = next(m for m in at.metric if m.label.startswith("p(") and "after the edit" in m.label)
    p_after = tiny_bert.predict_proba([EDITED])[0, goal.index]
    assert float(metric.value) == pytest.approx(p_after, abs=1e-3)
    assert float(metric.delta) == pytest.approx(p_after - goal.original_prob, abs=2e-3)


def test_live_edit_follows_the_value_the_box_sends(page, tiny_bert):
    _, data = _live_box(page)
    assert data["value"] == TEXT and data["debounce_ms"] == 300 and data["key"] == "w_wi_edit"
    assert not page.metric, "no edit yet: nothing scored"
    page.session_state[_live_key(TEXT)] = {"value": EDITED}  # what the box's JS sends 0.3 s after typing
    page.run()
    assert not page.exception, page.exception
    _check_edit_metrics(page, tiny_bert)
    _, data = _live_box(page)
    assert data["value"] == EDITED and data["version"] == _live_key(TEXT).rsplit("_", 1)[1]  # same box, kept
    # a new original text starts a new box from that text
    page.text_area(key="w_text").input("the plot is thin .").run()
    _, data = _live_box(page)
    assert data["value"] == "the plot is thin ." and not page.metric


def test_live_edit_falls_back_to_a_text_area(tiny_bert_dir, tiny_bert, monkeypatch):
    import components.live_text

    monkeypatch.setattr(components.live_text, "_component", lambda: None)
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page("app_pages/what_if.py").run()
    at.text_area(key="w_text").input(TEXT).run()
    assert not [e for e in at.main if getattr(e.proto, "component_name", "") == "whybox_live_text"]
    box = at.text_area(key="w_wi_edit")
    assert box.value == TEXT and "Ctrl+Enter" in box.label
    box.input(EDITED).run()
    assert not at.exception, at.exception
    _check_edit_metrics(at, tiny_bert)


def test_minimal_flips_show_the_plan_before_and_the_calls_after(page, tiny_bert):
    n = len(cf.word_spans(TEXT))
    plan = next(c.value for c in page.caption if c.value.startswith("Plan:"))
    assert f"at most **{cf.plan_calls(n, cf.DEFAULT_BUDGET)} model calls** for {n} words" in plan
    click(page, "Find minimal flips")
    done = next(c.value for c in page.caption if "model calls of" in c.value)
    expected = cf.minimal_flips(tiny_bert, TEXT)
    assert done.startswith(f"{expected.model_calls} model calls of {expected.planned_calls} planned")
    table = page.dataframe[0].value
    shown = expected.flips or expected.closest
    assert list(table["Edited text"]) == [c.text for c in shown]
    assert all(url.startswith("./?") and "model=" in url and "text=" in url for url in table["Open"])


def test_checked_narration_and_model_card(page, tiny_bert):
    click(page, "Explain in words")
    caption = next(c.value for c in page.caption if "checked:" in c.value)
    assert re.search(r"checked: \d+ supported, 0 unsupported", caption)
    click(page, "Build the model card")
    from explainers.whatif.model_card import build_model_card

    verdicts = [
        p.verdict.verdict
        for ps in build_model_card(tiny_bert).sections.values()
        for p in ps
        if getattr(p, "drafted", 0)
    ]
    prose = next(c.value for c in page.caption if c.value.startswith("Prose by template"))
    assert (
        f"checked: {verdicts.count('supported')} supported, 0 unsupported, {verdicts.count('not checkable')} not "
        "checkable" in prose
    )
    labels = [b.label for b in page.get("download_button")]
    assert "Download the model card (Markdown)" in labels and "Download the model card (HTML)" in labels


def test_renderers_escape_user_text():
    import pandas as pd
    from explainers.whatif.claims import Claim, Verdict

    from components.whatif_view import diff_html, explain_url, verdicts_html

    frame = pd.DataFrame(
        [
            {
                "word_a": "<u>",
                "word_b": "<em>",
                "score_a": 0.1,
                "score_b": -0.2,
                "difference": -0.3,
                "status": "changed",
            },
            {
                "word_a": "<script>",
                "word_b": None,
                "score_a": 0.1,
                "score_b": float("nan"),
                "difference": float("nan"),
                "status": "removed",
            },
            {"word_a": "ok", "word_b": "ok", "score_a": 0.1, "score_b": 0.3, "difference": 0.2, "status": "same"},
        ]
    )
    markup = diff_html(frame)
    assert "<u>" not in markup and "<em>" not in markup and "<script>" not in markup and "&lt;script&gt;" in markup
    assert "change +0.200" in markup  # the kept word's score change, on hover
    page = verdicts_html(
        [
            Verdict(
                "'<img src=x>' pushes towards it.",
                "unsupported",
                [Claim("direction", "'<img>' pushes towards 'x'", False, "top: <none>")],
            )
        ]
    )
    assert "<img" not in page and "&lt;img src=x&gt;" in page and "✘ unsupported" in page
    assert explain_url("m", "a & b?", ["lime", "occlusion"], 3, "positive") == (
        "./?model=m&text=a+%26+b%3F&methods=lime%2Cocclusion&seed=3&target=positive"
    )


def test_probe_on_pasted_texts_shows_the_engine_figures(page, tiny_bert):
    texts = ["he said the film was fun .", "she found his jokes flat .", "no pronouns here ."]
    page.radio(key="w_wi_probe_on").set_value("texts I paste").run()
    page.text_area(key="w_wi_probe_texts").input("\n".join(texts)).run()
    page.text_area(key="w_wi_pairs").input("he -> she, she -> he, his -> her").run()
    click(page, "Run the probe")
    expected = cf.probe(tiny_bert, texts, "he -> she, she -> he, his -> her")
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Texts changed by the list"] == f"{expected.n_changed} of 3"
    assert metrics["Flip rate"] == f"{100 * expected.flip_rate:.1f} %"
    assert metrics["Mean Δp(original label)"] == f"{expected.mean_change:+.4f}"
