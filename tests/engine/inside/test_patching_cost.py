"""What a patched row computes: only the blocks above the patch (counted by calls of each block's attention
output projection, which a skipped block never makes), and the benchmark's plain loop gives the same numbers."""

from __future__ import annotations

import numpy as np

from benchmarks.trace import plain_loop
from explainers.inside import patching

CLEAN, CORRUPTED = "a gripping , funny film .", "a gripping , dull film ."


def test_a_patched_row_runs_only_the_blocks_above_the_patch(tiny_bert):
    pair = patching.prepare(tiny_bert, CLEAN, CORRUPTED)
    calls = [0] * len(tiny_bert.blocks)
    hooks = [
        block.attention.output.dense.register_forward_hook(lambda *_, k=k: calls.__setitem__(k, calls[k] + 1))
        for k, block in enumerate(tiny_bert.blocks)
    ]
    try:
        for layer, expected in [(0, [1, 1]), (1, [0, 1]), (2, [0, 0])]:
            calls[:] = [0, 0]
            grid = patching.patch(tiny_bert, pair, "resid", layers=[layer])
            assert grid.rows > 0
            # capture runs both texts through every block once each (2 calls); then one batch of patched rows
            assert [c - 2 for c in calls] == expected, (layer, calls)
    finally:
        for hook in hooks:
            hook.remove()


def test_the_benchmarks_plain_loop_gives_the_same_grid(tiny_bert):
    pair = patching.prepare(tiny_bert, CLEAN, CORRUPTED)
    for component in ("resid", "head"):
        exact = patching.patch(tiny_bert, pair, component)
        np.testing.assert_allclose(plain_loop(tiny_bert, pair, component), exact.values, atol=1e-3, rtol=1e-4)
