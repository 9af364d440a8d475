"""The Audit page in headless Chromium with a finished audit on screen: a small audit (the tiny BERT of
conftest.py, which the dashboard also starts on, so no built-in model is needed) is computed here, opened
from the page's list of finished audits, and its results must render (accuracy, the method ranking chart,
the examples table) with nothing wider than its container."""

from __future__ import annotations

import shutil
import uuid

import pandas as pd
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from benchmarks.browser import ROOT, dashboard_server, idle, painted, rerun
from explainers.models.builtin import DEFAULT_MODEL_ENV, cache_dir

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
METHODS = ("occlusion", "leave_one_out")  # cheap: the page is what is tested here, not the methods

# Every element of the main block whose box sticks out of its parent block's box (to the right or left),
# skipping what lives inside a chart or the data grid (they clip and scroll their own content) and inline
# parents (their box is the text line, not a container), and the page's own horizontal overflow.
OVERFLOWING = """() => {
  const main = document.querySelector('[data-testid="stMainBlockContainer"]');
  const inside = (el) => el.closest('.js-plotly-plot, [data-testid="stDataFrame"]');
  const out = [];
  for (const el of main.querySelectorAll('*')) {
    const parent = el.parentElement;
    if (!parent || inside(parent) || el.getClientRects().length === 0) continue;
    const style = getComputedStyle(parent);
    if (style.overflowX !== 'visible' || style.display === 'inline' || style.display === 'contents') continue;
    const a = el.getBoundingClientRect(), b = parent.getBoundingClientRect();
    if (a.width === 0) continue;
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
def finished_audit(tiny_bert, tiny_bert_dir):
    """A finished audit of 12 held-out sentences, in the folder the page lists finished audits from."""
    from explainers.audit.data import read_data
    from explainers.audit.engine import run_audit
    from explainers.audit.work import AuditSettings
    from explainers.models.builtin import cache_dir

    out = cache_dir() / "audits" / f"browser-test-{uuid.uuid4().hex[:8]}"
    store = out.parent / f"{out.name}-store"
    data = read_data("builtin:rt-heldout", limit=12)
    result = run_audit(data, AuditSettings(str(tiny_bert_dir), METHODS), out, handle=tiny_bert, store_dir=store)
    yield result
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(store, ignore_errors=True)


def test_a_finished_audit_renders_its_results(browser, finished_audit, tiny_bert_dir):
    summary = finished_audit.summary
    # an audit made outside the page is listed when the operator shares its folder (else audits are per session)
    shared = {DEFAULT_MODEL_ENV: str(tiny_bert_dir), "WHYBOX_SHARED_AUDITS": str(cache_dir() / "audits")}
    with dashboard_server(shared) as (url, _):
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.goto(url + "/audit")
        page.get_by_role("heading", name="Audit a data set").wait_for(timeout=120_000)
        idle(page)
        page.get_by_text("Open a finished audit").click()
        picker = page.get_by_role("combobox", name="Finished audits (newest first)")
        picker.wait_for()
        painted(page)  # the expander has opened
        for _ in range(5):  # a click during the expander's animation can miss: click again until the list opens
            picker.click()
            try:
                page.get_by_role("listbox").wait_for(timeout=5_000)
                break
            except PlaywrightTimeout:
                continue
        else:
            raise AssertionError("the list of finished audits never opened")
        options = page.get_by_role("option")
        names = options.all_inner_texts()
        mine = [i for i, name in enumerate(names) if name.startswith(f"{tiny_bert_dir} · ")]
        assert mine, names
        with rerun(page):
            options.nth(mine[0]).click()
        with rerun(page):
            page.locator(".st-key-open_audit button").click()
        page.get_by_role("heading", name="Results").wait_for(timeout=120_000)
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
        # the examples table, under its heading: one row per text (+ the header row)
        page.get_by_role("heading", name="Examples to look at").wait_for()
        examples = page.get_by_test_id("stDataFrame").locator(f"[aria-rowcount='{summary['texts'] + 1}']")
        examples.wait_for(state="attached", timeout=60_000)
        assert summary["texts"] == 12
        page.get_by_role("button", name="Report (HTML)").wait_for()

        ARTIFACTS.mkdir(exist_ok=True)
        height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1440, "height": min(max(height + 40, 1000), 12000)})
        painted(page)
        page.screenshot(path=str(ARTIFACTS / "6-audit.png"))
        assert page.evaluate(OVERFLOWING) == []
        # the check itself finds an element made too wide
        page.evaluate(
            "() => { const d = document.createElement('div'); d.style.width = '5000px'; d.textContent = 'x';"
            " document.querySelector('[data-testid=stMainBlockContainer] [data-testid=stVerticalBlock]')"
            ".appendChild(d); }"
        )
        assert [o.split(" in ")[0] for o in page.evaluate(OVERFLOWING)] == ["div[] 5000px"]
        context.close()
