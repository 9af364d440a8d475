"""Load test against this machine only (127.0.0.1): concurrent sessions, errors, latency and memory.

Two parts, each bounded in count and time:

1. Sessions on the engine, as the dashboard runs them: N threads share one model handle and the
   dashboard's byte-bounded caches (dashboard/results.py); each session sends requests with texts of
   its own (so the caches fill and must evict), cycling through methods and the attention weights.
   Prints requests, errors, p50/p95 latency, and the process's resident memory (RSS) every 20 runs:
   it must level off once the caches are full.
2. The admission queue (explainers/admission.py) under load: N sessions send explain requests at once
   through a queue of K slots, each session also replacing one request with a newer one; prints
   requests, replaced, errors, the most runs in progress at once (never above K), the most waiting,
   the longest "N ahead" a session was told, time in the queue and in all (p50/p95), the torch threads
   each run was given on admission, and RSS.
3. The served app: `streamlit run dashboard/app.py` on 127.0.0.1, its health endpoint polled by N
   threads, and Streamlit AppTest sessions (the whole Explain page, in this process) run in a loop.
   Prints the same figures and the server's RSS before and after.

`python -m benchmarks.load [--sessions 6] [--runs 200] [--slots K] [--model M] [--seconds 600] [--skip-server]`
(default model: a tiny random BERT built offline; `--model sentiment` for the built-in).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("saliency", "occlusion", "leave_one_out", "attention", "integrated_gradients")
WORDS = "gripping funny dull lifeless moving thin wonderful long beautiful flat acted heart".split()


def rss_mb(pid: int | None = None) -> float:
    with open(f"/proc/{pid or 'self'}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def text_for(session: int, k: int) -> str:
    """A different text per request, 20-120 words: the caches see a stream of new keys."""
    n = 20 + (session * 37 + k * 11) % 100
    return f"session {session} request {k} : " + " ".join(WORDS[(session + k + i) % len(WORDS)] for i in range(n))


def percentiles(latencies: list[float]) -> str:
    if not latencies:
        return "p50 -, p95 -"
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"


def engine_sessions(model: str, sessions: int, runs: int, deadline: float) -> None:
    from explainers.models.loading import load_model

    from dashboard import results
    from explainers.errors import WhyboxError

    handle = load_model(model, device="cpu")
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    done = [0]
    rss_series = [(0, rss_mb())]
    per_session = max(1, runs // sessions)

    def session(s: int) -> None:
        for k in range(per_session):
            if time.monotonic() > deadline:
                return
            text = text_for(s, k)
            req = results.Request(model, text, (METHODS[k % len(METHODS)],), "{}", 0, "")
            started = time.perf_counter()
            try:
                results.explain_one(handle, req, req.methods[0])
                if k % 3 == 0:
                    results.attentions(handle, text)
            except WhyboxError as exc:
                with lock:
                    errors.append(str(exc))
            with lock:
                latencies.append(time.perf_counter() - started)
                done[0] += 1
                if done[0] % 20 == 0:
                    rss_series.append((done[0], rss_mb()))

    threads = [threading.Thread(target=session, args=(s,)) for s in range(sessions)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    store = results._store()
    print(f"engine: {sessions} sessions, {done[0]} requests in {wall:.1f} s, {len(errors)} errors")
    print(f"engine latency: {percentiles(latencies)}")
    print(
        f"engine caches: explanations {len(store._items)} entries / {store._bytes / 2**20:.1f} MB"
        f", attentions {len(results.ATTENTIONS)} / {results.ATTENTIONS.bytes / 2**20:.1f} MB"
    )
    print("engine RSS (MB) by requests done: " + ", ".join(f"{n}: {mb:.0f}" for n, mb in rss_series))
    if errors:
        print("first error: " + errors[0])


def queued_sessions(model: str, sessions: int, per_session: int, slots: int, deadline: float) -> None:
    """Sessions through an admission queue of `slots`, as the dashboard sends them (views._compute)."""
    from explainers.inference.gateway import watching
    from explainers.models.loading import load_model
    from explainers.serving.admission import AdmissionQueue, Waiting

    from dashboard import results
    from explainers.errors import CancelledError, WhyboxError

    handle = load_model(model, device="cpu")
    queue = AdmissionQueue(slots, max_waiting=4 * sessions)
    lock = threading.Lock()
    waits, totals, errors, threads_given = [], [], [], []
    counts = {"done": 0, "replaced": 0, "most_running": 0, "most_waiting": 0, "most_ahead": 0}

    def note(waiting: Waiting) -> None:
        with lock:
            counts["most_ahead"] = max(counts["most_ahead"], waiting.ahead)

    def request(s: int, k: int) -> None:
        text = text_for(100 + s, k)
        req = results.Request(model, text, ("occlusion",), "{}", 0, "")
        started = time.perf_counter()
        try:
            with queue.admitted(f"session {s}", note) as ticket:
                admitted = time.perf_counter()
                running, waiting = queue.counts()
                with lock:
                    counts["most_running"] = max(counts["most_running"], running)
                    counts["most_waiting"] = max(counts["most_waiting"], waiting)
                    threads_given.append(ticket.threads)
                with watching(should_stop=lambda: ticket.cancelled):
                    results.explain_one(handle, req, "occlusion")
            with lock:
                waits.append(admitted - started)
                totals.append(time.perf_counter() - started)
                counts["done"] += 1
        except CancelledError:
            with lock:
                counts["replaced"] += 1
        except WhyboxError as exc:
            with lock:
                errors.append(str(exc))

    def session(s: int) -> None:
        for k in range(per_session):
            if time.monotonic() > deadline:
                return
            if k == 0:  # a first request, replaced at once by a newer one (a changed text, a second click)
                first = threading.Thread(target=request, args=(s, 1000))
                first.start()
                request(s, k)
                first.join()
            else:
                request(s, k)

    rss_before = rss_mb()
    pool = [threading.Thread(target=session, args=(s,)) for s in range(sessions)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    print(
        f"queue: {sessions} sessions, {slots} slots, {counts['done']} requests done and {counts['replaced']} replaced "
        f"in {wall:.1f} s, {len(errors)} errors; at most {counts['most_running']} running and "
        f"{counts['most_waiting']} waiting at once, longest 'N ahead' told: {counts['most_ahead']}"
    )
    print(f"queue wait: {percentiles(waits)}; queue request in all: {percentiles(totals)}")
    print(
        f"queue torch threads given on admission: {dict(sorted(Counter(threads_given).items()))} (runs by threads); "
        f"RSS {rss_before:.0f} -> {rss_mb():.0f} MB"
    )
    if errors:
        print("first error: " + errors[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_app(model: str, sessions: int, polls: int, apptests: int, deadline: float) -> None:
    from streamlit.testing.v1 import AppTest

    port = free_port()
    env = {**os.environ, "WHYBOX_DEFAULT_MODEL": model}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "dashboard" / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/_stcore/health"
    try:
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)  # waiting for the server to listen
        rss_before = rss_mb(server.pid)
        latencies, errors, lock = [], [], threading.Lock()

        def poll() -> None:
            for _ in range(polls // sessions):
                started = time.perf_counter()
                try:
                    ok = urllib.request.urlopen(url, timeout=10).read() == b"ok"
                except OSError as exc:
                    ok, _ = False, exc
                with lock:
                    latencies.append(time.perf_counter() - started)
                    if not ok:
                        errors.append("health")

        threads = [threading.Thread(target=poll) for _ in range(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(
            f"server health: {sessions} clients, {len(latencies)} requests, {len(errors)} errors, "
            f"{percentiles(latencies)}"
        )

        os.environ["WHYBOX_DEFAULT_MODEL"] = model
        page_latencies, page_errors, rss_series = [], 0, []
        for k in range(apptests):
            if time.monotonic() > deadline:
                break
            at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=300)
            at.query_params.update({"text": text_for(99, k), "methods": "saliency,occlusion"})
            started = time.perf_counter()
            at.run()
            page_latencies.append(time.perf_counter() - started)
            page_errors += bool(at.exception) or len(at.subheader) != 3
            rss_series.append(rss_mb())
        print(
            f"AppTest sessions: {len(page_latencies)} page runs (autorun from a link), {page_errors} errors, "
            f"{percentiles(page_latencies)}"
        )
        print(
            "AppTest RSS (MB) by run: " + ", ".join(f"{mb:.0f}" for mb in rss_series[:: max(1, len(rss_series) // 10)])
        )
        print(f"server RSS: {rss_before:.0f} MB after start, {rss_mb(server.pid):.0f} MB after the polls")
    finally:
        server.terminate()
        server.wait(timeout=30)


def tiny_model() -> str:
    from benchmarks.concurrency import tiny_bert_folder

    return tiny_bert_folder()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--runs", type=int, default=200, help="engine requests in all")
    parser.add_argument("--polls", type=int, default=600, help="health requests in all")
    parser.add_argument("--apptests", type=int, default=20, help="AppTest page runs")
    parser.add_argument("--slots", type=int, default=None, help="queue slots (default: WHYBOX_MAX_CONCURRENT_RUNS)")
    parser.add_argument("--queue-requests", type=int, default=4, help="queued requests per session")
    parser.add_argument("--model", default=None, help="default: a tiny random BERT built offline")
    parser.add_argument("--seconds", type=float, default=600, help="stop starting new work after this")
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds
    model = args.model or tiny_model()
    print(f"model {model}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    engine_sessions(model, args.sessions, args.runs, deadline)
    from explainers.serving.admission import AdmissionQueue

    slots = args.slots or AdmissionQueue.from_env().slots
    queued_sessions(model, args.sessions, args.queue_requests, slots, deadline)
    if not args.skip_server:
        served_app(model, args.sessions, args.polls, args.apptests, deadline)


if __name__ == "__main__":
    main()
