"""The real dashboard in headless Chromium: `whybox run` on a loopback port, every
page driven as a person would, with every request to another host blocked (and asserted never tried).

Uses the built-in `sentiment` model (built on first use, then cached), so that the screenshots in
test-artifacts/ show what a user sees.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from benchmarks.browser import LOOPBACK, ROOT, dashboard_server, idle, painted, rerun

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
TEXT = "A gripping, funny and beautifully acted film. I loved every minute of it."
METHODS = ["Integrated Gradients", "LIME", "Occlusion", "Attention weights"]  # the defaults
MODEL_WAIT_MS = 600_000  # a cold cache builds the built-in model first (1-2 minutes, more on a busy machine)


@pytest.fixture(scope="module")
def server():
    with dashboard_server() as (url, _):
        yield url


@pytest.fixture
def page(browser, server):
    """A fresh tab; every request to a host other than this machine is recorded and aborted."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    outside: list[str] = []

    def guard(route):
        host = urlparse(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:", "about:")) or host in LOOPBACK:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    tab = context.new_page()
    tab.outside = outside
    yield tab
    context.close()
    assert not outside, f"the dashboard tried to reach other hosts: {outside}"


def screenshot(page, name: str) -> None:
    """The whole page (Streamlit scrolls inside its main block, so grow the window to fit it)."""
    ARTIFACTS.mkdir(exist_ok=True)
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1440, "height": min(max(height + 40, 1000), 8000)})
    painted(page)  # plotly re-lays out to the new size
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size({"width": 1440, "height": 1000})


def go_to(page, title: str) -> None:
    with rerun(page):
        page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()


def plots(page, count: int) -> None:
    page.locator(".js-plotly-plot .main-svg").nth(count - 1).wait_for(timeout=60_000)


def test_every_page_renders_offline(page, server):
    started = time.perf_counter()
    page.goto(server)
    page.get_by_text("Loaded sentiment").wait_for(timeout=MODEL_WAIT_MS)

    # ---- Explain: a first visit shows the example explained, without pressing anything ----------
    # the text box is drawn after the sidebar's model line: wait for the example in it, not only for the box
    page.wait_for_function(
        "text => [...document.querySelectorAll('textarea')].some(box => box.value === text)", arg=TEXT
    )
    assert page.get_by_label("Text to explain").input_value() == TEXT
    heatmaps = page.locator(".whybox-heatmap")
    heatmaps.nth(len(METHODS) - 1).wait_for(timeout=300_000)
    idle(page)
    print(f"\nopen -> the example's {len(METHODS)} explanations visible: {time.perf_counter() - started:.1f} s")
    with rerun(page):  # pressing Explain again redraws from what finished
        page.get_by_role("button", name="Explain", exact=True).click()
    assert heatmaps.count() == len(METHODS)
    assert "gripping" in heatmaps.first.inner_text()
    for title in METHODS:
        page.get_by_role("heading", name=title).wait_for()
    plots(page, 2)  # probabilities + LIME's word bars
    assert page.locator(".js-plotly-plot .main-svg").count() >= 2
    assert page.locator(".whybox-heatmap span[data-score]").count() > 10
    assert "text=" in page.url and "methods=integrated_gradients%2Clime%2Cocclusion%2Cattention" in page.url
    screenshot(page, "1-explain")
    with rerun(page):  # the files are prepared once, when asked, with a status
        page.get_by_role("button", name="Prepare downloads (JSON and HTML report)").click()
    page.get_by_text("Report ready").wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download JSON (explanations + metrics)").click()
    bundle = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert TEXT in json.dumps(bundle, ensure_ascii=False) and "comprehensiveness" in json.dumps(bundle)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download HTML report").click()
    report = Path(download.value.path()).read_text(encoding="utf-8")
    assert report.lstrip().lower().startswith("<!doctype html") and "gripping" in report

    # ---- Faithfulness ------------------------------------------------------------------------------
    go_to(page, "Faithfulness")
    page.get_by_role("button", name="Explain and check").click()
    page.get_by_text("Trust:").wait_for(timeout=120_000)
    idle(page)
    plots(page, 2)  # the first curve tab + the agreement matrix
    page.get_by_role("tab", name="Insertion").click()
    page.get_by_role("tabpanel", name="Insertion").locator(".js-plotly-plot .main-svg").first.wait_for()
    page.get_by_role("tab", name="Deletion").click()
    page.get_by_test_id("stDataFrame").first.wait_for()
    with rerun(page):
        page.get_by_test_id("stButtonGroup").get_by_text("gripping ·2", exact=True).click()
    page.locator("th", has_text="Token F1").first.wait_for(state="attached")
    screenshot(page, "2-faithfulness")

    # ---- Attention: BertViz draws inside its iframe ---------------------------------------------------
    go_to(page, "Attention")
    frame = page.frame_locator("iframe").first
    frame.locator("svg line").first.wait_for(state="attached", timeout=60_000)
    assert frame.locator("svg line").count() > 10
    frame.locator("svg text").filter(has_text="gripping").first.wait_for(state="attached")
    page.get_by_text("Attention is a view of the model, not an explanation").wait_for()
    painted(page)
    screenshot(page, "3-attention")
    page.get_by_role("tab", name="Model view").click()
    model_view = page.frame_locator("iframe").nth(1)
    model_view.locator("svg line").first.wait_for(state="attached", timeout=60_000)
    # the frame grows with the drawing and the drawing shrinks to the frame: no scroll bars inside
    page.wait_for_function(
        """() => { const f = document.querySelectorAll('iframe')[1], d = f.contentDocument.documentElement;
                   return f.clientHeight > 0 && f.clientHeight >= d.scrollHeight && f.clientWidth >= d.scrollWidth; }"""
    )
    screenshot(page, "3-attention-model-view")
    page.get_by_role("tab", name="Neuron view").click()  # queries and keys, BertViz's own BERT
    neuron_view = page.frame_locator("iframe").nth(2)
    neuron_view.locator("svg text").filter(has_text="gripping").first.wait_for(state="attached", timeout=60_000)
    assert neuron_view.locator("svg text").count() > 10
    screenshot(page, "3-attention-neuron-view")
    page.get_by_role("tab", name="Attention rollout").click()
    plots(page, 1)
    screenshot(page, "3-attention-rollout")

    # ---- Compare -----------------------------------------------------------------------------------
    go_to(page, "Compare")
    assert "hated" in page.get_by_label("Text B (edit it)").input_value()
    page.get_by_role("button", name="Compare", exact=True).click()
    page.get_by_role("heading", name="What changed").wait_for(timeout=120_000)
    idle(page)
    plots(page, 3)
    assert page.locator(".whybox-heatmap").count() == 2
    screenshot(page, "4-compare")

    # ---- Guide ---------------------------------------------------------------------------------------
    go_to(page, "Guide")
    page.get_by_text("Which method when").wait_for()  # the lesson comes first
    screenshot(page, "5-guide")
    page.get_by_role("tab", name="Methods").click()
    page.get_by_text("Averages gradients along a straight path").wait_for()
    page.get_by_role("tab", name="Caveats").click()
    page.get_by_text("Attention is not explanation.").wait_for()
    screenshot(page, "5-guide-caveats")
    assert not page.outside


def test_cards_stream_in_and_stop_keeps_what_finished(page, server):
    """The prediction and the cheap cards come first; Stop ends the run within a batch and keeps them;
    the unfinished methods say so, and pressing Explain again runs only those."""
    page.goto(server)
    page.get_by_text("Loaded sentiment").wait_for(timeout=MODEL_WAIT_MS)
    idle(page)
    box = page.get_by_label("Text to explain")
    box.fill("An honest, moving portrait of a family in crisis, with a quiet final scene that stayed with me.")
    with rerun(page):
        box.press("Control+Enter")
    page.get_by_text("Method parameters").click()
    with rerun(page):  # LIME with many samples: long enough to stop part-way
        page.get_by_label("n_samples", exact=True).first.fill("5000")
        page.get_by_label("n_samples", exact=True).first.press("Enter")
    page.get_by_role("button", name="Explain", exact=True).click()
    page.get_by_role("button", name="Stop").wait_for(timeout=120_000)  # the run has started
    page.get_by_test_id("stMetricLabel").get_by_text("Explained label").first.wait_for(
        timeout=120_000
    )  # before any card
    cards = page.locator(".whybox-heatmap", has_text="portrait")  # this text's cards (not the example's)
    cards.first.wait_for(timeout=120_000)  # a first card while others still run
    assert page.get_by_role("button", name="Stop").is_visible()
    assert cards.count() < len(METHODS)
    with rerun(page):
        page.get_by_role("button", name="Stop").click()
    page.get_by_text(re.compile("^Stopped before")).wait_for()
    kept = cards.count()
    assert 1 <= kept < len(METHODS)
    assert page.get_by_text(re.compile(": stopped before it finished")).count() == len(METHODS) - kept
    screenshot(page, "6-stopped")
    with rerun(page, timeout=600_000):  # runs only what had not finished
        page.get_by_role("button", name="Explain", exact=True).click()
    assert cards.count() == len(METHODS)
    assert page.get_by_text(re.compile("[Ss]topped before")).count() == 0
