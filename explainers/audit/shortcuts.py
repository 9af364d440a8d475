"""When a word is a possible shortcut: strong for one label, yet frequent in the other labels' texts, judged
on enough texts to mean something. With ten texts a word seen in two ("he", "so") is 100 % or 0 % by chance:
a word needs MIN_TEXTS texts, and the share's 95 % Wilson interval must clear SHORTCUT_SHARE."""

from __future__ import annotations

import math

SHORTCUT_SHARE = 0.3  # a word strong for one label that occurs this often in the other labels' texts
MIN_TEXTS = 5  # fewer texts than this: no verdict either way
Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default); (0, 1) without observations."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def judge(word: dict) -> dict:
    """A consensus word ({score, texts, other_label_share}) with its share's interval, and whether it is a
    possible shortcut: positive score, at least MIN_TEXTS texts, and the interval's lower end at SHORTCUT_SHARE."""
    texts = int(word["texts"])
    other = round(word["other_label_share"] * texts)
    low, high = wilson(other, texts)
    flagged = word["score"] > 0 and texts >= MIN_TEXTS and low >= SHORTCUT_SHARE
    return {**word, "other_label_interval": [low, high], "shortcut": bool(flagged)}
