"""The sanity check's Stop in headless Chromium (the tiny BERT of conftest.py, which the dashboard starts
on): a run stopped after its first randomised step keeps what finished (the chart and a "stopped" note),
and the model keeps serving."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from benchmarks.browser import dashboard_server, idle, rerun
from explainers.models.builtin import DEFAULT_MODEL_ENV

pytestmark = pytest.mark.browser

# points drawn by the first line of the sanity chart (the trained model, then one per randomised step)
POINTS = """() => {
  const charts = [...document.querySelectorAll('.js-plotly-plot')].filter(
    (c) => (c.querySelector('.gtitle') || {}).textContent?.includes('with the original map'));
  if (!charts.length) return 0;
  const trace = charts[charts.length - 1].querySelector('.scatterlayer .trace');
  return trace ? trace.querySelectorAll('.point').length : 0;
}"""


def test_stop_keeps_the_steps_that_finished(browser, tiny_bert_dir):
    # LIME with many samples: each randomised step takes seconds, so the run is still going when Stop lands
    query = urllib.parse.urlencode(
        {
            "text": "a gripping , funny film , though far too long .",
            "methods": "lime",
            "params": json.dumps({"lime": {"n_samples": 5000}}),
            "seed": "0",
        }
    )
    with dashboard_server({DEFAULT_MODEL_ENV: str(tiny_bert_dir)}) as (url, _):
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.goto(f"{url}/faithfulness?{query}")
        page.get_by_role("button", name="Explain and check").wait_for(timeout=120_000)
        idle(page)
        with rerun(page, timeout=300_000):
            page.get_by_role("button", name="Explain and check").click()
        page.get_by_role("button", name="Run the sanity check").click()
        page.wait_for_function(f"({POINTS})() >= 2", timeout=300_000)  # the head's step is drawn
        page.get_by_role("button", name="Stop").click()
        note = page.get_by_text("Stopped after")
        note.wait_for(timeout=60_000)
        idle(page)
        done = int(note.inner_text().split("Stopped after ")[1].split(" of ")[0])
        assert 1 <= done < 4 and "of 4 steps" in note.inner_text()
        assert page.evaluate(POINTS) == done + 1  # the kept steps, drawn
        assert not page.get_by_test_id("stException").count()
