"""The Audit page in headless Chromium with a finished audit on screen: a small audit of the built-in model
is computed here, opened from the page's list of finished audits, and its results must render (accuracy,
the method ranking chart, the examples table) with nothing wider than its container."""

from __future__ import annotations

import shutil
import uuid

import pandas as pd
import pytest

from benchmarks.browser import CHROMIUM, ROOT, chromium, dashboard_server, idle, painted, rerun

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts"
MODEL_WAIT_MS = 600_000  # a cold cache builds the built-in model first
METHODS = ("occlusion", "leave_one_out")  # cheap: the page is what is tested here, not the methods

# Every element of the main block whose box sticks out of its parent's box (to the right or left), skipping
# what lives inside a chart or the data grid (they clip and scroll their own content), and the page's own
# horizontal overflow.
OVERFLOWING = """() => {
  const main = document.querySelector('[data-testid="stMainBlockContainer"]');
  const inside = (el) => el.closest('.js-plotly-plot, [data-testid="stDataFrame"]');
  const out = [];
  for (const el of main.querySelectorAll('*')) {
    const parent = el.parentElement;
    if (!parent || inside(parent) || el.getClientRects().length === 0) continue;
    const a = el.getBoundingClientRect(), b = parent.getBoundingClientRect();
    if (a.width === 0 || getComputedStyle(parent).overflowX !== 'visible') continue;
    if (a.right > b.right + 1 || a.left < b.left - 1) {
      out.push(`${el.tagName.toLowerCase()}[${el.dataset.testid || el.className}] ${a.width.toFixed(0)}px in ` +
               `${parent.tagName.toLowerCase()}[${parent.dataset.testid || parent.className}] ${b.width.toFixed(0)}px`);
    }
  }
  const doc = document.scrollingElement;
  if (doc.scrollWidth > doc.clientWidth + 1) out.push(`page ${doc.scrollWidth}px wide in ${doc.clientWidth}px`);
  return out;
}"""


@pytest.fixture(scope="module")
def finished_audit():
    """A finished audit of 12 held-out sentences, in the folder the page lists finished audits from."""
    from explainers.audit.data import read_data
    from explainers.audit.engine import run_audit
    from explainers.audit.work import AuditSettings
    from explainers.builtin import cache_dir
    from explainers.loading import load_model

    out = cache_dir() / "audits" / f"browser-test-{uuid.uuid4().hex[:8]}"
    store = out.parent / f"{out.name}-store"
    data = read_data("builtin:rt-heldout", limit=12)
    result = run_audit(data, AuditSettings("sentiment", METHODS), out, handle=load_model("sentiment"), store_dir=store)
    yield result
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(store, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with chromium() as browser:
        yield browser


def test_a_finished_audit_renders_its_results(browser, finished_audit):
    summary = finished_audit.summary
    with dashboard_server() as (url, _):
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.goto(url)
        page.get_by_text("Loaded sentiment").wait_for(timeout=MODEL_WAIT_MS)
        with rerun(page):
            page.get_by_test_id("stSidebarNav").get_by_text("Audit", exact=True).click()
        page.get_by_text("Open a finished audit").click()
        page.get_by_text("Pick an audit…").click()
        name = f"sentiment · builtin:rt-heldout · 12 texts · {', '.join(METHODS)}"
        with rerun(page):
            page.get_by_role("option", name=name).first.click()
        with rerun(page, timeout=300_000):
            page.get_by_role("button", name="Open", exact=True).click()
        page.get_by_role("heading", name="Results").wait_for(timeout=300_000)
        idle(page)

        # accuracy: the summary's value, itself checked against the records
        results = pd.read_parquet(finished_audit.out_dir / "results.parquet").drop_duplicates("row_id")
        accuracy = (results["label"] == results["predicted"]).mean()
        assert summary["prediction"]["accuracy"] == pytest.approx(accuracy)
        metric = page.get_by_test_id("stMetric").filter(has_text="Accuracy")
        assert f"{accuracy:.3f}" in metric.inner_text()
        # the ranking chart draws one marker per method
        ranking = page.locator(".st-key-audit_ranking")
        ranking.locator(".scatterlayer .point").nth(len(METHODS) - 1).wait_for(timeout=60_000)
        assert ranking.locator(".scatterlayer .point").count() == len(METHODS)
        # the examples table, under its heading
        page.get_by_role("heading", name="Examples to look at").wait_for()
        grids = page.get_by_test_id("stDataFrame")
        assert grids.count() >= 2  # the share of texts where each method wins, the examples
        page.get_by_role("button", name="Report (HTML)").wait_for()

        ARTIFACTS.mkdir(exist_ok=True)
        height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1440, "height": min(max(height + 40, 1000), 12000)})
        painted(page)
        page.screenshot(path=str(ARTIFACTS / "6-audit.png"))
        assert page.evaluate(OVERFLOWING) == []
        context.close()
