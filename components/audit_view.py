"""Renderers for a finished audit: interval charts, confusion matrix, reliability curve, top words,
and the examples table. They take the audit's summary (a dict) and tables; they never run a model."""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import plotly.graph_objects as go

from .charts import BLUE, GREY, RED, label, method_colors

LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), template="plotly_white", font=dict(size=13))


def metric_intervals(summary: dict, metric: str) -> go.Figure:
    """Per-method mean of one metric with its 95 % bootstrap interval as error bars."""
    entry = summary["metrics"][metric]
    methods = [m for m in summary["methods"] if entry["methods"][m]["mean"] is not None]
    stats = [entry["methods"][m] for m in methods]
    fig = go.Figure(
        go.Bar(
            y=[label(m) for m in methods],
            x=[s["mean"] for s in stats],
            orientation="h",
            marker_color=method_colors(len(methods)),
            error_x=dict(
                type="data",
                symmetric=False,
                array=[s["high"] - s["mean"] for s in stats],
                arrayminus=[s["mean"] - s["low"] for s in stats],
                color="#333",
            ),
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    better = "higher" if entry["direction"] == "higher" else "lower"
    fig.update_layout(title=f"{entry['title']} ({better} is better)", height=90 + 40 * len(methods), **LAYOUT)
    return fig


def running_means_chart(running) -> go.Figure:
    """An audit so far (summary.RunningMeans): each faithfulness metric's mean per method, a dot per method
    on one row per metric, so that who leads where shows while it runs."""
    from explainers.metrics.faithfulness import METRICS

    from explainers.methods import METHODS

    rows = [f"{METRICS[m].title} {METRICS[m].symbol}" for m in running.metrics]
    fig = go.Figure()
    for method, color in zip(running.methods, method_colors(len(running.methods))):
        title = METHODS[method].title
        fig.add_trace(
            go.Scatter(
                x=[running.mean(method, m) for m in running.metrics],
                y=rows,
                mode="markers",
                name=title,
                marker=dict(size=12, color=color),
                hovertemplate=f"{title}: %{{x:.3f}}<extra>%{{y}}</extra>",
            )
        )
    fig.update_layout(
        title=f"So far: the {running.texts:,} texts computed in this run (↑ higher / ↓ lower is better)",
        height=120 + 34 * len(rows),
        yaxis=dict(autorange="reversed"),
        legend=dict(orientation="h", y=-0.15),
        **LAYOUT,
    )
    return fig


def ranking_chart(ranking: dict) -> go.Figure:
    rows = ranking["order"]
    fig = go.Figure(
        go.Scatter(
            x=[r["mean_rank"] for r in rows],
            y=[label(r["method"]) for r in rows],
            mode="markers",
            marker=dict(size=11, color=method_colors(len(rows))),
            error_x=dict(
                type="data",
                symmetric=False,
                array=[r["high"] - r["mean_rank"] for r in rows],
                arrayminus=[r["mean_rank"] - r["low"] for r in rows],
                color="#333",
            ),
            hovertemplate="%{y}: mean rank %{x:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Mean rank over the faithfulness metrics (1 = best), 95 % interval",
        height=100 + 40 * len(rows),
        yaxis=dict(autorange="reversed"),
        **LAYOUT,
    )
    return fig


def confusion_chart(prediction: dict) -> go.Figure:
    labels = prediction["confusion"]["labels"]
    matrix = prediction["confusion"]["matrix"]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=[label(x) for x in labels],
            y=[label(x) for x in labels],
            colorscale="Blues",
            showscale=False,
            text=matrix,
            texttemplate="%{text}",
            hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Confusion matrix",
        xaxis_title="predicted",
        yaxis_title="true",
        height=330,
        yaxis=dict(autorange="reversed"),
        **LAYOUT,
    )
    return fig


def reliability_chart(prediction: dict) -> go.Figure:
    bins = prediction["reliability"]["bins"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color=GREY), name="perfect"))
    fig.add_trace(
        go.Scatter(
            x=[b["confidence"] for b in bins],
            y=[b["accuracy"] for b in bins],
            mode="lines+markers",
            name="model",
            marker=dict(size=[6 + 14 * (b["count"] / max(c["count"] for c in bins)) ** 0.5 for b in bins], color=BLUE),
            customdata=[b["count"] for b in bins],
            hovertemplate="confidence %{x:.2f}: accuracy %{y:.2f} (%{customdata} texts)<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Reliability (calibration error {prediction['reliability']['ece']:.3f})",
        xaxis=dict(title="confidence (mean per bin)", range=[0, 1]),
        yaxis=dict(title="accuracy", range=[0, 1.02]),
        height=330,
        **LAYOUT,
    )
    return fig


def top_words_chart(words: list[dict], title: str, value: str = "score") -> go.Figure:
    words = list(reversed(words))
    hover = [f"{label(w['word'])}: {w[value]:.3f} · in {w.get('texts', w.get('count'))} texts" for w in words]
    fig = go.Figure(
        go.Bar(
            x=[w[value] for w in words],
            y=[label(w["word"]) for w in words],
            orientation="h",
            marker_color=[RED if w.get("other_label_share", 0) < 0.3 else "#E69F00" for w in words],
            hovertext=hover,
            hoverinfo="text",
        )
    )
    fig.update_layout(title=title, height=120 + 22 * len(words), **LAYOUT)
    return fig


def explain_link(model: str, text: str, methods: list[str], seed: int, target: str = "") -> str:
    """A link that opens the Explain page with these settings (the URL keys the app reads)."""
    query = {"model": model, "text": text, "methods": ",".join(methods), "seed": str(seed)}
    if target:
        query["target"] = target
    return "./?" + urlencode(query)


def examples_frame(texts: pd.DataFrame, settings: dict) -> pd.DataFrame:
    frame = texts.copy()
    frame["open"] = [
        explain_link(settings["model"], t, settings["methods"], settings["seed"], settings.get("target", ""))
        for t in frame["text"]
    ]
    frame["correct"] = frame["correct"].map({True: "yes", False: "no"}).fillna("–")
    return frame[
        ["row_id", "text", "label", "predicted", "confidence", "correct", "faithfulness", "disagreement", "open"]
    ]
