"""Leave-one-out on a causal LM with and without the shared-prefix KV cache (explainers/prefix_cache.py).

    .venv/bin/python -m benchmarks.prefix_cache [--model smollm2] [--prompt-tokens 100] [--repeats 3]
                                                [--threads 1] [--json]

The rows are leave-one-out's: the prompt with one token deleted, one row per token, scored for the
model's own next token. Both sides run the same rows through `gateway.score_ids`, once with
`gateway.prefix_cache` on and once off (A/B alternated per repeat, median kept); the largest
|Δp| between them is printed, with the tokens each side runs (the cached side: the shared prefix once
plus every row's suffix) and the machine's load (`uptime`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
from explainers.inference.prefix_cache import shared_prefixes
from explainers.models.loading import load_model

PROMPT = (
    "The museum in the old town opened its doors again after the long winter, and the first visitors "
    "walked slowly through the quiet rooms to see the paintings that had been cleaned and restored by a "
    "small team of experts who had worked through the cold months in a workshop behind the library. "
    "Some of the older visitors remembered the pictures from their childhood, when the colours had been "
    "dark with dust and smoke, and they stood for a long time in front of the largest one, which showed"
)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompt-tokens", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    handle = load_model(args.model, device="cpu")
    gateway = handle.gateway
    ids = handle.encode(PROMPT * 4).ids[: args.prompt_tokens]
    target = handle.task.predicted_target(gateway.predict(ids).probs)
    rows = [ids[:i] + ids[i + 1 :] for i in range(len(ids))]

    seconds: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    scores: dict[bool, np.ndarray] = {}
    load_before = load_average()
    for _ in range(args.repeats):
        for cached in (True, False):
            gateway.prefix_cache = cached
            started, started_cpu = time.perf_counter(), time.process_time()
            scores[cached] = gateway.score_ids(rows, target)
            seconds[cached].append(time.perf_counter() - started)
            cpu[cached].append(time.process_time() - started_cpu)
    gateway.prefix_cache = True
    median = {k: statistics.median(v) for k, v in seconds.items()}
    median_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    tail = target.n_tokens - 1
    plain_tokens = sum(len(r) + tail for r in rows)
    _, shared = shared_prefixes(rows, np.array([len(r) - 1 for r in rows]))
    cached_tokens = int(shared.max()) + sum(len(r) + tail for r in rows) - int(shared.sum())
    result = {
        "model": args.model,
        "prompt_tokens": len(ids),
        "rows": len(rows),
        "threads": args.threads,
        "load_before": load_before,
        "load_after": load_average(),
        "plain": {"seconds": median[False], "cpu_seconds": median_cpu[False], "tokens_run": plain_tokens},
        "cached": {"seconds": median[True], "cpu_seconds": median_cpu[True], "tokens_run": cached_tokens},
        "speedup": median[False] / median[True],
        "cpu_speedup": median_cpu[False] / median_cpu[True],
        "max_abs_dp": float(np.max(np.abs(scores[True] - scores[False]))),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"Leave-one-out, {args.model}, {len(ids)}-token prompt, {len(rows)} rows, {args.threads} thread(s)")
    print(f"load (1/5/15 min): {result['load_before']} before, {result['load_after']} after")
    for side in ("plain", "cached"):
        r = result[side]
        print(
            f"  {side:6s}  wall {r['seconds']:6.2f} s ({len(rows) / r['seconds']:5.1f} rows/s)  "
            f"CPU {r['cpu_seconds']:6.2f} s ({len(rows) / r['cpu_seconds']:5.1f} rows/CPU s)  "
            f"{r['tokens_run']} tokens run"
        )
    print(
        f"  speed-up: wall {result['speedup']:.2f}x, CPU {result['cpu_speedup']:.2f}x; "
        f"max |Δp| cached vs plain {result['max_abs_dp']:.2e}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
