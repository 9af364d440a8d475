"""The Layers page and the Explain page's 'Generate and explain' section, in Streamlit's AppTest,
on the tiny causal LM: the numbers shown are the engine's, checked against the model in
test_layers.py and test_generation.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from explainers.generation.tokens import explain_generation
from explainers.inside.lens import logit_lens
from explainers.metrics.generation import evaluate_generation
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
PROMPT = "The capital of France is"


@pytest.fixture
def lm_app(tiny_gpt2_dir, monkeypatch):
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_gpt2_dir))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception
    at.text_area(key="w_text").input(PROMPT).run()
    return at


def _click(at, label):
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception


def test_layers_page_table_shows_the_lens(lm_app, tiny_gpt2):
    lm_app.switch_page("app_pages/layers.py").run()
    lm_app.text_input(key="w_layers_contrast").input("Rome")
    _click(lm_app, "Look inside")
    (table,) = lm_app.dataframe
    lens = logit_lens(tiny_gpt2, PROMPT, contrast="Rome")
    np.testing.assert_allclose(table.value["p(target)"].to_numpy(), lens.target_probs, rtol=1e-6)
    assert list(table.value["layer"]) == ["embeddings", "block 1", "block 2"]
    assert table.value["p(contrast)"].notna().all()


def test_generate_and_explain_shows_each_generated_token(lm_app, tiny_gpt2):
    lm_app.toggle(key="w_generate").set_value(True).run()
    lm_app.number_input(key="w_generate_n").set_value(3).run()
    assert any("Estimated cost" in c.value for c in lm_app.caption)
    _click(lm_app, "Generate and explain")
    direct = explain_generation(tiny_gpt2, PROMPT, "occlusion", max_new_tokens=3)
    pick = lm_app.selectbox(key="gen_pick_occlusion")
    assert pick.options == [f"{k + 1}: {t!r}" for k, t in enumerate(direct.generated)]
    assert not lm_app.error
    # the continuation's faithfulness, as the engine computes it in the mode chosen
    lm_app.selectbox(key="w_generate_mode").set_value("mask").run()
    report = evaluate_generation(tiny_gpt2, direct, mode="mask")
    shown = next(m.value for m in lm_app.markdown if m.value.startswith("The continuation as a whole"))
    assert f"log p = {report.continuation_base:.3f}" in shown
    assert f"Comprehensiveness ↑ {report.continuation_values['comprehensiveness']:+.3f}" in shown


def test_generate_and_explain_is_offered_for_causal_lms_only(tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not [t for t in at.toggle if t.key == "w_generate"]


def test_reports_escape_the_text_and_draw_the_engines_numbers(tiny_gpt2):
    from components.generation_view import (
        faithfulness_chart,
        generation_heatmap,
        generation_report_html,
        token_explanation,
    )
    from components.layers_view import lens_report_html, top_table

    prompt = "<b>The capital</b> of France is"
    gen = explain_generation(tiny_gpt2, prompt, "leave_one_out", max_new_tokens=2)
    page = generation_report_html(gen)
    assert "<b>The capital</b>" not in page and "&lt;b&gt;The capital&lt;/b&gt;" in page
    z = np.array(generation_heatmap(gen).data[0].z, dtype=float)
    np.testing.assert_array_equal(np.isnan(z), np.isnan(gen.scores))
    np.testing.assert_allclose(z[~np.isnan(z)], gen.scores[~np.isnan(gen.scores)])
    enc = tiny_gpt2.encode(prompt)
    row = token_explanation(gen, enc, 1)
    np.testing.assert_allclose(row.token_scores, gen.scores[1, : enc.n_tokens])
    report = evaluate_generation(tiny_gpt2, gen)
    bars = faithfulness_chart(gen, report).data
    assert [b.name for b in bars] == ["Comprehensiveness ↑", "Sufficiency ↓"]
    for bar, name in zip(bars, report.metrics):
        np.testing.assert_allclose(bar.y, report.token_values[name])
    assert "&lt;b&gt;The capital" in generation_report_html(gen, report)
    lens = logit_lens(tiny_gpt2, prompt)
    assert "<b>The capital</b>" not in lens_report_html(lens)
    assert top_table(lens)["rank"].tolist() == [layer.target_rank for layer in lens.layers]
