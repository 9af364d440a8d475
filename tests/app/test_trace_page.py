"""The Trace page in AppTest on the tiny classifier: the pair's metric, a run whose grids and agreement are the
engine's, the settings in the link, and bad input as one message that keeps the texts."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explainers.inside import attribution_patching, patching
from tests.support import ROOT

APP = ROOT / "dashboard" / "app.py"
CLEAN, CORRUPTED = "a gripping , funny film .", "a gripping , dull film ."


@pytest.fixture
def page(tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    at.switch_page("app_pages/trace.py").run()
    at.text_area(key="w_tr_clean").set_value(CLEAN)
    at.text_area(key="w_tr_corrupted").set_value(CORRUPTED).run()
    assert not at.exception, at.exception
    return at


def test_trace_runs_the_engines_grids_and_agreement(page, tiny_bert):
    pair = patching.prepare(tiny_bert, CLEAN, CORRUPTED)
    assert any(
        f"clean {pair.clean_metric:.3f}, corrupted {pair.corrupted_metric:.3f}" in m.value for m in page.markdown
    )
    page.multiselect(key="w_tr_components").set_value(["resid", "head"])
    page.checkbox(key="w_tr_preview").check().run()
    next(b for b in page.button if b.label == "Trace").click().run()
    assert not page.exception, page.exception
    trace = page.session_state["trace_result"][1]
    for name in ("resid", "head"):
        np.testing.assert_allclose(trace.grids[name].values, patching.patch(tiny_bert, pair, name).values, atol=1e-4)
        expected = attribution_patching.agreement(
            trace.grids[name], attribution_patching.preview(tiny_bert, pair, name)
        )
        assert trace.agreements[name]["pearson_r"] == pytest.approx(expected["pearson_r"], abs=1e-6)
    shown = [c.value for c in page.caption if "Preview vs exact" in c.value]
    assert len(shown) == 2 and f"Pearson r {trace.agreements['resid']['pearson_r']:.3f}" in shown[0]
    link = page.query_params
    assert link["tr_clean"] == CLEAN and link["tr_components"] == "resid,head" and link["tr_preview"] == "1"


def test_different_token_lengths_say_why_and_keep_the_texts(page):
    page.text_area(key="w_tr_corrupted").set_value("a gripping , rather dull film .").run()
    assert not page.exception
    assert any("same number of tokens" in e.value for e in page.error)
    assert page.text_area(key="w_tr_clean").value == CLEAN
    assert page.text_area(key="w_tr_corrupted").value == "a gripping , rather dull film ."


def test_a_link_reopens_the_trace_settings(tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    at = AppTest.from_file(str(APP), default_timeout=300)
    for key, value in {"tr_clean": CLEAN, "tr_corrupted": CORRUPTED, "tr_components": "mlp,attn"}.items():
        at.query_params[key] = value
    at.query_params["tr_direction"] = "noise"
    at.run()
    at.switch_page("app_pages/trace.py").run()
    assert not at.exception, at.exception
    assert at.text_area(key="w_tr_corrupted").value == CORRUPTED
    assert at.multiselect(key="w_tr_components").value == ["mlp", "attn"]
    assert at.radio(key="w_tr_direction").value == "noise"


def test_noise_run_on_the_page_is_the_engines(tiny_gpt2_dir, tiny_gpt2, monkeypatch):
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_gpt2_dir))
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params.update({"tr_kind": "noise", "tr_noise": "2-3", "tr_samples": "2", "tr_components": "attn"})
    at.query_params["tr_direction"] = "sideways"  # not offered: the default instead, no error
    at.run()
    at.switch_page("app_pages/trace.py").run()
    at.text_area(key="w_tr_clean").set_value("The capital of France is").run()
    assert not at.exception, at.exception
    assert at.radio(key="w_tr_direction").value == "denoise"
    next(b for b in at.button if b.label == "Trace").click().run()
    assert not at.exception, at.exception
    grid = at.session_state["trace_result"][1].grids["attn"]
    pair = patching.prepare_noise(tiny_gpt2, "The capital of France is", [2, 3], samples=2, seed=0)
    np.testing.assert_allclose(grid.values, patching.patch(tiny_gpt2, pair, "attn").values, atol=1e-4, rtol=1e-4)


def test_a_setting_changed_after_a_run_dims_the_results_without_an_error(page):
    """Before: any change after a run ended in an internal error (the page's request is a tuple, not a Request)."""
    next(b for b in page.button if b.label == "Trace").click().run()
    page.checkbox(key="w_tr_preview").check().run()
    assert not page.exception and not page.error, page.error
    assert any("are for earlier inputs" in w.value for w in page.warning)
