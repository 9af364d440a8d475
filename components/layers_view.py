"""The Layers page's views: the target's probability per layer (a chart) and each layer's top tokens (a table)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from explainers.inside.lens import LayerLens

from .charts import BLUE, RED, _style, label


def lens_chart(lens: LayerLens) -> go.Figure:
    """p(target) (and p(contrast)) after each layer; the rank is in the hover."""
    names = [layer.name for layer in lens.layers]
    fig = go.Figure()
    series = [(lens.target, [(x.target_prob, x.target_rank) for x in lens.layers], RED)]
    if lens.contrast is not None:
        series.append((lens.contrast, [(x.contrast_prob, x.contrast_rank) for x in lens.layers], BLUE))
    for name, points, colour in series:
        fig.add_trace(
            go.Scatter(
                x=names,
                y=[p for p, _ in points],
                customdata=[r for _, r in points],
                mode="lines+markers",
                name=label(repr(name) if lens.predicts_tokens else name),
                line=dict(color=colour, width=3),
                hovertemplate="%{x}: p = %{y:.3g}, rank %{customdata}<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_yaxes(title_text="probability", rangemode="tozero")
    fig.update_xaxes(title_text="layer (the embeddings, then each block's output)", tickangle=-45)
    what = "Next-token probability" if lens.predicts_tokens else "Label probability (indicative)"
    return _style(fig, title=f"{what} read from each layer", height=380, legend_items=len(series))


def rank_chart(lens: LayerLens) -> go.Figure:
    """The target's (and contrast's) rank among all tokens (labels) after each layer: 1 = the layer's answer."""
    names = [layer.name for layer in lens.layers]
    fig = go.Figure()
    series = [(lens.target, [x.target_rank for x in lens.layers], RED)]
    if lens.contrast is not None:
        series.append((lens.contrast, [x.contrast_rank for x in lens.layers], BLUE))
    for name, ranks, colour in series:
        fig.add_trace(
            go.Scatter(
                x=names,
                y=ranks,
                mode="lines+markers",
                name=label(repr(name) if lens.predicts_tokens else name),
                line=dict(color=colour, width=2),
                hovertemplate="%{x}: rank %{y}<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_yaxes(title_text="rank (1 = top)", type="log", autorange="reversed")
    fig.update_xaxes(tickangle=-45)
    return _style(fig, title="Rank read from each layer", height=300, legend_items=len(series))


def top_table(lens: LayerLens) -> pd.DataFrame:
    """One row per layer: the target's probability and rank, then the top tokens (labels) with theirs."""
    rows = []
    for layer in lens.layers:
        row = {"layer": layer.name, "p(target)": layer.target_prob, "rank": layer.target_rank}
        if lens.contrast is not None:
            row["p(contrast)"], row["contrast rank"] = layer.contrast_prob, layer.contrast_rank
        for k, (token, p) in enumerate(layer.top, start=1):
            row[f"#{k}"] = f"{token!r} {p:.2f}" if lens.predicts_tokens else f"{token} {p:.2f}"
        rows.append(row)
    return pd.DataFrame(rows)


def lens_report_html(lens: LayerLens) -> str:
    """A self-contained HTML page (plotly inlined, works offline): the charts and the table."""
    import html

    from .heatmap import FONT, TEXT_DARK

    charts = lens_chart(lens).to_html(full_html=False, include_plotlyjs=True) + rank_chart(lens).to_html(
        full_html=False, include_plotlyjs=False
    )
    table = top_table(lens).to_html(index=False, escape=True, float_format=lambda x: f"{x:.3g}")
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>whybox: inside the layers</title></head>'
        f'<body style="font-family:{FONT};color:{TEXT_DARK};max-width:1100px;margin:2rem auto">'
        f"<h1>Inside the layers</h1><p><b>Model</b> {html.escape(lens.model)} · <b>text</b> "
        f"{html.escape(lens.text)}</p><p>{html.escape(lens.note)}</p>{charts}{table}</body></html>"
    )


def render_lens(lens: LayerLens) -> None:
    import streamlit as st

    if lens.indicative:
        st.warning(lens.note, icon=":material/info:")
    else:
        st.caption(lens.note)
    st.plotly_chart(lens_chart(lens), key="lens_chart")
    st.plotly_chart(rank_chart(lens), key="lens_rank_chart")
    st.dataframe(
        top_table(lens),
        hide_index=True,
        column_config={
            "p(target)": st.column_config.ProgressColumn("p(target)", min_value=0.0, max_value=1.0, format="%.3f"),
            "p(contrast)": st.column_config.NumberColumn("p(contrast)", format="%.3g"),
        },
    )
    st.caption("After the last block the model runs: " + ", ".join(f"`{m}`" for m in lens.after_last_block) + ".")
    for note in lens.extras.values():
        st.caption(note)
