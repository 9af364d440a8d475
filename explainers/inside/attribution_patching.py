"""Attribution patching (Nanda 2022): a first-order preview of an activation-patching grid.

For every cell at once, the change a patch would make to the metric is estimated as
(source − destination) · ∂metric/∂activation, taken at the destination run: one forward of the source,
one forward and one backward of the destination for the whole grid. It is known to be poor in places
(published Pearson r with exact patching on GPT-2 small: 0.98 for attention outputs, 0.75 for the
residual stream, 0.20 for MLP outputs), so whybox shows it as a preview beside exact patching of the
same cells, with their agreement (`agreement`), and never as the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from explainers.inference.gateway import checkpoint
from explainers.inside import activations
from explainers.inside.activations import Site
from explainers.inside.patching import (
    DIRECTIONS,
    UNIT,
    Grid,
    Pair,
    answer_logits,
    cell_index,
    check_units,
    default_layers,
    unit_names,
)
from explainers.models.handle import ModelHandle

PREVIEW_NOTE = "first-order estimate (attribution patching): a preview, to be checked against exact patching"


def gradients(handle: ModelHandle, run, sites: Sequence[Site], pair: Pair):
    """(mean metric, {site: activation (S, T, D)}, {site: ∂metric/∂activation (S, T, D)}) of one run
    (`pair.runs` value: tokens and embedding noise; S noise draws, each its own row and gradient)."""
    enc, noise = run
    samples = 1 if noise is None else noise.shape[0]
    kept: dict[Site, torch.Tensor] = {}

    def keep(site: Site):
        def edit(hidden: torch.Tensor) -> torch.Tensor:
            hidden.retain_grad()
            kept[site] = hidden
            return hidden

        return edit

    # the weights are frozen: the embeddings' output starts the graph the activations' gradients need
    def track(_module, _inputs, output):
        return output.detach().requires_grad_(True)

    with (
        activations.editing(handle, {site: keep(site) for site in sites}),
        activations.noising(handle, noise),
        torch.enable_grad(),
    ):
        hook = handle.embedding_layer.register_forward_hook(track)  # after the noise: the graph starts there
        try:
            metric = pair.score(answer_logits(handle, enc.ids, samples))
        finally:
            hook.remove()
        metric.sum().backward()  # rows are independent: each row's gradient is its own
    checkpoint(samples)
    acts = {site: t.detach() for site, t in kept.items()}
    grads = {site: t.grad.detach() for site, t in kept.items()}
    return float(metric.detach().mean()), acts, grads


def preview(
    handle: ModelHandle,
    pair: Pair,
    component: str = "resid",
    direction: str = "denoise",
    layers: Sequence[int] | None = None,
    units: Sequence[int] | None = None,
) -> Grid:
    """The attribution-patching estimate of `patching.patch`'s grid for the same cells."""
    layers = default_layers(handle, component) if layers is None else [int(x) for x in layers]
    sites = [activations.check_site(handle, Site(component, layer)) for layer in layers]
    units = check_units(handle, pair, component, units)
    src_name, dst_name = ("clean", "corrupted") if direction == "denoise" else ("corrupted", "clean")
    src_enc, src_noise = pair.runs[src_name]
    src, _ = activations.capture(handle, src_enc.ids, sites, src_noise)
    checkpoint(1)
    metric, dst, grads = gradients(handle, pair.runs[dst_name], sites, pair)
    values = np.zeros((len(units), len(layers)))
    for j, site in enumerate(sites):
        change = (src[site].float() - dst[site].float()) * grads[site].float()  # (S, T, D): per noise draw
        for i, unit in enumerate(units):
            moved = float(change[(slice(None), *cell_index(handle, component, unit))].sum()) / change.shape[0]
            values[i, j] = pair.normalise(metric + moved)
    computed = np.ones_like(values, dtype=bool)
    notes = [PREVIEW_NOTE]
    return Grid(
        component, direction, layers, unit_names(handle, pair, component, units), values, computed, False, 2, notes
    )


def agreement(exact: Grid, estimate: Grid, k: int = 5) -> dict:
    """How well the preview matches exact patching on the same cells: Pearson r of the values, and
    top-k recall (the share of exact patching's k largest effects, by size, that the preview also puts
    in its top k)."""
    if exact.values.shape != estimate.values.shape or exact.direction != estimate.direction:
        raise ValueError("agreement needs the same cells and direction")
    a, b = exact.effects.ravel(), estimate.effects.ravel()
    k = max(1, min(k, a.size))
    r = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    top_exact = set(np.argsort(-np.abs(a), kind="stable")[:k].tolist())
    top_estimate = set(np.argsort(-np.abs(b), kind="stable")[:k].tolist())
    return {
        "component": exact.component,
        "unit": UNIT[exact.component],
        "direction": DIRECTIONS[exact.direction],
        "cells": int(a.size),
        "pearson_r": r,
        "k": k,
        "top_k_recall": len(top_exact & top_estimate) / k,
    }
