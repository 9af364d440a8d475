"""Audit benchmark: texts per second for IG (50 steps) + LIME (1,000 samples) + occlusion + the full
faithfulness suite over N held-out sentences of the default model, and peak memory.

    .venv/bin/python -m benchmarks.audit --n 200              # (a) local, (b) per-text loop, (c) Ray 1 and 2 workers
    .venv/bin/python -m benchmarks.audit --memory 200,10000   # the local engine's peak memory as N grows

(b) "loop" is how ferret's `Benchmark.explain` + `evaluate_explanations` loop works, one text at a time,
written over whybox's own single-text API: ferret-xai cannot be installed beside the pinned stack (it needs
transformers<5, captum<0.8, numpy<2). "ferret" is ferret 0.4.2 itself, in an environment of its own
(`--ferret-python`; see benchmarks/ferret_loop.py), over the same texts and model, for IG and LIME (ferret has
no occlusion explainer): `--configs local,ferret --methods integrated_gradients,lime`.
Each configuration runs in its own process, with a fresh results store, so nothing is reused and
peak memory (resident set of the process and its children, Ray workers included) is its own.

The memory run audits with a cheap method set (`--memory-methods`, default attention: one forward pass per
text, plus the full faithfulness suite that every audit runs), because the point is that memory stays flat
as N grows: records stream to the store chunk by chunk and the summary streams from it. The held-out set
has 1,000 sentences; beyond that, the texts are distinct pairs of them ("A B"), written to a CSV that the
audit reads like any user's file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

METHODS = ("integrated_gradients", "lime", "occlusion")
PARAMS = {"integrated_gradients": {"n_steps": 50}, "lime": {"n_samples": 1000}}


def _watch(stop: threading.Event, out: dict) -> None:
    """Peak resident memory of this process and its children (Ray workers included), and their CPU seconds:
    on a shared machine, texts per CPU-second compares configurations better than wall time does."""
    import psutil

    me = psutil.Process()
    peak, cpu = 0, {}
    before = me.cpu_times()  # imports and the model's loading are not the audit's work
    base = before.user + before.system
    while True:
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
                times = proc.cpu_times()
                cpu[proc.pid] = times.user + times.system
            except psutil.Error:
                pass
        peak = max(peak, total)
        if stop.wait(0.2):
            break
    out.update(peak=peak, cpu=sum(cpu.values()) - base)


HELDOUT = 1000  # sentences in builtin:rt-heldout


def _data(n: int, folder: str):
    """n held-out texts: the sentences themselves, or beyond 1,000 distinct pairs of them, from a CSV."""
    from explainers.audit.data import read_data

    if n <= HELDOUT:
        return read_data("builtin:rt-heldout", limit=n)
    import csv

    sentences = [row.text for row in read_data("builtin:rt-heldout").rows]
    path = f"{folder}/pairs.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        for k in range(n):  # (a, k // 1000) differs for every k < 1,000,000: distinct pairs
            a = k % HELDOUT
            writer.writerow([f"{sentences[a]} {sentences[(a + 1 + k // HELDOUT) % HELDOUT]}"])
    return read_data(path)


def _model_for(name: str, folder: str) -> str:
    """The model to audit: a built-in name or folder, or "tiny": a 2-layer, 32-wide random BERT built here,
    whose own cost is small enough that 10,000 texts take minutes and whybox's memory is what shows."""
    if name != "tiny":
        return name
    from tests.conftest import build_tiny_bert

    return str(build_tiny_bert(Path(folder) / "tiny-bert"))


def one(
    config: str,
    n: int,
    methods: tuple[str, ...],
    chunk_size: int,
    rss_every: int = 0,
    model: str = "sentiment",
    ferret_python: str | None = None,
    threads: int = 0,
) -> dict:
    if config == "ferret":
        return ferret(ferret_python, n, methods, threads)
    from explainers.models.loading import load_model

    from benchmarks.run import ForwardCounter
    from explainers.audit.engine import run_audit
    from explainers.audit.work import AuditSettings

    tmp_data = tempfile.TemporaryDirectory()
    data = _data(n, tmp_data.name)
    model = _model_for(model, tmp_data.name)
    params = {m: p for m, p in PARAMS.items() if m in methods}
    stop, seen = threading.Event(), {}
    watcher = threading.Thread(target=_watch, args=(stop, seen), daemon=True)
    handle = load_model(model) if not config.startswith("ray") else None  # Ray's workers load their own
    curve = []  # (texts done, resident MB of this process) every `rss_every` texts: flat or growing?

    def progress(p) -> None:
        if rss_every and (p.done >= (curve[-1][0] if curve else 0) + rss_every or p.done == p.total):
            import psutil

            curve.append((p.done, round(psutil.Process().memory_info().rss / 2**20)))
            print(json.dumps({"rss_curve": curve[-1]}), file=sys.stderr, flush=True)  # visible while it runs

    estimate = None  # what the Audit page says before starting, against what the run takes
    if config == "local":
        from explainers.audit.engine import estimate_cost

        estimate = estimate_cost(handle, data, AuditSettings(model, methods, params))
    watcher.start()  # after loading: CPU seconds count the audit's work (memory stays resident anyway)
    counter = ForwardCounter(handle.model) if handle is not None else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as tmp, counter:
        started = time.perf_counter()
        if config == "loop":
            per_text_loop(handle, [r.text for r in data.rows], methods, params)
        else:
            engine, workers = ("ray", int(config[3:])) if config.startswith("ray") else ("local", None)
            run_audit(
                data,
                AuditSettings(model, methods, params),
                f"{tmp}/out",
                handle=handle,
                store_dir=f"{tmp}/store",
                engine=engine,
                workers=workers,
                chunk_size=chunk_size,
                progress=progress,
            )
        seconds = time.perf_counter() - started
    stop.set()
    watcher.join()
    tmp_data.cleanup()
    return {
        "config": config,
        "texts": n,
        "load": round(os.getloadavg()[0], 1),
        "seconds": round(seconds, 1),
        "texts_per_second": round(n / seconds, 3),
        "cpu_seconds": round(seen["cpu"], 1),
        "texts_per_cpu_second": round(n / seen["cpu"], 3),
        "peak_mb": round(seen["peak"] / 2**20),
        "rss_curve": curve,
        "estimate": estimate,
        # what went through the model (in this process: not Ray's workers): on a CPU a row's cost is its
        # padded tokens plus a call's overhead, so these bound what packing can gain over the loop
        "model": None
        if handle is None
        else {
            "calls": counter.calls,
            "rows": counter.rows,
            "gradient_rows": counter.grad_rows,
            "tokens": counter.tokens,
            "padded_tokens": counter.padded_tokens,
        },
    }


def ferret(python: str | None, n: int, methods: tuple[str, ...], threads: int) -> dict:
    """ferret's own loop (benchmarks/ferret_loop.py) in its own environment, over the same texts and model."""
    from explainers.models.builtin import builtin_path

    if not python:
        raise SystemExit("the ferret configuration needs --ferret-python (see benchmarks/ferret_loop.py)")
    if set(methods) != {"integrated_gradients", "lime"}:
        raise SystemExit("ferret has IG and LIME of the issue's methods: use --methods integrated_gradients,lime")
    job = {
        "model": str(builtin_path("sentiment")),
        "texts": [row.text for row in _data(n, "").rows],
        "threads": threads,
    }
    script = Path(__file__).with_name("ferret_loop.py")
    done = subprocess.run([python, str(script)], input=json.dumps(job), capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"ferret failed: {done.stderr.strip()[-2000:]}")
    r = json.loads(lines[-1])
    return {
        "config": "ferret",
        "texts": n,
        "load": round(os.getloadavg()[0], 1),
        "seconds": round(r["seconds"], 1),
        "texts_per_second": round(n / r["seconds"], 3),
        "cpu_seconds": round(r["cpu_seconds"], 1),
        "texts_per_cpu_second": round(n / r["cpu_seconds"], 3),
        "peak_mb": r["peak_mb"],
        "rss_curve": [],
        "model": r["model"],
    }


def per_text_loop(handle, texts, methods, params) -> None:
    """ferret's way: explain each text with each method, then evaluate each explanation on its own."""
    from explainers.metrics.faithfulness import evaluate

    from explainers.methods import explain

    for text in texts:
        handle.predict_proba([text])
        for method in methods:
            evaluate(handle, explain(handle, text, method, seed=0, **params.get(method, {})))


LABELS = {
    "local": "(a) whybox local engine",
    "loop": "(b) per-text loop (ferret's way)",
    "ferret": "(b) ferret 0.4.2's own loop",
    "ray1": "(c) Ray, 1 local worker",
    "ray2": "(c) Ray, 2 local workers",
}


def _environment(config: str) -> dict[str, str]:
    """The engines run as `whybox audit` runs them (it restarts itself with huge pages: see
    explainers/allocator.py); the per-text loop as a user's script would, with the environment as it is."""
    from explainers.serving.allocator import with_huge_pages

    return (with_huge_pages(os.environ) if config in ("local", "ray1", "ray2") else None) or dict(os.environ)


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="held-out texts for the speed runs")
    parser.add_argument("--configs", default="local,loop,ray1,ray2")
    parser.add_argument("--chunk-size", type=int, default=8, help="texts per chunk (the CLI's default)")
    parser.add_argument("--memory", default=None, help="comma-separated N for the memory runs, e.g. 200,10000")
    parser.add_argument("--memory-methods", default="attention", help="methods of the memory runs")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads per process (0: torch's choice; 1 on a busy machine)"
    )
    parser.add_argument(
        "--memory-model", default="sentiment", help='model of the memory runs ("tiny": a small random BERT)'
    )
    parser.add_argument("--rss-every", type=int, default=0, help="memory runs: print resident MB every N texts")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--ferret-python", default=None, help="python of an environment with ferret-xai, for --configs ...,ferret"
    )
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="methods of the speed runs (default: the issue's mix)"
    )
    args = parser.parse_args()
    if args.one:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        print(
            json.dumps(
                one(
                    args.one,
                    args.n,
                    tuple(args.methods.split(",")),
                    args.chunk_size,
                    args.rss_every,
                    args.memory_model,
                    args.ferret_python,
                    args.threads,
                )
            )
        )
        return
    if args.memory:
        runs = [("local", int(n), args.memory_methods) for n in args.memory.split(",")]
        methods = args.memory_methods.replace(",", ", ")
    else:
        runs = [(c, args.n, args.methods) for c in args.configs.split(",")]
        methods = (
            "integrated_gradients (50 steps), lime (1,000 samples), occlusion"
            if args.methods == ",".join(METHODS)
            else args.methods.replace(",", ", ")
        )
    model = args.memory_model if args.memory else "sentiment"
    print(f"audit benchmark: model '{model}', held-out sentences; {os.cpu_count()} cores")
    print(
        f"methods: {methods}, + the full faithfulness suite on every explanation; chunk {args.chunk_size}; "
        f"torch threads {args.threads or 'default'}"
    )
    print(f"before: {_uptime()}")
    print(
        f"{'configuration':<34} {'texts':>6} {'seconds':>8} {'texts/s':>8} {'CPU s':>8} {'texts/CPU s':>11} "
        f"{'peak MB':>8} {'load':>5}"
    )
    rates = {}
    for config, n, run_methods in runs:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.audit", "--one", config, "--n", str(n), "--methods", run_methods]
            + ["--chunk-size", str(args.chunk_size), "--threads", str(args.threads)]
            + ["--rss-every", str(args.rss_every), "--memory-model", model]
            + (["--ferret-python", args.ferret_python] if args.ferret_python else []),
            capture_output=True,
            text=True,
            env=_environment(config),
        )
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode or not lines:
            print(f"{LABELS.get(config, config):<34} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(lines[-1])
        rates[config] = (r["texts_per_second"], r["texts_per_cpu_second"])
        print(
            f"{LABELS.get(config, config):<34} {r['texts']:>6} {r['seconds']:>8.1f} {r['texts_per_second']:>8.3f} "
            f"{r['cpu_seconds']:>8.1f} {r['texts_per_cpu_second']:>11.3f} {r['peak_mb']:>8} {r['load']:>5}",
            flush=True,
        )
        if r["model"]:
            m = r["model"]
            print(
                f"  model: {m['calls']:,} calls, {m['rows']:,} rows ({m['gradient_rows']:,} with gradients), "
                f"{m['tokens']:,} tokens, {m['padded_tokens']:,} with padding",
                flush=True,
            )
        if r.get("estimate"):
            e = r["estimate"]
            print(f"  estimated before starting: {e['seconds']:.0f} s, at most {e['rows']:,} rows", flush=True)
        if r["rss_curve"]:
            print("  resident MB by texts done: " + ", ".join(f"{d}: {mb}" for d, mb in r["rss_curve"]), flush=True)
    for baseline in ("loop", "ferret"):
        if "local" in rates and baseline in rates:
            wall, cpu = (rates["local"][k] / rates[baseline][k] for k in (0, 1))
            print(f"local / {LABELS[baseline][4:]}: {wall:.2f}x by wall time, {cpu:.2f}x by CPU time (target: 3x)")
    print(f"after: {_uptime()}")


if __name__ == "__main__":
    main()
