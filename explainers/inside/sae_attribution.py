"""Which SAE features fire on a text, and how much each one gives to the prediction.

At the SAE's layer the residual stream of every token splits exactly into
    h = b_dec + Σ_i z_i · d_i + e      (d_i: latent i's decoder row, e = h − x̂: what the SAE misses)
Integrated gradients along the straight path from b_dec (no feature active at any position) to h,
h(α) = b_dec + α (h − b_dec), give each latent A_i = Σ_t z_{t,i} d_i · ḡ_t and the error term
A_e = Σ_t e_t · ḡ_t, with ḡ_t the mean over α of ∂p(target)/∂h_t. They add up to p(h) − p(b_dec) up to
the Riemann sum's error, which is reported (`gap`) as Captum's convergence delta is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explainers.inside import activations
from explainers.inside.sae import SparseAutoencoder, check_fits
from explainers.inside.sae_features import shown_tokens
from explainers.models.handle import ModelHandle

TOP_LATENTS = 12


@dataclass
class FeatureAttribution:
    tokens: list[str]
    target: str
    layer: int
    score: float  # p(target) of the model as it is
    baseline_score: float  # p(target) with the layer's stream at b_dec at every position
    attributions: np.ndarray  # (d_sae,) A_i
    error: float  # A_e
    activations: np.ndarray  # (T, d_sae) z
    steps: int

    @property
    def gap(self) -> float:
        """(p(h) − p(b_dec)) − (Σ A_i + A_e): the integral's numerical error."""
        return (self.score - self.baseline_score) - (float(self.attributions.sum()) + self.error)

    def top(self, n: int = TOP_LATENTS) -> list[int]:
        """The latents with the largest |attribution| among those that fire on this text."""
        firing = np.flatnonzero((self.activations != 0).any(0))
        return [int(i) for i in firing[np.argsort(-np.abs(self.attributions[firing]))][:n]]


def attribute(
    handle: ModelHandle, sae: SparseAutoencoder, text: str, layer: int | None = None, steps: int = 32
) -> FeatureAttribution:
    """Feature attributions of the prediction on `text` (see the module doc); target: the predicted one."""
    layer = check_fits(sae, handle, layer)
    enc = handle.encode(text)
    target = handle.resolve_target(enc)
    x = activations.read(handle, [enc.ids], [layer])[0][0]
    with torch.no_grad():
        z = sae.encode(x)
        directions = sae.W_dec / sae.scale
        bias = sae.b_dec / sae.scale
        error = x - sae.decode(z)
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps  # midpoint rule
    path = (bias + alphas[:, None, None] * (x - bias)).requires_grad_(True)  # (steps, T, H)
    embeds = handle.embed_ids(enc.ids).expand(steps, -1, -1)

    def replace(hidden: torch.Tensor) -> torch.Tensor:
        return path.to(hidden.device, hidden.dtype)

    with torch.enable_grad(), activations.editing(handle, {layer: replace}):
        scores = handle.score_embeds(embeds, target)
        (grad,) = torch.autograd.grad(scores.sum(), path)
    mean_grad = grad.mean(0).detach()  # (T, H)
    with torch.no_grad():
        per_latent = (z * (mean_grad @ directions.T)).sum(0)  # Σ_t z_{t,i} d_i · ḡ_t
        error_part = float((error * mean_grad).sum())
        ends = bias.expand(2, *x.shape).clone()
        ends[1] = x
        edge = {layer: lambda hidden: ends.to(hidden.device, hidden.dtype)}
        with activations.editing(handle, edge):
            baseline_score, score = (
                float(s) for s in handle.score_embeds(handle.embed_ids(enc.ids).expand(2, -1, -1), target)
            )
    return FeatureAttribution(
        tokens=shown_tokens(handle, enc.text, enc.ids)[0],
        target=handle.task.display(target),
        layer=layer,
        score=score,
        baseline_score=baseline_score,
        attributions=per_latent.numpy(),
        error=error_part,
        activations=z.numpy(),
        steps=steps,
    )
