"""Attribution patching against a hand computation (autograd on hooks named here), and its agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from explainers.inside import attribution_patching, patching
from tests.engine.inside.test_patching import PAIRS, _first, named_site


@pytest.mark.parametrize(
    ("fixture", "component"), [("tiny_bert", "resid"), ("tiny_gpt2", "attn"), ("tiny_llama", "mlp")]
)
def test_preview_equals_first_order_estimate_by_hand(request, fixture, component):
    handle = request.getfixturevalue(fixture)
    model = handle.model
    pair = patching.prepare(handle, *PAIRS[fixture])
    grid = attribution_patching.preview(handle, pair, component)
    for j, layer in enumerate(grid.layers):
        module, when = named_site(model, component, layer)
        acts = {}

        def pre(_m, args, kwargs, acts=acts):
            x = args[0] if args else kwargs["hidden_states"]
            acts["x"] = x
            return None

        def post(_m, _a, output, acts=acts):
            acts["x"] = _first(output)

        hook = (
            module.register_forward_pre_hook(pre, with_kwargs=True)
            if when == "pre"
            else module.register_forward_hook(post)
        )
        with torch.no_grad():
            model(input_ids=torch.tensor([pair.clean.ids]))
        clean = acts["x"][0].clone()
        emb = model.get_input_embeddings()(torch.tensor([pair.corrupted.ids])).detach().requires_grad_(True)
        logits = model(inputs_embeds=emb).logits
        logits = logits[0, -1] if logits.ndim == 3 else logits[0]
        metric = logits[pair.target_id] - logits[pair.contrast_id]
        (grad,) = torch.autograd.grad(metric, acts["x"])
        hook.remove()
        estimate = metric.item() + ((clean - acts["x"][0].detach()) * grad[0]).sum(-1).numpy()
        expected = (estimate - pair.corrupted_metric) / (pair.clean_metric - pair.corrupted_metric)
        np.testing.assert_allclose(grid.values[:, j], expected, atol=1e-4, rtol=1e-3)
    assert not grid.exact and "preview" in grid.notes[0]


def test_agreement_is_pearson_and_top_k_recall(tiny_bert):
    pair = patching.prepare(tiny_bert, *PAIRS["tiny_bert"])
    exact = patching.patch(tiny_bert, pair, "head")
    estimate = attribution_patching.preview(tiny_bert, pair, "head")
    found = attribution_patching.agreement(exact, estimate, k=3)
    assert found["pearson_r"] == pytest.approx(stats.pearsonr(exact.values.ravel(), estimate.values.ravel())[0])
    top = lambda v: set(np.argsort(-np.abs(v.ravel()))[:3])  # noqa: E731
    assert found["top_k_recall"] == len(top(exact.effects) & top(estimate.effects)) / 3


def test_agreement_of_a_preview_with_its_opposite_is_minus_one(tiny_bert):
    pair = patching.prepare(tiny_bert, *PAIRS["tiny_bert"])
    exact = patching.patch(tiny_bert, pair, "attn")
    flipped = patching.Grid(exact.component, exact.direction, exact.layers, exact.units, -exact.values, exact.computed)
    assert attribution_patching.agreement(exact, flipped)["pearson_r"] == pytest.approx(-1.0)
