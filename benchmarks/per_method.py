"""One explain + one faithfulness evaluation per method on a model (default: the built-in `sentiment`).

    .venv/bin/python -m benchmarks.per_method [--model sentiment] [--repeats 3] [--json]

Prints the median wall time of `explain` and of `faithfulness.evaluate` for every registered method,
with each method's default parameters, on one review sentence.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from explainers.metrics.faithfulness import evaluate
from explainers.models.loading import load_model

from explainers.methods import METHODS, explain

REVIEW = (
    "a gripping , funny and beautifully acted film , though the last half hour drags and the ending is far too neat ."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentiment")
    parser.add_argument("--text", default=REVIEW)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    handle = load_model(args.model, device=args.device)
    n_tokens = handle.encode(args.text).n_tokens
    rows = []
    for name in METHODS:
        explain(handle, args.text, name)  # warm-up: first-call allocations, lazy imports
        explain_s, evaluate_s = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            exp = explain(handle, args.text, name)
            explain_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            report = evaluate(handle, exp)
            evaluate_s.append(time.perf_counter() - started)
        rows.append(
            {
                "method": name,
                "explain_s": statistics.median(explain_s),
                "evaluate_s": statistics.median(evaluate_s),
                "evaluate_rows": report.forward_rows,
            }
        )
    if args.json:
        print(json.dumps({"model": handle.describe(), "tokens": n_tokens, "methods": rows}, indent=2))
        return 0
    print(f"{handle.name} on {handle.device}, {n_tokens} tokens, median of {args.repeats}")
    print(f"{'method':<22}{'explain':>10}{'evaluate':>10}{'rows':>6}")
    for row in rows:
        print(f"{row['method']:<22}{row['explain_s']:>9.3f}s{row['evaluate_s']:>9.3f}s{row['evaluate_rows']:>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
