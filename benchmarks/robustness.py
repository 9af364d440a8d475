"""Sanity and consistency benchmark (issue 20 point 15, issue 26 part 3).

    .venv/bin/python -m benchmarks.robustness                                   # 100 held-out sentences
    .venv/bin/python -m benchmarks.robustness --n 5 --method saliency --method occlusion --json

On the first N held-out Rotten Tomatoes sentences of the built-in `sentiment` model (never trained on):

- sanity: each method's mean similarity (Spearman ρ of |scores|, top-k intersection) to its original map
  after each step of the cascading randomisation (explainers/metrics/sanity.py);
- consistency: each method's mean Spearman ρ, top-k intersection and rank-biased overlap over the kept
  meaning- and prediction-preserving variants, beside its noise floor (the same text, another seed), the
  variants kept and dropped, and the share of words they change (explainers/metrics/consistency.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from explainers.checks.consistency import consistency
from explainers.checks.sanity import sanity_check
from explainers.models.builtin import sentiment_splits
from explainers.models.loading import load_model

DEFAULT_METHODS = ("integrated_gradients", "lime", "occlusion", "saliency")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _mean(rows: list[list[float]]) -> list[float]:
    return [float(np.nanmean(column)) if not np.all(np.isnan(column)) else float("nan") for column in np.array(rows).T]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--method", action="append", help=f"default: {', '.join(DEFAULT_METHODS)}")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-sanity", action="store_true")
    parser.add_argument("--skip-consistency", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    methods = args.method or list(DEFAULT_METHODS)
    handle = load_model("sentiment", device=args.device)
    texts = [text for text, _ in sentiment_splits()[1][: args.n]]
    out: dict = {"model": handle.describe(), "texts": len(texts), "methods": methods}

    if not args.skip_sanity:
        per: dict = {m: {"spearman_abs": [], "top_k": []} for m in methods}
        layers, started = None, time.perf_counter()
        for k, text in enumerate(texts):
            result = sanity_check(handle, text, methods)
            layers = result.layers
            for m in methods:
                for measure in per[m]:
                    per[m][measure].append(result.values[m][measure])
            log(f"sanity {k + 1}/{len(texts)}  {time.perf_counter() - started:.0f} s")
        out["sanity"] = {"layers": layers, "mean": {m: {s: _mean(v) for s, v in per[m].items()} for m in methods}}

    if not args.skip_consistency:
        rows: dict = {m: {"spearman": [], "top_k": [], "rbo": []} for m in methods}
        floors: dict = {m: {"spearman": [], "top_k": [], "rbo": []} for m in methods}
        kept = dropped = 0
        changed: list[float] = []
        started = time.perf_counter()
        for k, text in enumerate(texts):
            result = consistency(handle, text, methods)
            kept += len(result.used)
            dropped += sum(result.dropped().values())
            changed += [v.changed_share for v in result.used]
            for m in methods:
                for measure in rows[m]:
                    rows[m][measure] += result.values[m][measure]
                    floors[m][measure].append(result.noise_floor[m][measure])
            log(f"consistency {k + 1}/{len(texts)}  {time.perf_counter() - started:.0f} s")
        out["consistency"] = {
            "variants_used": kept,
            "variants_dropped": dropped,
            "mean_words_changed": float(np.mean(changed)) if changed else None,
            "mean": {m: {s: float(np.nanmean(v)) if v else None for s, v in rows[m].items()} for m in methods},
            "noise_floor": {m: {s: float(np.nanmean(v)) for s, v in floors[m].items()} for m in methods},
        }

    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if "sanity" in out:
        print(f"sanity: mean Spearman ρ of |scores| with the original map over {len(texts)} sentences")
        print(" " * 22 + "".join(f"{layer[:11]:>12}" for layer in out["sanity"]["layers"]))
        for m in methods:
            print(f"{m:<22}" + "".join(f"{v:12.3f}" for v in out["sanity"]["mean"][m]["spearman_abs"]))
    if "consistency" in out:
        c = out["consistency"]
        print(
            f"\nconsistency: {c['variants_used']} variants used, {c['variants_dropped']} dropped, "
            f"{c['mean_words_changed'] or 0:.0%} of words changed on average"
        )
        print(f"{'method':<22}" + "".join(f"{s:>10}{'floor':>8}" for s in ("spearman", "top_k", "rbo")))
        for m in methods:
            cells = "".join(
                f"{c['mean'][m][s] or float('nan'):10.3f}{c['noise_floor'][m][s]:8.3f}" for s in c["mean"][m]
            )
            print(f"{m:<22}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
