"""Issue 22: what broke when the dashboard was used as its users use it (AppTest on the tiny models; the
browser half is in test_ux_issue22_browser.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.stats import rankdata
from streamlit.testing.v1 import AppTest

from dashboard.examples import CLASSIFICATION, CONTINUATION
from explainers.methods import METHODS, explain
from explainers.metrics.faithfulness import METRICS, Report, evaluate_many, ranking_metrics
from explainers.metrics.leads import leads, mode_dependent, winner
from explainers.whatif.summary import faithfulness_verdict
from tests.support import ROOT

APP = ROOT / "dashboard" / "app.py"
TEXT = "a gripping , funny and beautifully acted film ."


def set_text(at: AppTest, text: str) -> None:
    at.text_area(key="w_text").input(text)


def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception
    return at


def errors(at: AppTest) -> str:
    return re.sub(r"\\(.)", r"\1", "\n".join(e.value for e in at.error))


def blocks_with_key(node, key: str, found=None) -> list:
    """Every container whose Streamlit key is `key` (a keyed container's id ends with it)."""
    found = [] if found is None else found
    proto = getattr(node, "proto", None)
    if proto is not None and getattr(proto, "id", "").endswith(key):
        found.append(node)
    for child in getattr(node, "children", {}).values():
        blocks_with_key(child, key, found)
    return found


# ---- 1: one colour scale for all cards --------------------------------------------------------------
def test_one_colour_scale_with_every_kind_of_card_draws_without_error(app):
    """Before: the cards redrawn on the shared scale registered their image buttons (and LIME's word bars) a
    second time: StreamlitDuplicateElementKey, shown as an internal error, and no downloads."""
    app.sidebar.multiselect(key="w_methods").set_value(["integrated_gradients", "lime", "occlusion"]).run()
    set_text(app, TEXT)
    click(app, "Explain")
    app.toggle(key="w_shared_scale").set_value(True).run()
    assert not app.exception and not errors(app)
    legends = [h.proto.body for h in app.get("html") if "full colour" in h.proto.body]
    scales = {re.search(r"full colour = ±([\d.e-]+)", body).group(1) for body in legends}
    assert len(legends) == 3 and len(scales) == 1
    keys = [b.proto.id for b in app.get("download_button")]
    assert sum("w_svg_" in k for k in keys) == 3  # each card's image, once
    assert any(b.label.startswith("Prepare downloads") for b in app.button)  # the section is there
    assert not any(b.key == "w_stop" for b in app.button)  # the Stop button went away


def test_a_link_with_a_shared_scale_explains_without_error(tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update({"text": TEXT, "methods": "lime,saliency", "scale": "shared"})
    at.run()
    assert not at.exception and not errors(at)
    assert [s.value for s in at.subheader] == ["Prediction", "LIME", "Saliency"]


# ---- 2: the Guide's lessons fit the loaded model ----------------------------------------------------
def learn_texts(at: AppTest) -> list[str]:
    at.switch_page("app_pages/guide.py").run()
    assert not at.exception
    return [re.sub(r"\\(.)", r"\1", m.value).strip("“”") for m in at.markdown if m.value.startswith("“")]


def test_the_guide_offers_a_classifier_only_classifier_examples(app):
    """Before: "The capital of France is" was offered to the sentiment classifier (positive 97 %)."""
    assert learn_texts(app) == list(CLASSIFICATION)


def test_the_guide_offers_a_language_model_its_prompts(app, tiny_gpt2_dir):
    app.sidebar.selectbox(key="w_model").select("__custom__").run()
    app.sidebar.text_input(key="w_custom").input(str(tiny_gpt2_dir))
    click(app, "Load model")
    assert learn_texts(app) == list(CONTINUATION)
    next(b for b in app.button if b.key == "learn_explain_0").click().run()
    assert app.text_area(key="w_text").value == next(iter(CONTINUATION))


# ---- 3: the verdict quotes what the ranking is made of; Present opens on the winner -----------------
def _report(method: str, **values) -> Report:
    return Report(method, "delete", 0.9, {m: values.get(m, 0.0) for m in METRICS}, title=METHODS[method].title)


def test_leads_are_the_metrics_where_the_method_is_best_by_a_hand_loop():
    rng = np.random.default_rng(0)
    reports = [_report(m, **{k: float(rng.random()) for k in METRICS}) for m in ("occlusion", "lime", "saliency")]
    for report in reports:
        expected = []
        for metric in ranking_metrics():
            values = [r.values[metric.name] for r in reports]
            best = max(values) if metric.direction == "higher" else min(values)
            if report.values[metric.name] == best:
                expected.append(metric.name)
        assert [m.name for m in leads(reports, report.method)] == expected
    assert sum(len(leads(reports, r.method)) for r in reports) == len(ranking_metrics())  # no ties here


def test_the_verdict_quotes_the_mean_rank_and_the_metrics_the_winner_leads_not_one_it_loses():
    # Occlusion ranks first on average but loses comprehensiveness to LIME: the old verdict quoted that number.
    occlusion = _report(
        "occlusion",
        comprehensiveness=0.117,
        sufficiency=0.01,
        aopc_comprehensiveness=0.5,
        aopc_sufficiency=0.01,
        deletion_auc=0.1,
        insertion_auc=0.9,
    )
    lime = _report(
        "lime",
        comprehensiveness=0.629,
        sufficiency=0.3,
        aopc_comprehensiveness=0.2,
        aopc_sufficiency=0.3,
        deletion_auc=0.5,
        insertion_auc=0.4,
    )
    text = faithfulness_verdict([lime, occlusion])
    # mean ranks by hand: occlusion 1 on 5 of 6 metrics, 2 on comprehensiveness
    ranks = {"occlusion": [], "lime": []}
    for metric in ranking_metrics():
        values = np.array([occlusion.values[metric.name], lime.values[metric.name]])
        order = rankdata(-values if metric.direction == "higher" else values)
        ranks["occlusion"].append(order[0])
        ranks["lime"].append(order[1])
    mean = {k: float(np.mean(v)) for k, v in ranks.items()}
    assert text.startswith("Occlusion is the most faithful")
    assert f"is {mean['occlusion']:.1f} (1 = best of 2), against {mean['lime']:.1f}" in text
    assert "(5 of 6)" in text and "Comprehensiveness," not in text.split("best (or tied best) on")[1].split("(")[0]
    assert "0.117" not in text and "0.629" not in text


def test_mode_dependence_is_true_only_when_the_modes_crown_different_methods():
    a, b = _report("occlusion", comprehensiveness=0.5), _report("lime", comprehensiveness=0.1)
    a2, b2 = _report("occlusion", comprehensiveness=0.1), _report("lime", comprehensiveness=0.5)
    assert winner([a, b]) == "occlusion" and winner([a2, b2]) == "lime"
    assert mode_dependent({"delete": [a, b], "mask": [a2, b2]})
    assert not mode_dependent({"delete": [a, b], "mask": [a, b]})


def test_present_opens_on_the_winner_of_the_verdict(app, tiny_bert):
    methods = ["saliency", "occlusion", "leave_one_out"]
    app.sidebar.multiselect(key="w_methods").set_value(methods).run()
    set_text(app, TEXT)
    click(app, "Explain")
    app.switch_page("app_pages/present.py").run()
    assert not app.exception and not errors(app)
    exps = [explain(tiny_bert, TEXT, m, seed=0) for m in methods]
    expected = winner(evaluate_many(tiny_bert, exps, "delete"))
    assert app.pills(key="w_present").value == [expected]
    verdict = next(h.proto.body for h in app.get("html") if "Trust:" in h.proto.body)
    assert verdict.split(">")[1].startswith(METHODS[expected].title)


# ---- 4: stale results are dimmed --------------------------------------------------------------------
def test_results_for_an_earlier_text_are_dimmed_and_said_plainly(app):
    """Before: only a small caption said so, and the old prediction stood at full strength under the new text."""
    app.sidebar.multiselect(key="w_methods").set_value(["saliency"]).run()
    set_text(app, TEXT)
    click(app, "Explain")
    assert blocks_with_key(app._tree, "fresh_results") and not blocks_with_key(app._tree, "stale_results")
    set_text(app, "Short and sweet.")
    app.run()
    stale = blocks_with_key(app._tree, "stale_results")
    assert len(stale) == 1 and not blocks_with_key(app._tree, "fresh_results")
    assert any("opacity" in h.proto.body and "stale_results" in h.proto.body for h in app.get("html"))
    assert any("earlier text" in w.value for w in app.warning)
    click(app, "Explain")
    assert not blocks_with_key(app._tree, "stale_results")


# ---- 8: the two word/token controls are named by what they do ---------------------------------------
def test_the_unit_and_the_display_controls_are_named_by_what_they_do(app):
    """Before: "Explain each: token | word" in the sidebar and "Scores per: Word | Subword token" on the page."""
    set_text(app, TEXT)
    app.sidebar.multiselect(key="w_methods").set_value(["saliency"]).run()
    click(app, "Explain")
    unit = app.sidebar.button_group(key="w_unit")
    display = app.main.button_group(key="w_level")
    assert "hide and score" in unit.label and display.label.startswith("Colour the text")
    assert "Display only" in display.help and "nothing is recomputed" in display.help
    assert not {"Explain each", "Scores per"} & {unit.label, display.label}


# ---- 9: a contrast is labelled everywhere --------------------------------------------------------
PROMPT = "The capital of France is"


def test_a_contrast_is_in_the_headline_the_legends_and_the_probability_chart(app, tiny_gpt2_dir, tiny_gpt2):
    import json

    import torch

    from components.charts import BLUE

    app.sidebar.selectbox(key="w_model").select("__custom__").run()
    app.sidebar.text_input(key="w_custom").input(str(tiny_gpt2_dir))
    click(app, "Load model")
    set_text(app, PROMPT)
    app.sidebar.multiselect(key="w_methods").set_value(["saliency", "leave_one_out"]).run()
    app.sidebar.text_input(key="w_target_text").input("Paris").run()
    app.sidebar.text_input(key="w_contrast_text").input("Rome").run()
    click(app, "Explain")
    assert not errors(app)
    metric = app.metric[0]
    assert "rather than" not in metric.value  # the metric cuts long values: the contrast has its own line
    assert any(re.sub(r"\\(.)", r"\1", m.value) == "rather than **' Rome'**" for m in app.markdown)
    assert any("Colours compare" in m.value and "Rome rather than Paris" in m.value for m in app.markdown)
    legends = [h.proto.body for h in app.get("html") if "pushes towards" in h.proto.body]
    assert legends and all("rather than 'Rome'" in body for body in legends)
    # the probability chart shows the contrast, in blue, at p(' Rome') computed here by hand
    enc = tiny_gpt2.encode(PROMPT)
    with torch.inference_mode():
        logits = tiny_gpt2.model(torch.tensor([enc.ids])).logits[0, -1]
    rome = tiny_gpt2.tokenizer(" Rome", add_special_tokens=False)["input_ids"]
    assert len(rome) == 1
    expected = float(torch.softmax(logits.double(), -1)[rome[0]])
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    bar = spec["data"][0]
    where = [i for i, name in enumerate(bar["y"]) if name.strip("'\" ") == "Rome"]
    assert len(where) == 1 and bar["marker"]["color"][where[0]] == BLUE
    assert bar["x"][where[0]] == pytest.approx(expected, rel=1e-4)


# ---- 7: generated-text heatmaps read like the Explain page; cost in seconds -------------------------
def test_generated_tokens_heatmap_shows_words_not_byte_pieces_and_the_cost_in_seconds(tiny_gpt2_dir, monkeypatch):
    """Before: the chosen token's heatmap showed "The Ġcapital Ġof ĠFrance Ġis", the cost only passes."""
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_gpt2_dir))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.text_area(key="w_text").input(PROMPT).run()
    at.toggle(key="w_generate").set_value(True).run()
    at.number_input(key="w_generate_n").set_value(3).run()
    cost = next(c.value for c in at.caption if "Estimated cost" in c.value)
    assert re.search(r"Occlusion: (under a second|about \d+ (s|min|h)) \([\d,]+ forward pass", cost), cost
    click(at, "Generate and explain")
    heatmaps = [h.proto.body for h in at.get("html") if "whybox-heatmap" in h.proto.body]
    assert heatmaps and all("Ġ" not in body for body in heatmaps)
    assert all("capital" in body for body in heatmaps)


def test_generation_seconds_are_rows_times_length_times_the_measured_rate(tiny_gpt2, monkeypatch):
    from explainers.generation.tokens import generation_cost, generation_seconds

    monkeypatch.setattr(tiny_gpt2.gateway, "seconds_per_row_token", lambda method: 0.002)
    rows = generation_cost("occlusion", 6, 4).rows
    assert generation_seconds(tiny_gpt2, "occlusion", 6, 4) == pytest.approx(rows * (6 + 4 - 1) * 0.002)


# ---- 6: a compact view; the metrics table fits ------------------------------------------------------
def test_method_rows_are_each_methods_scores_over_the_same_words(tiny_bert):
    from components.method_rows import method_rows

    exps = [explain(tiny_bert, TEXT, m, seed=0) for m in ("input_x_gradient", "occlusion", "attention")]
    assert [e.signed for e in exps] == [True, True, False]
    fig = method_rows(exps, "word")
    signed, unsigned = fig.data
    assert list(signed.y) == list(unsigned.y) == [e.title for e in exps]
    for trace in (signed, unsigned):
        for r, exp in enumerate(exps):
            if exp.signed != (trace is signed):  # the other trace's row: blank here
                assert all(v is None for v in trace.z[r])
                continue
            raw = np.array(exp.word_scores, dtype=float)
            np.testing.assert_allclose(trace.customdata[r], raw)  # the hover shows the score itself
            np.testing.assert_allclose(trace.z[r], raw / np.abs(raw).max())  # the colour: own largest = full
    assert list(fig.layout.xaxis.ticktext) == exps[0].words
    # one scale for the signed rows: the largest score of all is full colour, the others less
    scale = max(np.abs(exps[0].word_scores).max(), np.abs(exps[1].word_scores).max())
    shared = method_rows(exps, "word", scale).data[0]
    np.testing.assert_allclose(shared.z[1], np.array(exps[1].word_scores) / scale)
    tokens = method_rows(exps, "token").data[0]
    keep = [i for i, s in enumerate(exps[0].special) if not s]
    np.testing.assert_allclose(tokens.customdata[0], np.array(exps[0].token_scores)[keep])
    assert list(tokens.text[0]) == [exps[0].tokens[i] for i in keep]


def test_the_compact_view_draws_one_chart_instead_of_cards(app):
    """Before: fourteen methods were fourteen tall cards (5,315 px)."""
    app.sidebar.multiselect(key="w_methods").set_value(["saliency", "occlusion", "lime"]).run()
    set_text(app, TEXT)
    click(app, "Explain")
    app.toggle(key="w_compact").set_value(True).run()
    assert not app.exception and not errors(app)
    assert [s.value for s in app.subheader] == ["Prediction"]  # no cards
    charts = [c for c in app.get("plotly_chart") if "One row per method" in c.proto.spec]
    assert len(charts) == 1
    app.toggle(key="w_shared_scale").set_value(True).run()
    assert not errors(app) and "one colour scale" in app.get("plotly_chart")[1].proto.spec


def test_the_metrics_table_has_short_column_labels_with_the_full_title_on_hover(app):
    import json

    app.sidebar.multiselect(key="w_methods").set_value(["saliency", "occlusion"]).run()
    set_text(app, TEXT)
    app.switch_page("app_pages/faithfulness.py").run()
    click(app, "Explain and check")
    config = json.loads(app.dataframe[0].proto.columns)
    labels = {c["label"]: c.get("help", "") for c in config.values() if "label" in c}
    assert len(labels) == len(METRICS) and all(len(label) <= 13 for label in labels)
    assert any("Kendall τ vs leave-one-out" in text for text in labels.values())
    assert all(c.get("width") == "small" for c in config.values() if "label" in c)


# ---- 10: an abandoned tab frees its slot -------------------------------------------------------------
class _Runtime:
    def __init__(self, active: set[str]):
        self.active = active

    def is_active_session(self, session_id: str) -> bool:
        return session_id in self.active


def test_a_run_stops_at_its_next_batch_once_its_tab_is_gone(tiny_bert, monkeypatch):
    """Before: a LIME run went on for 421 s after its browser was closed, holding a place in the queue."""
    import streamlit.runtime as st_runtime

    from dashboard import results, views
    from explainers.serving.admission import Ticket

    gone = _Runtime(active=set())
    monkeypatch.setattr(st_runtime, "exists", lambda: True)
    monkeypatch.setattr(st_runtime, "get_instance", lambda: gone)
    monkeypatch.setattr(results, "finished", lambda req, method: None)
    monkeypatch.setattr(results, "_store", lambda: results.ExplanationStore())
    req = results.Request(str(tiny_bert.name), TEXT, ("lime",), "{}", 0, "")
    batches = []
    monkeypatch.setattr(views, "_BatchProgress", lambda *a: batches.append)
    done, errors = {}, {}
    ticket = Ticket("closed-tab", 1, "running", 1)
    views._run_methods(tiny_bert, req, ["lime"], {"lime": 1.0}, 12, done, errors, lambda *a: None, ticket)
    assert not done and not errors and len(batches) <= 1  # stopped at the first batch, nothing blamed on input
    gone.active.add("closed-tab")  # the same run with its tab open goes to the end
    views._run_methods(tiny_bert, req, ["lime"], {"lime": 1.0}, 12, done, errors, lambda *a: None, ticket)
    assert "lime" in done and len(batches) > 1


# ---- 11: smaller points ----------------------------------------------------------------------------
def test_a_classifiers_rank_axis_has_whole_ranks(tiny_bert, tiny_gpt2):
    """Before: a log axis ticked 1.2, 1.4 between the ranks 1 and 2 of a two-label classifier."""
    from components.layers_view import rank_chart
    from explainers.inside.lens import logit_lens

    axis = rank_chart(logit_lens(tiny_bert, TEXT)).layout.yaxis
    assert axis.type == "linear" and axis.dtick == 1 and axis.range[0] > axis.range[1]  # 1 at the top
    ranks = [x.target_rank for x in logit_lens(tiny_gpt2, PROMPT, target="Paris").layers]
    assert rank_chart(logit_lens(tiny_gpt2, PROMPT, target="Paris")).layout.yaxis.type == (
        "log" if max(ranks) > 10 else "linear"
    )


def test_trust_is_said_to_be_about_the_explanations_not_the_prediction():
    text = faithfulness_verdict([_report("occlusion", comprehensiveness=0.5), _report("lime", comprehensiveness=0.1)])
    assert "not in the prediction itself" in text


def test_the_guides_papers_are_links(app):
    app.switch_page("app_pages/guide.py").run()
    papers = next(m.value for m in app.markdown if "### Papers" in m.value).split("### Papers")[1]
    items = [line for line in papers.splitlines() if line.startswith("- ")]
    assert len(items) >= 7 and all("](https://" in line for line in items)


def test_the_html_report_opens_on_the_prediction_and_the_verdict(tiny_bert):
    """Before: it opened on a table of model settings."""
    from components.report import html_report
    from explainers.metrics.faithfulness import agreement
    from explainers.whatif.summary import prediction_sentence

    exps = [explain(tiny_bert, TEXT, m, seed=0) for m in ("occlusion", "leave_one_out")]
    reports = evaluate_many(tiny_bert, exps, "delete")
    page = html_report(
        model_info=tiny_bert.describe(),
        explanations=exps,
        reports=reports,
        settings={"text": TEXT},
        agreement=agreement(exps),
    )
    body = page.split("<body", 1)[1]
    glance = body.index("class='verdict glance'")
    assert glance < body.index("<h2>") and glance < body.index("Model and settings")
    first = body[glance : body.index("</p>", glance)]
    assert prediction_sentence(exps[0]).replace("'", "&#x27;") in first and "Trust:" in first
    assert body.index("<h2>Explanations</h2>") < body.index("Model and settings")


def test_side_by_side_legend_says_lighter_and_solid_whatever_the_first_words_sign():
    """Before: each side's legend swatch took its first bar's colour (a red and a blue, by chance)."""
    import pandas as pd

    from components import charts

    rows = pd.DataFrame(
        {"word_a": ["good", "bad"], "word_b": ["good", "bad"], "status": ["same", "same"]}
        | {"score_a": [-0.2, 0.4], "score_b": [0.3, -0.1]}
    )
    fig = charts.comparison_chart(rows, "A", "B")
    shown = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in shown] == ["A (lighter bars)", "B (solid bars)"]
    assert all(isinstance(t.marker.color, str) for t in shown)  # one colour each, neither red nor blue
    assert {t.marker.color for t in shown}.isdisjoint({charts.RED, charts.BLUE})
    light, solid = (sum(int(t.marker.color[i : i + 2], 16) for i in (1, 3, 5)) for t in shown)
    assert light > solid


def test_a_french_text_through_an_english_vocabulary_is_warned(tiny_bert):
    """Before: 1 of 19 tokens unknown and 1.6 pieces per word: no warning, 'positive 99 %'."""
    from dashboard.examples import CLASSIFICATION
    from dashboard.views import reading_warnings

    french = "Ce film est vraiment magnifique, les acteurs sont excellents et l'histoire est touchante."
    (warning,) = reading_warnings(tiny_bert, french)
    enc = tiny_bert.encode(french)
    words = [i for i, w in enumerate(enc.words) if sum(c.isalpha() for c in w) >= 2]
    cut = sum(enc.word_of_token.count(i) > 1 for i in words)  # by hand: words of more than one token
    assert warning.startswith(f"{100 * cut / len(words):.0f} % of the words")
    assert all(not reading_warnings(tiny_bert, text) for text in CLASSIFICATION)  # the English examples: none


def test_the_guides_walkthrough_visits_every_page_a_lesson_needs(app):
    """Before: it went from the heatmaps to Faithfulness and Compare, skipping Attention and Layers."""
    app.switch_page("app_pages/guide.py").run()
    walk = next(m.value for m in app.markdown if "A walkthrough on one sentence" in m.value)
    steps = re.findall(r"^\d+\. \*\*(.+?)\*\*", walk, flags=re.M)
    pages = ["Explain", "Attention", "Faithfulness", "Layers", "Compare"]
    assert all(f"*{page}*" in walk for page in pages)
    assert {"Attention.", "Layers."} <= set(steps)


def test_an_unsigned_cards_summary_quotes_words_not_punctuation(tiny_bert):
    """Before: the rollout card's top words were ',', '.' and '[SEP]'-adjacent punctuation."""
    import dataclasses

    from explainers.whatif.summary import summarize

    exp = explain(tiny_bert, TEXT, "attention")
    scores = [10.0 if not any(c.isalnum() for c in w) else float(i) for i, w in enumerate(exp.words)]
    exp = dataclasses.replace(exp, word_scores=scores)
    text = summarize(exp)
    by_hand = sorted((s, w) for w, s in zip(exp.words, scores) if any(c.isalnum() for c in w))[::-1][:3]
    assert ": " + ", ".join(f"'{w}'" for _, w in by_hand) + " (unsigned" in text
    assert "punctuation left out" in text and "','" not in text and "'.'" not in text


def test_attentions_minus_one_is_said_in_words(app):
    """Before: "layer −1" and "head −1" stood as bare numbers in the method parameters."""
    app.sidebar.multiselect(key="w_methods").set_value(["attention"]).run()
    captions = [c.value for c in app.sidebar.caption]
    assert "layer -1: last" in captions and "head -1: mean of heads" in captions
    app.sidebar.number_input(key="w_p_attention_head").set_value(2).run()
    assert "head -1: mean of heads" not in [c.value for c in app.sidebar.caption]


def test_present_carries_the_mode_line_only_when_the_modes_disagree(app, tiny_bert, monkeypatch):
    """Before: Present computed the delete mode only and dropped the Faithfulness page's mode warning."""
    from explainers.metrics import faithfulness
    from explainers.metrics import leads as leads_module

    methods = ["saliency", "occlusion"]
    app.sidebar.multiselect(key="w_methods").set_value(methods).run()
    set_text(app, TEXT)
    click(app, "Explain")
    exps = [explain(tiny_bert, TEXT, m, seed=0) for m in methods]
    by_mode = {mode: evaluate_many(tiny_bert, exps, mode) for mode in faithfulness.MODES}
    line = faithfulness.mode_dependence(by_mode)

    def verdict_html() -> str:
        app.switch_page("app_pages/present.py").run()
        assert not app.exception and not errors(app)
        return next(h.proto.body for h in app.get("html") if "Trust:" in h.proto.body)

    shown_now = line.replace("'", "&#x27;") in verdict_html()
    assert shown_now == mode_dependent(by_mode)
    monkeypatch.setattr(leads_module, "mode_dependent", lambda by_mode: True)  # as if the modes disagreed
    assert line.replace("'", "&#x27;") in verdict_html()
