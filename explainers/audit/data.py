"""Reading the texts to audit: CSV, JSONL or Parquet files, or the built-in held-out sentences.

Every problem with the file is an InputError with one clear line (the columns found, the line that
is not JSON, the encoding); rows whose text cell is empty or not text are skipped and counted.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from explainers.errors import InputError

BUILTIN_PREFIX = "builtin:"
BUILTIN_SETS = {
    "rt-heldout": "The 1,000 Rotten Tomatoes sentences the built-in sentiment model never trained on "
    "(stratified: 500 negative, 500 positive).",
}
MAX_MB_ENV = "WHYBOX_AUDIT_MAX_MB"
DEFAULT_MAX_MB = 200
FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class AuditRow:
    row_id: int  # position in the file (0-based, counting skipped rows), so results point back at the data
    text: str
    label: str | None = None  # as written in the file; mapped to the model's labels later
    rationale: tuple | None = None  # marked words (strings) or word indices (ints)


@dataclass
class AuditData:
    source: str
    rows: list[AuditRow]
    columns: list[str]
    text_column: str
    label_column: str | None = None
    rationale_column: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    total_rows: int = 0  # rows in the file before skipping and --limit

    @property
    def has_labels(self) -> bool:
        return any(r.label is not None for r in self.rows)

    @property
    def has_rationales(self) -> bool:
        return any(r.rationale for r in self.rows)

    def describe_skipped(self) -> str:
        return ", ".join(f"{n:,} {reason}" for reason, n in self.skipped.items() if n) or "none"


def max_bytes() -> int:
    return int(float(os.environ.get(MAX_MB_ENV, DEFAULT_MAX_MB)) * 1024 * 1024)


def read_data(
    source: str,
    text_column: str = "text",
    label_column: str | None = None,
    rationale_column: str | None = None,
    limit: int | None = None,
    size_limit: int | None = None,
) -> AuditData:
    """The rows to audit. `source` is a path or `builtin:NAME`."""
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, not {limit}.")
    if source.startswith(BUILTIN_PREFIX):
        return _builtin(source[len(BUILTIN_PREFIX) :], text_column, label_column, rationale_column, limit)
    path, records, columns = _load(source, size_limit)
    return _rows(str(path), records, columns, text_column, label_column, rationale_column, limit)


def columns_of(source: str, size_limit: int | None = None) -> list[str]:
    """The columns of a data file (to offer them for choosing)."""
    if source.startswith(BUILTIN_PREFIX):
        return ["text", "label"]
    return _load(source, size_limit)[2]


def _load(source: str, size_limit: int | None):
    path = Path(source).expanduser()
    if not path.is_file():
        raise InputError(f"No data file at '{source}'." if not path.exists() else f"'{source}' is not a file.")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"'{path.name}': unknown file type '{path.suffix}'; use .csv, .jsonl or .parquet.")
    limit_bytes = max_bytes() if size_limit is None else size_limit
    size = path.stat().st_size
    if size > limit_bytes:
        raise InputError(
            f"'{path.name}' is {size / 2**20:.1f} MB, over the limit of {limit_bytes / 2**20:.0f} MB "
            f"(set {MAX_MB_ENV} to raise it, or pass a smaller file)."
        )
    try:
        records, columns = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}[kind](path)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"'{path.name}' is not UTF-8 text (byte {exc.start}): save it as UTF-8 and try again."
        ) from None
    except OSError as exc:
        raise InputError(f"Could not read '{path.name}': {exc.strerror or exc}.") from None
    return path, records, columns


def _read_csv(path: Path):
    import csv

    csv.field_size_limit(2**31 - 1)
    with open(path, encoding="utf-8", newline="") as f:  # strict: a non-UTF-8 byte raises UnicodeDecodeError
        sample = f.read(64 * 1024)
        f.seek(0)
        delimiter = "\t" if path.suffix.lower() == ".tsv" or ("\t" in sample and "," not in sample) else ","
        try:
            reader = csv.DictReader(f, delimiter=delimiter)
            columns = list(reader.fieldnames or [])
            records = list(reader)
        except csv.Error as exc:
            raise InputError(f"'{path.name}' is not a readable CSV file: {exc}.") from None
    return records, columns


def _read_jsonl(path: Path):
    records, columns = [], {}
    with open(path, encoding="utf-8") as f:
        first = f.read(1)
        f.seek(0)
        if first == "[":  # a JSON array of objects is accepted too
            try:
                data = json.load(f)
            except json.JSONDecodeError as exc:
                raise InputError(f"'{path.name}' is not valid JSON: {exc.msg} at line {exc.lineno}.") from None
            lines = [(i + 1, item) for i, item in enumerate(data)]
        else:
            lines = []
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    lines.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise InputError(f"'{path.name}' line {number} is not valid JSON: {exc.msg}.") from None
    for number, item in lines:
        if not isinstance(item, dict):
            raise InputError(f"'{path.name}' line {number} is not a JSON object with named fields.")
        records.append(item)
        columns.update(dict.fromkeys(item))
    return records, list(columns)


def _read_parquet(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"'{path.name}' is not a readable Parquet file: {str(exc).splitlines()[0]}") from None
    return table.to_pylist(), table.column_names


def _need(column: str | None, columns: list[str], what: str, name: str) -> None:
    if column is not None and column not in columns:
        found = ", ".join(repr(c) for c in columns) or "none"
        raise InputError(f"{name} has no {what} column '{column}'; its columns are: {found}.")


def _rows(source, records, columns, text_column, label_column, rationale_column, limit) -> AuditData:
    name = Path(source).name
    _need(text_column, columns, "text", name)
    _need(label_column, columns, "label", name)
    _need(rationale_column, columns, "rationale", name)
    skipped = {"empty text": 0, "non-text cell": 0, "no label": 0}
    rows = []
    for row_id, record in enumerate(records):
        text = record.get(text_column)
        if not isinstance(text, str):
            skipped["empty text" if _blank(text) else "non-text cell"] += 1
            continue
        if not text.strip():
            skipped["empty text"] += 1
            continue
        label = None
        if label_column is not None:
            value = record.get(label_column)
            if _blank(value) or (isinstance(value, str) and not value.strip()):
                skipped["no label"] += 1  # still audited, without a label
            else:
                label = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()
        rationale = parse_rationale(record.get(rationale_column)) if rationale_column else None
        rows.append(AuditRow(row_id, text, label, rationale))
        if limit is not None and len(rows) >= limit:
            break
    data = AuditData(
        source,
        rows,
        list(columns),
        text_column,
        label_column,
        rationale_column,
        {k: v for k, v in skipped.items() if v},
        len(records),
    )
    if not rows:
        raise InputError(f"{name} has no text to audit in column '{text_column}' (skipped: {data.describe_skipped()}).")
    return data


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def parse_rationale(value) -> tuple | None:
    """Marked words: a list of word indices or words, or a string of words separated by spaces, commas
    or '|'; a JSON list written as a string is read as a list."""
    if _blank(value):
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                pass
        if isinstance(value, str):
            parts = [p for chunk in value.replace("|", ",").split(",") for p in chunk.split()]
            return tuple(p for p in parts if p) or None
    try:
        items = list(value)
    except TypeError:
        return None
    out = tuple(int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v) for v in items)
    return out or None


def _builtin(name, text_column, label_column, rationale_column, limit) -> AuditData:
    if name not in BUILTIN_SETS:
        raise InputError(f"Unknown built-in data set '{name}': choose from {', '.join(BUILTIN_SETS)}.")
    from explainers.models.builtin import LABELS, sentiment_splits

    _, heldout = sentiment_splits()  # the same split the built-in sentiment model was trained around
    # The split lists one label's sentences, then the other's: alternate them, so that any --limit
    # audits both labels in equal parts.
    by_label = [[(t, y) for t, y in heldout if y == label] for label in sorted({y for _, y in heldout})]
    mixed = [row for group in itertools.zip_longest(*by_label) for row in group if row is not None]
    records = [{"text": text, "label": LABELS[label]} for text, label in mixed]
    label_column = label_column or "label"
    return _rows(
        f"{BUILTIN_PREFIX}{name}",
        records,
        ["text", "label"],
        text_column or "text",
        label_column,
        rationale_column,
        limit,
    )
