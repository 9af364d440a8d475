"""Consistency under paraphrase drawn: per method, each measure's mean over the variants beside the same
method's noise floor (the same text, another seed)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from explainers.checks.consistency import ConsistencyResult
from explainers.metrics.similarity import SIMILARITIES

from .charts import GREY, _style, label, unique_labels


def consistency_chart(result: ConsistencyResult, measure: str) -> go.Figure:
    names = [label(n) for n in unique_labels(result.titles)]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=names,
            y=[result.mean(m, measure) for m in result.methods],
            name=f"variants (mean of {len(result.used)})",
            marker_color="#0072B2",
            hovertemplate="%{x}: %{y:.3f}<extra>variants</extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            x=names,
            y=[result.noise_floor[m][measure] for m in result.methods],
            customdata=[label(result.noise_note[m]) for m in result.methods],
            name="noise floor: the same text, another seed",
            marker_color=GREY,
            hovertemplate="%{x}: %{y:.3f} (%{customdata})<extra>noise floor</extra>",
        )
    )
    similarity = SIMILARITIES[measure]
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text=similarity.title, range=[min(similarity.low, 0.0), 1.05])
    return _style(fig, title=f"{similarity.title} with the text's own map", height=320, legend_items=2)


def variants_frame(result: ConsistencyResult) -> pd.DataFrame:
    """One row per variant tried: what it is, its similarity, and whether it was used (or why not)."""
    return pd.DataFrame(
        [
            {
                "Variant": v.text,
                "Kind": v.kind,
                "Similarity": v.similarity,
                "Words changed": v.changed_share,
                "Used": "yes" if v.used else f"no: {v.dropped}" if v.dropped else "not reached (stopped)",
            }
            for v in result.variants
        ]
    )
