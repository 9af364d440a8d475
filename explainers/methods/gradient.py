"""Gradient methods: differentiate the target score with respect to the input embeddings (or a
layer's output), through Captum. Each function is registered beside itself."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from explainers.methods.context import Context
from explainers.methods.registry import (
    BASELINE,
    CONVERGENCE_DELTA,
    LAYER,
    Cost,
    Method,
    Param,
    Scores,
    _one_pass,
    _per_token,
    _samples,
    _steps,
    register,
)


# ---- gradient methods ------------------------------------------------------------------------------
def _integrated_gradients(ctx: Context) -> Scores:
    from captum.attr import IntegratedGradients

    # On the word embeddings: the same path as layer IG on the embedding layer, without its two
    # extra passes that only capture that layer's output.
    method, tolerance, most = IntegratedGradients(ctx.forward), ctx.params["tolerance"], ctx.params["n_steps"]
    if not tolerance:
        return _path_integral(ctx, method, ctx.embeds.clone().requires_grad_())
    # Adaptive: Gauss-Legendre at 8 steps; while the convergence delta is above `tolerance` of
    # |p(input) - p(baseline)|, predict the steps that meet it (the delta taken to fall as 1/steps², slower
    # than Gauss-Legendre usually falls, so the guess errs high) and run once there; if that still misses,
    # or the guess is past half of n_steps, run n_steps: at most 8 + n_steps/2 + n_steps rows. Every attempt
    # is a whole IG, so the result equals fixed-step IG at the steps used, and meets the tolerance whenever
    # n_steps would.
    steps, tried, p_baseline = min(ADAPTIVE_FIRST_STEPS, most), 0, None
    while True:
        scores = _path_integral(ctx, method, ctx.embeds.clone().requires_grad_(), n_steps=steps, p_baseline=p_baseline)
        tried += steps
        p_baseline = scores.extras["p_baseline"]
        goal = tolerance * max(abs(ctx.target_prob - p_baseline), 1e-12)
        delta = scores.extras["convergence_delta"]
        if delta <= goal or steps >= most:
            scores.extras.update({"n_steps_used": steps, "n_steps_tried": tried})
            return scores
        predicted = max(steps + 1, math.ceil(ADAPTIVE_MARGIN * steps * math.sqrt(delta / goal)))
        # a second miss, or a guess past half of n_steps (a miss there would cost more than n_steps): n_steps
        steps = most if tried > steps or predicted > most // 2 else predicted


ADAPTIVE_FIRST_STEPS = 8
ADAPTIVE_MARGIN = 1.25  # predicted steps x this: one verifying attempt should be enough


def _path_integral(ctx: Context, method, inputs, n_steps: int | None = None, p_baseline: float | None = None) -> Scores:
    """Integrated-gradients-style methods from the baseline embeddings: batched steps, and the
    convergence delta sum(attributions) - (p(input) - p(baseline)). Captum's own delta would run
    the input and the baseline through the model again; p(input) is known, so only p(baseline) runs."""
    attributions = method.attribute(
        inputs,
        baselines=ctx.baseline_embeds,
        n_steps=n_steps or ctx.params["n_steps"],
        internal_batch_size=ctx.rows_per_batch,
    )
    if p_baseline is None:  # known from an earlier attempt of adaptive IG
        with torch.no_grad():
            p_baseline = float(ctx.forward(ctx.baseline_embeds)[0])
    delta = float(attributions.detach().double().sum()) - (ctx.target_prob - p_baseline)
    return Scores(ctx.per_token(attributions), extras={"convergence_delta": abs(delta), "p_baseline": p_baseline})


def _saliency(ctx: Context) -> Scores:
    from captum.attr import Saliency

    grads = Saliency(ctx.forward).attribute(ctx.embeds.clone().requires_grad_(), abs=True)
    return Scores(ctx.per_token(grads))


def _input_x_gradient(ctx: Context) -> Scores:
    from captum.attr import InputXGradient

    return Scores(ctx.per_token(InputXGradient(ctx.forward).attribute(ctx.embeds.clone().requires_grad_())))


def _gradient_x_activation(ctx: Context) -> Scores:
    from captum.attr import LayerGradientXActivation

    method = LayerGradientXActivation(ctx.forward, ctx.handle.block(ctx.params["layer"]))
    return Scores(ctx.per_token(method.attribute(ctx.embeds.clone().requires_grad_())))


class _EmbedsToScore(torch.nn.Module):
    """DeepLift needs an nn.Module from inputs to scores."""

    def __init__(self, ctx: Context):
        super().__init__()
        self.inner = ctx.handle.model
        self._ctx = ctx

    def forward(self, embeds):
        return self._ctx.forward(embeds)


def _deeplift(ctx: Context) -> Scores:
    from captum.attr import DeepLift

    with warnings.catch_warnings():  # Captum warns that it hooks the non-linearities: that is the method
        warnings.simplefilter("ignore", UserWarning)
        attributions, delta = DeepLift(_EmbedsToScore(ctx)).attribute(
            ctx.embeds.clone().requires_grad_(), baselines=ctx.baseline_embeds, return_convergence_delta=True
        )
    return Scores(ctx.per_token(attributions), extras={"convergence_delta": float(delta.abs().sum())})


def _gradient_shap(ctx: Context) -> Scores:
    """Captum's GradientShap (expected gradients), with its random draws made once, in Captum's own
    order, and the gradients taken in batches that fit the budget: the result depends on the seed
    only, not on the batch budget, the device's memory or an out-of-memory retry."""
    n, stdev = ctx.params["n_samples"], ctx.params["stdevs"]
    embeds = ctx.embeds
    baselines = torch.cat([ctx.baseline_embeds, torch.zeros_like(embeds)])
    with ctx.seeded():
        which = np.random.choice(len(baselines), n).tolist()
        spread = torch.tensor(stdev, device=embeds.device).repeat((n, *embeds.shape[1:]))
        noisy = embeds.repeat_interleave(n, dim=0) + torch.normal(0, spread)
        alpha = torch.tensor(np.random.uniform(0.0, 1.0, n), device=embeds.device, dtype=embeds.dtype)
    chosen = baselines[which]
    parts, step = [], ctx.rows_per_batch
    for k in range(0, n, step):
        x, b, a = noisy[k : k + step], chosen[k : k + step], alpha[k : k + step].view(-1, 1, 1)
        point = (a * x + (1.0 - a) * b).requires_grad_()
        (grads,) = torch.autograd.grad(ctx.forward(point).sum(), point)
        parts.append((x - b) * grads)
    return Scores(ctx.per_token(torch.cat(parts).mean(0, keepdim=True)))


def _layer_conductance(ctx: Context) -> Scores:
    from captum.attr import LayerConductance

    method = LayerConductance(ctx.forward, ctx.handle.block(ctx.params["layer"]))
    return _path_integral(ctx, method, ctx.embeds.clone().requires_grad_())


register(
    Method(
        "integrated_gradients",
        "Integrated Gradients",
        "gradient",
        "Averages gradients along a straight path from a baseline (mask tokens) to the input, "
        "times the input-baseline difference; scores add up to p(input) - p(baseline).",
        _integrated_gradients,
        lambda n, p: Cost(p["n_steps"], p["n_steps"]),
        (
            _steps(50, quick=16, thorough=100),
            BASELINE,
            Param(
                "tolerance",
                0.0,
                "float",
                "Adaptive steps: 0 = exactly n_steps; above 0, try 8 steps, then the steps their convergence delta "
                "predicts for this share of |p(input) - p(baseline)|, then n_steps (the most) if still above it.",
                0.0,
                0.5,
            ),
        ),
        needs_gradients=True,
        diagnostics=(CONVERGENCE_DELTA,),
        **_per_token("per_token_integrated_gradients", lambda i, g, p: Cost(p["n_steps"] + 2, p["n_steps"] * g)),
    )
)
register(
    Method(
        "saliency",
        "Saliency",
        "gradient",
        "Size of the gradient of the target probability for each token: how sensitive the output is "
        "to that token. Unsigned.",
        _saliency,
        _one_pass,
        needs_gradients=True,
        signed=False,
        scores_note="A token's score is the L1 norm of the gradient over its embedding dimensions.",
        **_per_token("per_token_saliency", lambda i, g, p: Cost(2, g)),
    )
)
register(
    Method(
        "input_x_gradient",
        "Input × Gradient",
        "gradient",
        "Gradient times the token's embedding: a first-order estimate of each token's contribution.",
        _input_x_gradient,
        _one_pass,
        needs_gradients=True,
        **_per_token("per_token_input_x_gradient", lambda i, g, p: Cost(2, g)),
    )
)
register(
    Method(
        "gradient_x_activation",
        "Gradient × Activation",
        "gradient",
        "Gradient times activation at the output of one transformer block, per token position.",
        _gradient_x_activation,
        _one_pass,
        (LAYER,),
        needs_gradients=True,
        hooks_model=True,
    )
)
register(
    Method(
        "deeplift",
        "DeepLift",
        "gradient",
        "Compares each neuron's activation to its activation on the baseline and propagates the "
        "differences back with DeepLift's rules.",
        _deeplift,
        lambda n, p: Cost(2, 1),
        (BASELINE,),
        needs_gradients=True,
        hooks_model=True,
        diagnostics=(CONVERGENCE_DELTA,),
        experimental="DeepLift's rules cover ReLU-style layers; transformers' softmax, GELU and layer norm "
        "fall back to plain gradients, so scores can break completeness.",
    )
)
register(
    Method(
        "gradient_shap",
        "Gradient SHAP",
        "gradient",
        "Expected gradients: for random points on the path from a baseline (mask tokens or zero embeddings) "
        "to a slightly noisy input, the gradient times (input − baseline), averaged over the samples.",
        _gradient_shap,
        lambda n, p: Cost(p["n_samples"], p["n_samples"]),
        (
            _samples(25, quick=10, thorough=100, high=500),
            Param("stdevs", 0.01, "float", "Noise added to the input embeddings.", 0.0, 1.0),
            BASELINE,
        ),
        needs_gradients=True,
        random=True,
    )
)
register(
    Method(
        "layer_conductance",
        "Layer Conductance",
        "gradient",
        "Integrated Gradients flowing through one transformer block's output: how much each position "
        "at that layer carries the decision.",
        _layer_conductance,
        lambda n, p: Cost(p["n_steps"] + 1, p["n_steps"]),
        (LAYER, _steps(20, quick=8, thorough=50), BASELINE),
        needs_gradients=True,
        hooks_model=True,
        diagnostics=(CONVERGENCE_DELTA,),
    )
)
