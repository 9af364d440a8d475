"""Audit benchmark: texts per second for IG (50 steps) + LIME (1,000 samples) + occlusion + the full
faithfulness suite over N held-out sentences of the default model, and peak memory.

    .venv/bin/python -m benchmarks.audit --n 200            # (a) local, (b) per-text loop, (c) Ray 1 and 2 workers
    .venv/bin/python -m benchmarks.audit --memory 200,2000  # local engine's peak memory as N grows (occlusion)

(b) is how ferret's `Benchmark.explain` + `evaluate_explanations` loop works, one text at a time, written over
whybox's own single-text API: ferret-xai itself needs captum<0.8, and whybox pins captum 0.9.0.
Each configuration runs in its own process, with a fresh results store, so nothing is reused and
peak memory (resident set of the process and its children, Ray workers included) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

METHODS = ("integrated_gradients", "lime", "occlusion")
PARAMS = {"integrated_gradients": {"n_steps": 50}, "lime": {"n_samples": 1000}}


def _peak_rss(stop: threading.Event, out: list) -> None:
    import psutil

    me = psutil.Process()
    peak = 0
    while not stop.is_set():
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        peak = max(peak, total)
        stop.wait(0.2)
    out.append(peak)


def one(config: str, n: int, methods: tuple[str, ...]) -> dict:
    from explainers.audit.data import read_data
    from explainers.audit.engine import run_audit
    from explainers.audit.work import AuditSettings
    from explainers.loading import load_model

    data = read_data("builtin:rt-heldout", limit=n)
    params = {m: p for m, p in PARAMS.items() if m in methods}
    stop, peak = threading.Event(), []
    watcher = threading.Thread(target=_peak_rss, args=(stop, peak), daemon=True)
    watcher.start()
    handle = load_model("sentiment") if config != "ray" else None
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        if config == "loop":
            per_text_loop(handle, [r.text for r in data.rows], methods, params)
        else:
            engine, workers = ("ray", int(config[3:])) if config.startswith("ray") else ("local", None)
            run_audit(
                data,
                AuditSettings("sentiment", methods, params),
                f"{tmp}/out",
                handle=handle,
                store_dir=f"{tmp}/store",
                engine=engine,
                workers=workers,
                chunk_size=4,
            )
        seconds = time.perf_counter() - started
    stop.set()
    watcher.join()
    return {
        "config": config,
        "texts": n,
        "seconds": round(seconds, 1),
        "texts_per_second": round(n / seconds, 3),
        "peak_mb": round(peak[0] / 2**20),
    }


def per_text_loop(handle, texts, methods, params) -> None:
    """ferret's way: explain each text with each method, then evaluate each explanation on its own."""
    from explainers.faithfulness import evaluate
    from explainers.methods import explain

    for text in texts:
        handle.predict_proba([text])
        for method in methods:
            evaluate(handle, explain(handle, text, method, seed=0, **params.get(method, {})))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--configs", default="local,loop,ray1,ray2")
    parser.add_argument("--memory", default=None, help="comma-separated N for the memory run (occlusion only)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--methods", default=",".join(METHODS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.n, tuple(args.methods.split(",")))))
        return
    runs = (
        [(c, args.n, ",".join(METHODS)) for c in args.configs.split(",")]
        if not args.memory
        else [("local", int(n), "occlusion") for n in args.memory.split(",")]
    )
    print(f"audit benchmark: {os.cpu_count()} cores; methods {'occlusion' if args.memory else ', '.join(METHODS)}")
    for config, n, methods in runs:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.audit", "--one", config, "--n", str(n), "--methods", methods],
            capture_output=True,
            text=True,
        )
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode or not lines:
            print(f"{config:<6} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(lines[-1])
        print(
            f"{r['config']:<6} {r['texts']:>6} texts  {r['seconds']:>7.1f} s  {r['texts_per_second']:>7.3f} texts/s  "
            f"peak {r['peak_mb']:>6} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()
