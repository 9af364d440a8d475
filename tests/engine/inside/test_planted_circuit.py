"""A planted circuit: a tiny Llama (grouped-query attention) in which only one head of one layer can move
the answer. Exact patching must find exactly that cell; the preview's agreement is measured, not assumed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers.inside import attribution_patching, patching

LAYER, HEAD = 2, 3  # block 2 (1-based), head 3 of 4; heads 2 and 3 share key/value group 1


@pytest.fixture(scope="module")
def planted(tiny_llama_dir):
    from explainers.models.loading import load_model

    handle = load_model(str(tiny_llama_dir), device="cpu")
    width = handle.config.hidden_size // handle.config.num_attention_heads
    with torch.no_grad():
        for k, block in enumerate(handle.model.model.layers):
            block.mlp.down_proj.weight.zero_()  # no MLP writes to the residual stream
            keep = block.self_attn.o_proj.weight[:, HEAD * width : (HEAD + 1) * width].clone()
            block.self_attn.o_proj.weight.zero_()  # no head writes, ...
            if k == LAYER - 1:  # ... but the planted one, made loud
                block.self_attn.o_proj.weight[:, HEAD * width : (HEAD + 1) * width] = 40 * keep
    return handle


def test_exact_patching_finds_exactly_the_planted_head(planted):
    pair = patching.prepare(planted, "The capital of France is", "The capital of Italy is")
    assert abs(pair.clean_metric - pair.corrupted_metric) > 0.1
    heads = patching.patch(planted, pair, "head")
    where = np.unravel_index(np.argmax(np.abs(heads.effects)), heads.values.shape)
    assert (heads.units[where[0]], heads.layers[where[1]]) == (f"head {HEAD}", LAYER)
    assert heads.values[where] == pytest.approx(1.0, abs=1e-4)  # the whole difference goes through it
    others = np.delete(heads.effects.ravel(), np.ravel_multi_index(where, heads.values.shape))
    assert np.abs(others).max() < 1e-4
    for component in ("keys", "values"):  # per key/value group: only the planted head's group
        grid = patching.patch(planted, pair, component)
        moved = {(u, lay) for (u, lay) in zip(*np.nonzero(np.abs(grid.effects) > 1e-4))}
        assert moved == {(HEAD // 2, grid.layers.index(LAYER))}, component


def test_the_previews_agreement_on_the_planted_head_is_measured(planted):
    pair = patching.prepare(planted, "The capital of France is", "The capital of Italy is")
    exact = patching.patch(planted, pair, "head")
    estimate = attribution_patching.preview(planted, pair, "head")
    # heads that write nothing have no gradient path: the preview gives them exactly nothing
    silent = np.ones_like(estimate.values, dtype=bool)
    silent[HEAD, estimate.layers.index(LAYER)] = False
    assert (estimate.effects[silent] == 0).all()
    found = attribution_patching.agreement(exact, estimate, k=1)
    assert found["cells"] == 8 and found["top_k_recall"] == 1.0  # the one cell that moves is ranked first
    print("planted-circuit preview agreement", found)
