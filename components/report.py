"""Exports: one self-contained HTML report that opens offline, and a JSON bundle of the results."""

from __future__ import annotations

import datetime as dt
import html
import numbers

from explainers.metrics.faithfulness import CURVE_METRICS, PLAUSIBILITY, RANKING_RULE, Report, plausibility
from explainers.whatif.summary import faithfulness_verdict, summarize

from explainers import strict_json
from explainers.conventions import conventions
from explainers.explanation import Explanation
from explainers.methods import METHODS

from . import charts
from .heatmap import FONT, MUTED, TEXT_DARK, heatmap_html, legend_html
from .metrics_view import metric_backgrounds, metric_legend, metrics_frame, mode_caption, three_decimals

BUNDLE_SCHEMA = 1
_CSS = f"""
body {{ font-family: {FONT}; color: {TEXT_DARK}; background: #fafafa; margin: 0; line-height: 1.5; }}
main {{ max-width: 1080px; margin: 0 auto; padding: 2rem 1.5rem 3rem; }}
h1 {{ font-size: 1.7rem; margin: 0 0 .2rem; }}
h2 {{ font-size: 1.25rem; margin: 2.2rem 0 .8rem; padding-bottom: .3rem; border-bottom: 2px solid #e4e4e7; }}
h3 {{ font-size: 1.05rem; margin: 0 0 .3rem; }}
section.card {{ background: #fff; border: 1px solid #e4e4e7; border-radius: .6rem; padding: 1rem 1.2rem; margin: 0 0 1rem; }}
.muted {{ color: {MUTED}; font-size: .9rem; }}
.scroll {{ overflow-x: auto; max-width: 100%; }}
table {{ border-collapse: collapse; font-size: .9rem; }}
th, td {{ border: 1px solid #e4e4e7; padding: .35rem .6rem; text-align: left; vertical-align: top; }}
table.kv td {{ overflow-wrap: anywhere; }}
th {{ background: #f4f4f5; font-weight: 600; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
table.wide {{ width: 100%; }}
table.metrics {{ font-size: .8rem; }}
table.metrics th {{ font-weight: 600; overflow-wrap: normal; hyphens: none; }}
table.metrics td {{ white-space: nowrap; }}
pre.text {{ white-space: pre-wrap; overflow-wrap: anywhere; background: #fff; border: 1px solid #e4e4e7; border-radius: .5rem; padding: .6rem .9rem; font-family: {FONT}; font-size: 1rem; margin: 0; }}
.verdict {{ background: #fff7ed; border-left: 4px solid #c2410c; padding: .7rem 1rem; border-radius: .3rem; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(min(420px, 100%), 1fr)); gap: 1rem; }}
.grid > section.card {{ min-width: 0; margin: 0; }}
.figure {{ width: 100%; }}
h4.chart-title {{ font-size: .95rem; font-weight: 600; margin: 0 0 .3rem; }}
.chart-legend {{ display: flex; flex-wrap: wrap; gap: .2rem 1rem; font-size: .82rem; color: #3f3f46; }}
.chart-legend svg {{ vertical-align: middle; }}
mark.rationale {{ background: #fde68a; border-radius: .25rem; padding: 0 .1rem; }}
@media (max-width: 600px) {{ main {{ padding: 1rem .7rem 2rem; }} section.card {{ padding: .8rem .7rem; }} }}
details summary {{ cursor: pointer; color: #3f3f46; font-size: .9rem; margin: .5rem 0; }}
ul.meanings {{ font-size: .88rem; color: #3f3f46; padding-left: 1.2rem; }}
footer {{ margin-top: 2.5rem; color: {MUTED}; font-size: .8rem; }}
"""


def _e(value) -> str:
    return html.escape(str(value))


def _value(value) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k} = {_value(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value) or "none"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _scroll(table: str) -> str:
    """A table scrolls inside its own box instead of widening the page (a phone shows part of it)."""
    return f"<div class='scroll'>{table}</div>"


def _kv_table(items: dict) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_value(v))}</td></tr>" for k, v in items.items())
    return _scroll(f"<table class='kv'>{rows}</table>")


_SETTING_NAMES = {
    "model": "Model",
    "methods": "Methods",
    "params": "Method parameters",
    "seed": "Seed",
    "target": "Explained target",
    "perturbation": "Removed tokens are",
}


def _settings_table(settings: dict) -> str:
    """The settings as a person reads them: method titles, each method's parameters on its own line."""
    rows = []
    for key, value in settings.items():
        if key == "methods":
            value = ", ".join(METHODS[m].title if m in METHODS else str(m) for m in value)
        if key == "params":
            lines = [f"{METHODS[m].title if m in METHODS else m}: {_value(v)}" for m, v in (value or {}).items() if v]
            cell = "<br>".join(_e(line) for line in lines) or "defaults"
        else:
            cell = _e(_value(value))
        rows.append(f"<tr><th>{_e(_SETTING_NAMES.get(key, key))}</th><td>{cell}</td></tr>")
    return _scroll(f"<table class='kv'>{''.join(rows)}</table>")


_DASHES = {"dash": "6 3", "dot": "2 3", "dashdot": "6 3 2 3", "longdash": "10 3"}


class _Figures:
    """plotly.js goes inline with the first figure only; later figures reuse it. Each figure takes its
    container's width (a fixed-width figure clipped in a narrow card, or on a phone), and its title and legend
    become HTML above it, which wrap on a narrow screen where plotly's would be cut or run into each other."""

    def __init__(self):
        self.count = 0

    def html(self, fig) -> str:
        self.count += 1
        fig = type(fig)(fig)  # a copy: the caller's figure keeps its layout
        title = fig.layout.title.text
        entries = [t for t in fig.data if fig.layout.showlegend and t.name and t.showlegend is not False]
        top = fig.layout.margin.t or 0
        height = fig.layout.height and fig.layout.height - max(top - 12, 0)  # the same plot area, less the header
        fig.update_layout(title=None, showlegend=False, width=None, height=height, autosize=True, margin_t=12)
        fig.for_each_xaxis(self._wrap_title)
        markup = fig.to_html(
            include_plotlyjs=self.count == 1,
            full_html=False,
            default_width="100%",
            config={"displaylogo": False, "responsive": True, "displayModeBar": False},
        )
        head = f"<h4 class='chart-title'>{_e(title.replace('<br>', ' '))}</h4>" if title else ""
        if entries:
            head += "<div class='chart-legend'>" + "".join(self._entry(t) for t in entries) + "</div>"
        return f"<div class='figure'>{head}{markup}</div>"

    @staticmethod
    def _wrap_title(axis) -> None:
        """A long axis title on two lines: plotly does not wrap it, and a phone cuts it off."""
        text = axis.title.text or ""
        if len(text) > 28 and " (" in text and "<br>" not in text:
            axis.title.text = text.replace(" (", "<br>(", 1)

    @staticmethod
    def _entry(trace) -> str:
        line = getattr(trace, "line", None)
        color = (line.color if line is not None else None) or getattr(getattr(trace, "marker", None), "color", None)
        color = color if isinstance(color, str) else "#71717a"
        dash = _DASHES.get(line.dash if line is not None else None, "")
        sample = (
            f"<svg width='26' height='10' aria-hidden='true'><line x1='1' y1='5' x2='25' y2='5' stroke='{_e(color)}' "
            f"stroke-width='2.5' stroke-dasharray='{dash}'/></svg>"
        )
        return f"<span>{sample} {_e(trace.name)}</span>"


def html_report(
    *,
    model_info: dict,
    explanations: list[Explanation],
    reports: list[Report],
    settings: dict,
    agreement: tuple[list[str], object] | None = None,
    attention: tuple | None = None,
    marks: list[int] | None = None,
) -> str:
    """One HTML file with everything the dashboard showed; no external URL, so it opens offline.
    `attention`: (tokens, T×T matrix, title[, the tokens' positions in the text]), drawn as a heatmap;
    `marks`: indices of the words the user marked as mattering, shown on the text with each method's
    plausibility against them."""
    figures = _Figures()
    name = model_info.get("name", "model")
    settings = dict(settings)
    text = settings.pop("text", explanations[0].text if explanations else "")
    parts = [
        f"<h1>whybox report</h1><p class='muted'>Why did {_e(name)} say that? "
        f"Explanations of one prediction, and checks of how faithful they are.</p>",
        "<h2>Model</h2>",
        _kv_table(model_info),
        "<h2>Input and settings</h2>",
        f"<pre class='text'>{_e(text)}</pre>",
    ]
    if settings:
        parts.append(f"<div style='margin-top:.8rem'>{_settings_table(settings)}</div>")
    if explanations:
        parts.append(f"<div style='margin-top:.8rem'>{_methods_table(explanations)}</div>")
        first = explanations[0]
        parts += [
            "<h2>Prediction</h2>",
            "<section class='card'>",
            figures.html(charts.probability_chart(first.probabilities, first.target.label)),
            "</section>",
        ]
        parts.append("<h2>Explanations</h2>")
        parts += [_explanation_card(exp) for exp in explanations]
    if reports:
        parts += _faithfulness(reports, agreement, figures)
    if explanations and marks:
        parts += _plausibility(explanations, marks)
    if attention is not None:
        tokens, matrix, title, *positions = attention
        parts += [
            "<h2>Attention</h2>",
            "<p class='muted'>A view of the model, not an explanation: attention is blind to the explained "
            "target. Row = the token attending, column = the token attended to.</p>",
            f"<section class='card'>{figures.html(charts.attention_heatmap(matrix, tokens, title, *positions))}"
            "</section>",
        ]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(
        f"<footer>Made by whybox on {stamp}. Self-contained: no part of this file is loaded from the network.</footer>"
    )
    body = "".join(parts)
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>whybox report: {_e(name)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _plausibility(explanations: list[Explanation], marks: list[int]) -> list[str]:
    """The words the reader marked, on the text, and how well each method's top tokens match them."""
    first = explanations[0]
    marked = set(marks)
    pieces, cursor = [], 0
    for i, ((start, end), word) in enumerate(zip(first.word_spans, first.words)):
        pieces.append(_e(first.text[cursor:start]))
        pieces.append(f"<mark class='rationale'>{_e(word)}</mark>" if i in marked else _e(word))
        cursor = end
    pieces.append(_e(first.text[cursor:]))
    head = "<tr><th>Method</th>" + "".join(f"<th>{_e(m.title)} ↑</th>" for m in PLAUSIBILITY.values()) + "</tr>"
    rows = []
    for exp in explanations:
        values = plausibility(exp, marked)
        cells = "".join(f"<td class='num'>{three_decimals(values[k])}</td>" for k in PLAUSIBILITY)
        rows.append(f"<tr><th>{_e(exp.title)}</th>{cells}</tr>")
    meanings = "".join(f"<li>{_e(m.title)}: {_e(m.meaning)}</li>" for m in PLAUSIBILITY.values())
    table = f"<table class='wide metrics'>{head}{''.join(rows)}</table>"
    return [
        "<h2>Plausibility: do they match the words you marked?</h2>",
        f"<p class='muted'>Marked: {len(marked)} word{'s' if len(marked) != 1 else ''}, highlighted below. "
        "This measures agreement with a person, not with the model.</p>",
        f"<pre class='text'>{''.join(pieces)}</pre>",
        f"<div style='margin-top:.8rem'>{_scroll(table)}</div>",
        f"<ul class='meanings'>{meanings}</ul>",
    ]


def _methods_table(explanations: list[Explanation]) -> str:
    head = "<tr><th>Method</th><th>Family</th><th>Parameters</th><th>Target</th><th>Seed</th><th>Time</th></tr>"
    rows = []
    for exp in explanations:
        params = ", ".join(f"{k} = {_value(v)}" for k, v in exp.params.items()) or "none"
        rows.append(
            f"<tr><td>{_e(exp.title)}</td><td>{_e(exp.properties.get('family', '?'))}</td>"
            f"<td>{_e(params)}</td><td>{_e(exp.target.label)}</td>"
            f"<td>{_e(exp.seed if exp.seed is not None else '—')}</td><td class='num'>{exp.seconds:.2f} s</td></tr>"
        )
    return _scroll(f"<table class='wide'>{head}{''.join(rows)}</table>")


def _explanation_card(exp: Explanation) -> str:
    about = " ".join(filter(None, (exp.properties.get("family_summary"), exp.properties.get("scores_note"))))
    return (
        "<section class='card'>"
        f"<h3>{_e(exp.title)}</h3><p class='muted'>{_e(about)}</p>"
        f"<p>{_e(summarize(exp))}</p>"
        f"{legend_html(exp, None)}{heatmap_html(exp, 'word')}"
        f"<details><summary>Subword tokens</summary>{legend_html(exp, None, level='token')}"
        f"{heatmap_html(exp, 'token')}</details>"
        "</section>"
    )


def metrics_table_html(reports: list[Report]) -> str:
    """The metrics as a plain HTML table, coloured like the dashboard's (green = better)."""
    frame = metrics_frame(reports)
    css = metric_backgrounds(frame)
    # a header may wrap at its spaces, but its ↑/↓ stays with the last word
    head = (
        "<tr><th>Method</th>"
        + "".join(f"<th>{_e(c).replace(' ↑', '&nbsp;↑').replace(' ↓', '&nbsp;↓')}</th>" for c in frame.columns)
        + "</tr>"
    )
    rows = []
    for method, values in frame.iterrows():
        cells = "".join(
            f"<td class='num' style='{css.at[method, col]}'>{three_decimals(v)}</td>" for col, v in values.items()
        )
        rows.append(f"<tr><th>{_e(method)}</th>{cells}</tr>")
    return _scroll(f"<table class='wide metrics'>{head}{''.join(rows)}</table>")


def _faithfulness(reports: list[Report], agreement, figures: _Figures) -> list[str]:
    meanings = "".join(f"<li>{_e(line)}</li>" for line in metric_legend())
    parts = [
        "<h2>Faithfulness</h2>",
        f"<p class='verdict'>{_e(faithfulness_verdict(reports, agreement))}</p>",
        metrics_table_html(reports),
        f"<p class='muted'>{_e(mode_caption(reports))} Green = better for that metric; grey columns "
        "describe the explanation's shape, not its faithfulness.</p>",
        f"<details><summary>What the metrics mean</summary><ul class='meanings'>{meanings}</ul></details>",
        "<h2>Curves</h2><div class='grid'>",
    ]
    for metric in CURVE_METRICS:
        parts.append(f"<section class='card'>{figures.html(charts.curves_chart(reports, metric.name))}</section>")
    parts.append("</div>")
    if agreement is not None and len(agreement[0]) > 1:
        titles = {r.method: r.title for r in reports}
        parts += [
            "<h2>Agreement</h2>",
            "<section class='card'>",
            figures.html(charts.agreement_heatmap([titles.get(n, n) for n in agreement[0]], agreement[1])),
            "</section>",
        ]
    return parts


# ---- JSON ----------------------------------------------------------------------------------------
def json_bundle(explanations: list[Explanation], reports: list[Report], settings: dict, model_info: dict) -> str:
    """Everything needed to reload or audit a run: Explanation.from_dict reads each explanation back.
    Strict JSON: undefined metric values are written as null."""
    bundle = {
        "schema": BUNDLE_SCHEMA,
        "model": model_info,
        "settings": settings,
        "explanations": [e.to_dict() for e in explanations],
        "reports": [r.to_dict() for r in reports],
        "ranking_rule": RANKING_RULE,
        "conventions": conventions(),
    }
    return strict_json.dumps(bundle, indent=2)
