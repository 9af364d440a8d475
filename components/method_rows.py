"""Many methods at a glance: one row per method over the same words (as LIT's salience maps and Captum's
visualisation table), each cell coloured by its score, the exact value on hover. Fourteen methods fit in one
screen where fourteen cards took five."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explainers.explanation import Explanation

from .charts import BLUE, RED, VIOLET, _style, label, unique_labels
from .heatmap import default_scale


def columns(exp: Explanation, level: str) -> tuple[list[str], list[int]]:
    """The row's cells: words, or the tokens that are not special, with their positions in exp.scores(level)."""
    if level == "word":
        return list(exp.words), list(range(len(exp.words)))
    keep = [i for i, special in enumerate(exp.special) if not special]
    return [exp.tokens[i] for i in keep], keep


def shade(exp: Explanation, level: str, scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(raw scores over the cells, the same scaled to −1..1 (signed) or 0..1 (unsigned)): each row by its own
    largest |score| unless `scale` is given (one scale for the signed rows)."""
    _, keep = columns(exp, level)
    raw = exp.scores(level)[keep]
    scale = default_scale(exp, level) if scale is None or not exp.signed else float(scale)
    shaded = raw / scale if scale else np.zeros_like(raw)
    return raw, np.abs(shaded) if not exp.signed else shaded


def method_rows(explanations: list[Explanation], level: str = "word", scale: float | None = None) -> go.Figure:
    """Rows: the methods; columns: the words (or tokens) of the text. Signed rows red (towards the target) and
    blue (away); unsigned rows violet. Hover: the method, the word and its score."""
    words, _ = columns(explanations[0], level)
    titles = unique_labels([e.title for e in explanations])
    x = list(range(len(words)))
    fig = go.Figure()
    shades = [shade(e, level, scale) for e in explanations]
    gap = [None] * len(words)
    # Two traces (signed rows in red/blue, unsigned in violet) over all rows, each blank where the other draws:
    # plotly.js fails on two heatmaps that hold different categories of one axis.
    for signed, colours in ((True, [[0, BLUE], [0.5, "#ffffff"], [1, RED]]), (False, [[0, "#ffffff"], [1, VIOLET]])):
        if not any(e.signed == signed for e in explanations):
            continue
        mine = [e.signed == signed for e in explanations]
        fig.add_trace(
            go.Heatmap(
                z=[list(shaded) if own else gap for (_, shaded), own in zip(shades, mine)],
                x=x,
                y=titles,
                text=[[label(w) for w in words]] * len(titles),
                customdata=[list(raw) if own else gap for (raw, _), own in zip(shades, mine)],
                zmin=-1 if signed else 0,
                zmax=1,
                colorscale=colours,
                showscale=False,
                hoverongaps=False,
                xgap=1,
                ygap=2,
                hovertemplate="%{y} · %{text}: %{customdata:.3g}<extra></extra>",
            )
        )
    fig.update_xaxes(
        tickvals=x, ticktext=[label(w) for w in words], tickangle=-45 if len(words) > 12 else 0, showgrid=False
    )
    fig.update_yaxes(autorange="reversed", showgrid=False)
    how = "one colour scale for the signed rows" if scale is not None else "each row scaled to its own largest score"
    return _style(fig, title=f"One row per method ({how}; hover for values)", height=150 + 36 * len(explanations))
