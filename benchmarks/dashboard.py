"""Dashboard timings, measured as a person meets them: the real app in headless Chromium.

    .venv/bin/python -m benchmarks.dashboard [--repeats 3] [--skip-cold-build] [--reviews N] [--json]

On the built-in `sentiment` model and its first example (18 tokens), default methods, each run in a new
session with a new seed (nothing cached):
- Explain -> first card, -> all cards, -> the run's end, with the quick, default and thorough presets;
- Stop -> idle: Stop pressed during a thorough run (after its first card) until no script runs;
- first visit: a new visitor's page shows content (the title), then the example's cards; with the
  model built, and with none (WHYBOX_CACHE at an empty folder: the build, ~80 s, unless --skip-cold-build);
- with --reviews N: fresh and cached Explain on longer reviews, and the word/token switch.
The load average is printed beside every figure (the machine may be shared), with the server process's
CPU seconds over the same interval (the work behind the figure, which load stretches less than wall
time), and the torch threads each run was given on admission (its status line).

Times of script runs are taken in the browser from Streamlit's own "script running" flag, and card
times from the number of heatmaps on the page, both watched by MutationObservers, so that no polling
interval is added to them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
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


# Records every change in the number of explanation heatmaps on the page, in the page's own clock.
WATCH_CARDS = """() => {
  const count = () => document.querySelectorAll('.whybox-heatmap').length;
  let last = count();
  window.__whyboxCards = [[last, performance.now()]];
  if (window.__whyboxCardObserver) window.__whyboxCardObserver.disconnect();
  window.__whyboxCardObserver = new MutationObserver(() => {
    const n = count();
    if (n !== last) { last = n; window.__whyboxCards.push([n, performance.now()]); }
  });
  window.__whyboxCardObserver.observe(document.body, {childList: true, subtree: true});
}"""
CARDS_AT_LEAST = "([n, t0]) => (window.__whyboxCards || []).some(([c, t]) => c >= n && t >= t0)"
FIRST_AT_LEAST = (
    "([n, t0]) => Math.min(...window.__whyboxCards.filter(([c, t]) => c >= n && t >= t0).map(([, t]) => t))"
)
EXAMPLE = "A gripping, funny and beautifully acted film. I loved every minute of it."  # the first example
CONTENT = "h1"  # a title in the page: whybox's intro while the server starts or builds, else the Explain page's
TARGETS_S = {
    "first visit, model built: content": 2.0,
    "first visit, no model: content": 2.0,
    "quick: Explain -> first card": 1.0,
    "quick: Explain -> all cards": 3.0,
    "Stop -> idle": 1.0,
}


class ServerCPU:
    """CPU seconds the server process has used (all its threads): the work behind a figure, which the
    machine's load does not stretch the way it stretches wall time."""

    pid: int | None = None

    @classmethod
    def now(cls) -> float:
        if cls.pid is None:
            return float("nan")
        with open(f"/proc/{cls.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CPU: dict[str, list[float]] = {}


def record(results: dict, name: str, seconds: float, cpu: float) -> None:
    results.setdefault(name, []).append(seconds)
    CPU.setdefault(name, []).append(cpu)


def fresh_session(browser, url: str, seed: int, preset: str):
    """A new tab (a new session) on the Explain page with the first example, seed `seed` (so that nothing
    is cached) and the preset chosen in the sidebar; no run yet (a link without text does not autorun)."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{url}/?seed={seed}")
    page.get_by_role("button", name="Explain", exact=True).wait_for(timeout=600_000)
    idle(page)
    if preset != "default":
        # Wait on the preset being chosen and no script running, not on seeing a rerun: a click during the
        # page's first run restarts that run, which the run watcher may then not see start.
        page.get_by_test_id("stSidebar").get_by_text(preset.capitalize(), exact=True).click()
        presets = page.get_by_test_id("stSidebar").get_by_role("radiogroup", name="Preset")
        presets.get_by_role("radio", name=preset.capitalize(), checked=True).wait_for(timeout=120_000)
        idle(page)
    page.evaluate(WATCH_SCRIPT_STATE)
    page.evaluate(WATCH_CARDS)
    return page


def explain_timed(page, n_cards: int) -> dict[str, tuple[float, float]]:
    """(seconds, server CPU seconds) from pressing Explain to the first card, to all `n_cards` cards, and
    to the run's end."""
    t0, cpu0 = page.evaluate("() => performance.now()"), ServerCPU.now()
    page.get_by_role("button", name="Explain", exact=True).click()
    page.wait_for_function(CARDS_AT_LEAST, arg=[1, t0], timeout=600_000)
    cpu_first = ServerCPU.now()
    page.wait_for_function(CARDS_AT_LEAST, arg=[n_cards, t0], timeout=600_000)
    cpu_all = ServerCPU.now()
    page.wait_for_function(RUN_FINISHED_AFTER, arg=[t0, False], timeout=600_000)
    cpu_end = ServerCPU.now()
    first = page.evaluate(FIRST_AT_LEAST, [1, t0])
    every = page.evaluate(FIRST_AT_LEAST, [n_cards, t0])
    end = page.evaluate(LAST_FINISH)
    return {
        "first": ((first - t0) / 1000, cpu_first - cpu0),
        "all": ((every - t0) / 1000, cpu_all - cpu0),
        "idle": ((end - t0) / 1000, cpu_end - cpu0),
    }


def threads_said(page) -> str:
    """The status line's "(N torch threads)", chosen when the run was admitted."""
    label = page.get_by_text("torch thread").first
    return label.inner_text() if label.count() else "?"


def stop_timed(page) -> tuple[float, float]:
    """(seconds, server CPU seconds) from pressing Stop, during a long run, until no script runs."""
    page.get_by_role("button", name="Explain", exact=True).click()
    page.wait_for_function(CARDS_AT_LEAST, arg=[1, 0], timeout=600_000)  # stopped mid-run, after a card
    stop = page.get_by_role("button", name="Stop")
    stop.wait_for()
    t0, cpu0 = page.evaluate("() => performance.now()"), ServerCPU.now()
    stop.click()
    page.wait_for_function(RUN_FINISHED_AFTER, arg=[t0, True], timeout=600_000)
    return (page.evaluate(LAST_FINISH) - t0) / 1000, ServerCPU.now() - cpu0


def first_visit(browser, url: str, results: dict, label: str, wait_cards: bool) -> None:
    """A new visitor (no link): seconds until the page shows content, and until the example's cards."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    started, cpu0 = time.perf_counter(), ServerCPU.now()
    page.goto(url)
    page.locator(CONTENT).first.wait_for(timeout=600_000)
    record(results, f"first visit, {label}: content", time.perf_counter() - started, ServerCPU.now() - cpu0)
    if wait_cards:
        page.locator(".whybox-heatmap").nth(len(DEFAULT_METHODS) - 1).wait_for(timeout=900_000)
        record(results, f"first visit, {label}: example cards", time.perf_counter() - started, ServerCPU.now() - cpu0)
    page.close()


def measure(repeats: int, cold_build: bool, reviews: int) -> tuple[dict[str, list[float]], list[str]]:
    import tempfile
    from collections import defaultdict

    from explainers.models import builtin

    builtin.builtin_path("sentiment")  # built once and cached on disk: the built cold start is the server's
    results: dict[str, list[float]] = defaultdict(list)
    threads: list[str] = []
    seed = int(time.time()) % 100_000  # new seeds: nothing comes from the server's cache
    with chromium() as browser:
        launched = time.perf_counter()
        with dashboard_server() as (url, server):
            ServerCPU.pid = server.pid
            record(results, "server launch -> health", time.perf_counter() - launched, ServerCPU.now())
            first_visit(browser, url, results, "model built", True)
            for preset in ("quick", "default", "thorough"):
                for _ in range(repeats):
                    seed += 1
                    page = fresh_session(browser, url, seed, preset)
                    t = explain_timed(page, len(DEFAULT_METHODS))
                    threads.append(threads_said(page))
                    names = {"first": "first card", "all": "all cards", "idle": "run ended"}
                    for key, what in names.items():
                        record(results, f"{preset}: Explain -> {what}", *t[key])
                    print(
                        f"  {preset}: first {t['first'][0]:.2f} s, all {t['all'][0]:.2f} s, ended {t['idle'][0]:.2f} s "
                        f"[{threads[-1]}]; {uptime()}",
                        file=sys.stderr,
                    )
                    page.close()
            for _ in range(repeats):
                seed += 1
                page = fresh_session(browser, url, seed, "thorough")
                record(results, "Stop -> idle", *stop_timed(page))
                print(f"  stop -> idle {results['Stop -> idle'][-1]:.2f} s; {uptime()}", file=sys.stderr)
                page.close()
            if reviews:
                page = open_app(browser, url)
                explain_runs(page, reviews, results)
                page.close()
        with tempfile.TemporaryDirectory(prefix="whybox-empty-cache-") as empty:
            with dashboard_server({"WHYBOX_CACHE": empty}) as (url, server):
                ServerCPU.pid = server.pid
                first_visit(browser, url, results, "no model", cold_build)
    return dict(results), threads


def engine_cpu(preset: str, threads: int, seeds: list[int]) -> list[float]:
    """CPU seconds of whybox's engine alone for what one Explain of the dashboard runs: `explain` of each
    default method with the preset's parameters on the same example, in a fresh process with the torch
    threads the server's runs were given. A first run (another seed) warms it up, as the server was warm:
    the leave-one-out memo then holds the example, as it does for the server's later runs."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.dashboard", "--engine-cpu", preset, "--threads", str(threads)]
        + ["--seeds", ",".join(map(str, seeds))],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _engine_cpu_here(preset: str, threads: int, seeds: list[int]) -> list[float]:
    import torch
    from explainers.models.loading import load_model

    from explainers.methods import explain, preset_params

    torch.set_num_threads(threads)
    handle = load_model("sentiment")
    times = []
    for seed in [seeds[0] - 1, *seeds]:
        started = time.process_time()
        for method in DEFAULT_METHODS:
            explain(handle, EXAMPLE, method, seed=seed, **preset_params(method, preset))
        times.append(time.process_time() - started)
    return times[1:]


SERVER_OVER_ENGINE = 1.3  # issue 14: the dashboard's server CPU for an Explain, over the engine's for the same work


def engine_against_server(table: dict, threads: int, repeats: int) -> dict:
    """Per preset: the server's CPU seconds from Explain to the run's end (median) against the engine's
    alone for the same methods, parameters and text (median of `repeats` runs)."""
    presets = {}
    for preset in ("quick", "default", "thorough"):
        server = table.get(f"{preset}: Explain -> run ended", {}).get("server_cpu_s")
        if server is None:
            continue
        engine = statistics.median(engine_cpu(preset, threads, list(range(1000, 1000 + repeats))))
        presets[preset] = {"server_cpu_s": server, "engine_cpu_s": round(engine, 3), "ratio": round(server / engine, 2)}
    return {"threads": threads, "presets": presets}


def threads_of(said: list[str]) -> int:
    """The torch threads most of the server's runs were given, from their status lines."""
    counts = [int(m.group(1)) for line in said if (m := re.search(r"\((\d+) torch thread", line))]
    return statistics.mode(counts) if counts else 1


def uptime() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def summary(results: dict[str, list[float]]) -> dict:
    out = {}
    for name, runs in results.items():
        target = TARGETS_S.get(name)
        median = statistics.median(runs)
        out[name] = {
            "median_s": round(median, 3),
            "min_s": round(min(runs), 3),
            "max_s": round(max(runs), 3),
            "runs_s": [round(r, 3) for r in runs],
            "server_cpu_s": round(statistics.median(CPU[name]), 3) if CPU.get(name) else None,
            "target_s": target,
            "pass": None if target is None else median <= target,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh Explain runs per preset, and Stops (0: none)")
    parser.add_argument("--reviews", type=int, default=0, help="also: fresh/cached Explain on N longer reviews")
    parser.add_argument("--skip-cold-build", action="store_true", help="do not wait for the ~80 s build")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--engine-cpu", default=None, help=argparse.SUPPRESS)  # the engine side, in its own process
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--seeds", default="1", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.engine_cpu:
        print(json.dumps(_engine_cpu_here(args.engine_cpu, args.threads, [int(s) for s in args.seeds.split(",")])))
        return 0
    load_before = uptime()
    results, threads = measure(args.repeats, not args.skip_cold_build, args.reviews)
    table = summary(results)
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": uptime(),
        "methods": list(DEFAULT_METHODS),
        "text": EXAMPLE,
        "torch_threads_said": sorted(set(threads)),
    }
    engine = engine_against_server(table, threads_of(threads), max(args.repeats, 1))
    if args.json:
        print(json.dumps({"machine": machine, "dashboard": table, "server_vs_engine": engine}, indent=2))
        return 0
    print(
        f"dashboard, built-in sentiment, first example, methods {', '.join(DEFAULT_METHODS)}; "
        f"{machine['cores']} cores; {machine['load_before']} before, {machine['load_after']} after"
    )
    print(f"runs' status lines: {'; '.join(machine['torch_threads_said'])}")
    print(f"{'what':40} {'median s':>9} {'min s':>7} {'max s':>7} {'server CPU s':>12}  target")
    for name, row in table.items():
        verdict = "" if row["target_s"] is None else f"<= {row['target_s']} s {'PASS' if row['pass'] else 'MISS'}"
        cpu = "" if row["server_cpu_s"] is None else f"{row['server_cpu_s']:.3f}"
        print(f"{name:40} {row['median_s']:9.3f} {row['min_s']:7.3f} {row['max_s']:7.3f} {cpu:>12}  {verdict}")
    print(f"\nserver CPU for an Explain against the engine's for the same work ({engine['threads']} torch thread(s))")
    print(f"{'preset':10} {'server CPU s':>12} {'engine CPU s':>12} {'ratio':>6}  target <= {SERVER_OVER_ENGINE}x")
    for preset, row in engine["presets"].items():
        verdict = "PASS" if row["ratio"] <= SERVER_OVER_ENGINE else "MISS"
        print(f"{preset:10} {row['server_cpu_s']:12.3f} {row['engine_cpu_s']:12.3f} {row['ratio']:6.2f}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
