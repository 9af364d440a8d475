"""The HTML report in headless Chromium, at a desktop and a phone width: nothing wider than its container
(a table may be wider only inside its own scroll box), and every chart drawn inside its card."""

from __future__ import annotations

import pytest
from explainers.metrics.faithfulness import agreement, evaluate_many

from components.report import html_report
from explainers.methods import DEFAULT_METHODS, attention_rollout, explain

pytestmark = pytest.mark.browser

TEXT = "a gripping <script>alert(1)</script> , funny and beautifully acted film that I would watch again ."

# Every element whose width passes its parent's inner width, unless some ancestor scrolls or clips it. A
# scroll box itself is measured by its own box (its scrollWidth is its content's); SVG shapes by their
# outer <svg>; an element parked off-screen is not shown. A parent drawn inline has no inner width of its
# own: its children are skipped.
OVERFLOWS = """() => {
  const scrolls = el => ['auto', 'scroll', 'hidden'].includes(getComputedStyle(el).overflowX);
  const inScrollBox = el => { for (let a = el.parentElement; a; a = a.parentElement) if (scrolls(a)) return true;
                              return false; };
  const bad = [];
  for (const el of document.body.querySelectorAll('*')) {
    const parent = el.parentElement;
    if (!parent || parent.clientWidth === 0) continue;
    if (el instanceof SVGElement && !(el instanceof SVGSVGElement)) continue;
    const box = el.getBoundingClientRect();
    if (box.right <= 0 || box.bottom <= 0) continue;  // parked off-screen (plotly's text-measuring <svg>)
    const width = el instanceof SVGSVGElement ? box.width
                : scrolls(el) ? el.offsetWidth : el.scrollWidth;
    if (width > parent.clientWidth + 1 && !inScrollBox(el))
      bad.push(`${el.tagName.toLowerCase()}.${el.className.baseVal ?? el.className} ${Math.round(width)} px ` +
               `in ${parent.tagName.toLowerCase()}.${parent.className} ${parent.clientWidth} px`);
  }
  if (document.documentElement.scrollWidth > window.innerWidth)
    bad.push(`page ${document.documentElement.scrollWidth} px wide in a ${window.innerWidth} px window`);
  return bad;
}"""
CHARTS_DRAWN = "() => [...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('.main-svg'))"


@pytest.fixture(scope="module")
def report(tiny_bert, tmp_path_factory):
    params = {"integrated_gradients": {"n_steps": 12}, "lime": {"n_samples": 200}}
    exps = [explain(tiny_bert, TEXT, m, **params.get(m, {})) for m in DEFAULT_METHODS]
    enc = tiny_bert.encode(TEXT)
    page = html_report(
        model_info=tiny_bert.describe(),
        explanations=exps,
        reports=evaluate_many(tiny_bert, exps),
        settings={
            "model": tiny_bert.name,
            "text": TEXT,
            "methods": list(DEFAULT_METHODS),
            "params": params,
            "seed": 0,
            "perturbation": "delete",
        },
        agreement=agreement(exps),
        attention=(enc.tokens, attention_rollout(tiny_bert.attentions(enc)).numpy(), "Attention rollout, all layers"),
        marks=[1, 8],
    )
    path = tmp_path_factory.mktemp("report") / "whybox-report.html"
    path.write_text(page, encoding="utf-8")
    return path


@pytest.mark.parametrize("width", [1440, 390], ids=["desktop", "phone"])
def test_nothing_in_the_report_is_wider_than_its_container(browser, report, width, tmp_path):
    context = browser.new_context(viewport={"width": width, "height": 900}, java_script_enabled=True)
    page = context.new_page()
    alerts = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    page.goto(report.as_uri())
    page.wait_for_function(CHARTS_DRAWN, timeout=30_000)
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    page.screenshot(path=str(tmp_path / f"report-{width}.png"), full_page=True)
    assert page.evaluate(OVERFLOWS) == []
    # every chart fits its card: the first curve was once a 1,040 px chart in a 492 px card
    for chart in page.query_selector_all(".js-plotly-plot"):
        card = chart.evaluate("el => el.closest('section').clientWidth")
        assert chart.evaluate("el => el.getBoundingClientRect().width") <= card
    assert alerts == [] and "<script>alert(1)</script>" in page.inner_text("pre.text")  # shown as text, not run
    context.close()
