"""Every switch of every page in a real browser: each page is opened (with its cheap action run, so that it
shows its full state), then every checkbox, toggle, radio option, segmented control and pill in the main
area (in every tab) is clicked one at a time; after each click the run must end without an exception box or
an "Internal error" alert, and with nothing left running.

On the tiny BERT of conftest.py (the dashboard starts on it). WHYBOX_SHOTS=<folder> saves a screenshot of
each page there after its last switch."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from benchmarks.browser import dashboard_server, idle, painted, rerun
from explainers.models.builtin import DEFAULT_MODEL_ENV

pytestmark = pytest.mark.browser

TEXT = "a gripping , funny film ."
STEP_MS = 180_000  # one click on the tiny model (generous: the suite runs it on a busy machine)
SWITCHES = (
    "[data-testid='stMain'] :is([data-testid='stCheckbox'], [data-testid='stRadio'], [data-testid='stButtonGroup'])"
)


@pytest.fixture(scope="module")
def server(tiny_bert_dir):
    with dashboard_server({DEFAULT_MODEL_ENV: str(tiny_bert_dir)}) as (url, _):
        yield url


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    tab = context.new_page()
    broken: list[str] = []
    tab.on("pageerror", lambda error: broken.append(str(error)))  # a chart the browser cannot draw, say
    yield tab
    context.close()
    assert not broken, broken


def no_error(page, where: str) -> None:
    main = page.locator("[data-testid='stMain']")
    body = main.inner_text()
    assert "Internal error" not in body and "StreamlitDuplicateElementKey" not in body, f"{where}: {body[-2000:]}"
    assert page.locator("[data-testid='stException']").count() == 0, f"{where}: {body[-2000:]}"


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


def press(page, name: str, timeout: float = STEP_MS) -> None:
    with rerun(page, timeout):
        buttons = page.locator("[data-testid='stMain'] button")
        buttons.filter(has_text=re.compile(rf"{re.escape(name)}$")).first.click()  # after its icon's name
    idle(page, timeout)


def options(widget):
    """A widget's clickable options and which of them is chosen now (a checkbox: one option, never chosen,
    so that it is clicked on and off again)."""
    kind = widget.get_attribute("data-testid")
    if kind == "stCheckbox":
        return [widget.locator("label").first], []
    if kind == "stRadio":
        items = widget.locator("[data-testid='stRadioOption']")
        chosen = widget.locator("[role='radiogroup'] > div").evaluate_all(
            "els => els.map((e, i) => e.dataset.selected === 'true' ? i : -1).filter(i => i >= 0)"
        )
        return [items.nth(i) for i in range(items.count())], chosen
    items = widget.locator("button")
    chosen = items.evaluate_all(
        "els => els.map((e, i) => e.getAttribute('aria-checked') === 'true' || e.dataset.testid?.endsWith('Active')"
        " ? i : -1).filter(i => i >= 0)"
    )
    return [items.nth(i) for i in range(items.count())], chosen


def toggle_everything(page, name: str) -> int:
    """Click every switch of the page, in every tab, one at a time, and put each back as it was; the number
    of clicks."""
    main = page.locator("[data-testid='stMain']")
    tabs = main.get_by_role("tab")
    clicks = 0
    for t in range(max(tabs.count(), 1)):

        def click(option, where: str, t: int = t) -> None:
            if tabs.count():
                tabs.nth(t).click()  # tabs switch in the browser (no run); a run may show the first tab again
            with rerun(page, STEP_MS):
                option.click()
            no_error(page, where)

        if tabs.count():
            tabs.nth(t).click()
        switches = page.locator(SWITCHES)
        i = 0
        while i < switches.count():
            widget = switches.nth(i)
            i += 1
            items, chosen = options(widget)
            if not items or not items[0].is_visible():
                continue  # another tab's, or a closed expander's
            label = widget.inner_text().split("\n")[0]
            for j, item in enumerate(items):
                if j in chosen:
                    continue
                where = f"{name}: {label!r} option {j}"
                click(item, where)
                clicks += 1
                # back as it was: a single choice back on its option; a checkbox, or one of many, clicked again
                _, now = options(switches.nth(i - 1))
                back = items[chosen[0]] if chosen and chosen[0] not in now else item
                click(back, where + " (back)")
    return clicks


# A widget's code loads after the run that sends it: until then the page shows a grey placeholder
DRAWN = '() => !document.querySelector(\'[data-testid="stMain"] [data-testid="stSkeleton"]\')'


def opened(page, url: str) -> None:
    for attempt in range(2):
        page.goto(url)
        page.locator("[data-testid='stMain'] h1").first.wait_for(timeout=STEP_MS)
        idle(page, STEP_MS)
        try:
            page.wait_for_function(DRAWN, timeout=STEP_MS)
            break
        except PlaywrightTimeout:  # a widget's code chunk that never arrived (Streamlit's loader, seen under
            if attempt:  # load): open the page again once; a page still not drawn then is a failure
                raise
    no_error(page, url)


PAGES = {  # page: its cheap action (the button that shows the page's full state), and its switches' options
    "trace": ("Trace", 4),  # noise, log p, noising, preview
    "layers": ("Look inside", 0),
    "attention": (None, 2),  # the rollout's two toggles
    "compare": ("Compare", 2),  # the other two kinds
    "what_if": (None, 4),
    "audit": (None, 1),  # upload a file
    "guide": (None, 0),
}


def once_more_on_timeout(test):
    """Run a page's test again, from opening the page, when a wait timed out: in the whole suite on a busy
    2-core machine a script run was sometimes never seen to finish (3 of ~40 page runs in three full runs,
    never alone). An error or a wrong count still fails at once; a second timeout fails too."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        try:
            return test(*args, **kwargs)
        except PlaywrightTimeout:
            return test(*args, **kwargs)

    return run


@pytest.mark.parametrize("name", list(PAGES))
@once_more_on_timeout
def test_every_switch_of_a_page_draws_without_error(page, server, name):
    action, clicks = PAGES[name]
    opened(page, f"{server}/{name}")  # on the example text (Trace: the example pair)
    if action:
        press(page, action)
        no_error(page, f"{name} after {action}")
    assert toggle_everything(page, name) >= clicks
    # everything is back as it was: nothing the user had is lost (Trace once emptied the corrupted text)
    assert "could not run" not in page.locator("[data-testid='stMain']").inner_text()
    shot(page, name)


@once_more_on_timeout
def test_every_switch_of_the_faithfulness_page_with_its_sanity_and_consistency_checks(page, server):
    opened(page, f"{server}/faithfulness?text={quote(TEXT)}&methods=occlusion,input_x_gradient")
    press(page, "Run the sanity check")
    press(page, "Run the consistency check")
    no_error(page, "faithfulness after its checks")
    assert toggle_everything(page, "faithfulness") >= 10  # mode, 2 measures each, the words
    shot(page, "faithfulness")


@once_more_on_timeout
def test_every_switch_of_the_concepts_page(page, server):
    opened(page, f"{server}/concepts")
    box = page.get_by_label("Texts per set")
    with rerun(page, STEP_MS):
        box.fill("4")
        box.press("Enter")
    press(page, "Read the layers")
    no_error(page, "concepts after reading the layers")
    assert toggle_everything(page, "concepts") >= 3  # the other three sources
    shot(page, "concepts")


@once_more_on_timeout
def test_every_switch_of_the_features_page(page, server):
    opened(page, f"{server}/features")
    # without an SAE the page offers the build with its estimate, and has no switch yet
    assert page.get_by_text(re.compile("^No SAE in .* about .* here")).count() == 1
    assert page.get_by_role("button", name="Build").is_visible()
    assert toggle_everything(page, "features") == 0
    no_error(page, "features")
    shot(page, "features")


@once_more_on_timeout
def test_every_switch_of_the_present_page(page, server):
    opened(page, f"{server}/?text={quote(TEXT)}&methods=occlusion,input_x_gradient")
    page.get_by_test_id("stMetric").first.wait_for(timeout=STEP_MS)  # explained (a link with a text runs at once)
    idle(page, STEP_MS)
    with rerun(page, STEP_MS):
        page.locator("[data-testid='stSidebarNav']").get_by_role("link", name="Present").click()
    no_error(page, "present")
    assert toggle_everything(page, "present") >= 1
    shot(page, "present")
