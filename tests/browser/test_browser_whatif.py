"""The What-if page's live edit in headless Chromium: typing (no Enter, no click away) updates the prediction,
and the box keeps its text, focus and caret through the reruns. Uses the built-in `sentiment` model."""

from __future__ import annotations

import pytest

from benchmarks.browser import idle, painted, rerun
from tests.browser.test_browser import MODEL_WAIT_MS, go_to, page, screenshot, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

ORIGINAL = "A gripping, funny and beautifully acted film."
METRIC = '[data-testid="stMetric"]:has-text("after the edit") [data-testid="stMetricValue"]'
# The live box lives in the component's shadow root: report its text, whether it has focus, and its caret.
BOX_STATE = """() => {
  const host = [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')]
    .find(h => h.shadowRoot && h.shadowRoot.querySelector('textarea'));
  const box = host.shadowRoot.querySelector('textarea');
  return {value: box.value, focused: host.shadowRoot.activeElement === box, caret: box.selectionStart};
}"""


def settled(tab) -> str:
    """Wait (on the page, not a clock) until Python has seen the box's current text and no run is going on;
    return the after-edit metric."""
    tab.wait_for_function(
        """() => {
          const host = [...document.querySelectorAll('[data-testid="stBidiComponentIsolated"]')]
            .find(h => h.shadowRoot && h.shadowRoot.querySelector('textarea'));
          const box = host && host.shadowRoot.querySelector('textarea');
          return box && box.dataset.synced === 'true'
            && document.querySelector('[data-testid="stApp"]').dataset.testScriptState === 'notRunning';
        }""",
        timeout=MODEL_WAIT_MS,
    )
    return tab.locator(METRIC).inner_text().strip()


def test_typing_updates_the_prediction_without_enter(page, server):  # noqa: F811 (fixtures)
    page.goto(server)
    idle(page, MODEL_WAIT_MS)
    go_to(page, "What if")
    original = page.get_by_label("Original text")
    with rerun(page, MODEL_WAIT_MS):
        original.fill(ORIGINAL)
        original.press("Control+Enter")
    box = page.get_by_test_id("whyboxLiveText")
    box.wait_for(timeout=MODEL_WAIT_MS)
    assert box.input_value() == ORIGINAL
    assert page.locator(METRIC).count() == 0  # nothing edited yet

    # type a change: no Enter, no blur; the debounce sends it and the prediction appears
    box.click()
    page.keyboard.press("End")
    for _ in range(len("film.")):
        page.keyboard.press("Backspace")
    page.keyboard.type("mess, dull and boring.", delay=40)
    first = settled(page)
    state = page.evaluate(BOX_STATE)
    edited = ORIGINAL[: -len("film.")] + "mess, dull and boring."
    assert state == {"value": edited, "focused": True, "caret": len(edited)}
    main = page.get_by_test_id("stMain").inner_text()
    assert "Still " in main or "Verified flip" in main  # the verdict under the figure

    # keep typing in the middle of the text: the caret stays where the user put it, and the figure moves again
    page.keyboard.press("Home")
    page.keyboard.type("Not ", delay=40)
    second = settled(page)
    state = page.evaluate(BOX_STATE)
    assert state == {"value": "Not " + edited, "focused": True, "caret": len("Not ")}
    assert second != first
    painted(page)
    screenshot(page, "what-if-live-edit")
