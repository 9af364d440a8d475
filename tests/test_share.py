"""Sharing and keeping: heatmap images (SVG, PNG), the HTML report's content, and downloads prepared once."""

from __future__ import annotations

import base64
import html
import json
import re
import struct
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from explainers.metrics.faithfulness import PLAUSIBILITY, agreement, evaluate_many, plausibility
from streamlit.testing.v1 import AppTest

from components.image_export import heatmap_svg, svg_to_png
from components.report import html_report
from explainers.methods import explain

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
TEXT = "a gripping <b>film</b> & funny"


@pytest.fixture(scope="module")
def exps(tiny_bert):
    return [explain(tiny_bert, TEXT, "integrated_gradients", n_steps=8), explain(tiny_bert, TEXT, "saliency")]


def expected_colour(score: float, scale: float, signed: bool) -> str:
    """The heatmap's colour, computed here from the convention: white mixed towards red (220, 38, 38) for a
    positive score, blue (37, 99, 235) for a negative one, violet (124, 58, 237) when unsigned, by |score| / scale."""
    hue = (124, 58, 237) if not signed else (220, 38, 38) if score > 0 else (37, 99, 235)
    amount = min(abs(score) / scale, 1.0)
    return "#" + "".join(f"{round(255 + (c - 255) * amount):02x}" for c in hue)


# ---- images -------------------------------------------------------------------------------------------
SVG = "{http://www.w3.org/2000/svg}"


def boxes(svg: str) -> list[tuple[str, str]]:
    """(fill, text) of each scored word, read by an XML parser: it fails on any unescaped user text."""
    children = list(ElementTree.fromstring(svg))
    return [
        (rect.get("fill"), text.text)
        for rect, text in zip(children, children[1:])
        if rect.tag == SVG + "rect" and rect.get("data-score") is not None and text.tag == SVG + "text"
    ]


@pytest.mark.parametrize("level", ["word", "token"])
def test_heatmap_svg_has_every_token_escaped_on_its_score_colour(exps, level):
    for exp in exps:
        svg = heatmap_svg(exp, level)
        assert "<b>" not in svg and "&lt;" in svg  # the text's "<b>" is escaped
        if level == "word":
            expected = list(zip(exp.words, exp.word_scores))
        else:
            content = [i for i, s in enumerate(exp.special) if not s]
            expected = [((exp.pieces or exp.tokens)[i].strip(), exp.token_scores[i]) for i in content]
        drawn = boxes(svg)
        assert [text for _, text in drawn] == [word for word, _ in expected]
        scale = max(abs(score) for _, score in expected)
        assert [fill for fill, _ in drawn] == [expected_colour(score, scale, exp.signed) for _, score in expected]


def test_heatmap_svg_on_a_shared_scale_is_paler(exps):
    ig = exps[0]
    own = [fill for fill, _ in boxes(heatmap_svg(ig))]
    scale = 10 * max(abs(s) for s in ig.word_scores)
    shared = [fill for fill, _ in boxes(heatmap_svg(ig, scale=scale))]
    assert shared == [expected_colour(s, scale, True) for s in ig.word_scores] and shared != own


def test_png_is_the_svg_rendered_at_twice_its_size(exps):
    svg = heatmap_svg(exps[0])
    width, height = (int(v) for v in re.search(r'width="(\d+)" height="(\d+)"', svg).groups())
    png = svg_to_png(svg)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (2 * width, 2 * height)  # IHDR: width, height


# ---- the report -----------------------------------------------------------------------------------------
def test_report_reads_settings_and_carries_attention_and_marks(tiny_bert, exps):
    from explainers.methods import attention_rollout

    enc = tiny_bert.encode(TEXT)
    rollout = attention_rollout(tiny_bert.attentions(enc)).numpy()
    settings = {
        "model": "tiny",
        "text": TEXT,
        "methods": ["integrated_gradients", "saliency"],
        "params": {"integrated_gradients": {"n_steps": 8}},
        "seed": 0,
        "perturbation": "delete",
    }
    marks = [1, 2]  # "gripping", "<"
    page = html_report(
        model_info=tiny_bert.describe(),
        explanations=exps,
        reports=evaluate_many(tiny_bert, exps),
        settings=settings,
        agreement=agreement(exps),
        attention=(enc.tokens, rollout, "Attention rollout, all layers"),
        marks=marks,
    )
    # settings as a table a person reads, not JSON
    assert "<th>Method parameters</th><td>Integrated Gradients: n_steps = 8</td>" in page
    assert "<th>Methods</th><td>Integrated Gradients, Saliency</td>" in page
    assert '{"integrated_gradients"' not in page
    # user text escaped everywhere, the marked words highlighted
    assert "<b>film</b>" not in page
    marked = re.findall(r"<mark class='rationale'>([^<]*)</mark>", page)
    assert [html.unescape(m) for m in marked] == [exps[0].words[i] for i in marks]
    # each method's plausibility against the marks, as printed
    for exp in exps:
        values = plausibility(exp, marks)
        row = re.search(
            rf"<tr><th>{re.escape(exp.title)}</th>((?:<td class='num'>[^<]*</td>)+)</tr>",
            page.split("Plausibility")[-1],
        )
        assert re.findall(r">([^<]*)</td>", row.group(1)) == [f"{values[k]:.3f}" for k in PLAUSIBILITY]
    # the attention rollout as a heatmap, its values those of the rollout
    assert "<h2>Attention</h2>" in page and "Attention rollout, all layers" in page
    z = re.findall(r'"z":\{"dtype":"(f[48])","bdata":"([^"]+)"', page.split("<h2>Attention</h2>")[1])
    assert len(z) == 1
    drawn = np.frombuffer(base64.b64decode(json.loads(f'"{z[0][1]}"')), dtype="<" + z[0][0]).reshape(rollout.shape)
    np.testing.assert_allclose(drawn, rollout, rtol=1e-6)


# ---- downloads in the dashboard -----------------------------------------------------------------------


def _click(at: AppTest, label: str) -> None:
    next(b for b in at.button if b.label.startswith(label)).click().run()
    assert not at.exception, at.exception


def _downloads(at: AppTest) -> set[str]:
    return {d.proto.label for d in at.get("download_button")}


def test_downloads_are_prepared_once_then_served_from_memory(app, monkeypatch):
    import dashboard.downloads as downloads
    import dashboard.results as results

    downloads.PREPARED.clear()
    results.REPORTS.clear()
    calls = []
    original = results.evaluate_many
    monkeypatch.setattr(
        results, "evaluate_many", lambda *a, **k: calls.append(a[2] if len(a) > 2 else k) or original(*a, **k)
    )
    app.text_area(key="w_text").input("a gripping , funny film")
    app.sidebar.multiselect(key="w_methods").set_value(["saliency", "occlusion"])
    _click(app, "Explain")
    # Not prepared unasked: the Explain page offers a button, and computes no metrics
    assert {"Download JSON (explanations + metrics)", "Download HTML report"}.isdisjoint(_downloads(app))
    assert calls == []
    _click(app, "Prepare downloads")
    assert not [b for b in app.button if b.label.startswith("Prepare downloads")]  # done: the button is gone
    assert {"Download JSON (explanations + metrics)", "Download HTML report"} <= _downloads(app)
    assert calls == ["delete"] and len(downloads.PREPARED) == 1
    report = next(d for d in app.get("download_button") if d.proto.label == "Download HTML report")
    assert report.proto.url  # the file is ready on the server, not computed on the click
    app.run()  # a rerun, the same results: served, nothing recomputed
    assert calls == ["delete"] and "Report ready" in " ".join(c.value for c in app.caption)
    # Faithfulness reuses the metrics it computes, and prepares the files for its mode without asking
    app.switch_page("app_pages/faithfulness.py").run()
    _click(app, "Explain and check")
    assert sorted(calls) == ["delete", "mask"]  # each mode's metrics once: the delete ones came from the cache
    assert {"Download JSON (explanations + metrics)", "Download HTML report"} <= _downloads(app)


def test_explain_cards_offer_their_heatmap_as_svg_and_png(app):
    app.text_area(key="w_text").input("a gripping , funny film")
    app.sidebar.multiselect(key="w_methods").set_value(["saliency"])
    _click(app, "Explain")
    assert {"SVG (vector, for papers)", "PNG (for slides)"} <= _downloads(app)


# ---- links carry Compare's inputs -------------------------------------------------------------------
def _link(at: AppTest) -> dict:
    return {k: v[0] if isinstance(v, list) else v for k, v in dict(at.query_params).items()}


def _fresh(link: dict) -> AppTest:
    fresh = AppTest.from_file(str(APP), default_timeout=120)
    fresh.query_params.update(link)
    fresh.run()
    assert not fresh.exception
    fresh.switch_page("app_pages/compare.py").run()
    assert not fresh.exception
    return fresh


def test_a_link_carries_compares_two_texts_and_method(app):
    app.sidebar.multiselect(key="w_methods").set_value(["saliency", "occlusion"]).run()
    app.switch_page("app_pages/compare.py").run()
    app.selectbox(key="w_cmp_method").select("occlusion").run()
    app.text_area(key="w_cmp_a").input("the film was <i>great</i> & long").run()
    app.text_area(key="w_cmp_b").input("the film was dull").run()
    link = _link(app)
    assert link["cmp"] == "texts" and link["cmp_method"] == "occlusion"
    assert link["cmp_a"] == "the film was <i>great</i> & long" and link["cmp_b"] == "the film was dull"

    fresh = _fresh(link)
    assert fresh.button_group(key="w_cmp_kind").value == "texts"
    assert fresh.selectbox(key="w_cmp_method").value == "occlusion"
    assert fresh.text_area(key="w_cmp_a").value == "the film was <i>great</i> & long"
    assert fresh.text_area(key="w_cmp_b").value == "the film was dull"
    assert not fresh.warning  # no "value set via the Session State API" warnings on seeded widgets


@pytest.mark.parametrize("second", ["smollm2", "own"])
def test_a_link_carries_compares_second_model(app, tiny_gpt2_dir, second):
    app.switch_page("app_pages/compare.py").run()
    app.button_group(key="w_cmp_kind").set_value("models").run()
    if second == "own":
        app.selectbox(key="w_cmp_model").select("__custom__").run()
        app.text_input(key="w_cmp_custom").input(str(tiny_gpt2_dir)).run()
        name = str(tiny_gpt2_dir)
    else:
        app.selectbox(key="w_cmp_model").select(second).run()
        name = second
    link = _link(app)
    assert link["cmp"] == "models" and link["cmp_model"] == name

    fresh = _fresh(link)  # not loaded until Compare is pressed: nothing runs from the link alone
    assert fresh.button_group(key="w_cmp_kind").value == "models"
    if second == "own":
        assert fresh.selectbox(key="w_cmp_model").value == "__custom__"
        assert fresh.text_input(key="w_cmp_custom").value == name
    else:
        assert fresh.selectbox(key="w_cmp_model").value == name
    assert _link(fresh)["cmp_model"] == name  # and the reopened page's own link is the same


def test_the_reports_attention_leaves_out_special_tokens_and_rescales_rows(tiny_bert):
    from dashboard.downloads import attention_view
    from explainers.methods import attention_rollout

    tokens, matrix, title, positions = attention_view(tiny_bert, TEXT)
    enc = tiny_bert.encode(TEXT)
    inner = attention_rollout(tiny_bert.attentions(enc)).numpy()[1:-1, 1:-1]  # [CLS] … [SEP]
    np.testing.assert_allclose(matrix, inner / inner.sum(axis=1, keepdims=True), rtol=1e-6)
    assert tokens == enc.tokens[1:-1] and positions == list(range(1, len(enc.tokens) - 1))
    assert "special tokens left out" in title


def test_a_link_carries_compares_contrast(app):
    app.switch_page("app_pages/compare.py").run()
    app.button_group(key="w_cmp_kind").set_value("contrast").run()
    app.selectbox(key="w_cmp_contrast").select("negative").run()
    link = _link(app)
    assert link["cmp"] == "contrast" and link["cmp_contrast"] == "negative"

    fresh = _fresh(link)
    assert fresh.button_group(key="w_cmp_kind").value == "contrast"
    assert fresh.selectbox(key="w_cmp_contrast").value == "negative"
