"""The Concepts page's charts: probe accuracy per layer with the control band, each direction's held-out
AUROC per layer, the projection strip, TCAV scores against random ones, and steering's effect
distribution. Every user string (set names, texts, labels) goes through `label()`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explainers.inside.concepts import DirectionReport, LayerDirection
from explainers.inside.probes import ProbeReport
from explainers.inside.steering import SteeringReport, mean_interval
from explainers.inside.tcav import TCAVResult

from .charts import BLUE, GREY, RED, VIOLET, _style, label


def _layer_names(layers) -> list[str]:
    return ["emb" if layer == 0 else str(layer) for layer in layers]


def probe_chart(report: ProbeReport) -> go.Figure:
    """Accuracy per layer with its 95 % interval, and the control task's accuracy as a grey band."""
    x = _layer_names(p.layer for p in report.layers)
    acc = [p.accuracy for p in report.layers]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x + x[::-1],
            y=[p.control_interval[1] for p in report.layers] + [p.control_interval[0] for p in report.layers][::-1],
            fill="toself",
            mode="lines",
            fillcolor="rgba(161,161,170,0.3)",
            line=dict(width=0),
            hoverinfo="skip",
            name="control (shuffled labels), 95 % band",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[p.control for p in report.layers],
            mode="lines",
            line=dict(color=GREY, dash="dot"),
            name="control accuracy",
            hovertemplate="layer %{x}: control %{y:.2f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=acc,
            mode="lines+markers",
            line=dict(color=VIOLET, width=3),
            error_y=dict(
                type="data",
                symmetric=False,
                array=[p.interval[1] - p.accuracy for p in report.layers],
                arrayminus=[p.accuracy - p.interval[0] for p in report.layers],
                color=VIOLET,
            ),
            customdata=[p.selectivity for p in report.layers],
            name="probe accuracy (95 % interval)",
            hovertemplate="layer %{x}: accuracy %{y:.2f}, selectivity %{customdata:+.2f}<extra></extra>",
        )
    )
    fig.add_hline(
        y=report.chance, line=dict(color=GREY, width=1), annotation_text="chance", annotation_position="bottom left"
    )
    fig.update_yaxes(title_text="cross-validated accuracy", range=[0, 1.05], tickformat=".0%")
    fig.update_xaxes(title_text="layer (emb = the embeddings)", type="category")
    return _style(fig, title=f"Linear probe per layer ({report.folds}-fold)", height=360, legend_items=3)


def direction_chart(report: DirectionReport) -> go.Figure:
    """Held-out AUROC of the projection, and the consistency of the training differences, per layer."""
    x = _layer_names(d.layer for d in report.layers)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[d.auroc for d in report.layers],
            mode="lines+markers",
            line=dict(color=VIOLET, width=3),
            name="held-out AUROC",
            hovertemplate="layer %{x}: AUROC %{y:.2f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[d.consistency for d in report.layers],
            mode="lines+markers",
            line=dict(color=GREY, dash="dash"),
            name="cosine among differences",
            hovertemplate="layer %{x}: cosine %{y:.2f}<extra></extra>",
        )
    )
    fig.add_hline(y=0.5, line=dict(color=GREY, width=1))
    fig.update_yaxes(range=[-0.05, 1.05])
    fig.update_xaxes(title_text="layer", type="category")
    return _style(fig, title="How well the direction separates the sets, per layer", height=340, legend_items=2)


def projection_strip(direction: LayerDirection, name_a: str, name_b: str, texts_a, texts_b) -> go.Figure:
    """Every example's projection on the direction: one row per set; hollow markers were held out."""
    fig = go.Figure()
    for name, proj, held, texts, colour in (
        (name_a, direction.projection_a, direction.held_out_a, texts_a, RED),
        (name_b, direction.projection_b, direction.held_out_b, texts_b, BLUE),
    ):
        row = label(name)
        fig.add_trace(
            go.Scatter(
                x=proj,
                y=[row] * len(proj),
                mode="markers",
                marker=dict(
                    color=colour,
                    size=9,
                    symbol=["circle-open" if h else "circle" for h in held],
                    line=dict(width=2, color=colour),
                ),
                customdata=[label(t[:80]) for t in texts],
                name=row,
                hovertemplate="%{x:.2f}: %{customdata}<extra></extra>",
            )
        )
    fig.update_xaxes(title_text="projection on the unit direction (hollow: held out)")
    return _style(fig, title=f"Each example along the direction, layer {direction.layer}", height=240, legend_items=2)


def tcav_chart(result: TCAVResult) -> go.Figure:
    """The TCAV score of each concept/random split beside each random/random one."""
    fig = go.Figure()
    for name, scores, colour in (
        (f"'{label(result.concept)}' vs random", result.scores, VIOLET),
        ("random vs random", result.random_scores, GREY),
    ):
        fig.add_trace(
            go.Box(
                y=scores,
                name=name,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker=dict(color=colour),
                line=dict(color=colour),
                hovertemplate="%{y:.2f}<extra></extra>",
            )
        )
    fig.update_yaxes(title_text=f"TCAV score for '{label(result.label)}'", range=[-0.05, 1.05], tickformat=".0%")
    p = f"p = {result.p_value:.2g}" + ("" if result.significant else ", not significant")
    return _style(fig, title=f"TCAV at layer {result.layer} over {len(result.scores)} splits ({p})", height=340)


def steering_chart(report: SteeringReport) -> go.Figure:
    """The change of the target metric per prompt at each α (against α = 0), with the mean and its interval."""
    fig = go.Figure()
    means = []
    for j, alpha in enumerate(report.alphas):
        effects = report.effects(j)
        m, lo, hi = mean_interval(effects)
        means.append((alpha, m, lo, hi))
        fig.add_trace(
            go.Box(
                x=[f"{alpha:g}"] * len(effects),
                y=effects,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker=dict(color=VIOLET, size=6),
                line=dict(color=GREY),
                fillcolor="rgba(0,0,0,0)",
                showlegend=False,
                customdata=[label(p[:80]) for p in report.prompts],
                hovertemplate="α %{x}: %{y:+.2f}<br>%{customdata}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[f"{a:g}" for a, *_ in means],
            y=[m for _, m, _, _ in means],
            mode="lines+markers",
            line=dict(color=VIOLET, width=3),
            error_y=dict(
                type="data",
                symmetric=False,
                array=[(hi - m) if np.isfinite(hi) else 0 for _, m, _, hi in means],
                arrayminus=[(m - lo) if np.isfinite(lo) else 0 for _, m, lo, _ in means],
            ),
            name="mean change (95 % interval)",
        )
    )
    fig.add_hline(y=0, line=dict(color=GREY, width=1))
    fig.update_xaxes(title_text="strength α", type="category")
    fig.update_yaxes(title_text=f"change of {report.metric}")
    return _style(fig, title=f"Steering at layer {report.layer}: each prompt's change", height=380, legend_items=1)


def generations_frame(report: SteeringReport) -> pd.DataFrame:
    return pd.DataFrame({"α": [a for a, _ in report.generations], "continuation": [t for _, t in report.generations]})
