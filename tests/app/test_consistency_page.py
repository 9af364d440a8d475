"""The Faithfulness page's consistency section in Streamlit's AppTest: run on request, the chart's bars equal
to the engine's means and noise floors on the same model, text and seed, every variant listed with its fate."""

from __future__ import annotations

import json

import pytest

from explainers.checks.consistency import consistency
from tests.app.test_app import click, errors, set_text

TEXT = "John did not like the film , it is 2 hours too long ."


def test_consistency_section_shows_the_engines_numbers(app, tiny_bert):
    set_text(app, TEXT)
    app.sidebar.multiselect(key="w_methods").set_value(["occlusion", "attention"]).run()
    app.switch_page("app_pages/faithfulness.py").run()
    click(app, "Explain and check")
    charts_before = len(app.get("plotly_chart"))
    click(app, "Run the consistency check")
    assert not errors(app) and not app.exception
    assert len(app.get("plotly_chart")) == charts_before + 1
    bars = json.loads(app.get("plotly_chart")[-1].proto.spec)["data"]

    expected = consistency(tiny_bert, TEXT, ["occlusion", "attention"], seed=int(app.session_state.seed))
    assert expected.used, "the tiny BERT keeps some variants"
    assert bars[0]["y"] == pytest.approx([expected.mean(m, "spearman") for m in expected.methods])
    assert bars[1]["y"] == pytest.approx([expected.noise_floor[m]["spearman"] for m in expected.methods])
    table = app.dataframe[-1].value
    assert list(table["Variant"]) == [v.text for v in expected.variants]
    assert sum(table["Used"] == "yes") == len(expected.used)
