"""Dashboard timings, measured as a person meets them: the real app in headless Chromium.

    .venv/bin/python -m benchmarks.dashboard [--repeats 5] [--cold-repeats 3] [--json]

- cold start: from launching `streamlit run` to the Explain page interactive with the model loaded
  (the built-in model already built and cached on disk, as after `make run` once);
- Explain -> rendered: from pressing Explain on a new text to every default explanation on screen;
- cached re-render: pressing Explain again on the same text (results come from the cache), and
  switching the heatmaps between words and subword tokens.

Times of script runs are taken in the browser from Streamlit's own "script running" flag, watched by
a MutationObserver, so that no polling interval is added to them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

from benchmarks.browser import (
    LAST_FINISH,
    RUN_FINISHED_AFTER,
    WATCH_SCRIPT_STATE,
    chromium,
    dashboard_server,
    idle,
    rerun,
)
from explainers.methods import DEFAULT_METHODS

TARGETS_S = {"cold_start": 8.0, "cached_rerender": 0.3}
# Reviews of 30-40 tokens (the W1 length); each fresh Explain uses a new one, so nothing is cached.
REVIEWS = [
    "A gripping, funny and beautifully acted film, though the last half hour drags and the ending is far too neat.",
    "The plot is thin and the jokes fall flat, but the two leads are so warm together that I smiled all the way "
    "through.",
    "Dull, overlong and badly lit: even a fine score cannot rescue a script this lazy, and the cast looks bored.",
    "An honest, moving portrait of a family in crisis, with a quiet final scene that stayed with me for days.",
    "I wanted to like this remake, yet every twist is telegraphed and the action scenes are edited into a blur.",
    "Sharp writing, a wonderful villain and real tension in every chase make this the best thriller of the year.",
]


def timed_action(page, action, ready=None, timeout: float = 600_000) -> float:
    """Seconds from `action` (a click, a key press) until the rerun it starts has finished and
    `ready` (an extra wait, e.g. for a locator) holds."""
    t0 = page.evaluate("() => performance.now()")
    action()
    page.wait_for_function(RUN_FINISHED_AFTER, arg=[t0, False], timeout=timeout)
    if ready:
        ready()
    finished = max(page.evaluate(LAST_FINISH), page.evaluate("() => performance.now()") if ready else 0)
    return (finished - t0) / 1000


def open_app(browser, url: str):
    """A new tab on the app, returned once the Explain page is interactive with the model loaded."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(url)
    page.get_by_text("Loaded sentiment").wait_for(timeout=600_000)
    page.get_by_role("button", name="Explain", exact=True).wait_for()
    idle(page)
    return page


def explain_runs(page, repeats: int, results: dict[str, list[float]]) -> None:
    """Fresh Explain runs, each on a new review, each followed by two cached re-renders."""
    page.evaluate(WATCH_SCRIPT_STATE)
    heatmaps = page.locator(".whybox-heatmap")
    button = page.get_by_role("button", name="Explain", exact=True)
    all_shown = lambda: heatmaps.nth(len(DEFAULT_METHODS) - 1).wait_for(timeout=600_000)  # noqa: E731
    for i, text in zip(range(repeats), REVIEWS * repeats):
        box = page.get_by_label("Text to explain")
        box.fill(text)
        with rerun(page):
            box.press("Control+Enter")
        fresh = timed_action(page, button.click, all_shown)
        again = timed_action(page, button.click, all_shown)
        view = "Subword token" if i % 2 == 0 else "Word"
        switch = timed_action(page, page.get_by_test_id("stButtonGroup").get_by_text(view, exact=True).click)
        results["explain_to_rendered"].append(fresh)
        results["cached_explain"].append(again)
        results["cached_switch_view"].append(switch)
        print(
            f"  explain {i + 1}: {fresh:.2f} s, cached again {again:.3f} s, switch view {switch:.3f} s", file=sys.stderr
        )


def measure(repeats: int, cold_repeats: int) -> dict[str, list[float]]:
    from explainers import builtin

    builtin.builtin_path("sentiment")  # built once and cached on disk: the cold start is the server's
    results: dict[str, list[float]] = {
        "cold_start": [],
        "explain_to_rendered": [],
        "cached_explain": [],
        "cached_switch_view": [],
    }
    with chromium() as browser:
        for i in range(cold_repeats):
            started = time.perf_counter()
            with dashboard_server() as (url, _):
                page = open_app(browser, url)
                results["cold_start"].append(time.perf_counter() - started)
                print(f"  cold start {i + 1}: {results['cold_start'][-1]:.2f} s", file=sys.stderr)
                if i == cold_repeats - 1:
                    explain_runs(page, repeats, results)
                page.close()
    return results


def summary(results: dict[str, list[float]]) -> dict:
    out = {}
    for name, runs in results.items():
        target = TARGETS_S.get("cold_start" if name == "cold_start" else "cached_rerender" if "cached" in name else "")
        median = statistics.median(runs)
        out[name] = {
            "median_s": round(median, 3),
            "min_s": round(min(runs), 3),
            "max_s": round(max(runs), 3),
            "runs_s": [round(r, 3) for r in runs],
            "target_s": target,
            "pass": None if target is None else median <= target,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh Explain runs (each on a new review)")
    parser.add_argument("--cold-repeats", type=int, default=3, help="server launches timed")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    table = summary(measure(args.repeats, args.cold_repeats))
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "methods": list(DEFAULT_METHODS),
    }
    if args.json:
        print(json.dumps({"machine": machine, "dashboard": table}, indent=2))
        return 0
    print(
        f"dashboard, built-in sentiment, methods {', '.join(DEFAULT_METHODS)}; {machine['cores']} cores, "
        f"load {machine['load_before']} -> {machine['load_after']}"
    )
    print(f"{'what':28} {'median s':>9} {'min s':>7} {'max s':>7}  target")
    for name, row in table.items():
        verdict = "" if row["target_s"] is None else f"<= {row['target_s']} s {'PASS' if row['pass'] else 'MISS'}"
        print(f"{name:28} {row['median_s']:9.3f} {row['min_s']:7.3f} {row['max_s']:7.3f}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
