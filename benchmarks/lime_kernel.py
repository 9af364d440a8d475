"""LIME's surrogate R² against its kernel width and sample count, on the example texts of each built-in model.

    .venv/bin/python -m benchmarks.lime_kernel [--widths 5,10,15,25,50] [--samples 300,1000] [--json]

Prints, per text, R² for each kernel width and the Spearman correlation of LIME's word weights with
leave-one-out's (a sanity check that a narrower kernel still ranks words like removing them does).
This is the measurement behind LIME's length-dependent default kernel width (explainers/length_defaults.py).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from explainers.models.loading import load_model
from scipy.stats import spearmanr

from dashboard.examples import for_task
from explainers.methods import explain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sentiment,smollm2")
    parser.add_argument("--widths", default="5,10,15,25,50")
    parser.add_argument("--samples", default="300,1000")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    widths = [float(w) for w in args.widths.split(",")]
    samples = [int(n) for n in args.samples.split(",")]
    rows = []
    for model in args.models.split(","):
        handle = load_model(model)
        for text in for_task(handle.task):
            loo = np.array(explain(handle, text, "leave_one_out").word_scores)
            for n in samples:
                for width in widths:
                    exp = explain(handle, text, "lime", n_samples=n, kernel_width=width)
                    rho = spearmanr(exp.word_scores, loo).statistic if np.ptp(loo) > 0 else float("nan")
                    rows.append(
                        {
                            "model": model,
                            "text": text,
                            "words": len(exp.words),
                            "n_samples": n,
                            "kernel_width": width,
                            "r2": exp.extras["surrogate_r2"],
                            "spearman_vs_loo": float(rho),
                        }
                    )
                    if not args.json:
                        r = rows[-1]
                        print(
                            f"{model:<9} {r['words']:>3}w n={n:<5} width={width:<5g} R²={r['r2']:.3f} "
                            f"ρ(LOO)={r['spearman_vs_loo']:+.2f}  {text[:40]}",
                            flush=True,
                        )
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average)")
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
