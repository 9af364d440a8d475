"""Batches of rows for the model: how many rows fit a token budget, and which rows go together."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Rows x tokens pushed through the model at once. Large enough to keep the cores busy, small enough
# that IG's 50 interpolation steps of a 512-token text fit; halved automatically on GPU OOM.
DEFAULT_TOKEN_BUDGET = {"cpu": 4096, "mps": 16384, "cuda": 65536}
# What one extra model call costs, in padded tokens' worth of compute: small on CPU (a call's fixed
# cost is a few ms, like ~30 tokens of MiniLM), large on GPUs, where small batches leave it idle.
CALL_OVERHEAD_TOKENS = {"cpu": 32, "mps": 2048, "cuda": 8192}


def plan_batches(lengths: Sequence[int], token_budget: int, call_overhead: int) -> list[list[int]]:
    """Split rows of these lengths into batches (lists of row indices) that fit `token_budget`
    padded tokens each and cost the least: padded tokens computed plus `call_overhead` per batch.

    Rows are sorted by length, so a batch is a run of neighbouring lengths; the best runs are found
    by dynamic programming over the distinct lengths (at most max_tokens of them)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    widths = sorted(set(lengths))
    below = np.searchsorted([lengths[i] for i in order], widths + [math.inf])  # rows shorter than each width
    rows_in = lambda first, last: int(below[last + 1] - below[first])  # rows of widths[first..last]  # noqa: E731

    def cost(first: int, last: int) -> int:
        rows, width = rows_in(first, last), widths[last]
        return math.ceil(rows / max(1, token_budget // width)) * call_overhead + rows * width

    best = [0] * (len(widths) + 1)  # best[j]: cheapest plan for the rows of the j shortest widths
    cut = [0] * (len(widths) + 1)  # ... whose last run starts at widths[cut[j]]
    for j in range(1, len(widths) + 1):
        best[j], cut[j] = min((best[i] + cost(i, j - 1), i) for i in range(j))
    runs, j = [], len(widths)
    while j > 0:
        runs.append((cut[j], j - 1))
        j = cut[j]
    batches = []
    for first, last in reversed(runs):
        run = order[below[first] : below[last + 1]]
        per_call = max(1, token_budget // widths[last])
        batches += [run[k : k + per_call] for k in range(0, len(run), per_call)]
    return batches
