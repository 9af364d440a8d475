"""Start the dashboard and drive it in headless Chromium: shared by the browser test
(`tests/test_browser.py`) and the dashboard benchmark (`benchmarks/dashboard.py`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from explainers.models.builtin import DEFAULT_MODEL_ENV

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.1)  # poll interval of the health endpoint
    raise TimeoutError(f"streamlit did not answer on {url}/_stcore/health within {timeout} s")


@contextlib.contextmanager
def dashboard_server(env: dict | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """`whybox run` (what `make run` starts) on a free loopback port, offline, on the built-in default
    model unless `env` names another; yields (url, process) once the server answers its health
    check, and stops it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"} | (env or {})
    if not env.get(DEFAULT_MODEL_ENV):
        env.pop(DEFAULT_MODEL_ENV, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "explainers.cli", "run", "--port", str(port), "--address", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_healthy(proc, url)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def chromium():
    """A headless Chromium browser (Playwright driving Debian's chromium)."""
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


# Records every change of Streamlit's script-state flag, in the page's own clock (performance.now()).
# Several changes can arrive in one observer call: each record's new value is the next one's old value.
WATCH_SCRIPT_STATE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (window.__whyboxRuns && window.__whyboxApp === app) return;
  window.__whyboxRuns = [];
  window.__whyboxApp = app;
  new MutationObserver((records) => records.forEach((r, i) => window.__whyboxRuns.push([
      i + 1 < records.length ? records[i + 1].oldValue : app.dataset.testScriptState, performance.now()])))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state'], attributeOldValue: true});
}"""
# A run started after t0 (or was running at t0: a click during a run restarts it without the flag
# ever reading 'notRunning') and finished after that; none is running now.
RUN_FINISHED_AFTER = """([t0, wasRunning]) => {
  const runs = window.__whyboxRuns || [];
  const start = wasRunning ? [null, t0] : runs.find(([s, t]) => s === 'running' && t > t0);
  return start !== undefined && runs.some(([s, t]) => s === 'notRunning' && t >= start[1])
    && document.querySelector('[data-testid="stApp"]').dataset.testScriptState === 'notRunning';
}"""
LAST_FINISH = "() => Math.max(...window.__whyboxRuns.filter(([s]) => s === 'notRunning').map(([, t]) => t))"
NOT_RUNNING = "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'"


def idle(page, timeout: float = 120_000) -> None:
    """Wait until no script run is in progress (after a page load; around an action, use `rerun`)."""
    page.wait_for_function(NOT_RUNNING, timeout=timeout)


@contextlib.contextmanager
def rerun(page, timeout: float = 120_000):
    """The action in the block starts a script run: afterwards, wait until that run has finished."""
    page.evaluate(WATCH_SCRIPT_STATE)
    t0, was_running = page.evaluate(f"() => [performance.now(), !({NOT_RUNNING})()]")
    yield
    page.wait_for_function(RUN_FINISHED_AFTER, arg=[t0, was_running], timeout=timeout)


def painted(page) -> None:
    """Wait until the browser has drawn two more frames (after a resize, before a screenshot)."""
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
