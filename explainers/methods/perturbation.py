"""Perturbation methods: change the input and watch the target score move (occlusion, leave-one-out,
Shapley value sampling, Kernel SHAP), each perturbation batched through the gateway."""

from __future__ import annotations

import math

import numpy as np
import torch

from explainers.errors import InputError
from explainers.methods.context import Context
from explainers.methods.length_defaults import describe as length_rule
from explainers.methods.registry import (
    BASELINE,
    Cost,
    Method,
    Param,
    Scores,
    _per_token,
    _samples,
    register,
)
from explainers.methods.units import Units, hide_positions


# ---- perturbation methods -------------------------------------------------------------------------
def occlusion_windows(n_tokens: int, window: int, stride: int) -> list[range]:
    """Captum's Occlusion windows along the tokens: starts 0, stride, ..., the last one reaching
    the end (cut short there when the stride does not divide the length)."""
    window = min(window, n_tokens)
    count = math.ceil((n_tokens - window) / stride) + 1
    return [range(k * stride, min(k * stride + window, n_tokens)) for k in range(count)]


def _occlusion(ctx: Context) -> Scores:
    """Captum's Occlusion with the baseline token, as one batched pass over all windows: each token's
    score is the mean drop p(x) - p(x with a window hidden) over the windows that cover it."""
    if ctx.params["stride"] > ctx.params["window"]:
        raise InputError(
            "Occlusion's stride must not exceed its window: the tokens between windows would never be hidden."
        )
    windows = occlusion_windows(ctx.enc.n_tokens, ctx.params["window"], ctx.params["stride"])
    baseline = ctx.baseline_ids[0].tolist()  # special tokens are their own baseline: never hidden
    sequences = []
    for covered in windows:
        ids = list(ctx.enc.ids)
        ids[covered.start : covered.stop] = baseline[covered.start : covered.stop]
        sequences.append(ids)
    drops = ctx.target_prob - ctx.handle.score_ids(sequences, ctx.target)
    total, count = np.zeros(ctx.enc.n_tokens), np.zeros(ctx.enc.n_tokens)
    for covered, drop in zip(windows, drops):
        total[covered.start : covered.stop] += drop
        count[covered.start : covered.stop] += 1
    scores = total / np.maximum(count, 1)
    scores[~ctx.content_mask.cpu().numpy()] = 0.0
    return Scores(scores)


def _leave_one_out(ctx: Context) -> Scores:
    from explainers.metrics.faithfulness import leave_one_out

    return Scores(leave_one_out(ctx.handle, ctx.enc, ctx.target, ctx.params["removal"]))


def _sampled_token_attribution(ctx: Context, captum_class) -> Scores:
    """Shapley sampling and Kernel SHAP: one feature per token, hidden = baseline embedding."""
    with ctx.seeded(), torch.no_grad():
        attributions = captum_class(ctx.forward).attribute(
            ctx.embeds,
            baselines=ctx.baseline_embeds,
            feature_mask=ctx.token_feature_mask(),
            n_samples=ctx.params["n_samples"],
            perturbations_per_eval=ctx.rows_per_batch,
        )
    return Scores(_feature_scores(ctx, attributions))


def _shapley_sampling(ctx: Context) -> Scores:
    from captum.attr import ShapleyValueSampling

    return _sampled_token_attribution(ctx, ShapleyValueSampling)


def _kernel_shap(ctx: Context) -> Scores:
    from captum.attr import KernelShap

    return _sampled_token_attribution(ctx, KernelShap)


def _feature_scores(ctx: Context, attributions: torch.Tensor) -> np.ndarray:
    """Feature-mask methods give every embedding dim of a token the token's whole score."""
    scores = attributions[0, :, 0].detach().float().cpu().numpy().astype(np.float64)
    scores[~ctx.content_mask.cpu().numpy()] = 0.0
    return scores


# ---- the same methods over units (sentences, separator pieces): see units.py -------------------------
def unit_occlusion(ctx, units: Units) -> np.ndarray:
    window, stride = ctx.params["window"], ctx.params["stride"]
    n = len(units)
    window = min(window, n)
    starts = [k * stride for k in range(math.ceil((n - window) / stride) + 1)]
    fill = ctx.baseline_ids[0].tolist()
    rows = [
        hide_positions(ctx.enc.ids, [i for u in range(s, min(s + window, n)) for i in units.positions[u]], fill)
        for s in starts
    ]
    drops = ctx.target_prob - ctx.handle.score_ids(rows, ctx.target)
    total, count = np.zeros(n), np.zeros(n)
    for s, drop in zip(starts, drops):
        total[s : s + window] += drop
        count[s : s + window] += 1
    return total / np.maximum(count, 1)


def unit_leave_one_out(ctx, units: Units) -> np.ndarray:
    fill = ctx.handle.baseline_token_id()
    rows = []
    for where in units.positions:
        if ctx.params["removal"] == "delete":
            rows.append([t for i, t in enumerate(ctx.enc.ids) if i not in set(where)] or [fill])
        else:
            rows.append(hide_positions(ctx.enc.ids, where, [fill] * ctx.enc.n_tokens))
    return ctx.target_prob - ctx.handle.score_ids(rows, ctx.target)


def _sampled(captum_class):
    def run(ctx, units: Units) -> np.ndarray:
        mask = torch.full((ctx.enc.n_tokens,), len(units), dtype=torch.long, device=ctx.device)  # specials: one
        for u, where in enumerate(units.positions):
            mask[where] = u
        with ctx.seeded(), torch.no_grad():
            attributions = captum_class(ctx.forward).attribute(
                ctx.embeds,
                baselines=ctx.baseline_embeds,
                feature_mask=mask[None, :, None].expand_as(ctx.embeds).contiguous(),
                n_samples=ctx.params["n_samples"],
                perturbations_per_eval=ctx.rows_per_batch,
            )
        per_token = attributions[0, :, 0].detach().double().cpu().numpy()
        return np.array([per_token[where[0]] for where in units.positions])

    return run


def unit_shapley_sampling(ctx, units: Units) -> np.ndarray:
    from captum.attr import ShapleyValueSampling

    return _sampled(ShapleyValueSampling)(ctx, units)


def unit_kernel_shap(ctx, units: Units) -> np.ndarray:
    from captum.attr import KernelShap

    return _sampled(KernelShap)(ctx, units)


register(
    Method(
        "occlusion",
        "Occlusion",
        "perturbation",
        "Slides a window over the text, replaces the tokens under it with the baseline token and "
        "records how much the target probability drops; a token's score is the mean drop over the "
        "windows that cover it.",
        _occlusion,
        lambda n, p: Cost(len(occlusion_windows(n, p["window"], p["stride"]))),
        (
            Param("window", None, "int", "Tokens hidden at once. " + length_rule("occlusion", "window"), 1, 32),
            Param("stride", 1, "int", "Step between windows.", 1, 32),
            BASELINE,
        ),
        unit_features=unit_occlusion,
        **_per_token(
            "per_token_occlusion", lambda i, g, p: Cost(len(occlusion_windows(i, p["window"], p["stride"])) + 1)
        ),
    )
)
register(
    Method(
        "leave_one_out",
        "Leave-one-out",
        "perturbation",
        "Removes each token in turn: score = p(text) - p(text without the token).",
        _leave_one_out,
        lambda n, p: Cost(n + 1),
        (
            Param(
                "removal",
                "delete",
                "choice",
                "Delete each token, or replace it with the baseline (mask) token.",
                choices=("delete", "mask"),
            ),
        ),
        unit_features=unit_leave_one_out,
        **_per_token("per_token_leave_one_out", lambda i, g, p: Cost(i + 1)),
    )
)
register(
    Method(
        "shapley_sampling",
        "Shapley Value Sampling",
        "perturbation",
        "Estimates Shapley values: each token's average marginal effect over random orders in which "
        "tokens are revealed (hidden = baseline token).",
        _shapley_sampling,
        lambda n, p: Cost(p["n_samples"] * n + 1),
        (_samples(10, quick=4, thorough=25, high=200), BASELINE),
        random=True,
        needs_embeddings=True,  # Captum hides tokens by swapping their embeddings
        unit_features=unit_shapley_sampling,
    )
)
register(
    Method(
        "kernel_shap",
        "Kernel SHAP",
        "perturbation",
        "Fits a weighted linear model on random subsets of tokens (hidden = baseline token) whose "
        "weights approximate Shapley values.",
        _kernel_shap,
        lambda n, p: Cost(p["n_samples"]),
        (_samples(200, quick=80, thorough=500), BASELINE),
        random=True,
        needs_embeddings=True,  # Captum hides tokens by swapping their embeddings
        unit_features=unit_kernel_shap,
    )
)
