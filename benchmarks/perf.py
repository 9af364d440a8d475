"""Issue 14's tables: W1 against the rows the requested work needs.

    .venv/bin/python -m benchmarks.perf            # 16, 44, 142, 512 tokens, one and two threads
    .venv/bin/python -m benchmarks.perf --quick    # smoke run: 16 and 44 tokens, small IG/LIME, one thread
    .venv/bin/python -m benchmarks.perf --lengths 512 --threads 1 --json > a.json   # one piece at a time
    .venv/bin/python -m benchmarks.perf print a.json b.json                          # their tables together

W1 = integrated gradients (50 steps) + LIME (1,000 samples) + leave-one-out + comprehensiveness,
sufficiency and both AOPCs of the IG and the LIME explanations, as a user calls them
(`explain` x3, `evaluate(metrics=ERASER)` x2). Three sides, on the same loaded model and text:

- whybox: those public calls (the leave-one-out memo is emptied first, so every run pays for it);
- naive: the same work written as tutorials write it (benchmarks/naive.py: Captum's IG in one batch,
  LIME's classifier_fn one text at a time, one forward per perturbation for leave-one-out and the metrics);
- the limit: the rows the requested work needs, counted from first principles and not from what whybox
  runs: the full text once; IG's steps (forward + backward) and its baseline row (for the convergence
  delta); LIME's distinct token sequences among the samples LIME draws (drawn here by the lime
  library with a recording classifier); leave-one-out's n rows; the metrics' rows (without / only the
  top 1, 5, 10, 20, 50 and 20 % of the ranked tokens) of each explanation; de-duplicated across all of
  it, sorted by length and pushed through the bare model in the batch size that calibrates fastest.

Figures are CPU seconds of this process (all its threads) and wall seconds; ratios use CPU seconds,
which a busy shared machine disturbs less than wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from explainers.inference.precision import forward_precision
from explainers.metrics.faithfulness import AOPC_BINS, RATIONALE_FRACTION, evaluate
from explainers.serving.limits import MAX_TOKEN_ROWS_ENV

from explainers.methods import explain

from . import naive
from .naive import NaiveModel
from .run import ForwardCounter, Limit, load_classifier, log, review_words, table, target_id, text_of_length

ERASER = ("comprehensiveness", "sufficiency", "aopc_comprehensiveness", "aopc_sufficiency")
EXPLAINED = ("integrated_gradients", "lime", "leave_one_out")
EVALUATED = ("integrated_gradients", "lime")  # the explanations whose ERASER metrics W1 asks for
LENGTHS = (16, 44, 142, 512)
QUICK_LENGTHS = (16, 44)
TARGET_VS_NAIVE = 3.0  # W1: naive / whybox, at every length
TARGET_VS_LIMIT = 1.15  # W1: whybox / limit
TARGET_EVALUATE = 1.1  # evaluate(ERASER metrics) / its needed rows
ROOT = Path(__file__).resolve().parent.parent
FERRET = (
    "ferret-xai 0.4.2 (the newest) requires captum<0.8, transformers 4.x and numpy<2: pip's dry run would "
    "downgrade captum 0.9 -> 0.7, transformers 5 -> 4.57.6 and numpy to 1.26.4, so it cannot run beside the "
    "pinned stack"
)


# ---- the rows the requested work needs ------------------------------------------------------------
def _without(ids: list[int], drop, fill: int) -> tuple[int, ...]:
    drop = set(drop)
    return tuple(t for i, t in enumerate(ids) if i not in drop) or (fill,)


def eraser_rows(enc, token_scores, fill: int) -> set[tuple[int, ...]]:
    """Without / only the top-k ranked content tokens, k for every AOPC bin and the rationale, plus the full text."""
    content = enc.content_positions
    ranked = sorted(content, key=lambda i: (-token_scores[i], i))
    n = len(ranked)
    rows = {tuple(enc.ids)}
    for fraction in AOPC_BINS + (RATIONALE_FRACTION,):
        top = set(ranked[: min(n, max(1, math.ceil(fraction * n)))])
        rows.add(_without(enc.ids, top, fill))
        rows.add(_without(enc.ids, [i for i in content if i not in top], fill))
    return rows


def lime_rows(handle, enc, n_samples: int, seed: int = 0) -> set[tuple[int, ...]]:
    """The distinct token sequences among the texts LIME draws (the lime library, whybox's words as
    features, deleted words), tokenized as the model reads them."""
    from lime.lime_text import LimeTextExplainer

    drawn: list[str] = []

    def record(texts):
        drawn.extend(texts)
        return np.full((len(texts), 2), 0.5)

    explainer = LimeTextExplainer(
        split_expression=lambda s: [s[a:b] for a, b in enc.word_spans], bow=False, mask_string="", random_state=seed
    )
    read = enc.text[: enc.word_spans[-1][1]] if enc.word_spans else enc.text
    explainer.explain_instance(read, record, labels=(1,), num_features=max(1, len(enc.words)), num_samples=n_samples)
    encoded = handle.tokenizer(drawn, add_special_tokens=True, truncation=True, max_length=handle.max_tokens)
    return {tuple(ids) or (handle.baseline_token_id(),) for ids in encoded["input_ids"]}


def needed_rows(handle, enc, explanations: dict, steps: int, samples: int) -> dict:
    """The forward-only rows (a set of token sequences) and the gradient rows the requested work needs."""
    fill = handle.baseline_token_id()
    full = tuple(enc.ids)
    baseline = tuple(t if s else fill for t, s in zip(enc.ids, enc.special))
    parts = {
        "prediction": {full},
        "integrated_gradients": {baseline},
        "lime": lime_rows(handle, enc, samples),
        "leave_one_out": {full} | {_without(enc.ids, [i], fill) for i in enc.content_positions},
        "eraser": set().union(*(eraser_rows(enc, explanations[m].token_scores, fill) for m in EVALUATED)),
    }
    forward = set().union(*parts.values())
    return {
        "forward": forward,
        "backward_rows": steps,
        "by_part": {name: len(rows) for name, rows in parts.items()},
        "separate_sum": sum(len(rows) for rows in parts.values()),
    }


class RowLimit:
    """Distinct sequences through the bare model, sorted by length, packed up to a token budget
    calibrated on the spot (the fastest per row among a few), under inference_mode; gradient rows by
    run.Limit (forward + backward from input embeddings, best batch size)."""

    BUDGETS = (1024, 2048, 4096, 8192)

    def __init__(self, handle):
        self.handle, self.model, self.device = handle, handle.model, handle.device
        self.pad = handle.tokenizer.pad_token_id or 0
        self._budget: dict[int, int] = {}

    def _run(self, rows: list[tuple[int, ...]]) -> None:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        with torch.inference_mode():
            self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))

    def budget(self, width: int) -> int:
        if width not in self._budget:
            row = tuple([self.pad] * width)
            per_row = {}
            for budget in self.BUDGETS:
                n = max(1, budget // width)
                self._run([row] * n)  # warm this shape
                start = time.process_time()
                self._run([row] * n)
                per_row[budget] = (time.process_time() - start) / n
            self._budget[width] = min(per_row, key=per_row.get)
        return self._budget[width]

    def work(self, forward: set, backward_rows: int, width: int):
        rows = sorted(forward, key=len, reverse=True)
        budget = self.budget(width)
        batches, batch = [], []
        for r in rows:  # longest first: each batch's width is its first row's
            if batch and (len(batch) + 1) * len(batch[0]) > budget:
                batches.append(batch)
                batch = []
            batch.append(r)
        if batch:
            batches.append(batch)
        gradient, _shape = Limit(self.handle, list(rows[0])).work(backward_rows, backward_rows, width)

        def run():
            for b in batches:
                self._run(b)
            gradient()

        return run


# ---- timing ------------------------------------------------------------------------------------
def measure(fn) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def interleaved(fns: dict, repeats: int) -> dict[str, dict]:
    """Sides timed in turn, the order rotated each repeat; medians of CPU and wall seconds."""
    times: dict[str, list] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(measure(fns[name]))
    return {
        name: {
            "cpu_s": statistics.median(c for c, _ in runs),
            "wall_s": statistics.median(w for _, w in runs),
            "runs": runs,
        }
        for name, runs in times.items()
    }


def whybox_w1(handle, text: str, steps: int, samples: int) -> dict:
    handle.gateway._memo.clear()  # every run pays for its leave-one-out, as a first request does
    out = {
        "integrated_gradients": explain(handle, text, "integrated_gradients", n_steps=steps),
        "lime": explain(handle, text, "lime", n_samples=samples),
        "leave_one_out": explain(handle, text, "leave_one_out"),
    }
    out["reports"] = [evaluate(handle, out[m], metrics=ERASER) for m in EVALUATED]
    return out


def naive_w1(nm: NaiveModel, text: str, exps: dict, steps: int, samples: int) -> None:
    e = exps["integrated_gradients"]
    tid = target_id(e.target)
    naive.integrated_gradients(nm, text, tid, n_steps=steps)
    naive.lime(nm, text, tid, n_samples=samples)
    naive.leave_one_out(nm, e.token_ids, e.special, tid)
    for m in EVALUATED:
        naive.eraser(nm, e.token_ids, e.special, exps[m].token_scores, tid)


def w1_at(handle, nm, text: str, args, threads: int) -> dict:
    torch.set_num_threads(threads)
    enc = handle.encode(text)
    with ForwardCounter(handle.model) as counter:
        exps = whybox_w1(handle, text, args.ig_steps, args.lime_samples)
    need = needed_rows(handle, enc, exps, args.ig_steps, args.lime_samples)
    limit = RowLimit(handle).work(need["forward"], need["backward_rows"], enc.n_tokens)
    sides = {"whybox": lambda: whybox_w1(handle, text, args.ig_steps, args.lime_samples), "limit": limit}
    if not args.no_naive:
        sides["naive"] = lambda: naive_w1(nm, text, exps, args.ig_steps, args.lime_samples)
    if args.bf16:  # whybox with its forward-only rows in bf16 (gradients float32), and how far its figures move
        with forward_precision(handle, "bf16"):
            reduced = whybox_w1(handle, text, args.ig_steps, args.lime_samples)
        bf16_dp = _max_difference(exps, reduced)

        def whybox_bf16():
            with forward_precision(handle, "bf16"):
                whybox_w1(handle, text, args.ig_steps, args.lime_samples)

        sides["whybox_bf16"] = whybox_bf16
    timed = interleaved(sides, args.repeats)
    # evaluate() for the ERASER metrics alone, against its own needed rows
    ig = exps["integrated_gradients"]
    eraser_need = eraser_rows(enc, ig.token_scores, handle.baseline_token_id())
    with ForwardCounter(handle.model) as eval_counter:
        evaluate(handle, ig, metrics=ERASER)
    eval_timed = interleaved(
        {
            "whybox": lambda: evaluate(handle, ig, metrics=ERASER),
            "limit": RowLimit(handle).work(eraser_need, 0, enc.n_tokens),
        },
        max(3, args.repeats),
    )
    out = {
        "threads": threads,
        "n_tokens": enc.n_tokens,
        "rows_needed": {"forward": len(need["forward"]), "backward": need["backward_rows"]},
        "rows_needed_by_part": need["by_part"],
        "rows_needed_without_sharing": need["separate_sum"],
        "whybox_rows_run": {"forward": counter.rows - counter.grad_rows, "gradient": counter.grad_rows},
        "whybox_calls": counter.calls,
        "sides": timed,
        "ratio_to_limit": timed["whybox"]["cpu_s"] / timed["limit"]["cpu_s"],
        "evaluate_eraser": {
            "rows_needed": len(eraser_need),
            "rows_run": eval_counter.rows,
            "sides": eval_timed,
            "ratio_to_limit": eval_timed["whybox"]["cpu_s"] / eval_timed["limit"]["cpu_s"],
        },
    }
    if args.bf16:
        out["bf16"] = {
            "max_abs_difference": bf16_dp,
            "ratio_to_float32": timed["whybox_bf16"]["cpu_s"] / timed["whybox"]["cpu_s"],
        }
        if "naive" in timed:
            out["bf16"]["speedup_vs_naive"] = timed["naive"]["cpu_s"] / timed["whybox_bf16"]["cpu_s"]
    if "naive" in timed:
        out["speedup_vs_naive"] = timed["naive"]["cpu_s"] / timed["whybox"]["cpu_s"]
    return out


def _max_difference(a: dict, b: dict) -> dict:
    """Largest |difference| between two W1 runs: per method's token scores, and over the ERASER values."""
    out = {m: float(np.max(np.abs(np.asarray(a[m].token_scores) - np.asarray(b[m].token_scores)))) for m in EXPLAINED}
    out["eraser"] = max(abs(ra.values[k] - rb.values[k]) for ra, rb in zip(a["reports"], b["reports"]) for k in ERASER)
    return out


def adaptive_ig(handle, texts: dict, most: int, tolerances=(0.05, 0.01)) -> list[dict]:
    """Adaptive IG against fixed steps: rows tried and the convergence delta (share of |p(x) - p(baseline)|)."""
    out = []
    for text in texts.values():
        fixed = explain(handle, text, "integrated_gradients", n_steps=most)
        gap = abs(fixed.target_prob - fixed.extras["p_baseline"]) or 1e-12
        for tolerance in tolerances:
            got = explain(handle, text, "integrated_gradients", n_steps=most, tolerance=tolerance)
            out.append(
                {
                    "n_tokens": len(fixed.token_ids),
                    "tolerance": tolerance,
                    "steps_used": got.extras["n_steps_used"],
                    "rows_tried": got.extras["n_steps_tried"],
                    "fixed_steps": most,
                    "delta_share": got.extras["convergence_delta"] / gap,
                    "fixed_delta_share": fixed.extras["convergence_delta"] / gap,
                }
            )
    return out


# ---- start-up and precision ---------------------------------------------------------------------
def startup(model: str) -> dict:
    """Wall seconds of fresh `python -m explainers.cli` processes that never reach the engine, and
    whether they imported torch (they should not)."""
    probe = (
        "import sys, time; t = time.perf_counter(); from explainers import cli; "
        "rc = None\ntry:\n    cli.main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
        "print('TORCH', 'torch' in sys.modules, time.perf_counter() - t, file=sys.stderr)"
    )
    out = {}
    for name, argv in (
        ("--help", ["--help"]),
        ("explain, bad argument", ["explain", "--no-such-flag"]),
        ("explain --help", ["explain", "--help"]),
    ):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", probe, *argv], cwd=ROOT, capture_output=True, text=True, env=os.environ | {}
        )
        wall = time.perf_counter() - start
        line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("TORCH ")), "TORCH ? nan")
        _, torch_loaded, _inner = line.split()
        out[name] = {"wall_s": wall, "imports_torch": torch_loaded == "True"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers"], cwd=ROOT, capture_output=True)
    out["import torch + transformers alone"] = {"wall_s": time.perf_counter() - start, "imports_torch": True}
    # an explain call up to the engine: process start, arguments, imports, the model loaded (cached built-in)
    load = (
        "import sys, time; from explainers import cli; "
        f"args = cli.build_parser().parse_args(['explain', '--model', {model!r}, '--text', 'x']); "
        "cli._load(args); print('LOADED', file=sys.stderr)"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", load], cwd=ROOT, capture_output=True, text=True)
    if "LOADED" in proc.stderr:
        out[f"explain: start, imports and {model} loaded"] = {
            "wall_s": time.perf_counter() - start,
            "imports_torch": True,
        }
    return out


def precision_probe(handle, threads: int) -> dict:
    """The probe `--precision auto` runs at load, with the threads the tables use (two threads that
    wait on a busy machine's other processes would time the waiting)."""
    from explainers.inference.precision import probe

    torch.set_num_threads(threads)
    return probe(handle).to_dict() | {"threads": threads}


# ---- entry point --------------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 16 and 44 tokens, IG 8 steps, LIME 100, 1 thread")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per side (default 1: the machine is shared)")
    p.add_argument("--threads", default=None, help="comma-separated torch thread counts (default 1,2; --quick 1)")
    p.add_argument("--lengths", default=None, help="token lengths (default 16,44,142,512; --quick 16,44)")
    p.add_argument("--ig-steps", type=int, default=None, help="default 50 (--quick 8)")
    p.add_argument("--lime-samples", type=int, default=None, help="default 1000 (--quick 100)")
    p.add_argument("--model", default="sentiment", help="classifier (built-in name or folder)")
    p.add_argument("--no-naive", action="store_true", help="skip the tutorial-code side (slow at 512 tokens)")
    p.add_argument("--no-startup", action="store_true", help="skip the CLI start-up probe")
    p.add_argument("--no-adaptive", action="store_true", help="skip adaptive IG vs fixed steps")
    p.add_argument("--bf16", action="store_true", help="also time whybox with bf16 forward-only rows")
    p.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    args = p.parse_args(argv)
    args.threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    args.lengths = [
        int(n) for n in (args.lengths or ",".join(map(str, QUICK_LENGTHS if args.quick else LENGTHS))).split(",")
    ]
    args.ig_steps = args.ig_steps or (8 if args.quick else 50)
    args.lime_samples = args.lime_samples or (100 if args.quick else 1000)
    return args


def run(args) -> dict:
    notes: list[str] = [f"ferret: not measured: {FERRET}"]
    # The same work on every side: without this, the token-row budget (explainers/limits.py) scales LIME's
    # samples down at 512 tokens and whybox would run fewer rows than the limit and naive count.
    os.environ[MAX_TOKEN_ROWS_ENV] = "0"
    notes.append(f"{MAX_TOKEN_ROWS_ENV}=0: whybox's token-row budget is off, so it runs all the work asked for")
    load_start = os.getloadavg()
    handle = load_classifier(args.model, "cpu", notes)
    nm = NaiveModel(handle.model, handle.tokenizer, handle.task.name)
    words = review_words()
    texts = {n: text_of_length(handle, n, words) for n in args.lengths if n <= handle.max_tokens}
    log("warm-up ...")
    whybox_w1(handle, text_of_length(handle, 16, words), args.ig_steps, args.lime_samples)  # short: 512 is minutes
    result: dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "load_average_start": [round(v, 2) for v in load_start],
        "notes": notes,
        "precision_probe": precision_probe(handle, args.threads[0]),
        "w1": [],
    }
    for threads in args.threads:
        for n, text in texts.items():
            log(f"W1 at {n} tokens, {threads} thread(s) ...")
            result["w1"].append(w1_at(handle, nm, text, args, threads) | {"load_average": os.getloadavg()[0]})
    if not args.no_adaptive:
        log("adaptive IG ...")
        result["adaptive_ig"] = adaptive_ig(handle, texts, args.ig_steps)
    if not args.no_startup:
        result["startup"] = startup(args.model)
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    return result


def print_report(r: dict) -> None:
    s = r["settings"]
    print(
        f"== W1: IG {s['ig_steps']} steps + LIME {s['lime_samples']} + leave-one-out + {', '.join(ERASER)} "
        f"(of IG and LIME), model {s['model']} =="
    )
    print(f"load average at start {r['load_average_start']}, at end {r['load_average_end']} (2 shared cores)")
    for note in r["notes"]:
        print(f"note: {note}")
    rows = []
    for w in r["w1"]:
        sd = w["sides"]
        naive_side = sd.get("naive")
        rows.append(
            [
                w["threads"],
                w["n_tokens"],
                f"{w['rows_needed']['forward']}/{w['rows_needed']['backward']}",
                f"{w['whybox_rows_run']['forward']}/{w['whybox_rows_run']['gradient']}",
                f"{sd['whybox']['cpu_s']:.2f}/{sd['whybox']['wall_s']:.2f}",
                f"{naive_side['cpu_s']:.2f}/{naive_side['wall_s']:.2f}" if naive_side else "-",
                f"{sd['limit']['cpu_s']:.2f}/{sd['limit']['wall_s']:.2f}",
                f"{w['speedup_vs_naive']:.2f}x" if naive_side else "-",
                f"{naive_side['cpu_s'] / sd['limit']['cpu_s']:.2f}x" if naive_side else "-",
                "PASS" if naive_side and w["speedup_vs_naive"] >= TARGET_VS_NAIVE else ("MISS" if naive_side else "-"),
                f"{w['ratio_to_limit']:.2f}x",
                "PASS" if w["ratio_to_limit"] <= TARGET_VS_LIMIT else "MISS",
                f"{w['load_average']:.1f}",
            ]
        )
    print(
        f"\nrows fwd/grad: the limit's (needed, de-duplicated) and whybox's (run); seconds CPU/wall; "
        f"targets: naive/whybox >= {TARGET_VS_NAIVE:g}x, whybox/limit <= {TARGET_VS_LIMIT:g}x (CPU seconds);\n"
        "ceiling = naive/limit: the most any engine running exactly the needed rows could gain over naive"
    )
    print(
        table(
            [
                "threads",
                "tokens",
                "rows needed",
                "rows run",
                "whybox s",
                "naive s",
                "limit s",
                "vs naive",
                "ceiling",
                "",
                "vs limit",
                "",
                "load",
            ],
            rows,
        )
    )
    if any("bf16" in w for w in r["w1"]):
        print(
            "\nwhybox with bf16 forward-only rows (gradients float32): CPU time vs float32, vs naive, largest |change|"
        )
        print(
            table(
                ["threads", "tokens", "bf16 / float32", "vs naive", "max |Δ| IG", "LIME", "leave-one-out", "ERASER"],
                [
                    [w["threads"], w["n_tokens"], f"{b['ratio_to_float32']:.2f}x"]
                    + [f"{b['speedup_vs_naive']:.2f}x" if "speedup_vs_naive" in b else "-"]
                    + [f"{b['max_abs_difference'][k]:.4f}" for k in EXPLAINED + ("eraser",)]
                    for w in r["w1"]
                    if (b := w.get("bf16"))
                ],
            )
        )
    print("\nneeded rows by part (before de-duplication across parts)")
    parts = list(r["w1"][0]["rows_needed_by_part"]) if r["w1"] else []
    print(
        table(
            ["threads", "tokens"] + parts + ["sum", "distinct"],
            [
                [w["threads"], w["n_tokens"]]
                + [w["rows_needed_by_part"][p] for p in parts]
                + [w["rows_needed_without_sharing"], w["rows_needed"]["forward"]]
                for w in r["w1"]
            ],
        )
    )
    print(f"\nevaluate(metrics=ERASER) of the IG explanation alone vs its needed rows (target <= {TARGET_EVALUATE:g}x)")
    print(
        table(
            ["threads", "tokens", "rows needed", "rows run", "whybox ms CPU", "limit ms CPU", "ratio", ""],
            [
                [
                    w["threads"],
                    w["n_tokens"],
                    e["rows_needed"],
                    e["rows_run"],
                    f"{e['sides']['whybox']['cpu_s'] * 1000:.1f}",
                    f"{e['sides']['limit']['cpu_s'] * 1000:.1f}",
                    f"{e['ratio_to_limit']:.2f}x",
                    "PASS" if e["ratio_to_limit"] <= TARGET_EVALUATE else "MISS",
                ]
                for w in r["w1"]
                for e in [w["evaluate_eraser"]]
            ],
        )
    )
    if r.get("precision_probe"):
        p = r["precision_probe"]
        print("\nreduced precision probe at load (forward-only rows; gradients stay float32)")
        print(
            table(
                ["rows x tokens", "float32 ms CPU", "bf16 ms CPU", "speedup", "max |Δp|", "tolerance", "chosen"],
                [
                    [
                        f"{p['rows']} x {p['tokens']}",
                        f"{p['float32_ms']:.1f}",
                        f"{p['bf16_ms']:.1f}",
                        f"{p['speedup']:.2f}x",
                        f"{p['max_abs_dp']:.4f}",
                        p["tolerance"],
                        p["chosen"],
                    ]
                ],
            )
        )
    if r.get("adaptive_ig"):
        print("\nadaptive integrated gradients vs fixed steps (delta as a share of |p(x) - p(baseline)|)")
        print(
            table(
                ["tokens", "tolerance", "steps used", "rows tried", "fixed steps", "delta", "fixed delta", "meets"],
                [
                    [
                        a["n_tokens"],
                        a["tolerance"],
                        a["steps_used"],
                        a["rows_tried"],
                        a["fixed_steps"],
                        f"{a['delta_share']:.1e}",
                        f"{a['fixed_delta_share']:.1e}",
                        "yes" if a["delta_share"] <= a["tolerance"] else "no",
                    ]
                    for a in r["adaptive_ig"]
                ],
            )
        )
    if r.get("startup"):
        print("\nCLI start-up before the engine (fresh process, wall seconds)")
        print(
            table(
                ["command", "wall s", "imports torch"],
                [[k, f"{v['wall_s']:.2f}", v["imports_torch"]] for k, v in r["startup"].items()],
            )
        )


def merge(paths: list[str]) -> dict:
    """Several runs' JSON (e.g. one length at a time on a busy machine) as one result to print."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    merged = dict(runs[0])
    merged["w1"] = [w for r in runs for w in r["w1"]]
    merged["adaptive_ig"] = [a for r in runs for a in r.get("adaptive_ig", [])]
    merged["notes"] = list(dict.fromkeys(n for r in runs for n in r["notes"]))
    merged["load_average_end"] = runs[-1]["load_average_end"]
    for key in ("startup", "precision_probe"):
        merged[key] = next((r[key] for r in reversed(runs) if r.get(key)), None)  # the newest
    return merged


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "print":  # python -m benchmarks.perf print a.json b.json
        print_report(merge(argv[1:]))
        return 0
    args = parse_args(argv)
    threads_before = torch.get_num_threads()
    try:
        result = run(args)
    finally:
        torch.set_num_threads(threads_before)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
