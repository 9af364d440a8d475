"""Renderers for sparse-autoencoder features: quality numbers, feature cards, feature attributions.

They take the engine's records (quality dicts, cards, FeatureAttribution) and draw them; text from the
corpus or the user is escaped wherever it becomes HTML.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

# (key, name, target, meaning): the quality numbers shown with every SAE, in order
QUALITY_ROWS = [
    (
        "explained_variance",
        "Explained variance",
        "≥ 0.80 (MiniLM) / 0.75 (LM)",
        "1 − Σ‖x − x̂‖² / Σ‖x − x̄‖², held-out tokens",
    ),
    ("fvu", "Fraction of variance unexplained", "", "1 − explained variance"),
    ("l0", "L0", "≤ k", "latents active per token (mean)"),
    ("dead_fraction", "Dead latents (held-out)", "≤ 5 %", "never active on the held-out tokens"),
    (
        "dead_fraction_training",
        "Dead latents (training)",
        "≤ 5 %",
        "silent for the last quarter of training (≤ 1M tokens)",
    ),
    ("predictions_unchanged", "Predictions unchanged", "≥ 97 %", "classifier run on the SAE's reconstruction"),
    ("mean_abs_delta_p", "Mean |Δp|", "", "change of the predicted class's probability"),
    ("ce_loss_score", "CE-loss score", "≥ 0.85", "(CE_zero − CE_sae) / (CE_zero − CE_clean)"),
    ("kl_score", "KL score", "", "(KL_zero − KL_sae) / KL_zero: the CE score alone flatters"),
]
PERCENT = {"dead_fraction", "dead_fraction_training", "predictions_unchanged"}


def quality_rows(quality: dict) -> list[dict]:
    rows = []
    for key, name, target, meaning in QUALITY_ROWS:
        value = quality.get(key)
        if value is None:
            continue
        shown = f"{value:.1%}" if key in PERCENT else f"{value:.3f}" if key != "l0" else f"{value:.1f}"
        rows.append({"number": name, "value": shown, "target": target, "meaning": meaning})
    return rows


def context_html(tokens: list[str], acts: list[float], scale: float | None = None) -> str:
    """One context with each token's background as strong as its activation (orange), escaped."""
    top = scale or max(max(acts, default=0.0), 1e-9)
    spans = []
    for token, value in zip(tokens, acts):
        alpha = min(1.0, max(0.0, value / top))
        title = f"activation {value:.3f}" if value else ""
        spans.append(
            f'<span title="{title}" style="background: rgba(255,140,0,{alpha:.2f}); border-radius: 3px; '
            f'padding: 0 1px">{html.escape(token)}</span>'
        )
    return '<div style="line-height: 1.9; font-family: monospace; white-space: pre-wrap">' + "".join(spans) + "</div>"


def histogram_figure(card: dict) -> go.Figure:
    edges = np.asarray(card["histogram"]["edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(go.Bar(x=centres, y=card["histogram"]["counts"], marker_color="#ff8c00"))
    fig.update_layout(
        height=220,
        margin=dict(l=10, r=10, t=30, b=30),
        title=f"Non-zero activations ({card['fires']:,} tokens)",
        xaxis_title="activation",
        yaxis_title="tokens",
        bargap=0.05,
    )
    return fig


def effect_rows(card: dict, decode) -> tuple[list[dict], list[dict]]:
    """(promoted, suppressed) for a causal LM (token ids through `decode`); ([label effects], []) otherwise."""
    effect = card["effect"]
    if "promotes" in effect:
        return (
            [{"token": repr(decode(t)), "logit": round(v, 4)} for t, v in effect["promotes"]],
            [{"token": repr(decode(t)), "logit": round(v, 4)} for t, v in effect["suppresses"]],
        )
    return [{"label": name, "effect per unit": round(v, 5)} for name, v in effect.items()], []


def attribution_figure(names: list[str], values: list[float]) -> go.Figure:
    colours = ["#d62728" if v >= 0 else "#1f77b4" for v in values]
    fig = go.Figure(go.Bar(x=values[::-1], y=names[::-1], orientation="h", marker_color=colours[::-1]))
    fig.update_layout(
        height=max(200, 26 * len(names) + 60),
        margin=dict(l=10, r=10, t=30, b=30),
        title="Contribution to p(target), integrated gradients over the latents",
        xaxis_title="Δp",
    )
    return fig
