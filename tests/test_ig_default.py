"""Integrated gradients meets its own completeness diagnostic by default (issue 20, point 17): adaptive
steps unless tolerance=0, each attempt a whole IG equal to Captum's at the steps used."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import LayerIntegratedGradients

from explainers.methods import ADAPTIVE_TOLERANCE, CONVERGENCE_DELTA, METHODS, explain

TEXTS = {"tiny_bert": "a gripping , funny film , though far too long .", "tiny_llama": "The capital of France is"}


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_llama"])
def test_default_ig_meets_its_diagnostic_and_equals_captum_at_the_steps_it_used(model, request):
    handle = request.getfixturevalue(model)
    text = TEXTS[model]
    exp = explain(handle, text, "integrated_gradients")
    assert exp.params["tolerance"] == ADAPTIVE_TOLERANCE > 0
    used = exp.extras["n_steps_used"]
    gap = abs(exp.target_prob - exp.extras["p_baseline"])
    if used < exp.params["n_steps"]:  # it stopped early: because it met the tolerance
        assert exp.extras["convergence_delta"] <= ADAPTIVE_TOLERANCE * gap
    assert exp.extras["convergence_delta"] <= CONVERGENCE_DELTA.threshold  # "good" on its own diagnostic

    # independent: Captum's IG on the embedding layer at the steps used, the probability by hand
    ids = torch.tensor([exp.token_ids])
    content = ~torch.tensor(exp.special)
    baseline = ids.clone()
    baseline[0, content] = handle.baseline_token_id()
    model = handle.model

    def forward(input_ids):
        logits = model(input_ids=input_ids).logits
        if handle.labels:
            return torch.softmax(logits, -1)[:, handle.labels.index(exp.target.label)]
        return torch.softmax(logits[:, -1], -1)[:, exp.target.token_ids[0]]

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    direct = lig.attribute(ids, baselines=baseline, n_steps=used)
    expected = direct.sum(-1)[0].detach().numpy()
    expected[~content.numpy()] = 0
    np.testing.assert_allclose(exp.scores("token"), expected, rtol=1e-4, atol=1e-7)


def test_tolerance_zero_is_offered_for_exactly_n_steps():
    tolerance = next(p for p in METHODS["integrated_gradients"].params if p.name == "tolerance")
    assert tolerance.default == ADAPTIVE_TOLERANCE and tolerance.low == 0.0
    assert "0 = exactly n_steps" in tolerance.help
