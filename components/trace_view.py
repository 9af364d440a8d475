"""Trace's drawings: a patching grid as a heatmap (rows = tokens or heads, columns = layers), as a chart
on the page and as SVG/PNG for downloads, and the preview-vs-exact agreement as a table."""

from __future__ import annotations

import altair as alt
import pandas as pd

from explainers.inside.patching import Grid
from explainers.inside.vocabulary import DIRECTIONS


def grid_frame(grid: Grid) -> pd.DataFrame:
    rows = []
    for i, unit in enumerate(grid.units):
        for j, layer in enumerate(grid.layers):
            rows.append(
                {
                    "row": f"{i:>3} {unit}" if grid.unit == "position" else unit,  # a token may occur twice
                    "order": i,
                    "layer": layer,
                    "value": float(grid.values[i, j]),
                    "run": "patched" if grid.computed[i, j] else "equal in both runs: not run",
                }
            )
    return pd.DataFrame(rows)


def colour_domain(*grids: Grid) -> tuple[float, float]:
    """One colour scale for grids shown side by side (a preview may overshoot [0, 1])."""
    values = [float(v) for g in grids for v in g.values.ravel()]
    return min([-0.2, *values]), max([1.0, *values])


def grid_chart(grid: Grid, title: str, domain: tuple[float, float] | None = None) -> alt.Chart:
    """Blue where the patch moves the answer to the clean one, red past the corrupted one; white = no change."""
    frame = grid_frame(grid)
    height = max(120, 22 * len(grid.units))
    low, high = domain or colour_domain(grid)
    colour = alt.Color(
        "value:Q",
        scale=alt.Scale(scheme="redblue", domainMid=grid.baseline, domain=[low, high]),
        title="normalised",
    )
    return (
        alt.Chart(frame, title=alt.Title(title, subtitle=DIRECTIONS[grid.direction]))
        .mark_rect()
        .encode(
            x=alt.X("layer:O", title="layer" if grid.component == "resid" else "block"),
            y=alt.Y(
                "row:N",
                sort=alt.EncodingSortField("order"),
                title=grid.unit,
                axis=alt.Axis(labelLimit=240, labelOverlap=False),
            ),
            color=colour,
            tooltip=["row", "layer", alt.Tooltip("value:Q", format=".3f"), "run"],
        )
        .properties(height=height)
    )


def chart_svg(chart: alt.Chart) -> str:
    import vl_convert

    return vl_convert.vegalite_to_svg(chart.to_dict())


def chart_png(chart: alt.Chart) -> bytes:
    import vl_convert

    return vl_convert.vegalite_to_png(chart.to_dict(), scale=2)


def agreement_frame(agreements: dict[str, dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "component": name,
                "cells": a["cells"],
                "Pearson r": a["pearson_r"],
                f"top-{a['k']} recall": a["top_k_recall"],
            }
            for name, a in agreements.items()
        ]
    )
