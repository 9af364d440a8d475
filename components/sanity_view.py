"""The model-randomisation sanity check drawn: each method's similarity to its original map as the model's
layers are randomised from the output down, one line per method."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from explainers.checks.sanity import INSENSITIVE, SanityResult
from explainers.metrics.similarity import SIMILARITIES

from .charts import DASHES, GREY, METHOD_PALETTE, _style, label, method_colors, unique_labels


def sanity_chart(result: SanityResult, measure: str) -> go.Figure:
    """x: the trained model, then each randomised layer group (cumulative); y: similarity to the original
    map (1 at the start by definition); a grey dotted line: p(target) on the randomised model, which shows
    that the randomisation changed the model."""
    similarity = SIMILARITIES[measure]
    axis = ["trained"] + [f"+ {layer}" for layer in result.planned]  # the whole cascade: no rescaling mid-run
    steps = axis[: len(result.layers) + 1]
    fig = go.Figure()
    names = unique_labels(result.titles)
    for i, (method, name, color) in enumerate(zip(result.methods, names, method_colors(len(names)))):
        values = [1.0] + [None if math.isnan(v) else v for v in result.values[method][measure]]
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=values,
                name=label(name),
                mode="lines+markers",
                line=dict(color=color, width=2.2, dash=DASHES[i // len(METHOD_PALETTE) % len(DASHES)]),
                marker=dict(size=7),
                hovertemplate=f"{label(name)}<br>%{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=[result.original_target_prob, *result.target_probs],
            name=f"p({label(result.target.strip())}) of the model",
            mode="lines",
            line=dict(color=GREY, width=1.5, dash="dot"),
            hovertemplate="p(target) %{x}: %{y:.3f}<extra></extra>",
        )
    )
    fig.add_hline(
        y=INSENSITIVE,
        line=dict(color=GREY, width=1, dash="dash"),
        annotation_text="above: the map hardly changed",
        annotation_position="bottom right",
        annotation_font=dict(size=11, color=GREY),
    )
    fig.update_xaxes(
        title_text="Randomised so far (cascading from the output)",
        categoryorder="array",
        categoryarray=axis,
        range=[-0.3, len(axis) - 0.7],  # categories not reached yet keep their place
    )
    fig.update_yaxes(title_text=similarity.title, range=[similarity.low - 0.05, 1.05])
    return _style(fig, title=f"{similarity.title} with the original map", height=360, legend_items=len(fig.data))
