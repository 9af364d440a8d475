"""Causal tracing's corrupted run (Meng et al. 2022): Gaussian noise of 3 × the embeddings' standard deviation
on chosen positions, averaged over seeded draws; checked against a hand loop over inputs_embeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers.errors import InputError
from explainers.inside import attribution_patching, patching

PROMPT, POSITIONS, SAMPLES = "The capital of France is", [2, 3], 3


def hand_noise(model, n_tokens):
    weight = model.get_input_embeddings().weight
    g = torch.Generator().manual_seed(0)
    noise = torch.zeros(SAMPLES, n_tokens, weight.shape[1])
    noise[:, POSITIONS] = torch.randn(SAMPLES, len(POSITIONS), weight.shape[1], generator=g) * 3 * weight.std()
    return noise


def metric(pair, logits):
    logits = logits[:, -1]
    return (logits[:, pair.target_id] - logits[:, pair.contrast_id]).numpy()


def test_corrupted_metric_is_the_mean_over_noise_draws(tiny_gpt2):
    pair = patching.prepare_noise(tiny_gpt2, PROMPT, POSITIONS, samples=SAMPLES, seed=0)
    model, ids = tiny_gpt2.model, torch.tensor([pair.clean.ids])
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids) + hand_noise(model, len(pair.clean.ids))
        expected = metric(pair, model(inputs_embeds=embeds).logits).mean()
    assert pair.corrupted_metric == pytest.approx(float(expected), abs=1e-5)
    assert pair.noise_recipe["samples"] == SAMPLES and pair.noise_recipe["scale"] == 3.0
    again = patching.prepare_noise(tiny_gpt2, PROMPT, POSITIONS, samples=SAMPLES, seed=0)
    other = patching.prepare_noise(tiny_gpt2, PROMPT, POSITIONS, samples=SAMPLES, seed=1)
    assert again.corrupted_metric == pair.corrupted_metric != other.corrupted_metric


def test_restoring_a_clean_state_into_the_noisy_run_equals_a_hand_loop(tiny_gpt2):
    pair = patching.prepare_noise(tiny_gpt2, PROMPT, POSITIONS, samples=SAMPLES, seed=0)
    grid = patching.patch(tiny_gpt2, pair, "resid", layers=[1, 2])
    model, ids = tiny_gpt2.model, torch.tensor([pair.clean.ids])
    clean = {}  # block outputs (transformers' last hidden state is after the final norm: not a block's)
    hooks = [
        model.transformer.h[k].register_forward_hook(lambda _m, _a, out, k=k: clean.__setitem__(k + 1, out.clone()))
        for k in range(2)
    ]
    with torch.no_grad():
        model(input_ids=ids)
        embeds = model.get_input_embeddings()(ids) + hand_noise(model, len(pair.clean.ids))
    for hook in hooks:
        hook.remove()
    expected = np.zeros((len(pair.clean.ids), 2))
    for j, layer in enumerate([1, 2]):
        for p in range(len(pair.clean.ids)):

            def restore(_m, _a, output, p=p, layer=layer):
                x = output.clone()
                x[:, p] = clean[layer][0, p]
                return x

            hook = model.transformer.h[layer - 1].register_forward_hook(restore)
            with torch.no_grad():
                expected[p, j] = metric(pair, model(inputs_embeds=embeds).logits).mean()
            hook.remove()
    raw = grid.values * (pair.clean_metric - pair.corrupted_metric) + pair.corrupted_metric
    np.testing.assert_allclose(raw, expected, atol=2e-5, rtol=1e-4)
    assert not grid.computed[: POSITIONS[0]].any()  # before the noise nothing differs: not run, exactly 0
    assert grid.rows == int(grid.computed.sum()) * SAMPLES


def test_noising_direction_and_preview_run_with_noise(tiny_llama):
    pair = patching.prepare_noise(tiny_llama, PROMPT, POSITIONS, samples=2, seed=0)
    exact = patching.patch(tiny_llama, pair, "attn", "noise")
    estimate = attribution_patching.preview(tiny_llama, pair, "attn", "noise")
    assert exact.values.shape == estimate.values.shape
    clean_into_clean = patching.patch(tiny_llama, pair, "mlp", "noise", source="clean", run_identical=True)
    np.testing.assert_allclose(
        clean_into_clean.values * (pair.clean_metric - pair.corrupted_metric) + pair.corrupted_metric,
        pair.clean_metric,
        atol=2e-5,
    )


def test_noise_positions_and_samples_are_checked(tiny_gpt2):
    with pytest.raises(InputError, match="at least one token position"):
        patching.prepare_noise(tiny_gpt2, PROMPT, [])
    with pytest.raises(InputError, match="Noise positions run from 0"):
        patching.prepare_noise(tiny_gpt2, PROMPT, [40])
    with pytest.raises(InputError, match="between 1 and 1000"):
        patching.prepare_noise(tiny_gpt2, PROMPT, [1], samples=0)
