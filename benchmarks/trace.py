"""Activation patching (explainers/inside/patching.py) against the plain loop, and the preview's agreement.

    .venv/bin/python -m benchmarks.trace [--models smollm2,sentiment] [--components resid,attn,mlp,head]
                                         [--threads 1] [--examples] [--skip-timing] [--json]

For each model, one prompt pair (smollm2: 12 tokens; sentiment: 16 tokens) and each component's full
grid (every layer × every position, or × every head), denoising, logit difference against the
corrupted answer:

- whybox: `patching.patch` (rows batched per layer, blocks below the patch start from the cached run,
  cells whose activations are equal in both runs not run);
- plain: one full forward per cell, batch 1, every logit (the way TransformerLens's patching runs),
  with the same single-cell edit.

CPU seconds (`time.process_time`, one thread) of each, their ratio, and the largest difference of the
normalised values; then the attribution-patching preview's seconds and its agreement with the exact grid
(Pearson r, top-5 recall); with --examples, that agreement on the dashboard's example pairs. The
machine's load is printed: the figures are only as quiet as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from explainers.inside import activations, attribution_patching, patching
from explainers.inside.activations import Site
from explainers.models.loading import load_model

PAIRS = {
    "smollm2": ("The Eiffel Tower is in the heart of the city of", "The Colosseum is in the heart of the city of", 12),
    "sentiment": (
        "the acting is superb and the story is moving , a film to remember",
        "the acting is awful and the story is moving , a film to remember",
        16,
    ),
}


def plain_loop(handle, pair, component) -> np.ndarray:
    """One full forward per cell, batch 1, with only that cell of the corrupted run taken from the clean run."""
    layers = patching.default_layers(handle, component)
    units = range(patching.n_units(handle, pair, component))
    out = np.zeros((len(units), len(layers)))
    for j, layer in enumerate(layers):
        site = Site(component, layer)
        source, _ = activations.capture(handle, pair.clean.ids, [site])
        for i, unit in enumerate(units):
            where = patching.cell_index(handle, component, unit)

            def edit(hidden, where=where, source=source[site][0]):
                hidden = hidden.clone()
                hidden[0][where] = source[where]
                return hidden

            with activations.editing(handle, {site: edit}), torch.inference_mode():
                logits = handle.model(input_ids=torch.tensor([pair.corrupted.ids])).logits
            logits = logits[:, -1] if logits.ndim == 3 else logits
            out[i, j] = float(pair.normalise(float(pair.score(logits)[0])))
    return out


def cpu_seconds(work, *args):
    started, wall = time.process_time(), time.perf_counter()
    result = work(*args)
    return result, time.process_time() - started, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="smollm2,sentiment")
    parser.add_argument("--components", default="resid,attn,mlp,head")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--examples", action="store_true", help="also the agreement table on the example pairs")
    parser.add_argument("--skip-timing", action="store_true", help="only the agreement table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(f"load {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} on {os.cpu_count()} cores; {args.threads} thread(s)")
    rows = []
    for name in [] if args.skip_timing else args.models.split(","):
        handle = load_model(name, device="cpu")
        clean, corrupted, tokens = PAIRS[name]
        pair = patching.prepare(handle, clean, corrupted)
        assert pair.clean.n_tokens == tokens, (name, pair.clean.n_tokens)
        print(
            f"\n{name}: {tokens} tokens, {pair.metric_label}: clean {pair.clean_metric:.3f}, corrupted "
            f"{pair.corrupted_metric:.3f}"
        )
        patching.patch(handle, pair, "attn", layers=[1])  # warm-up
        for component in args.components.split(","):
            grid, ours, ours_wall = cpu_seconds(patching.patch, handle, pair, component)
            plain, base, base_wall = cpu_seconds(plain_loop, handle, pair, component)
            estimate, prev, _ = cpu_seconds(attribution_patching.preview, handle, pair, component)
            agree = attribution_patching.agreement(grid, estimate, k=5)
            row = {
                "model": name,
                "component": component,
                "cells": int(grid.values.size),
                "rows_run": grid.rows,
                "whybox_cpu_s": ours,
                "plain_cpu_s": base,
                "ratio": ours / base,
                "whybox_wall_s": ours_wall,
                "plain_wall_s": base_wall,
                "max_abs_diff": float(np.nanmax(np.abs(grid.values - plain))),
                "preview_cpu_s": prev,
                "pearson_r": agree["pearson_r"],
                "top5_recall": agree["top_k_recall"],
            }
            rows.append(row)
            print(
                f"  {component:<6} {row['cells']:>4} cells ({row['rows_run']:>4} run)  whybox {ours:7.2f} s  "
                f"plain {base:7.2f} s  ratio {row['ratio']:.2f}  max|Δ| {row['max_abs_diff']:.1e}  "
                f"preview {prev:5.2f} s  r {agree['pearson_r']:.3f}  top-5 recall {agree['top_k_recall']:.2f}"
            )
    if args.examples:
        rows += agreement_on_examples(args.models.split(","), args.components.split(","))
    if args.json:
        print(json.dumps(rows, indent=2))


def agreement_on_examples(models: list[str], components: list[str]) -> list[dict]:
    """The preview against exact patching on the dashboard's example pairs (each text and its one-word edit)."""
    from dashboard.examples import for_task
    from explainers.errors import InputError

    print("\npreview vs exact on the built-in examples (denoising; Pearson r / top-5 recall)")
    print(f"  {'model':<10} {'example':<44} " + " ".join(f"{c:>12}" for c in components))
    rows = []
    for name in models:
        handle = load_model(name, device="cpu")
        for clean, corrupted in for_task(handle.task).items():
            try:
                pair = patching.prepare(handle, clean, corrupted)
            except InputError as exc:  # different token lengths: not a patching pair
                print(f"  {name:<10} {clean[:44]:<44} skipped: {str(exc)[:60]}")
                continue
            cells = []
            for component in components:
                agree = attribution_patching.agreement(
                    patching.patch(handle, pair, component), attribution_patching.preview(handle, pair, component)
                )
                rows.append({"model": name, "example": clean, "component": component, **agree})
                cells.append(f"{agree['pearson_r']:6.2f}/{agree['top_k_recall']:.1f}")
            print(f"  {name:<10} {clean[:44]:<44} " + " ".join(f"{c:>12}" for c in cells))
    return rows


if __name__ == "__main__":
    main()
