"""Generated text explained token by token: the output × input heatmap, each generated token with its
probability and entropy, and one generated token's scores as the familiar text heatmap."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from explainers.generation.tokens import GenerationExplanation
from explainers.metrics.faithfulness import METRICS
from explainers.metrics.generation import GenerationReport
from explainers.models.tasks import Target
from explainers.models.text import Encoded

from explainers.explanation import Explanation

from .charts import BLUE, RED, VIOLET, _style, label, method_colors, unique_labels
from .heatmap import FONT, MUTED, TEXT_DARK, render_heatmap


def generation_heatmap(gen: GenerationExplanation) -> go.Figure:
    """Rows: the generated tokens; columns: the prompt and the generated tokens; blank where a column
    is not an input of the row's token."""
    scores = gen.scores
    signed = gen.properties.get("signed", True)
    columns = unique_labels([f"{i}·{label(t)}" for i, t in enumerate(gen.tokens)])
    rows = unique_labels([f"{j + 1}·{label(t)}" for j, t in enumerate(gen.generated)])
    finite = scores[np.isfinite(scores)]
    scale = float(np.abs(finite).max()) if finite.size else 1.0
    colours = [[0, BLUE], [0.5, "#ffffff"], [1, RED]] if signed else [[0, "#ffffff"], [1, VIOLET]]
    fig = go.Figure(
        go.Heatmap(
            z=scores,
            x=columns,
            y=rows,
            zmin=-scale if signed else 0,
            zmax=scale or 1.0,
            colorscale=colours,
            colorbar=dict(thickness=12),
            hoverongaps=False,
            hovertemplate="%{y} ← %{x}: %{z:.3g}<extra></extra>",
        )
    )
    fig.add_vline(x=gen.n_prompt - 0.5, line=dict(color=MUTED, dash="dot"))
    fig.update_xaxes(title_text="input token (prompt | generated)", tickangle=-60, showgrid=False)
    fig.update_yaxes(title_text="generated token", autorange="reversed", showgrid=False)
    height = max(300, 160 + 26 * len(gen.generated))
    return _style(fig, title=f"{gen.title}: each generated token's scores over its inputs", height=height)


def generated_strip_html(gen: GenerationExplanation, selected: int | None = None) -> str:
    """The generated tokens in a row, each with its probability and the entropy it was chosen from."""
    cells = []
    for j, (token, p, h) in enumerate(zip(gen.generated, gen.probabilities, gen.entropies)):
        border = "2px solid #dc2626" if j == selected else "1px solid #e4e4e7"
        cells.append(
            f'<div style="display:inline-block;margin:0 4px 6px 0;padding:4px 8px;border:{border};'
            f'border-radius:6px;text-align:center;min-width:3em">'
            f'<div style="font-size:1.05rem;white-space:pre">{html.escape(repr(token)[1:-1])}</div>'
            f'<div style="font-size:0.75rem;color:{MUTED}">p {p:.2f} · H {h:.2f}</div></div>'
        )
    style = f"font-family:{FONT};color:{TEXT_DARK}"
    note = (
        f'<div style="font-size:0.8rem;color:{MUTED}">p: probability of the token given everything before it; '
        "H: entropy (nats) of the distribution it was chosen from (0 = certain).</div>"
    )
    return f'<div class="whybox-generated" style="{style}">{"".join(cells)}{note}</div>'


def token_explanation(gen: GenerationExplanation, enc: Encoded, j: int) -> Explanation:
    """Generated token j's scores over the prompt, as an Explanation for today's text heatmap."""
    token = gen.generated_ids[j]
    return Explanation.build(
        method=gen.method,
        model=gen.model,
        enc=enc,
        token_scores=gen.row(j, enc),
        target=Target(gen.generated[j], token_ids=(token,)),
        target_prob=gen.probabilities[j],
        probabilities={},
        params=gen.params,
        seed=None,
        seconds=gen.seconds,
        properties=gen.properties,
    )


def faithfulness_chart(gen: GenerationExplanation, report: GenerationReport) -> go.Figure:
    """Each generated token's metrics as grouped bars (drops in its probability), one group per token."""
    rows = unique_labels([f"{j + 1}·{label(t)}" for j, t in enumerate(gen.generated)])
    fig = go.Figure()
    for name, colour in zip(report.metrics, method_colors(len(report.metrics))):
        metric = METRICS[name]
        fig.add_bar(
            x=rows,
            y=report.token_values[name],
            name=f"{metric.title} {metric.symbol}",
            marker_color=colour,
            hovertemplate=f"%{{x}}: {metric.title} %{{y:.3f}}<extra></extra>",
        )
    fig.update_xaxes(title_text="generated token", tickangle=-45)
    fig.update_yaxes(title_text="drop in p(token)", zeroline=True)
    return _style(
        fig, title="Faithfulness of each generated token's explanation", height=340, legend_items=len(report.metrics)
    )


def continuation_summary(report: GenerationReport) -> str:
    """One sentence: the continuation's log-probability and its metrics (drops in log-probability)."""
    parts = [
        f"{METRICS[name].title} {METRICS[name].symbol} {value:+.3f}"
        for name, value in report.continuation_values.items()
    ]
    return (
        f"The continuation as a whole: log p = {report.continuation_base:.3f}; explained by the column sums over "
        f"the prompt, removing the top tokens ({report.mode} mode) lowers it by: " + ", ".join(parts) + " (nats)."
    )


def generation_report_html(gen: GenerationExplanation, report: GenerationReport | None = None) -> str:
    """A self-contained HTML page (plotly inlined, works offline): the prompt, the generated tokens with
    their probability and entropy, the matrix, and the faithfulness of each token's explanation."""
    figure = generation_heatmap(gen).to_html(full_html=False, include_plotlyjs=True)
    if report is not None:
        chart = faithfulness_chart(gen, report).to_html(full_html=False, include_plotlyjs=False)
        figure += f"{chart}<p>{html.escape(continuation_summary(report))}</p><p>{html.escape(report.rule)}</p>"
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>whybox: {html.escape(gen.title)}</title></head>'
        f'<body style="font-family:{FONT};color:{TEXT_DARK};max-width:1100px;margin:2rem auto">'
        f"<h1>{html.escape(gen.title)}: each generated token explained</h1>"
        f"<p><b>Model</b> {html.escape(gen.model)} · <b>prompt</b> {html.escape(gen.prompt)}</p>"
        f"{generated_strip_html(gen)}{figure}<p>{html.escape(gen.score_note)}</p></body></html>"
    )


def render_generation(
    gen: GenerationExplanation, enc: Encoded, key: str, report: GenerationReport | None = None
) -> None:
    """The matrix, the generated tokens, the chosen token's scores on the prompt, and the faithfulness."""
    import streamlit as st

    st.plotly_chart(generation_heatmap(gen), key=f"gen_matrix_{key}")
    choices = list(range(len(gen.generated)))
    j = st.selectbox(
        "Show one generated token's scores on the prompt",
        choices,
        format_func=lambda k: f"{k + 1}: {gen.generated[k]!r}",
        key=f"gen_pick_{key}",
    )
    st.html(generated_strip_html(gen, j))
    render_heatmap(token_explanation(gen, enc, j), "token")
    st.caption(gen.score_note)
    if report is not None:
        st.plotly_chart(faithfulness_chart(gen, report), key=f"gen_faith_{key}")
        st.markdown(continuation_summary(report))
        st.caption(
            " ".join(f"{METRICS[m].title}: {METRICS[m].meaning}" for m in report.metrics)
            + f" {report.rule} {report.rationale}"
        )
