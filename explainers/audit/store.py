"""The results store: Parquet part files, one record per (model, revision, text, method, params, seed,
target, rationale), written in chunks as they finish.

A part is written to a temporary name and renamed, so a killed run leaves whole parts only; reading
skips keys already seen, so two runs that wrote the same record never show it twice. Any audit whose
records share keys with earlier ones reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from explainers.metrics.faithfulness import METRICS, PLAUSIBILITY

METRIC_COLUMNS = list(METRICS)
PLAUSIBILITY_COLUMNS = list(PLAUSIBILITY)

SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("model", pa.string()),
        ("revision", pa.string()),
        ("row_id", pa.int64()),
        ("text", pa.string()),
        ("label", pa.string()),  # the gold label, as the model names it (null when the data has none)
        ("rationale", pa.string()),  # JSON list of marked words / word indices
        ("method", pa.string()),
        ("params", pa.string()),  # JSON: the method's validated parameters and the perturbation mode
        ("seed", pa.int64()),
        ("target", pa.string()),  # what was asked: "" = the predicted label
        ("predicted", pa.string()),
        ("confidence", pa.float64()),  # probability of the predicted label
        ("probs", pa.list_(pa.float64())),
        ("target_label", pa.string()),
        ("target_prob", pa.float64()),
        ("words", pa.list_(pa.string())),
        ("word_scores", pa.list_(pa.float64())),
        *[(name, pa.float64()) for name in METRIC_COLUMNS],
        *[(name, pa.float64()) for name in PLAUSIBILITY_COLUMNS],
        ("seconds", pa.float64()),
        ("error", pa.string()),  # why this text could not be explained with this method (then no scores)
    ]
)
COLUMNS = SCHEMA.names


def record_key(
    model: str, revision: str, text: str, method: str, params: str, seed: int, target: str, rationale: str | None
) -> str:
    blob = json.dumps([model, revision, text, method, params, seed, target, rationale or ""], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def to_table(records: list[dict]) -> pa.Table:
    clean = [{name: _null_nan(record.get(name)) for name in COLUMNS} for record in records]
    return pa.Table.from_pylist(clean, schema=SCHEMA)


def _null_nan(value):
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, list):
        return [None if isinstance(v, float) and v != v else v for v in value]
    return value


class ResultStore:
    """A folder of Parquet parts. `write` adds one part; `keys` and `iter_batches` read them all."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        self.parts = self.root / "parts"
        self.parts.mkdir(parents=True, exist_ok=True)

    def part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet"))

    def write(self, records: list[dict]) -> Path | None:
        if not records:
            return None
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.parts / f".{name}.tmp"
        pq.write_table(to_table(records), tmp, compression="zstd")
        os.replace(tmp, self.parts / name)  # atomic: readers see a whole part or none
        return self.parts / name

    def keys(self) -> set[str]:
        keys: set[str] = set()
        for part in self.part_files():
            keys.update(pq.read_table(part, columns=["key"]).column("key").to_pylist())
        return keys

    def iter_batches(
        self, columns: list[str] | None = None, wanted: set[str] | None = None, batch_size: int = 2048
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of the stored records (only `wanted` keys when given), each key once."""
        seen: set[str] = set()
        read = None if columns is None else list(dict.fromkeys(["key", *columns]))
        for part in self.part_files():
            for batch in pq.ParquetFile(part).iter_batches(batch_size=batch_size, columns=read):
                keys = batch.column("key").to_pylist()
                keep = [i for i, k in enumerate(keys) if (wanted is None or k in wanted) and k not in seen]
                seen.update(keys[i] for i in keep)
                if keep:
                    yield batch.take(pa.array(keep, type=pa.int64())) if len(keep) < len(keys) else batch


ROW_GROUP_ROWS = 2048  # records per row group of an exported file


def write_parquet_stream(path: Path, batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> int:
    """Write batches to one Parquet file without holding them all; returns the number of rows.
    Small batches (a chunk's few records) are gathered into row groups of ROW_GROUP_ROWS: every row group
    adds metadata that the writer and every reader keep in memory, which grew with the audit's size when
    each chunk was a row group of its own."""
    rows = 0
    tmp = path.with_name(f".{path.name}.tmp")
    pending: list[pa.RecordBatch] = []
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in batches:
            pending.append(batch)
            rows += batch.num_rows
            if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending))
                pending = []
        if pending:
            writer.write_table(pa.Table.from_batches(pending))
    os.replace(tmp, path)
    return rows
