"""Components and narrative on real explanations of the tiny fixture models."""

from __future__ import annotations

import dataclasses
import html
import json
import re

import numpy as np
import pytest
from explainers.metrics.compare import align_words
from explainers.metrics.faithfulness import METRICS, Report, agreement, evaluate_many, rank_explanations
from explainers.models.loading import load_model
from explainers.models.tasks import Target
from explainers.whatif.summary import faithfulness_verdict, summarize

from components import charts
from components.heatmap import heatmap_html, legend_html, shared_scale
from components.metrics_view import header, metric_backgrounds, metrics_frame, styled_metrics, verdict
from components.report import html_report, json_bundle
from explainers.explanation import Explanation
from explainers.methods import METHODS, explain

TEXT = "a gripping ,  funny <script>alert(1)</script> film .\nReally   good"
PARAMS = {"integrated_gradients": {"n_steps": 8}, "lime": {"n_samples": 64}, "occlusion": {}, "attention": {}}


@pytest.fixture(scope="module")
def explained(tiny_bert):
    exps = [explain(tiny_bert, TEXT, m, **p) for m, p in PARAMS.items()]
    return exps, evaluate_many(tiny_bert, exps), agreement(exps)


@pytest.fixture(scope="module")
def ig(explained) -> Explanation:
    return explained[0][0]


def _visible_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _backgrounds(markup: str) -> list[tuple[int, int, int]]:
    return [
        tuple(int(h[i : i + 2], 16) for i in (0, 2, 4))
        for h in re.findall(r'<span style="background:#([0-9a-f]{6})', markup)
    ]


def _with_word_scores(exp: Explanation, scores) -> Explanation:
    scores = list(scores) + [0.0] * (len(exp.words) - len(scores))
    return dataclasses.replace(exp, word_scores=[float(s) for s in scores])


# ---- heatmap --------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["word", "token"])
def test_heatmap_escapes_user_text(ig, level):
    hostile = dataclasses.replace(ig, target=Target("<b>pos</b>", 1))
    markup = heatmap_html(hostile, level) + legend_html(hostile, None, level=level)
    assert "<script>" not in markup and "</script>" not in markup and "<b>pos" not in markup
    assert "&lt;" in markup and "&gt;" in markup  # the tag's characters are shown, as text
    assert "&lt;b&gt;pos&lt;/b&gt;" in markup


def test_word_view_keeps_the_text_as_typed(ig):
    markup = heatmap_html(ig, "word")
    assert _visible_text(markup) == TEXT  # double spaces, newline and the tag characters included
    assert "white-space:pre-wrap" in markup
    assert markup.count("title=") == len(ig.words)


def test_colours_follow_the_sign(ig):
    exp = _with_word_scores(ig, [0.0, 2.0, 0.0, -1.0])  # 'gripping' for, ',' neutral, 'funny' against
    colours = _backgrounds(heatmap_html(exp, "word"))
    (r0, g0, b0), (r1, g1, b1), neutral, (r3, g3, b3) = colours[:4]
    assert r1 > 200 and r1 > g1 + 100 and r1 > b1 + 100  # full red
    assert b3 > r3 and b3 > g3  # blue, half as strong as the red
    assert neutral == (255, 255, 255)
    assert 255 - r3 < 255 - b1
    # a shared scale twice as large pales the strongest word
    paler = _backgrounds(heatmap_html(exp, "word", scale=4.0))[1]
    assert paler[1] > g1 and paler[0] > r1 - 10


def test_dark_backgrounds_get_white_text(ig):
    exp = _with_word_scores(ig, [0.0, 1.0])
    assert re.search(r"background:#[0-9a-f]{6};color:#ffffff;[^>]*>gripping<", heatmap_html(exp, "word"))
    assert re.search(r"background:#ffffff;color:#18181b;[^>]*>a<", heatmap_html(exp, "word"))


def test_unsigned_method_uses_one_hue(explained):
    attention = explained[0][3]
    assert not METHODS[attention.method].signed
    for r, g, b in _backgrounds(heatmap_html(attention, "word")):
        assert b >= g and r >= g  # violet ramp from white: never a red or blue hue
    legend = legend_html(attention, None)
    assert "not an explanation" in legend and "pushes towards" not in legend


def test_token_view_greys_special_tokens(ig):
    markup = heatmap_html(ig, "token")
    assert ">[CLS]</span>" in markup and ">[SEP]</span>" in markup
    assert "special token, never scored" in markup


def test_legend_names_the_target(ig):
    legend = legend_html(ig, None)
    assert "pushes towards 'positive'" in legend or "pushes towards 'negative'" in legend
    assert ig.target.label in legend and "pushes away" in legend


def test_truncated_text_is_shown_as_unseen(tiny_bert_dir):
    short = load_model(str(tiny_bert_dir), device="cpu", max_tokens=8)
    exp = explain(short, "one two three four five six seven eight nine ten", "occlusion")
    markup = heatmap_html(exp, "word")
    assert exp.truncated and "never seen" in markup
    assert _visible_text(markup) == exp.text
    assert "cut to the model's limit" in summarize(exp)


def test_causal_lm_pieces_and_summary(tiny_gpt2):
    exp = explain(tiny_gpt2, "The capital of France is", "integrated_gradients", n_steps=4)
    assert _visible_text(heatmap_html(exp, "word")) == exp.text
    assert "next token" in summarize(exp)
    assert shared_scale([exp, exp]) == pytest.approx(np.abs(exp.scores("word")).max())


# ---- narrative -----------------------------------------------------------------------------------
def test_summary_names_prediction_words_and_caveats(explained):
    ig, lime, _, attention = explained[0]
    text = summarize(ig)
    assert f"'{ig.target.label}'" in text and "%" in text and "convergence delta" in text
    top_word = ig.top_words(1, 1)[0][0] if ig.top_words(1, 1) else None
    assert top_word is None or f"'{top_word}'" in text
    low_fit = dataclasses.replace(lime, extras={**lime.extras, "surrogate_r2": 0.1})
    assert "caution" in summarize(low_fit) and "R² 0.1: poor" in summarize(low_fit)
    assert "not an explanation" in summarize(attention)


def _report(method: str, **values) -> Report:
    base = {m: 0.0 for m in METRICS}
    return Report(method=method, mode="delete", base_prob=0.9, values={**base, **values}, title=METHODS[method].title)


def test_verdict_names_the_best_ranked_method(explained):
    _, reports, agree = explained
    best = rank_explanations(reports)[0][0]
    assert verdict(reports).startswith(METHODS[best].title)
    assert "Trust:" in faithfulness_verdict(reports, agree)


def test_verdict_trust_levels():
    good = [
        _report(
            "integrated_gradients",
            comprehensiveness=0.6,
            aopc_comprehensiveness=0.5,
            kendall_tau_loo=0.8,
            insertion_auc=0.8,
            deletion_auc=0.1,
        ),
        _report(
            "attention",
            comprehensiveness=0.1,
            aopc_comprehensiveness=0.1,
            kendall_tau_loo=0.1,
            insertion_auc=0.3,
            deletion_auc=0.5,
        ),
    ]
    text = faithfulness_verdict(good, np.array([[1, 0.8], [0.8, 1]]))
    assert text.startswith("Integrated Gradients") and "0.100" in text and "Trust: high." in text
    disagree = faithfulness_verdict(good, (["a", "b"], np.array([[1, -0.2], [-0.2, 1]])))
    assert "disagree" in disagree and "Trust: moderate." in disagree
    weak = [_report("lime", comprehensiveness=0.01), _report("occlusion", comprehensiveness=0.0)]
    assert "weak" in faithfulness_verdict(weak) and "Trust: low." in faithfulness_verdict(weak)


# ---- compare -------------------------------------------------------------------------------------
def test_align_words_marks_changes(tiny_bert):
    a = explain(tiny_bert, "a gripping and funny film", "occlusion")
    b = explain(tiny_bert, "a dull and funny film , sadly", "occlusion")
    rows = align_words(a, b)
    changed = rows[rows.status == "changed"]
    assert list(zip(changed.word_a, changed.word_b)) == [("gripping", "dull")]
    assert set(rows[rows.status == "added"].word_b) == {",", "sadly"}
    same = rows[rows.status == "same"]
    assert np.allclose(same.difference, same.score_b - same.score_a)
    assert rows[rows.status == "added"].difference.isna().all()
    assert (rows.attrs["name_a"], rows.attrs["name_b"]) == ("Text A", "Text B")


def test_align_words_same_text_two_models(ig):
    other = dataclasses.replace(ig, model="other-model", word_scores=[s * 2 for s in ig.word_scores])
    rows = align_words(ig, other)
    assert (rows.status == "same").all() and len(rows) == len(ig.words)
    assert np.allclose(rows.difference, rows.score_a)
    assert rows.attrs["name_b"] == "other-model"
    figure = charts.comparison_chart(rows)
    assert [t.name for t in figure.data][1] == "other-model"


# ---- charts --------------------------------------------------------------------------------------
def test_word_bars_sorted_escaped_and_signed(ig):
    exp = _with_word_scores(ig, [0.1, -3.0, 0.5, 2.0])
    bar = charts.word_bars(exp, top_k=3, punctuation=True).data[0]  # word 2 is ","
    assert list(bar.x) == [-3.0, 2.0, 0.5]
    assert list(bar.marker.color) == [charts.BLUE, charts.RED, charts.RED]
    labels = charts.word_bars(ig, top_k=50, punctuation=True).data[0].y
    assert all("<" not in y and ">" not in y for y in labels)
    assert any("&lt;" in y for y in labels)
    assert len(set(labels)) == len(labels)  # 'script' occurs twice: numbered, not merged


def test_probability_chart_highlights_target(ig):
    bar = charts.probability_chart(ig.probabilities, ig.target.label).data[0]
    assert list(bar.marker.color).count(charts.RED) == 1
    assert bar.x[0] == max(ig.probabilities.values()) and all("%" in t for t in bar.text)


def test_curves_agreement_attention_charts(explained):
    exps, reports, (names, matrix) = explained
    deletion = charts.curves_chart(reports, "deletion_auc")
    assert len(deletion.data) == len(reports) and "removed" in deletion.layout.xaxis.title.text
    assert "probability" in deletion.layout.yaxis.title.text.lower()
    assert len({t.line.color for t in deletion.data}) == len(reports)
    with pytest.raises(ValueError):
        charts.curves_chart(reports, "nonsense")
    matrix = matrix.copy()
    matrix[0, 1] = matrix[1, 0] = np.nan
    heat = charts.agreement_heatmap(names, matrix).data[0]
    assert heat.text[0][1] == "n/a" and heat.z[0][1] is None and heat.zmin == -1 and heat.zmax == 1
    attention = charts.attention_heatmap(np.eye(len(exps[0].tokens)), exps[0].tokens, "Rollout <i>").data[0]
    assert attention.x[0] == "0·[CLS]" and len(set(attention.x)) == len(attention.x)
    assert all("<" not in x for x in attention.x)


def test_shown_attention_keeps_rows_and_columns_and_renormalises():
    matrix = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.6, 0.0, 0.4]])
    shown = charts.shown_attention(matrix, [False, True, True])
    # by hand: row 1 keeps 0.3, 0.2 -> 0.6, 0.4; row 2 keeps 0.0, 0.4 -> 0, 1
    np.testing.assert_allclose(shown, [[0.6, 0.4], [0.0, 1.0]])
    np.testing.assert_allclose(charts.shown_attention(np.zeros((2, 2)), [True, True]), 0.0)  # no division by 0


def test_attention_heatmap_saturates_at_the_largest_off_diagonal_share():
    matrix = np.array([[0.9, 0.1], [0.3, 0.7]])
    heat = charts.attention_heatmap(matrix, ["a", "b"], "t", positions=[4, 7]).data[0]
    assert heat.zmax == 0.3 and heat.zmin == 0
    assert list(heat.x) == ["4·a", "7·b"]  # labelled by place in the text, not place in the picture


# ---- metrics -------------------------------------------------------------------------------------
def _green(css: str) -> int:
    """How green a cell is: green channel minus red channel of its background."""
    if not css:
        return 0
    r, g, _ = (int(css.split("#")[1][i : i + 2], 16) for i in (0, 2, 4))
    return g - r


def test_metrics_frame_and_colours_respect_direction(explained):
    _, reports, _ = explained
    frame = metrics_frame(reports)
    assert len(frame) == len(reports) and list(frame.columns) == [header(m) for m in METRICS.values()]
    css = metric_backgrounds(frame)
    for metric in METRICS.values():
        column = frame[header(metric)].round(3)  # what the table prints
        if not metric.faithfulness or column.nunique() < 2:
            assert not metric.faithfulness or all(not c for c in css[header(metric)])  # no shade the digits hide
            continue
        best = column.idxmax() if metric.direction == "higher" else column.idxmin()
        worst = column.idxmin() if metric.direction == "higher" else column.idxmax()
        assert _green(css.at[best, header(metric)]) > _green(css.at[worst, header(metric)]), metric.name
    gini = header(METRICS["sparsity_gini"])
    assert all(_green(c) <= 0 for c in css[gini])  # descriptive metric: neutral grey, never green


def test_styled_metrics_formats(explained):
    _, reports, _ = explained
    broken = [dataclasses.replace(reports[0], values={**reports[0].values, "kendall_tau_loo": float("nan")})]
    table = styled_metrics(broken + reports[1:]).to_html()
    assert "n/a" in table and re.search(r">-?\d\.\d{3}<", table)
    assert "background-color: #" in table


# ---- report and bundle ---------------------------------------------------------------------------
def test_html_report_is_self_contained_and_complete(tiny_bert, explained):
    exps, reports, agree = explained
    settings = {"text": TEXT, "methods": PARAMS, "seed": 0, "perturbation mode": "delete"}
    page = html_report(
        model_info=tiny_bert.describe(), explanations=exps, reports=reports, settings=settings, agreement=agree
    )
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page.replace(_plotly_bundle(page), ""))
    assert not re.search(r"<script[^>]*\bsrc=", page) and "<link" not in page and "@import" not in page
    assert page.count("* plotly.js v") == 1  # the library goes in once
    for exp in exps:
        assert METHODS[exp.method].title in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for metric in METRICS.values():
        assert html.escape(metric.title) in page
    assert "Agreement" in page and "Trust:" in page


def _plotly_bundle(page: str) -> str:
    """plotly.js itself (it mentions URLs in its own strings; it loads none without maps)."""
    start = page.index("* plotly.js v")
    return page[start : page.index("</script>", start)]


def test_json_bundle_round_trips(tiny_bert, explained):
    exps, reports, _ = explained
    reports = [dataclasses.replace(reports[0], values={**reports[0].values, "sparsity_gini": float("nan")})]
    text = json_bundle(exps, reports, {"seed": 0, "mode": np.str_("delete")}, tiny_bert.describe())
    data = json.loads(text)  # strict JSON: NaN became null
    assert [Explanation.from_dict(d) for d in data["explanations"]] == exps
    assert data["reports"][0]["values"]["sparsity_gini"] is None
    assert data["settings"]["mode"] == "delete" and data["model"]["architecture"] == "BertForSequenceClassification"


# ---- Streamlit helpers ---------------------------------------------------------------------------
def _app(explanation_json: str, reports: list[dict]):
    from explainers.metrics.faithfulness import Report

    from components.heatmap import render_heatmap
    from components.metrics_view import render_metrics, render_verdict
    from explainers.explanation import Explanation

    exp = Explanation.from_json(explanation_json)
    render_heatmap(exp)
    render_heatmap(exp, "token")
    rows = [Report(**r) for r in reports]
    render_metrics(rows)
    render_verdict(rows)


def test_render_helpers_run_in_streamlit(explained):
    from streamlit.testing.v1 import AppTest

    exps, reports, _ = explained
    app = AppTest.from_function(_app, args=(exps[0].to_json(), [r.to_dict() for r in reports]), default_timeout=60)
    app.run()
    assert not app.exception
    assert len(app.dataframe) == 1 and len(app.expander) == 1 and len(app.info) == 1
    assert "Perturbation" in app.caption[0].value


def test_the_token_view_shows_what_the_model_reads(tiny_bert):
    """The tokenizer's own pieces (lowercased, "##" continuations, [UNK]), with the text they cover on hover."""
    import html as html_lib

    exp = explain(tiny_bert, "Unbelievably GRIPPING 😍!", "saliency")
    pieces = tiny_bert.tokenizer.convert_ids_to_tokens(exp.token_ids)
    assert exp.pieces == pieces and any(p.startswith("##") for p in pieces) and "[UNK]" in pieces
    view = heatmap_html(exp, "token")
    for i in exp.encoded.content_positions:
        assert f">{html_lib.escape(pieces[i])}<" in view  # the piece itself is what is shown
    assert "GRIPPING" in view  # ... and the text it covers, on hover
    assert Explanation.from_json(exp.to_json()) == exp


def test_text_the_model_cannot_read_is_said(tiny_bert):
    from dashboard import views

    assert views.reading_warnings(tiny_bert, "a gripping , funny film .") == []
    unknown = views.reading_warnings(tiny_bert, "😍 🔥 😍 🔥 ok")
    assert any("4 of 5 tokens are unknown" in w for w in unknown)
    japanese = views.reading_warnings(tiny_bert, "この映画は本当に素晴らしかった")
    assert any("pieces per word" in w for w in japanese)
