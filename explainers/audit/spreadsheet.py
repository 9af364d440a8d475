"""CSV cells a spreadsheet opens as data, never as a formula (CSV injection, OWASP's recommendation).

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (after any leading
spaces) is run by Excel, LibreOffice and Google Sheets as a formula: ``=HYPERLINK(...)`` can send the
sheet's contents away, ``+cmd|...`` can start a program. Every CSV whybox writes passes its text cells
through :func:`neutralise`, which puts a single quote before such a cell, as OWASP recommends; the
spreadsheet then shows the text as written, with the quote hidden or visible. Numbers written as
numbers (``-0.25``) are left alone: a spreadsheet reads them as numbers, and they are ours.
"""

from __future__ import annotations

import re

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
RULE = (
    "Text cells in CSV files that begin with =, +, -, @, a tab or a carriage return get a leading ' "
    "(OWASP's advice against CSV injection), so a spreadsheet shows them instead of running them as formulas; "
    "the Parquet and JSON files keep every text exactly as it was."
)


def neutralise(value):
    """`value` as a CSV cell that no spreadsheet runs: strings that would start a formula get a leading '."""
    if not isinstance(value, str) or not value:
        return value
    head = value.lstrip(" ")
    if head.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def neutralise_frame(frame):
    """A pandas frame whose text columns are neutralised, ready for `to_csv`."""
    from pandas.api.types import is_numeric_dtype

    for column in frame.columns:
        if not is_numeric_dtype(frame[column].dtype):  # str, object: whatever may hold text
            frame[column] = [neutralise(v) for v in frame[column]]
    return frame
