"""Every Captum-backed method against Captum called directly on the same inputs.

The reference side uses only the Hugging Face model and Captum: its own forward from word embeddings
to the target's probability, its own baselines (the mask token on every content token, special tokens
kept) and, for the sampling methods, the same seeds. whybox's side goes through its registry, gateway
and batching, on a small batch budget so that batching and rounds are exercised too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers.methods import explain

TEXT = "a gripping , funny film , though far too long ."
TARGET = "positive"


class Reference:
    """The tiny BERT as Captum's documentation would wrap it."""

    def __init__(self, handle, exp):
        self.model = handle.model
        self.target = exp.target.class_index
        self.ids = torch.tensor([exp.token_ids])
        self.content = ~torch.tensor(exp.special)
        baseline_ids = self.ids.clone()
        baseline_ids[0, self.content] = handle.tokenizer.mask_token_id
        embed = self.model.get_input_embeddings()
        self.embeds = embed(self.ids).detach()
        self.baseline = embed(baseline_ids).detach()

    def forward(self, embeds):
        mask = torch.ones(embeds.shape[:2], dtype=torch.long)
        return torch.softmax(self.model(inputs_embeds=embeds, attention_mask=mask).logits, -1)[:, self.target]

    def module(self):
        reference = self

        class EmbedsToProbability(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = reference.model

            def forward(self, embeds):
                return reference.forward(embeds)

        return EmbedsToProbability()

    def feature_mask(self):
        positions = torch.arange(self.ids.shape[1]) + 1
        mask = torch.where(self.content, positions, torch.zeros_like(positions))
        return (mask - mask.min())[None, :, None].expand_as(self.embeds).contiguous()

    def per_token(self, attributions, grouped: bool = False) -> np.ndarray:
        """Sum over the embedding; with a feature mask every dimension of a token carries the
        token's whole value, so one dimension is read."""
        per_dim = attributions.detach()[0]
        scores = (per_dim[:, 0] if grouped else per_dim.sum(-1)).numpy().astype(np.float64)
        scores[~self.content.numpy()] = 0.0
        return scores


def _direct(name: str, ref: Reference, params: dict, seed: int):
    import captum.attr as ca

    x = ref.embeds.clone().requires_grad_()
    if name == "saliency":
        return ca.Saliency(ref.forward).attribute(x, abs=True)
    if name == "input_x_gradient":
        return ca.InputXGradient(ref.forward).attribute(x)
    if name == "gradient_x_activation":
        block = ref.model.bert.encoder.layer[params["layer"]]
        return ca.LayerGradientXActivation(ref.forward, block).attribute(x)
    if name == "deeplift":
        return ca.DeepLift(ref.module()).attribute(x, baselines=ref.baseline)
    if name == "layer_conductance":
        block = ref.model.bert.encoder.layer[params["layer"]]
        return ca.LayerConductance(ref.forward, block).attribute(x, baselines=ref.baseline, n_steps=params["n_steps"])
    torch.manual_seed(seed)
    np.random.seed(seed)
    if name == "gradient_shap":
        baselines = torch.cat([ref.baseline, torch.zeros_like(ref.embeds)])
        return ca.GradientShap(ref.forward).attribute(
            x, baselines=baselines, n_samples=params["n_samples"], stdevs=params["stdevs"]
        )
    with torch.no_grad():
        sampler = ca.ShapleyValueSampling if name == "shapley_sampling" else ca.KernelShap
        return sampler(ref.forward).attribute(
            ref.embeds, baselines=ref.baseline, feature_mask=ref.feature_mask(), n_samples=params["n_samples"]
        )


@pytest.mark.parametrize(
    "name, params",
    [
        ("saliency", {}),
        ("input_x_gradient", {}),
        ("gradient_x_activation", {"layer": 0}),  # at the last block only [CLS] reaches the head: all zero
        ("deeplift", {}),
        ("layer_conductance", {"layer": 0, "n_steps": 12}),
        ("gradient_shap", {"n_samples": 9, "stdevs": 0.05}),
        ("shapley_sampling", {"n_samples": 3}),
        ("kernel_shap", {"n_samples": 40}),
    ],
)
def test_method_equals_captum_called_directly(tiny_bert, monkeypatch, name, params):
    seed = 11
    # a small budget: whybox batches (and draws gradient SHAP's samples) in several rounds
    monkeypatch.setattr(tiny_bert.gateway, "token_budget", 4 * 16)
    exp = explain(tiny_bert, TEXT, name, target=TARGET, seed=seed, **params)
    ref = Reference(tiny_bert, exp)
    expected = ref.per_token(_direct(name, ref, exp.params, seed), grouped=name in ("shapley_sampling", "kernel_shap"))
    assert np.abs(expected).sum() > 0
    np.testing.assert_allclose(exp.scores("token"), expected, rtol=2e-4, atol=1e-7)


def test_gradient_shap_does_not_depend_on_the_batch_budget(tiny_bert, monkeypatch):
    wide = explain(tiny_bert, TEXT, "gradient_shap", seed=4, n_samples=12)
    monkeypatch.setattr(tiny_bert.gateway, "token_budget", 16)  # one row per call
    narrow = explain(tiny_bert, TEXT, "gradient_shap", seed=4, n_samples=12)
    np.testing.assert_allclose(narrow.token_scores, wide.token_scores, rtol=1e-5, atol=1e-8)
