"""The Faithfulness page's sanity-check section in Streamlit's AppTest: run on request, its table equal to
the engine's numbers on the same model, text and seed, the chart drawn."""

from __future__ import annotations

import json

import numpy as np

from explainers.checks.sanity import sanity_check
from tests.app.test_app import click, errors, set_text

TEXT = "a gripping , funny film , though far too long ."


def test_sanity_section_shows_the_engines_numbers(app, tiny_bert):
    set_text(app, TEXT)
    app.sidebar.multiselect(key="w_methods").set_value(["saliency", "attention"]).run()
    app.switch_page("app_pages/faithfulness.py").run()
    click(app, "Explain and check")
    assert not errors(app)
    charts_before = len(app.get("plotly_chart"))
    click(app, "Run the sanity check")
    assert not errors(app) and not app.exception
    assert len(app.get("plotly_chart")) == charts_before + 1
    spec = json.loads(app.get("plotly_chart")[-1].proto.spec)
    assert "with the original map" in spec["layout"]["title"]["text"]

    expected = sanity_check(tiny_bert, TEXT, ["saliency", "attention"], seed=int(app.session_state.seed))
    table = app.dataframe[-1].value
    assert list(table.columns) == expected.layers
    np.testing.assert_allclose(table.loc["Saliency"].to_numpy(float), expected.values["saliency"]["spearman_abs"])
    np.testing.assert_allclose(
        table.loc["Attention weights"].to_numpy(float), expected.values["attention"]["spearman_abs"]
    )
    # the measure switch redraws from the kept result, without running the check again
    app.button_group(key="w_sanity_measure").set_value("top_k").run()
    np.testing.assert_allclose(
        app.dataframe[-1].value.loc["Saliency"].to_numpy(float), expected.values["saliency"]["top_k"]
    )
