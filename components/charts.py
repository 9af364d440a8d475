"""Plotly figures for explanations and their faithfulness checks.

Colours follow the heatmap: red supports the target, blue speaks against it, violet is an unsigned
amount. Plotly renders a little HTML in labels, so every user string goes through `label()`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from explainers.metrics.faithfulness import METRICS, Report
from explainers.whatif.summary import shown

from explainers.explanation import Explanation

from .heatmap import FONT, MUTED, NEGATIVE, POSITIVE, TEXT_DARK, UNSIGNED, hex_color, mix

RED, BLUE, VIOLET, GREY = hex_color(POSITIVE), hex_color(NEGATIVE), hex_color(UNSIGNED), "#a1a1aa"
# Colour-blind-safe qualitative palette (Okabe-Ito, without yellow), one colour per method.
METHOD_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000", "#999999")
DASHES = ("solid", "dash", "dot")  # past the palette, lines differ by dash too
MODEBAR_REMOVED = ("zoom2d", "pan2d", "select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "resetScale2d")


def label(text: str) -> str:
    """A user string as plotly should show it: no markup, whitespace visible."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\n", "⏎").replace("\t", "⇥") if text.strip() else repr(text)


def unique_labels(labels: list[str]) -> list[str]:
    """Plotly merges identical category labels: number the repeats ("the", "the (2)")."""
    seen: dict[str, int] = {}
    out = []
    for text in labels:
        seen[text] = seen.get(text, 0) + 1
        out.append(text if seen[text] == 1 else f"{text} ({seen[text]})")
    return out


def method_colors(n: int) -> list[str]:
    """Distinct colours for n methods, in the order given: pass methods in the same order to every
    chart and each keeps its colour."""
    return [METHOD_PALETTE[i % len(METHOD_PALETTE)] for i in range(n)]


def sign_colors(scores, signed: bool = True) -> list[str]:
    return [VIOLET if not signed else RED if s > 0 else BLUE for s in scores]


def _style(fig: go.Figure, *, title: str | None = None, height: int | None = None, legend_items: int = 0) -> go.Figure:
    """The shared look. A legend sits between the title and the plot; room is kept for two entries
    a row, what a half-width chart fits."""
    legend_rows = math.ceil(legend_items / 2)
    top = (44 if title else 12) + 22 * legend_rows
    fig.update_layout(
        template="plotly_white",
        font=dict(family=FONT, size=13, color=TEXT_DARK),
        title=dict(
            text=title, x=0, xanchor="left", yref="container", y=1, yanchor="top", pad=dict(t=12), font=dict(size=15)
        )
        if title
        else None,
        margin=dict(l=10, r=20, t=top, b=10),
        height=None if height is None else height + 22 * legend_rows,
        showlegend=legend_items > 0,
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, xanchor="left", title_text=""),
        hoverlabel=dict(font_family=FONT),
        bargap=0.25,
        # Touch screens always show plotly's mode bar, across the chart's title on a phone: keep only the
        # image download (these charts are read, not zoomed).
        modebar=dict(remove=list(MODEBAR_REMOVED)),
    )
    axes = dict(automargin=True, zerolinecolor="#a1a1aa", zerolinewidth=1, exponentformat="e")
    fig.update_xaxes(**axes)
    fig.update_yaxes(**axes)
    return fig


def _bar_height(n: int) -> int:
    return 70 + 28 * max(n, 2)


def probability_chart(probabilities: dict[str, float], target: str | None = None) -> go.Figure:
    """The model's output distribution, largest first, the explained target highlighted."""
    items = sorted(probabilities.items(), key=lambda kv: -kv[1])
    names = unique_labels([label(k) for k, _ in items])
    values = [v for _, v in items]
    colors = [RED if k == target else GREY for k, _ in items]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            marker_color=colors,
            text=[f"{100 * v:.1f} %" for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    # Zoomed to the largest bar: a causal LM's top tokens often share a few percent.
    fig.update_xaxes(range=[0, 1.2 * max(values, default=1.0) or 1.0], tickformat=".0%", title_text="Probability")
    fig.update_yaxes(autorange="reversed")
    title = "Prediction" if target is None else f"Prediction (explained: '{label(shown(target))}', in red)"
    return _style(fig, title=title, height=_bar_height(len(items)) + 30)


def is_punctuation(word: str) -> bool:
    """A word with no letter or digit ("," "." "--"): left out of the top words by default."""
    return not any(c.isalnum() for c in word)


def word_bars(exp: Explanation, top_k: int = 15, punctuation: bool = False) -> go.Figure:
    """The words with the largest |score|, strongest on top (LIME's word-importance view). Punctuation is
    left out unless `punctuation` (the subtitle says so): a comma rarely explains a prediction, yet it can
    fill the list on a short text. Each value is printed right of the bar's end or of zero, never over the
    word labels."""
    scores = exp.scores("word")
    kept = [i for i, w in enumerate(exp.words) if punctuation or not is_punctuation(w)] or list(range(len(scores)))
    left_out = len(scores) - len(kept)
    order = sorted(kept, key=lambda i: (-abs(scores[i]), i))[:top_k]
    names = unique_labels([label(w) for w in exp.words])
    signed = exp.signed
    chosen = [scores[i] for i in order]
    rows = [names[i] for i in order]
    fig = go.Figure(
        go.Bar(
            x=chosen,
            y=rows,
            orientation="h",
            marker_color=sign_colors(chosen, signed),
            hovertemplate="%{y}: %{x:.4g}<extra></extra>",
        )
    )
    fig.add_trace(  # the values, right of each bar (a negative bar's value right of zero)
        go.Scatter(
            x=[max(s, 0.0) for s in chosen],
            y=rows,
            mode="text",
            text=[f"{s:+.2g}" if signed else f"{s:.2g}" for s in chosen],
            textposition="middle right",
            cliponaxis=False,
            hoverinfo="skip",
        )
    )
    target = label(shown(exp.target.label))
    axis = f"← against · towards '{target}' →" if signed else "Score (unsigned: how much, not which way)"
    fig.update_xaxes(title_text=axis)
    fig.update_yaxes(autorange="reversed")
    title = f"{label(exp.title)}: top {len(order)} words for '{target}'"
    fig = _style(fig, title=title, height=_bar_height(len(order)) + 40)
    if left_out:
        fig.update_layout(
            title_subtitle=dict(text=f"punctuation left out ({left_out})", font=dict(size=12, color=MUTED)),
            margin_t=fig.layout.margin.t + 18,
        )
    _pad_range(fig, chosen, labels_right=True)
    return fig


def _pad_range(fig: go.Figure, values, labels_right: bool = False) -> None:
    """Room beside the bars for their outside labels (`labels_right`: every label right of its bar or of
    zero, so only the right side needs room, and more of it on a narrow phone-width chart)."""
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return
    low, high = min(0.0, min(values)), max(0.0, max(values))
    span = (high - low) or 1.0
    if labels_right:
        fig.update_xaxes(range=[low - (0.02 * span if low < 0 else 0), high + 0.38 * span])
        return
    pad = 0.18 * span
    fig.update_xaxes(range=[low - (pad if low < 0 else 0), high + (pad if high > 0 else 0)])


def curves_chart(reports: list[Report], curve: str) -> go.Figure:
    """One line per method: the curve behind metric `curve` (deletion/insertion, or the AOPC bins)."""
    metric = METRICS.get(curve)
    if metric is None or not metric.curve_title:
        raise ValueError(f"{curve!r} is not a metric with a curve")
    aopc = curve.startswith("aopc")
    y_title = "p(text) − p(perturbed)" if aopc else "Probability of the target"
    fig = go.Figure()
    names = unique_labels([r.title for r in reports])
    for i, (name, report, color) in enumerate(zip(names, reports, method_colors(len(reports)))):
        data = report.curves.get(curve)
        if not data:
            continue
        dash = DASHES[i // len(METHOD_PALETTE) % len(DASHES)]
        fig.add_trace(
            go.Scatter(
                x=data["x"],
                y=data["y"],
                name=label(name),
                mode="lines+markers" if aopc else "lines",
                line=dict(color=color, width=2.2, dash=dash),
                marker=dict(size=7),
                hovertemplate=f"{label(name)}<br>%{{x:.0%}} → %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_xaxes(
        title_text=f"{metric.curve_x.capitalize()} (most important first)",
        tickformat=".0%",
        type="log" if aopc else "linear",
        tickvals=[0.01, 0.05, 0.1, 0.2, 0.5] if aopc else None,
    )
    fig.update_yaxes(title_text=y_title)
    if not aopc:
        fig.update_yaxes(range=[0, 1.02])
    title = f"{metric.curve_title}: {metric.direction} is better ({metric.symbol})"
    return _style(fig, title=title, height=340, legend_items=len(fig.data))


def agreement_heatmap(names: list[str], matrix: np.ndarray) -> go.Figure:
    """Spearman ρ between every pair of methods, −1 (blue) .. 1 (red); undefined pairs read n/a."""
    matrix = np.asarray(matrix, dtype=float)
    titles = unique_labels([label(n) for n in names])  # the methods' titles, in the order given
    text = [["n/a" if math.isnan(v) else f"{v:.2f}" for v in row] for row in matrix]
    fig = go.Figure(
        go.Heatmap(
            z=np.where(np.isnan(matrix), None, matrix).tolist(),
            x=titles,
            y=titles,
            text=text,
            texttemplate="%{text}",
            zmin=-1,
            zmax=1,
            colorscale=[[0, BLUE], [0.5, "#ffffff"], [1, RED]],
            xgap=2,
            ygap=2,
            colorbar=dict(title=dict(text="ρ"), thickness=12, tickvals=[-1, 0, 1]),
            hovertemplate="%{y} vs %{x}: ρ = %{text}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", showgrid=False)
    fig.update_xaxes(showgrid=False, side="bottom")
    fig.update_layout(plot_bgcolor="#f4f4f5")
    return _style(fig, title="Agreement between methods (Spearman ρ of token scores)", height=150 + 48 * len(names))


def shown_attention(matrix: np.ndarray, keep: list[bool]) -> np.ndarray:
    """The rows and columns of `keep` only, each row renormalised to sum to 1 over what is shown.

    Special tokens and the first token soak up most attention ("attention sinks"); leaving them out
    of the picture, not out of the model, lets the rest of the matrix be read."""
    keep = np.asarray(keep, dtype=bool)
    shown = np.asarray(matrix, dtype=float)[np.ix_(keep, keep)]
    totals = shown.sum(axis=1, keepdims=True)
    return np.divide(shown, totals, out=np.zeros_like(shown), where=totals > 0)


# White to deep violet through a lighter violet: small shares stay visible, large ones stand out.
ATTENTION_SCALE = [[0.0, "#ffffff"], [0.15, "#ede9fe"], [0.5, "#a78bfa"], [1.0, "#3b0764"]]


def attention_heatmap(
    matrix: np.ndarray, tokens: list[str], title: str, positions: list[int] | None = None
) -> go.Figure:
    """A T×T attention (or rollout) matrix: row = the token attending, column = the token attended to.

    The colours saturate at the largest value off the diagonal: a token's share of itself (its residual
    stream, in a rollout) is usually far larger and would otherwise wash every other cell out."""
    matrix = np.asarray(matrix, dtype=float)
    positions = range(len(tokens)) if positions is None else positions  # the tokens' places in the text
    names = [f"{i}·{label(t)}" for i, t in zip(positions, tokens)]
    off_diagonal = matrix[~np.eye(len(matrix), dtype=bool)] if len(matrix) > 1 else matrix.ravel()
    top = float(off_diagonal.max()) if off_diagonal.size and off_diagonal.max() > 0 else None
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=names,
            y=names,
            zmin=0,
            zmax=top,
            colorscale=ATTENTION_SCALE,
            colorbar=dict(thickness=12, title=dict(text="share", side="right")),
            hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="Attended to", tickangle=-60, showgrid=False)
    fig.update_yaxes(title_text="Attending", autorange="reversed", showgrid=False)
    size = max(320, 130 + 18 * len(tokens))
    return _style(fig, title=label(title), height=size)


def comparison_chart(rows: pd.DataFrame, name_a: str | None = None, name_b: str | None = None) -> go.Figure:
    """Word scores of two aligned explanations (compare.align_words), in text order.

    Both sides keep the sign colours; side A is drawn lighter so the pairs read at a glance."""
    name_a = name_a or rows.attrs.get("name_a", "A")
    name_b = name_b or rows.attrs.get("name_b", "B")

    def row_label(r) -> str:
        a = label(r.word_a) if isinstance(r.word_a, str) else ""
        b = label(r.word_b) if isinstance(r.word_b, str) else ""
        return {"same": a, "changed": f"{a} → {b}", "added": f"+ {b}", "removed": f"− {a}"}[r.status]

    names = unique_labels([row_label(r) for r in rows.itertuples()])
    fig = go.Figure()
    for column, name, lighten in (("score_a", name_a, True), ("score_b", name_b, False)):
        values = rows[column].astype(float).tolist()
        colors = [RED if v > 0 else BLUE for v in values]
        if lighten:
            colors = [hex_color(mix(POSITIVE if v > 0 else NEGATIVE, 0.45)) for v in values]
        fig.add_trace(
            go.Bar(
                x=values,
                y=names,
                orientation="h",
                name=label(str(name)) + (" (lighter)" if lighten else ""),
                marker=dict(color=colors, line=dict(color=MUTED if lighten else "rgba(0,0,0,0)", width=0.5)),
                hovertemplate=f"{label(str(name))}<br>%{{y}}: %{{x:.4g}}<extra></extra>",
            )
        )
    fig.update_layout(barmode="group")
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="Word score (red = towards the target, blue = against)")
    return _style(fig, title="Word scores side by side", height=_bar_height(len(rows)) + 40, legend_items=2)
