"""Adaptive integrated gradients: 8 Gauss-Legendre steps, then the steps their convergence delta
predicts for the tolerance, then n_steps if that still misses. Checked against fixed-step IG."""

from __future__ import annotations

import math

import numpy as np
import pytest

from explainers.methods import ADAPTIVE_FIRST_STEPS, ADAPTIVE_MARGIN, explain

TEXT = "a gripping , funny film , though far too long ."
MOST = 50


class GradientRows:
    """Rows that go through the model with grad on: the IG steps actually run."""

    def __init__(self, model):
        self.model, self.rows = model, 0

    def _hook(self, _module, _args, kwargs):
        x = kwargs.get("inputs_embeds")
        if x is not None and x.requires_grad:
            self.rows += x.shape[0]

    def __enter__(self):
        self.handle = self.model.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize("tolerance", [0.05, 8e-4, 1e-4, 1e-9])  # on tiny BERT: 8; guess, miss, 50; 50; 50
def test_adaptive_ig_equals_fixed_ig_at_its_steps_and_meets_the_tolerance(tiny_bert, tolerance):
    with GradientRows(tiny_bert.model) as counted:
        adaptive = explain(tiny_bert, TEXT, "integrated_gradients", tolerance=tolerance, n_steps=MOST)
    used, tried = adaptive.extras["n_steps_used"], adaptive.extras["n_steps_tried"]
    assert tried == counted.rows  # the rows reported are the rows run
    assert tried <= ADAPTIVE_FIRST_STEPS + MOST // 2 + MOST
    fixed = explain(tiny_bert, TEXT, "integrated_gradients", n_steps=used)
    np.testing.assert_allclose(adaptive.token_scores, fixed.token_scores, rtol=1e-6, atol=1e-9)
    assert adaptive.extras["convergence_delta"] == pytest.approx(fixed.extras["convergence_delta"], abs=1e-9)
    gap = abs(adaptive.target_prob - adaptive.extras["p_baseline"])
    within = adaptive.extras["convergence_delta"] <= tolerance * gap
    if used < MOST:
        assert within
    # never less accurate than n_steps: whenever fixed n_steps meets the tolerance, adaptive does
    full = explain(tiny_bert, TEXT, "integrated_gradients", n_steps=MOST)
    if full.extras["convergence_delta"] <= tolerance * gap:
        assert within
    # the path taken: 8 steps; else the predicted count (from the delta at 8); else n_steps as well
    first = explain(tiny_bert, TEXT, "integrated_gradients", n_steps=ADAPTIVE_FIRST_STEPS)
    if first.extras["convergence_delta"] <= tolerance * gap:
        assert (used, tried) == (ADAPTIVE_FIRST_STEPS, ADAPTIVE_FIRST_STEPS)
    else:
        ratio = first.extras["convergence_delta"] / (tolerance * gap)
        predicted = max(ADAPTIVE_FIRST_STEPS + 1, math.ceil(ADAPTIVE_MARGIN * 8 * math.sqrt(ratio)))
        predicted = MOST if predicted > MOST // 2 else predicted  # a guess past half: straight to n_steps
        if used == predicted:
            assert tried == ADAPTIVE_FIRST_STEPS + predicted
        else:  # the prediction missed: n_steps after it
            assert used == MOST and tried == ADAPTIVE_FIRST_STEPS + predicted + MOST


def test_no_tolerance_runs_exactly_n_steps(tiny_bert):
    with GradientRows(tiny_bert.model) as counted:
        got = explain(tiny_bert, TEXT, "integrated_gradients", n_steps=12)
    assert counted.rows == 12 and "n_steps_used" not in got.extras
