"""The offline HTML audit report: one self-contained file (inline CSS and SVG, no scripts), every
piece of data text escaped."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

REPORT = "report.html"

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f5f5f5}
.num{text-align:right;font-variant-numeric:tabular-nums}.note{color:#666}.flag{color:#b45309}
.bar{display:inline-block;height:10px;background:#4c78a8;vertical-align:middle}
"""


def _f(x, digits=3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _td(value, num=False) -> str:
    return f'<td class="num">{escape(str(value))}</td>' if num else f"<td>{escape(str(value))}</td>"


def _interval_svg(entries: list[tuple[str, dict]], low: float, high: float, width=360) -> str:
    """Mean with its 95 % interval as a small SVG per method."""
    span = (high - low) or 1.0

    def x(v):
        return 100 + (min(max(v, low), high) - low) / span * (width - 110)

    lines = []
    for i, (name, stat) in enumerate(entries):
        y = 14 + i * 20
        lines.append(f'<text x="0" y="{y + 4}" font-size="11">{escape(name)}</text>')
        if stat.get("mean") is None:
            continue
        lines.append(
            f'<line x1="{x(stat["low"]):.1f}" x2="{x(stat["high"]):.1f}" y1="{y}" y2="{y}" stroke="#4c78a8" '
            'stroke-width="2"/>'
        )
        lines.append(f'<circle cx="{x(stat["mean"]):.1f}" cy="{y}" r="3.5" fill="#4c78a8"/>')
    height = 20 * len(entries) + 8
    return f'<svg width="{width}" height="{height}" role="img">{"".join(lines)}</svg>'


def render(summary: dict) -> str:
    s = summary
    settings, data = s.get("settings", {}), s.get("data", {})
    parts = [
        f"<h1>whybox audit: {escape(str(settings.get('model', '')))}</h1>",
        f'<p class="note">Data: {escape(str(data.get("source", "")))} · {s["texts"]:,} texts · methods: '
        f"{escape(', '.join(s['methods']))} · seed {escape(str(settings.get('seed', 0)))} · target: "
        f"{escape(settings.get('target') or 'predicted label')} · tokens removed by: "
        f"{escape(str(settings.get('mode', 'delete')))}</p>",
    ]
    if data.get("skipped"):
        parts.append(
            f'<p class="note">Skipped rows: {escape(", ".join(f"{n} {k}" for k, n in data["skipped"].items()))}</p>'
        )
    if s.get("failed"):
        parts.append(
            f'<p class="flag">Failed explanations: {escape(", ".join(f"{m}: {n}" for m, n in s["failed"].items()))}</p>'
        )
    pred = s["prediction"]
    parts.append("<h2>Prediction quality</h2>")
    if pred.get("labelled"):
        ci = pred["accuracy_interval"]
        parts.append(
            f"<p>Accuracy <b>{_f(pred['accuracy'])}</b> (95 % interval {_f(ci['low'])}–{_f(ci['high'])}) on "
            f"{pred['labelled']:,} labelled texts; expected calibration error {_f(pred['reliability']['ece'])}.</p>"
        )
        labels = pred["confusion"]["labels"]
        rows = [
            [_td(f"true {label}")] + [_td(v, True) for v in row]
            for label, row in zip(labels, pred["confusion"]["matrix"])
        ]
        parts.append(_table([""] + [f"predicted {label}" for label in labels], rows))
        rows = [
            [
                _td(f"{b['low']:.1f}–{b['high']:.1f}"),
                _td(_f(b["confidence"]), True),
                _td(_f(b["accuracy"]), True),
                _td(b["count"], True),
            ]
            for b in pred["reliability"]["bins"]
        ]
        parts.append(
            "<p>Reliability (confidence bins):</p>" + _table(["bin", "mean confidence", "accuracy", "texts"], rows)
        )
    else:
        parts.append("<p>No label column: prediction quality is not measured.</p>")
    parts.append("<h2>Which method to trust on this model</h2>")
    ranking = s.get("ranking")
    if ranking:
        verdict = "significantly" if ranking["separated"] else "not significantly"
        d = ranking["difference"]
        parts.append(
            f"<p><b>{escape(ranking['winner'])}</b> ranks best over {ranking['texts']:,} texts, {verdict} ahead of "
            f"{escape(ranking['runner_up'])} (rank difference {_f(d['mean'], 2)}, 95 % interval "
            f"{_f(d['low'], 2)}–{_f(d['high'], 2)}).</p>"
        )
        rows = [
            [
                _td(r["method"]),
                _td(_f(r["mean_rank"], 2), True),
                _td(f"{_f(r['low'], 2)}–{_f(r['high'], 2)}", True),
                _td(f"{ranking['most_faithful_share'][r['method']]:.0%}", True),
            ]
            for r in ranking["order"]
        ]
        parts.append(_table(["method", "mean rank (1 = best)", "95 % interval", "texts where most faithful"], rows))
    for metric in s["metrics"].values():
        stats = metric["methods"]
        values = [v for st in stats.values() for v in (st["low"], st["high"]) if v is not None]
        if not values:
            continue
        kind = "" if metric["faithfulness"] else " (shape, not faithfulness)"
        parts.append(f"<h3>{escape(metric['title'])}{escape(kind)} · {escape(metric['direction'])} is better</h3>")
        parts.append(_interval_svg(list(stats.items()), min(values), max(values)))
        rows = [
            [_td(m), _td(_f(st["mean"]), True), _td(f"{_f(st['low'])}–{_f(st['high'])}", True), _td(st["n"], True)]
            for m, st in stats.items()
        ]
        parts.append(_table(["method", "mean", "95 % interval", "texts"], rows))
    if s.get("agreement"):
        a = s["agreement"]
        rows = [[_td(m)] + [_td(_f(v, 2), True) for v in row] for m, row in zip(a["methods"], a["spearman"])]
        parts.append(
            "<h3>Mean agreement between methods (Spearman over word scores)</h3>" + _table([""] + a["methods"], rows)
        )
    if s.get("plausibility"):
        parts.append("<h2>Plausibility (agreement with the marked rationales)</h2>")
        rows = [
            [_td(m)] + [_td(_f(s["plausibility"][k]["methods"][m]["mean"]), True) for k in s["plausibility"]]
            for m in s["methods"]
        ]
        parts.append(_table(["method"] + [v["title"] for v in s["plausibility"].values()], rows))
    words = s["words"]
    parts.append("<h2>What drives each label</h2>")
    for label, entries in words["consensus"].items():
        rows = [
            [
                _td(w["word"]),
                _td(_f(w["score"]), True),
                _td(w["texts"], True),
                _td(f"{w['other_label_share']:.0%}", True),
            ]
            for w in entries
        ]
        parts.append(
            f"<h3>Towards {escape(label)} (agreed across methods)</h3>"
            + _table(["word", "normalised attribution", "texts", "share in other labels' texts"], rows)
        )
    if words["shortcuts"]:
        rows = [
            [_td(w["word"]), _td(w["label"]), _td(_f(w["score"]), True), _td(f"{w['other_label_share']:.0%}", True)]
            for w in words["shortcuts"]
        ]
        parts.append(
            '<h3 class="flag">Possible shortcuts: strong for one label, frequent in the others</h3>'
            + _table(["word", "pushes towards", "normalised attribution", "share in other labels' texts"], rows)
        )
    parts.append("<h2>Examples to look at</h2>")
    titles = {
        "misclassified": "Misclassified (most confident first)",
        "least_confident": "Least confident",
        "least_faithful": "Least faithful explanations (lowest mean comprehensiveness)",
        "most_disagreement": "Methods disagree most",
    }
    for kind, rows_ in s["examples"].items():
        if not rows_:
            continue
        rows = [
            [
                _td(r["row_id"], True),
                _td(r["text"]),
                _td(r["label"] or "–"),
                _td(r["predicted"]),
                _td(_f(r["confidence"]), True),
                _td(_f(r["faithfulness"]), True),
                _td(_f(r["disagreement"]), True),
            ]
            for r in rows_
        ]
        parts.append(
            f"<h3>{escape(titles[kind])}</h3>"
            + _table(["row", "text", "label", "predicted", "confidence", "comprehensiveness", "disagreement"], rows)
        )
    body = "\n".join(parts)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>whybox audit</title>'
        f"<style>{CSS}</style></head><body>{body}</body></html>"
    )


def write_report(out: Path, summary: dict) -> Path:
    tmp = out / f".{REPORT}.tmp"
    tmp.write_text(render(summary), encoding="utf-8")
    os.replace(tmp, out / REPORT)
    return out / REPORT
