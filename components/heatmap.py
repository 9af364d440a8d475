"""Attribution heatmaps: the text itself, each word (or token) tinted by its score.

Pure functions return self-contained HTML (inline styles only), so the same markup serves the
dashboard and the offline HTML report. Every piece of user text is escaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
from explainers.whatif.summary import shown

from explainers.explanation import Explanation

# One colour convention for every view: red supports the target, blue speaks against it,
# violet measures an unsigned amount (saliency, attention).
POSITIVE = (220, 38, 38)
NEGATIVE = (37, 99, 235)
UNSIGNED = (124, 58, 237)
NEUTRAL = (255, 255, 255)
TEXT_DARK = "#18181b"
TEXT_LIGHT = "#ffffff"
MUTED = "#71717a"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


# Colour by class (LIME's own view): each label keeps one colour whatever is explained; category10, as LIME.
CLASS_COLOURS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
OTHER_LABELS = (113, 113, 122)  # "towards the other labels" when there are more than two


@dataclass(frozen=True)
class Colours:
    """The hues of a signed heatmap: positive scores in `towards`, negative ones in `away`."""

    towards: tuple[int, int, int]
    away: tuple[int, int, int]
    towards_name: str  # what a positive score pushes towards, for the legend ("'positive'")
    away_name: str


RELATIVE = Colours(POSITIVE, NEGATIVE, "", "")  # red = towards the explained label, blue = away from it


def class_colours(exp: Explanation) -> Colours | None:
    """Fixed colours per label: a positive score in the explained label's colour, a negative one in the
    other label's (the contrast's, or the only other one; grey for several). None when the target is not
    one of a fixed set of labels (a continuation) or the method is unsigned."""
    target = exp.target
    if target.class_index is None or not exp.signed:
        return None
    labels = list(exp.probabilities)

    def colour(k: int) -> tuple[int, int, int]:
        return CLASS_COLOURS[k % len(CLASS_COLOURS)]

    if target.contrast is not None and target.contrast.class_index is not None:
        away, away_name = colour(target.contrast.class_index), f"'{shown(target.contrast.label)}'"
    elif len(labels) == 2:
        other = 1 - target.class_index
        away, away_name = colour(other), f"'{shown(labels[other])}'"
    else:
        away, away_name = OTHER_LABELS, f"the labels other than '{shown(target.label)}'"
    return Colours(colour(target.class_index), away, f"'{shown(target.label)}'", away_name)


def hex_color(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def mix(rgb: tuple[int, int, int], amount: float, base: tuple[int, int, int] = NEUTRAL) -> tuple[int, int, int]:
    """`amount` (0..1) of the way from `base` to `rgb`."""
    amount = float(np.clip(amount, 0.0, 1.0))
    return tuple(round(b + (c - b) * amount) for b, c in zip(base, rgb))


def _luminance(rgb: tuple[int, int, int]) -> float:
    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_color(background: tuple[int, int, int]) -> str:
    """Dark or white text, whichever contrasts more with the background (WCAG contrast ratio)."""
    lum = _luminance(background)
    dark = _luminance((24, 24, 27))
    return TEXT_LIGHT if (1 + 0.05) / (lum + 0.05) > (lum + 0.05) / (dark + 0.05) else TEXT_DARK


def score_color(score: float, scale: float, signed: bool = True, colours: Colours = RELATIVE) -> tuple[int, int, int]:
    """Background for a score: intensity |score| / scale, hue by sign (or the unsigned hue)."""
    if not scale or not np.isfinite(score):
        return NEUTRAL
    hue = UNSIGNED if not signed else colours.towards if score > 0 else colours.away
    return mix(hue, abs(score) / scale)


def default_scale(exp: Explanation, level: str = "word") -> float:
    """The largest |score| of the explanation at that level (special tokens excluded)."""
    scores = exp.scores(level)
    if level == "token":
        scores = scores[[not s for s in exp.special]]
    return float(np.max(np.abs(scores))) if len(scores) else 0.0


def shared_scale(explanations: list[Explanation], level: str = "word") -> float:
    """One scale for several explanations, so equal colours mean equal scores. Only meaningful
    when the scores share a unit, e.g. one method on two texts or under two models."""
    return max((default_scale(e, level) for e in explanations), default=0.0)


def _span(text: str, tooltip: str, style: str, score: float | None = None) -> str:
    data = f' data-score="{score:.6g}"' if score is not None else ""
    return f'<span style="{style}" title="{html.escape(tooltip)}"{data}>{html.escape(text)}</span>'


def _scored_span(
    text: str, score: float, scale: float, signed: bool, label: str, extra_style: str = "", colours=RELATIVE
) -> str:
    background = score_color(score, scale, signed, colours)
    style = (
        f"background:{hex_color(background)};color:{text_color(background)};"
        f"border-radius:0.3em;padding:0.12em 0.08em;{extra_style}"
    )
    share = f" ({abs(score) / scale:.0%} of full colour)" if scale else ""
    return _span(text, f"{label}: {score:+.3g}{share}", style, score)


def _container(inner: str, font_size: str = "1.05rem") -> str:
    style = (
        f"font-family:{FONT};font-size:{font_size};line-height:2.1;white-space:pre-wrap;"
        f"overflow-wrap:anywhere;color:{TEXT_DARK};background:#ffffff;padding:0.6rem 0.9rem;"
        "border:1px solid #e4e4e7;border-radius:0.5rem"
    )
    return f'<div class="whybox-heatmap" style="{style}">{inner}</div>'


def heatmap_html(
    exp: Explanation,
    level: str = "word",
    *,
    scale: float | None = None,
    font_size: str = "1.05rem",
    by_class: bool = False,
) -> str:
    """The text with each word ("word") or subword piece ("token") tinted by its score; `by_class`: in
    fixed colours per label (class_colours) where the target is a label, else towards/away."""
    if level not in ("word", "token"):
        raise ValueError(f"level must be 'word' or 'token', not {level!r}")
    scale = default_scale(exp, level) if scale is None else float(scale)
    signed = exp.signed
    colours = (class_colours(exp) if by_class else None) or RELATIVE
    spans = _word_spans if level == "word" else _token_spans
    return _container(spans(exp, scale, signed, colours), font_size)


def _word_spans(exp: Explanation, scale: float, signed: bool, colours: Colours = RELATIVE) -> str:
    """Words in their place in the original text; the characters between them kept as typed."""
    parts, cursor = [], 0
    for (start, end), word, score in zip(exp.word_spans, exp.words, exp.word_scores):
        parts.append(html.escape(exp.text[cursor:start]))
        parts.append(_scored_span(word, score, scale, signed, word, colours=colours))
        cursor = end
    rest = exp.text[cursor:]
    if exp.truncated and rest.strip():
        parts.append(_span(rest, "cut off: beyond the model's token limit, never seen", f"color:{MUTED};"))
    else:
        parts.append(html.escape(rest))
    return "".join(parts)


def _token_spans(exp: Explanation, scale: float, signed: bool, colours: Colours = RELATIVE) -> str:
    """The tokenizer's own pieces as chips (what the model reads: "##ing", "[UNK]", lowercased), the text they
    cover on hover; a space between words, none between the pieces of one word."""
    special_style = (
        f"color:{MUTED};background:#f4f4f5;border:1px dashed #d4d4d8;border-radius:0.3em;"
        "padding:0.05em 0.25em;font-size:0.78em;font-family:ui-monospace,Menlo,Consolas,monospace"
    )
    chip = "border:1px solid rgba(0,0,0,0.08);margin:0 1px"
    parts, previous_word = [], object()
    pieces = exp.pieces or exp.tokens  # what the model reads; older explanations have only the text slices
    for piece, token, score, special, word in zip(pieces, exp.tokens, exp.token_scores, exp.special, exp.word_of_token):
        if parts and (word is None or word != previous_word):
            parts.append(" ")
        previous_word = word
        if special:
            parts.append(_span(token, f"{token}: special token, never scored", special_style))
        else:
            shown_piece = piece.strip() or piece.replace("\n", "⏎").replace("\t", "⇥").replace(" ", "␣")
            tooltip = f"{piece!r}, from the text {token!r}"
            parts.append(_scored_span(shown_piece, score, scale, signed, tooltip, chip, colours))
    return "".join(parts)


def legend_html(exp: Explanation, scale: float | None = None, *, level: str = "word", by_class: bool = False) -> str:
    """A small colour bar saying what the colours mean for this explanation's target."""
    scale = default_scale(exp, level) if scale is None else float(scale)
    label = html.escape(shown(exp.target.label))
    bar = (
        "display:inline-block;width:120px;height:12px;border-radius:6px;border:1px solid #e4e4e7;vertical-align:middle"
    )
    colours = class_colours(exp) if by_class else None
    if colours:
        away, towards = hex_color(colours.away), hex_color(colours.towards)
        gradient = f"linear-gradient(90deg,{away},#ffffff,{towards})"
        items = [
            f'<span><b style="color:{away}">■</b> = pushes towards {html.escape(colours.away_name)}</span>',
            f'<span style="{bar};background:{gradient}"></span>',
            f'<span><b style="color:{towards}">■</b> = pushes towards {html.escape(colours.towards_name)}</span>',
            f'<span style="color:{MUTED}">colours fixed per label</span>',
        ]
        full = f"full colour = ±{scale:.3g}"
    elif exp.signed:
        gradient = f"linear-gradient(90deg,{hex_color(NEGATIVE)},#ffffff,{hex_color(POSITIVE)})"
        items = [
            f"<span><b style=\"color:{hex_color(NEGATIVE)}\">blue</b> = pushes away from '{label}'</span>",
            f'<span style="{bar};background:{gradient}"></span>',
            f"<span><b style=\"color:{hex_color(POSITIVE)}\">red</b> = pushes towards '{label}'</span>",
        ]
        full = f"full colour = ±{scale:.3g}"
    else:
        gradient = f"linear-gradient(90deg,#ffffff,{hex_color(UNSIGNED)})"
        title = html.escape(exp.title)
        darker = f'<b style="color:{hex_color(UNSIGNED)}">darker</b>'
        meaning = (
            f"{darker} = more attention from the prediction position. Attention is blind to the target: "
            "a view of the model, not an explanation"
            if exp.properties.get("needs_attention")
            else f"{darker} = matters more for '{label}'. {title} is unsigned: it says how much, not in which direction"
        )
        items = [f'<span style="{bar};background:{gradient}"></span>', f"<span>{meaning}</span>"]
        full = f"full colour = {scale:.3g}"
    items.append(
        f'<span style="color:{MUTED}">{full}</span>'
        if scale
        else f'<span style="color:{MUTED}">all scores are zero</span>'
    )
    style = (
        f"display:flex;flex-wrap:wrap;align-items:center;gap:0.35rem 0.7rem;font-family:{FONT};"
        f"font-size:0.85rem;color:#3f3f46;margin:0.3rem 0 0.5rem"
    )
    return f'<div class="whybox-legend" style="{style}">{"".join(items)}</div>'


def render_heatmap(exp: Explanation, level: str = "word", scale: float | None = None, by_class: bool = False) -> None:
    import streamlit as st

    scale = default_scale(exp, level) if scale is None else scale
    st.html(
        legend_html(exp, scale, level=level, by_class=by_class)
        + heatmap_html(exp, level, scale=scale, by_class=by_class)
    )
