"""The dashboard at phone size (390 × 844, touch) in headless Chromium: the sidebar closes after a page
change, no chart title lies under plotly's mode bar, and LIME's values do not run into its word labels.
Uses the built-in `sentiment` model, as tests/test_browser.py does; screenshots go to test-artifacts/."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from benchmarks.browser import CHROMIUM, ROOT, chromium, dashboard_server, idle, painted, rerun

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
PHONE = {"width": 390, "height": 844}
MODEL_WAIT_MS = 600_000  # a cold cache builds the built-in model first
# A link (it runs at once): the prediction chart and LIME's word bars, kept cheap for a busy machine.
LINK = urlencode(
    {
        "text": "A gripping, funny and beautifully acted film. I loved every minute of it.",
        "methods": "lime",
        "params": json.dumps({"lime": {"n_samples": 200}}),
    }
)

# Per chart: the title's and the mode bar's boxes (the bar is drawn on touch screens even without hover).
TITLE_AND_MODEBAR = """() => [...document.querySelectorAll('[data-testid=stPlotlyChart]')].map(chart => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom]; };
  const title = chart.querySelector('.gtitle'), bar = chart.querySelector('.modebar');
  return {title: title ? title.textContent : '', titleBox: title ? box(title) : null, barBox: bar ? box(bar) : null};
})"""
# Per chart: the right edge of its y tick labels and the left edge of each value printed beside a bar.
LABELS_AND_VALUES = """() => [...document.querySelectorAll('[data-testid=stPlotlyChart]')].map(chart => ({
  title: chart.querySelector('.gtitle')?.textContent || '',
  tickRight: Math.max(...[...chart.querySelectorAll('.ytick text')].map(t => t.getBoundingClientRect().right)),
  valueLefts: [...chart.querySelectorAll('.textpoint text')].map(t => t.getBoundingClientRect().left),
}))"""
SIDEBAR_OPEN = """() => { const r = document.querySelector('[data-testid=stSidebar]').getBoundingClientRect();
  return r.right > 1 && r.width > 1; }"""
SIDEBAR_CLOSED = f"() => !({SIDEBAR_OPEN})()"


def overlap(a, b) -> bool:
    return not (a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2])


@pytest.fixture(scope="module")
def phone():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with dashboard_server() as (url, _), chromium() as browser:
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        page = context.new_page()
        page.goto(f"{url}/?{LINK}")
        page.wait_for_selector(".whybox-heatmap", timeout=MODEL_WAIT_MS)
        idle(page, MODEL_WAIT_MS)
        page.locator("[data-testid=stPlotlyChart]").last.scroll_into_view_if_needed()
        painted(page)
        yield page
        context.close()


def test_no_chart_title_under_the_mode_bar(phone):
    charts = phone.evaluate(TITLE_AND_MODEBAR)
    assert len(charts) >= 2  # the prediction and LIME's word bars
    ARTIFACTS.mkdir(exist_ok=True)
    phone.locator("[data-testid=stPlotlyChart]").last.screenshot(path=str(ARTIFACTS / "phone_lime_bars.png"))
    for chart in charts:
        assert chart["titleBox"] is not None
        if chart["barBox"]:
            assert not overlap(chart["titleBox"], chart["barBox"]), chart


def test_lime_values_stay_clear_of_the_word_labels(phone):
    bars = [c for c in phone.evaluate(LABELS_AND_VALUES) if c["title"].startswith("LIME") and c["valueLefts"]]
    assert bars, "LIME's word bars with their values"
    for chart in bars:
        assert min(chart["valueLefts"]) >= chart["tickRight"], chart


def test_the_sidebar_closes_after_a_page_change(phone):
    if not phone.evaluate(SIDEBAR_OPEN):
        phone.get_by_test_id("stExpandSidebarButton").click()
        phone.wait_for_function(SIDEBAR_OPEN)
    with rerun(phone):
        phone.get_by_test_id("stSidebarNav").get_by_text("Compare", exact=True).click()
    phone.wait_for_function(SIDEBAR_CLOSED, timeout=10_000)
    painted(phone)
    phone.screenshot(path=str(ARTIFACTS / "phone_after_navigation.png"))
    assert phone.get_by_role("heading", name="Compare").is_visible()
