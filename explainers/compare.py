"""Side-by-side comparison of two explanations: two texts, or one text under two models."""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from explainers.explanation import Explanation

STATUSES = ("same", "changed", "added", "removed")
COLUMNS = ["word_a", "word_b", "index_a", "index_b", "score_a", "score_b", "difference", "status"]


def align_words(exp_a: Explanation, exp_b: Explanation) -> pd.DataFrame:
    """One row per aligned word (difflib on the word sequences).

    difference = score_b - score_a, NaN where a word exists on one side only. Replaced runs are
    paired word by word ("changed"); what is left over is "removed" (only in A) or "added" (only in B).
    `attrs` carries names for the two sides: the model names when the text is the same, else "Text A/B".
    """
    words_a, words_b = exp_a.words, exp_b.words
    rows = []

    def row(i, j, status):
        score_a = exp_a.word_scores[i] if i is not None else np.nan
        score_b = exp_b.word_scores[j] if j is not None else np.nan
        rows.append(
            {
                "word_a": words_a[i] if i is not None else None,
                "word_b": words_b[j] if j is not None else None,
                "index_a": i,
                "index_b": j,
                "score_a": score_a,
                "score_b": score_b,
                "difference": score_b - score_a,
                "status": status,
            }
        )

    matcher = difflib.SequenceMatcher(None, words_a, words_b, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            for k in range(a1 - a0):
                row(a0 + k, b0 + k, "same")
            continue
        paired = min(a1 - a0, b1 - b0) if op == "replace" else 0
        for k in range(paired):
            row(a0 + k, b0 + k, "changed")
        for i in range(a0 + paired, a1):
            row(i, None, "removed")
        for j in range(b0 + paired, b1):
            row(None, j, "added")

    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["index_a"] = frame["index_a"].astype("Int64")
    frame["index_b"] = frame["index_b"].astype("Int64")
    frame[["score_a", "score_b", "difference"]] = frame[["score_a", "score_b", "difference"]].astype(float)
    same_text = exp_a.text == exp_b.text and exp_a.model != exp_b.model
    frame.attrs["name_a"] = exp_a.model if same_text else "Text A"
    frame.attrs["name_b"] = exp_b.model if same_text else "Text B"
    return frame
