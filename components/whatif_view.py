"""Renderers for the What-if page: the word diff of a live edit, counterfactual tables, checked narration.

Pure functions build HTML (inline styles, every user string escaped) or data frames; the page draws them.
"""

from __future__ import annotations

import html
import math
from urllib.parse import urlencode

import pandas as pd
from explainers.whatif.claims import SUPPORTED, UNSUPPORTED

from .heatmap import FONT, MUTED, NEGATIVE, POSITIVE, TEXT_DARK, hex_color, mix

VERDICT_STYLE = {  # badge, background: colour is never the only signal
    SUPPORTED: ("✔ supported", "#dcfce7"),
    UNSUPPORTED: ("✘ unsupported", "#fee2e2"),
    "not checkable": ("○ not checkable", "#f4f4f5"),
}


def explain_url(model: str, text: str, methods: list[str] | tuple[str, ...], seed: int, target: str = "") -> str:
    """A link that opens the Explain page on `text` with these settings (the keys links.sync_url writes)."""
    query = {"model": model, "text": text, "methods": ",".join(methods), "seed": str(seed)}
    if target:
        query["target"] = target
    return "./?" + urlencode(query)


def _score(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.3f}"


def diff_html(frame: pd.DataFrame) -> str:
    """The edited text word by word against the original (compare.align_words): removed words struck
    through, added ones underlined, changed ones as old → new; each with its score change on hover."""
    parts = []
    for r in frame.itertuples():
        a = html.escape(str(r.word_a)) if isinstance(r.word_a, str) else ""
        b = html.escape(str(r.word_b)) if isinstance(r.word_b, str) else ""
        tip = html.escape(
            f"score {_score(r.score_a) or '—'} → {_score(r.score_b) or '—'}"
            + (
                f" (change {_score(r.difference)})"
                if isinstance(r.difference, float) and not math.isnan(r.difference)
                else ""
            )
        )
        if r.status == "same":
            delta = r.difference if not math.isnan(r.difference) else 0.0
            tint = hex_color(mix(POSITIVE if delta > 0 else NEGATIVE, min(abs(delta) * 4, 0.6))) if delta else "#fff"
            parts.append(f'<span title="{tip}" style="background:{tint};border-radius:.3em;padding:.1em">{a}</span>')
        elif r.status == "removed":
            parts.append(
                f'<span title="removed · {tip}" style="text-decoration:line-through;color:#b91c1c;'
                f'background:#fee2e2;border-radius:.3em;padding:.1em">{a}</span>'
            )
        elif r.status == "added":
            parts.append(
                f'<span title="added · {tip}" style="text-decoration:underline;color:#15803d;'
                f'background:#dcfce7;border-radius:.3em;padding:.1em">{b}</span>'
            )
        else:
            parts.append(
                f'<span title="changed · {tip}" style="background:#fef9c3;border-radius:.3em;padding:.1em">'
                f'<s style="color:{MUTED}">{a}</s> → <b>{b}</b></span>'
            )
    style = (
        f"font-family:{FONT};font-size:1.05rem;line-height:2.1;color:{TEXT_DARK};background:#fff;"
        "padding:.6rem .9rem;border:1px solid #e4e4e7;border-radius:.5rem"
    )
    return f'<div class="whybox-diff" style="{style}">{" ".join(parts)}</div>'


def counterfactual_frame(counterfactuals, model: str, methods, seed: int, target_label: str) -> pd.DataFrame:
    """One row per counterfactual, with a link that opens it in Explain."""
    rows = []
    for c in counterfactuals:
        rows.append(
            {
                "Edited text": c.text,
                "Result": ("verified flip" if c.flipped else "verified, no flip") if c.verified else "not verified",
                "Edit": c.describe(),
                "Now predicted": c.label,
                f"p({target_label})": c.target_prob,
                "Δp": c.change,
                "Open": explain_url(model, c.text, methods, seed),
                "Words": c.size,
            }
        )
    return pd.DataFrame(rows)


def counterfactual_columns(target_label: str) -> dict:
    """Column settings for st.dataframe: probabilities as numbers, the link as a link."""
    import streamlit as st

    return {
        f"p({target_label})": st.column_config.NumberColumn(format="%.3f"),
        "Δp": st.column_config.NumberColumn(format="%+.3f"),
        "Open": st.column_config.LinkColumn("Open", display_text="Explain ↗"),
    }


def verdicts_html(verdicts) -> str:
    """Each sentence beside its verdict, with the checker's reasons on hover and listed under failures."""
    rows = []
    for v in verdicts:
        badge, background = VERDICT_STYLE[v.verdict]
        failed = [c for c in v.claims if not c.holds]
        detail = "".join(
            f"<div style='font-size:.82rem;color:#991b1b'>✘ {html.escape(c.text)}: {html.escape(c.reason)}</div>"
            for c in failed
        )
        tip = html.escape(
            "; ".join(f"{'✔' if c.holds else '✘'} {c.text}: {c.reason}" for c in v.claims)
            or "no claim the checker can test"
        )
        rows.append(
            f"<tr title='{tip}'><td style='padding:.35rem .6rem;vertical-align:top'>{html.escape(v.sentence)}"
            f"{detail}</td><td style='padding:.35rem .6rem;vertical-align:top;white-space:nowrap'>"
            f"<span style='background:{background};border-radius:.4em;padding:.1em .5em'>{badge}</span>"
            "</td></tr>"
        )
    return (
        f"<table class='whybox-verdicts' style='font-family:{FONT};border-collapse:collapse;width:100%;"
        f"color:{TEXT_DARK}'>{''.join(rows)}</table>"
    )
