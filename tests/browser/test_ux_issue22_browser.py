"""Issue 22 in a real browser: every switch of a full Explain page, and results dimmed after an edit.

On the built-in `sentiment` model (as test_browser.py). WHYBOX_SHOTS=<folder> saves a screenshot of each step
there (the before/after pictures of the issue)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from benchmarks.browser import dashboard_server, idle, painted, rerun

pytestmark = pytest.mark.browser

TEXT = "A gripping, funny and beautifully acted film. I loved every minute of it."
METHODS = "integrated_gradients,lime,occlusion,attention"  # signed, word-level, perturbation, unsigned
WAIT_MS = 600_000  # the first explanation (a cold cache builds the model first)
STEP_MS = 180_000  # one switch: a redraw from finished results


@pytest.fixture(scope="module")
def server():
    with dashboard_server() as (url, _):
        yield url


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


def shot(page, name: str) -> None:
    folder = os.environ.get("WHYBOX_SHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1440, "height": min(max(height + 40, 900), 8000)})
    painted(page)
    page.screenshot(path=str(Path(folder) / f"{name}.png"))
    page.set_viewport_size({"width": 1440, "height": 900})


def no_error(page) -> None:
    body = page.locator("[data-testid='stMain']").inner_text()
    assert "Internal error" not in body and "StreamlitDuplicateElementKey" not in body
    assert page.locator("[data-testid='stException']").count() == 0


def explained(page, server) -> None:
    page.goto(f"{server}/?text={quote(TEXT)}&methods={METHODS}")
    page.get_by_role("button", name="Prepare downloads (JSON and HTML report)").wait_for(timeout=WAIT_MS)
    idle(page, WAIT_MS)


def test_every_switch_on_a_full_explain_page_draws_without_error(page, server):
    """Before: "One colour scale for all cards" ended in an internal error (a card's image buttons registered
    twice), the Stop button stayed and the downloads section was gone."""
    broken: list[str] = []
    page.on("pageerror", lambda error: broken.append(str(error)))  # a chart plotly.js cannot draw, say
    explained(page, server)
    switches = page.locator("[data-testid='stMain'] [data-testid='stCheckbox']")
    assert switches.count() >= 3  # one colour scale, compact rows, colour by class
    for i in range(switches.count()):
        for state in ("on", "off"):
            with rerun(page, STEP_MS):
                switches.nth(i).locator("label").click()
            no_error(page)
            shot(page, f"1-switch{i}-{state}")
    for i in range(switches.count()):  # all on together
        with rerun(page, STEP_MS):
            switches.nth(i).locator("label").click()
        no_error(page)
    shot(page, "1-all-on-words")
    with rerun(page, STEP_MS):  # and coloured per token
        page.locator("[data-testid='stMain']").get_by_text("Subword token", exact=True).click()
    no_error(page)
    shot(page, "1-all-on")
    page.get_by_role("button", name="Prepare downloads (JSON and HTML report)").wait_for()
    assert page.get_by_role("button", name="Stop").count() == 0
    page.get_by_text("One row per method (one colour scale").wait_for()  # the compact rows, drawn
    assert page.locator(".js-plotly-plot .heatmaplayer image").count() >= 1
    assert not broken, broken
    with rerun(page, STEP_MS):  # compact off again: the cards, each with its image button
        page.get_by_text("Compact: one row per method").click()
    assert page.locator("[data-testid='stMain'] [data-testid='stPopover']").count() == 4


def test_after_an_edit_the_old_results_are_dimmed(page, server):
    """Before: the new text stood above the old full-strength "positive, p = 0.99"; only a grey caption said so."""
    explained(page, server)
    metric = page.locator("[data-testid='stMetric']").first
    assert float(metric.evaluate("e => getComputedStyle(e.closest('.st-key-fresh_results')).opacity")) == 1
    box = page.locator("textarea").first
    box.fill("Short and sweet.")
    with rerun(page, WAIT_MS):
        box.press("Control+Enter")
    page.get_by_text("are for an earlier text").wait_for()
    opacity = metric.evaluate('e => getComputedStyle(e.closest(\'[class*="st-key-"][class*="results"]\')).opacity')
    assert float(opacity) < 0.5
    shot(page, "4-stale")


def test_an_uploaded_file_preselects_the_column_holding_the_models_labels(page, server, tmp_path):
    """Before: the label column started at "(none)" although a column held 'positive' and 'negative'."""
    data = tmp_path / "my reviews.csv"
    data.write_text(
        "review,stars,verdict\n"
        + "".join(f"review number {i} was fine,{i % 5},{'positive' if i % 2 else 'negative'}\n" for i in range(8)),
        encoding="utf-8",
    )
    page.goto(f"{server}/audit")
    page.get_by_text("Upload a file").wait_for(timeout=WAIT_MS)
    idle(page, WAIT_MS)
    with rerun(page, STEP_MS):
        page.get_by_text("Upload a file").click()
    with rerun(page, STEP_MS):
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(data))
    page.get_by_text("Label column").wait_for(timeout=STEP_MS)
    idle(page, STEP_MS)
    shot(page, "5-audit-upload")
    no_error(page)
    label = page.locator("[data-testid='stSelectbox']").filter(has_text="Label column")
    html = label.evaluate("e => e.outerHTML")
    assert re.search(r"verdict", html) and not re.search(r"\(none\)", html), html[-1500:]
