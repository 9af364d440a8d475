"""Which column of an uploaded file holds the labels: the one whose values are this model's label names (so the
form does not start at "(none)" and lose the accuracy, confusion matrix and calibration), else a column named
like a label column."""

from __future__ import annotations

from explainers.audit.data import read_data
from explainers.errors import WhyboxError

LABEL_NAMES = ("label", "labels", "class", "target", "sentiment", "gold")
SAMPLE = 200  # rows looked at per column
MATCH = 0.9  # this share of a column's values must be label names


def label_column_guess(source: str, columns: list[str], labels: list[str]) -> str | None:
    """The column holding the model's label names (case-insensitive), else one named like a label column, else None."""
    names = {label.strip().lower() for label in labels}
    for column in columns:
        try:
            values = [row.text.strip().lower() for row in read_data(source, text_column=column, limit=SAMPLE).rows]
        except WhyboxError:  # no text values in this column (numbers, empty)
            continue
        if names and len(values) >= 2 and sum(v in names for v in values) >= MATCH * len(values):
            return column
    return next((c for c in columns if c.strip().lower() in LABEL_NAMES), None)
