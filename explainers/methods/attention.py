"""Attention methods: a view of what the model looks at (raw weights, rollout), not of why it decided."""

from __future__ import annotations

import numpy as np
import torch

from explainers.errors import InputError
from explainers.methods.context import Context
from explainers.methods.registry import (
    Cost,
    Method,
    Param,
    Scores,
    _per_token,
    register,
)


# ---- attention -----------------------------------------------------------------------------------
def _attention(ctx: Context) -> Scores:
    attentions = ctx.prediction.attentions  # per layer (1, heads, T, T)
    layer = ctx.params["layer"]
    stack = torch.cat(attentions)  # (layers, heads, T, T)
    if not -len(attentions) <= layer < len(attentions):
        raise InputError(f"Layer {layer} does not exist: this model has layers 0..{len(attentions) - 1}.")
    chosen = stack.mean(0) if ctx.params["layers"] == "all" else stack[layer]
    head = ctx.params["head"]
    if head >= chosen.shape[0]:
        raise InputError(f"Head {head} does not exist: this model has heads 0..{chosen.shape[0] - 1}.")
    weights = chosen.mean(0) if head < 0 else chosen[head]
    row = weights[ctx.handle.prediction_position(ctx.enc)].numpy().astype(np.float64)
    row[~ctx.content_mask.cpu().numpy()] = 0.0
    return Scores(row, extras={"position": ctx.handle.prediction_position(ctx.enc)})


def attention_rollout(attentions: list[torch.Tensor], residual: float = 0.5) -> torch.Tensor:
    """Abnar & Zuidema (2020): mix in the residual stream, renormalise, multiply through layers."""
    length = attentions[0].shape[-1]
    eye = torch.eye(length)
    rollout = eye
    for layer in attentions:
        mixed = residual * eye + (1 - residual) * layer[0].mean(0)
        mixed = mixed / mixed.sum(-1, keepdim=True)
        rollout = mixed @ rollout
    return rollout


def _attention_rollout(ctx: Context) -> Scores:
    rollout = attention_rollout(ctx.prediction.attentions, ctx.params["residual"])
    row = rollout[ctx.handle.prediction_position(ctx.enc)].numpy().astype(np.float64)
    row[~ctx.content_mask.cpu().numpy()] = 0.0
    return Scores(row)


ATTENTION_CAVEAT = "Attention is a view of what the model looks at, not an explanation of why it decided."

register(
    Method(
        "attention",
        "Attention weights",
        "attention",
        "Attention paid by the prediction position ([CLS] or last token) to each token, for one layer "
        "and head or averaged. Unsigned and blind to the target.",
        _attention,
        lambda n, p: Cost(1),
        (
            Param("layer", -1, "int", "Layer (-1 = last).", -48, 47),
            Param("layers", "one", "choice", "'all' averages every layer and ignores 'layer'.", choices=("one", "all")),
            Param("head", -1, "int", "Head (-1 = mean of heads).", -1, 127),
        ),
        signed=False,
        needs_attention=True,
        caveat=ATTENTION_CAVEAT,
        **_per_token("per_token_attention", lambda i, g, p: Cost(2)),
    )
)
register(
    Method(
        "attention_rollout",
        "Attention rollout",
        "attention",
        "Abnar & Zuidema (2020): multiplies head-averaged attention through the layers, counting the "
        "residual connection, to trace how much each token reaches the prediction position.",
        _attention_rollout,
        lambda n, p: Cost(1),
        (Param("residual", 0.5, "float", "Weight of the residual (identity) path.", 0.0, 1.0),),
        signed=False,
        needs_attention=True,
        caveat=ATTENTION_CAVEAT,
        **_per_token("per_token_rollout", lambda i, g, p: Cost(2)),
    )
)
