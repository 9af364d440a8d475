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
# A cell is bounded as the file is: a model reads a few thousand characters at most (the rest of a longer
# text is cut off), and one 10 MB cell once cost gigabytes of memory before any answer.
MAX_CELL_ENV = "WHYBOX_AUDIT_MAX_CELL_CHARS"
DEFAULT_MAX_CELL_CHARS = 100_000
SHOWN_COLUMNS = 8  # a missing column's message names this many of the file's columns, then the count
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


def max_cell_chars() -> int:
    raw = os.environ.get(MAX_CELL_ENV, "").strip()
    try:
        return int(raw) if raw else DEFAULT_MAX_CELL_CHARS
    except ValueError:
        raise InputError(f"{MAX_CELL_ENV} must be a whole number of characters, not '{raw}'.") from None


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
            except RecursionError:
                raise InputError(_too_deep(path.name)) from None
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
                except RecursionError:
                    raise InputError(_too_deep(path.name, f" line {number}")) from None
    for number, item in lines:
        if not isinstance(item, dict):
            raise InputError(f"'{path.name}' line {number} is not a JSON object with named fields.")
        records.append(item)
        columns.update(dict.fromkeys(item))
    return records, list(columns)


def _too_deep(name: str, where: str = "") -> str:
    return (
        f"'{name}'{where} nests lists or objects too deeply to read (thousands of levels): an audit needs one "
        "object per text, with the text, label and rationale as plain fields."
    )


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
        if not columns:
            raise InputError(f"{name} has no {what} column '{_short(column)}'; it has no columns.")
        shown = ", ".join(repr(_short(c)) for c in columns[:SHOWN_COLUMNS])
        more = f", ... ({len(columns):,} columns in all)" if len(columns) > SHOWN_COLUMNS else ""
        raise InputError(f"{name} has no {what} column '{_short(column)}'; its columns are: {shown}{more}.")


def _short(name, limit: int = 40) -> str:
    name = str(name)
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _check_cell(value, column: str, row_id: int, name: str, limit: int) -> None:
    if isinstance(value, str) and len(value) > limit:
        raise InputError(
            f"{name} row {row_id + 1}: the '{_short(column)}' cell holds {len(value):,} characters, over the limit "
            f"of {limit:,} per cell (set {MAX_CELL_ENV} to raise it, or shorten that text; a model reads only "
            "the first few thousand characters of a text)."
        )


def _rows(source, records, columns, text_column, label_column, rationale_column, limit) -> AuditData:
    name = Path(source).name
    _need(text_column, columns, "text", name)
    _need(label_column, columns, "label", name)
    _need(rationale_column, columns, "rationale", name)
    skipped = {"empty text": 0, "non-text cell": 0, "no label": 0}
    rows = []
    cell_limit = max_cell_chars()
    for row_id, record in enumerate(records):
        for column in (text_column, label_column, rationale_column):
            if column is not None:
                _check_cell(record.get(column), column, row_id, name, cell_limit)
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
        try:
            rationale = parse_rationale(record.get(rationale_column)) if rationale_column else None
        except RecursionError:
            raise InputError(_too_deep(name, f" row {row_id + 1}")) from None
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


def parse_label_map(spec: str | None) -> dict[str, str] | None:
    """`5=positive,4=positive,1=negative` as {file label: model label}."""
    if spec is None or not spec.strip():
        return None
    mapping = {}
    for pair in spec.split(","):
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise InputError(
                f"--label-map takes FILE_LABEL=MODEL_LABEL pairs separated by commas (e.g. 5=positive,1=negative), "
                f"not '{_short(pair)}'."
            )
        mapping[source.strip()] = target.strip()
    return mapping


def map_labels(data: AuditData, mapping: dict[str, str] | None) -> AuditData:
    """The data with its labels renamed by `mapping`; a label the map leaves out is dropped (that text is
    audited without a label, and counted)."""
    if not mapping:
        return data
    rows, unmapped = [], 0
    for row in data.rows:
        label = mapping.get(row.label) if row.label is not None else None
        unmapped += row.label is not None and label is None
        rows.append(AuditRow(row.row_id, row.text, label, row.rationale))
    skipped = dict(data.skipped)
    if unmapped:
        skipped["label not in --label-map"] = unmapped
    return AuditData(
        data.source,
        rows,
        data.columns,
        data.text_column,
        data.label_column,
        data.rationale_column,
        skipped,
        data.total_rows,
    )


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
