"""A heatmap as an image for slides and papers: an SVG built here (text on coloured boxes, the same colours as
the page's heatmap), and a PNG rendered from it by vl-convert (resvg inside, no browser needed).

The SVG lays text out itself, so it uses a monospaced font: every character has the same advance (0.6 em in
DejaVu Sans Mono, Menlo and Consolas), which makes the box widths exact without measuring fonts. Wide East Asian
characters take two advances."""

from __future__ import annotations

import html
import re
import unicodedata

from explainers.whatif.summary import shown

from explainers.explanation import Explanation

from .heatmap import MUTED, NEGATIVE, POSITIVE, TEXT_DARK, UNSIGNED, default_scale, hex_color, score_color, text_color

FONT_FAMILY = "DejaVu Sans Mono, Menlo, Consolas, Liberation Mono, monospace"
FONT_SIZE = 16
ADVANCE = 0.6 * FONT_SIZE  # px per character of a monospaced font
LINE = 30  # px from one baseline to the next
PAD = 3  # px of colour left and right of a word
MARGIN = 16
WIDTH = 760  # px: a slide's text column, and wide enough for a paper's figure


def _columns(text: str) -> int:
    """Character cells of a text in a monospaced font (wide East Asian characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _items(exp: Explanation, level: str) -> list[tuple[str, float | None, bool]]:
    """(text, score or None for plain text, is a special token) in reading order; "\\n" forces a new line."""
    if level == "word":
        items, cursor = [], 0
        for (start, end), word, score in zip(exp.word_spans, exp.words, exp.word_scores):
            items += _gaps(exp.text[cursor:start])
            items.append((word, float(score), False))
            cursor = end
        return items + _gaps(exp.text[cursor:])
    items, previous = [], object()
    for piece, token, score, special, word in zip(
        exp.pieces or exp.tokens, exp.tokens, exp.token_scores, exp.special, exp.word_of_token
    ):
        if items and (word is None or word != previous):
            items.append((" ", None, False))
        previous = word
        items.append((token, None, True) if special else (piece.strip() or "␣", float(score), False))
    return items


def _gaps(text: str) -> list[tuple[str, float | None, bool]]:
    """Text between words: runs of spaces become one space, line breaks stay line breaks."""
    out = []
    for part in re.split(r"(\n)", text):
        if part == "\n":
            out.append(("\n", None, False))
        elif part:
            out.append((re.sub(r"\s+", " ", part), None, False))
    return out


def heatmap_svg(exp: Explanation, level: str = "word", *, scale: float | None = None, title: bool = True) -> str:
    """The heatmap as a standalone SVG: a title line (method, target), the text with each word (or token) on a
    box coloured by its score, and a legend line. Every piece of text is escaped."""
    scale = default_scale(exp, level) if scale is None else float(scale)
    right = WIDTH - MARGIN
    x, y = MARGIN, MARGIN + (LINE + 10 if title else 0) + FONT_SIZE
    marks = []
    for text, score, special in _items(exp, level):
        if text == "\n":
            x, y = MARGIN, y + LINE
            continue
        width = _columns(text) * ADVANCE + (2 * PAD if score is not None else 0)
        if x + width > right and x > MARGIN:
            x, y = MARGIN, y + LINE
            if text == " ":
                continue
        if score is not None:
            background = score_color(score, scale, exp.signed)
            marks.append(
                f'<rect x="{x:.1f}" y="{y - FONT_SIZE - 2}" width="{width:.1f}" height="{FONT_SIZE + 9}" rx="4" '
                f'fill="{hex_color(background)}" data-score="{score:.6g}"/>'
                f'<text x="{x + PAD:.1f}" y="{y}" fill="{text_color(background)}">{html.escape(text)}</text>'
            )
        else:
            colour = MUTED if special else TEXT_DARK
            marks.append(f'<text x="{x:.1f}" y="{y}" fill="{colour}" xml:space="preserve">{html.escape(text)}</text>')
        x += width
    height = y + LINE + (LINE if title else 0)
    head = foot = ""
    if title:
        label = html.escape(shown(exp.target.label))
        head = (
            f'<text x="{MARGIN}" y="{MARGIN + FONT_SIZE}" fill="{TEXT_DARK}" font-weight="bold">'
            f"{html.escape(exp.title)}: scores for '{label}'</text>"
        )
        foot = f'<text x="{MARGIN}" y="{y + LINE + 4}" fill="{MUTED}" font-size="13">{_legend(exp, scale)}</text>'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'font-family="{FONT_FAMILY}" font-size="{FONT_SIZE}">'
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>{head}{"".join(marks)}{foot}</svg>'
    )


def _legend(exp: Explanation, scale: float) -> str:
    label = html.escape(shown(exp.target.label))
    if not scale:
        return "all scores are zero"
    if exp.signed:
        return (
            f"<tspan fill=\"{hex_color(POSITIVE)}\">red</tspan> = towards '{label}', "
            f'<tspan fill="{hex_color(NEGATIVE)}">blue</tspan> = away from it; full colour = ±{scale:.3g}'
        )
    return f'<tspan fill="{hex_color(UNSIGNED)}">darker</tspan> = matters more (unsigned); full colour = {scale:.3g}'


def svg_to_png(svg: str, scale: float = 2.0) -> bytes:
    """The SVG rendered to PNG at `scale` (2 = sharp on slides and high-density screens)."""
    import vl_convert

    return vl_convert.svg_to_png(svg, scale=scale)
