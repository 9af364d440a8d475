"""The sidebar's time estimates say when the token-row budget (explainers/limits.py) scales a method down,
and estimate the scaled run, not the one asked for."""

from __future__ import annotations

from explainers.models.loading import load_model
from explainers.serving.limits import MAX_TOKEN_ROWS_ENV
from streamlit.testing.v1 import AppTest

from explainers.methods import estimated_seconds
from tests.test_app import APP, TIMEOUT, shown

TEXT = "a gripping , funny and beautifully acted film , though the ending is far too neat ."


def test_the_estimate_says_lime_runs_300_of_1000_samples_on_this_length(tiny_bert_dir, monkeypatch):
    handle = load_model(str(tiny_bert_dir), device="cpu")
    n_tokens = handle.encode(TEXT).n_tokens
    # LIME's work is n_samples rows of n_tokens each: a budget of 300 rows' worth (plus a little) fits 300
    monkeypatch.setenv(MAX_TOKEN_ROWS_ENV, str(300 * n_tokens + n_tokens // 2))
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    at.text_area(key="w_text").input(TEXT).run()
    at.sidebar.multiselect(key="w_methods").set_value(["lime", "saliency"]).run()
    caption = next(shown(c.value) for c in at.sidebar.caption if "Estimated time" in c.value)
    lime = next(line for line in caption.splitlines() if line.startswith("- LIME"))
    assert lime.startswith("- LIME: 300 of 1,000 samples on this length, ")
    assert lime.endswith("(300 forward passes)")
    saliency = next(line for line in caption.splitlines() if line.startswith("- Saliency"))
    assert " of " not in saliency  # one pass fits: nothing said
    assert f"budget of {300 * n_tokens + n_tokens // 2:,} token-rows" in caption


def test_the_seconds_are_those_of_the_scaled_run(tiny_bert_dir, monkeypatch):
    handle = load_model(str(tiny_bert_dir), device="cpu")
    n_tokens = handle.encode(TEXT).n_tokens
    rate = handle.gateway.seconds_per_row_token("lime")
    monkeypatch.setenv(MAX_TOKEN_ROWS_ENV, str(300 * n_tokens))
    assert estimated_seconds(handle, "lime", n_tokens) == 300 * n_tokens * rate
    monkeypatch.setenv(MAX_TOKEN_ROWS_ENV, "0")  # no budget: the full 1,000 samples
    assert estimated_seconds(handle, "lime", n_tokens) == 1000 * n_tokens * rate
