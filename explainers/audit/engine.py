"""Running an audit: plan what is missing from the store, compute it (local engine or Ray), export.

The local engine explains texts chunk by chunk and writes each chunk to the store as soon as it is
done, so memory holds one chunk of explanations at a time and a stopped or killed run loses at most
the chunk in flight. `should_stop` (a threading.Event or a callable) is checked between model batches.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from explainers.audit.data import AuditData
from explainers.audit.spreadsheet import neutralise_frame
from explainers.audit.store import ResultStore, write_parquet_stream
from explainers.audit.work import AuditSettings, Progress, ProgressFn, explain_items, map_label, model_revision
from explainers.errors import CancelledError, InputError
from explainers.inference.gateway import watching
from explainers.serving.allocator import map_large_blocks, release_free_memory

ENGINES = ("local", "ray")
MANIFEST = "audit.json"
RESULTS = "results.parquet"


@dataclass
class AuditResult:
    out_dir: Path
    status: str  # "complete" or "stopped"
    summary: dict | None
    texts: int
    computed: int  # texts computed in this run


def default_store() -> Path:
    from explainers.models.builtin import cache_dir

    return cache_dir() / "audit-store"


def _stopper(should_stop) -> Callable[[], bool]:
    if should_stop is None:
        return lambda: False
    if hasattr(should_stop, "is_set"):
        return should_stop.is_set
    return should_stop


def plan(data: AuditData, settings: AuditSettings, labels: list[str], store: ResultStore):
    """(items still to compute, keys of every record this audit needs, rows per key, texts already done)."""
    have = store.keys()
    todo, wanted, rows_of, reused = [], set(), {}, 0
    for row in data.rows:
        label = map_label(row.label, labels) if labels else row.label
        missing = []
        for method in settings.methods:
            key = settings.key(row.text, method, row.rationale)
            wanted.add(key)
            rows_of.setdefault(key, []).append((row.row_id, label))
            if key not in have:
                missing.append(method)
        if missing:
            todo.append(
                {"row_id": row.row_id, "text": row.text, "label": label, "rationale": row.rationale, "methods": missing}
            )
        else:
            reused += 1
    # a text that appears twice needs computing once
    unique = {}
    for item in todo:
        unique.setdefault((item["text"], item["rationale"]), item)
    return list(unique.values()), wanted, rows_of, len(data.rows) - len(unique)


def run_audit(
    data: AuditData,
    settings: AuditSettings,
    out_dir,
    *,
    handle=None,
    store_dir=None,
    engine: str = "local",
    chunk_size: int = 8,
    progress: ProgressFn | None = None,
    should_stop=None,
    resume: bool = False,
    ray_address: str | None = None,
    workers: int | None = None,
    on_rows: Callable[[int], None] | None = None,
    admit: Callable[[], contextlib.AbstractContextManager] | None = None,
) -> AuditResult:
    """Audit `data` with `settings`; write results, summary and report into `out_dir`. `on_rows(n)` after each
    model batch (local engine): progress within a chunk, and where a caller's own interrupt (Streamlit's Stop)
    can take effect; the chunk in flight is then dropped, and `resume` computes it again. `admit()` is entered
    around each chunk of the local engine (a server's run queue: the audit takes a slot per chunk and queues
    again between chunks, so that explains waiting behind it are not starved)."""
    if engine not in ENGINES:
        raise InputError(f"Unknown engine '{engine}': use {' or '.join(ENGINES)}.")
    from explainers.models.loading import load_model

    settings = settings.checked()
    out = Path(out_dir).expanduser()
    handle = handle or load_model(settings.model)
    if not handle.labels:  # the audit's tables are per label: a task with a fixed label set
        raise InputError(f"The audit explains classifiers; '{settings.model}' is a {handle.task.title.lower()}.")
    settings = _with_revision(settings, handle)
    manifest = {"settings": settings.to_dict(), "data": _describe(data), "labels": handle.labels}
    store = ResultStore(store_dir or default_store())
    todo, wanted, rows_of, done = plan(data, settings, handle.labels, store)  # labels checked before --out is claimed
    _claim(out, manifest, resume)
    with _marked_failed_on_error(out, manifest):
        stop = _stopper(should_stop)
        started = time.perf_counter()
        total = len(data.rows)
        report = progress or (lambda p: None)
        report(Progress(done, total, done, 0.0, "starting"))
        if engine == "ray" and todo:
            from explainers.audit.ray_engine import run_ray

            stopped = run_ray(
                settings,
                todo,
                store,
                chunk_size=chunk_size,
                done=done,
                total=total,
                progress=report,
                should_stop=stop,
                address=ray_address,
                workers=workers,
            )
        else:
            stopped = False
            map_large_blocks()  # with the trim after each chunk, what keeps memory flat (see allocator.py)
            for start in range(0, len(todo), chunk_size):
                chunk = todo[start : start + chunk_size]
                try:
                    # a stop asked mid-chunk ends its next model batch; the chunk is dropped, nothing half-written
                    with (admit or contextlib.nullcontext)(), watching(on_rows=on_rows, should_stop=stop):
                        if stop():
                            raise CancelledError("Stopped before it finished.")
                        records = explain_items(handle, settings, chunk)
                except CancelledError:
                    stopped = True
                    break
                store.write(records)
                # Each chunk's texts make tensors of new shapes; glibc keeps the freed blocks, and RSS grew
                # ~1.7 MB a text (1 GB at 400) with nothing of ours alive. Handing them back keeps it flat.
                release_free_memory()
                report(Progress(done + start + len(chunk), total, done, time.perf_counter() - started, records=records))
                del records
        computed = len(todo)
        if stopped:
            _write_manifest(out, manifest | {"status": "stopped"})
            return AuditResult(out, "stopped", None, total, computed)
        return finish(out, manifest, store, wanted, rows_of, computed)


def finish(
    out: Path, manifest: dict, store: ResultStore, wanted: set[str], rows_of: dict, computed: int
) -> AuditResult:
    """Export this audit's records from the store, then the summary and the report."""
    from explainers.audit.report import write_report
    from explainers.audit.summary import summarize, write_summary

    n = export(out, store, wanted, rows_of)
    settings = manifest["settings"]
    summary = summarize(out / RESULTS, manifest["labels"], settings["methods"], seed=settings["seed"])
    summary["settings"] = settings
    summary["data"] = manifest["data"]
    summary["records"] = n
    write_summary(out, summary)
    write_report(out, summary)
    _write_manifest(out, manifest | {"status": "complete"})
    return AuditResult(out, "complete", summary, manifest["data"]["rows"], computed)


def export(out: Path, store: ResultStore, wanted: set[str], rows_of: dict) -> int:
    """results.parquet and results.csv: one row per (data row, method), streamed from the store."""
    from explainers.audit.store import SCHEMA

    def batches():
        for batch in store.iter_batches(wanted=wanted):
            keys = batch.column("key").to_pylist()
            take, row_ids, labels = [], [], []
            for i, key in enumerate(keys):
                for row_id, label in rows_of[key]:  # a text that occurs twice in the data gets both rows
                    take.append(i)
                    row_ids.append(row_id)
                    labels.append(label)
            table = pa.Table.from_batches([batch]).take(pa.array(take, type=pa.int64()))
            table = table.set_column(table.schema.get_field_index("row_id"), "row_id", pa.array(row_ids, pa.int64()))
            table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.string()))
            yield from table.to_batches()

    n = write_parquet_stream(out / RESULTS, batches(), SCHEMA)
    _write_csv(out / RESULTS, out / "results.csv")
    return n


def _write_csv(parquet: Path, csv_path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = csv_path.with_name(f".{csv_path.name}.tmp")
    first = True
    for batch in pq.ParquetFile(parquet).iter_batches(batch_size=2048):
        frame = batch.to_pandas()
        for column in ("probs", "words", "word_scores"):
            frame[column] = [None if v is None else json.dumps(list(v), ensure_ascii=False) for v in frame[column]]
        frame = neutralise_frame(frame)  # a text starting with '=' must not run in a spreadsheet
        # RFC 4180's line ends: with them, a text holding a lone carriage return is quoted, not split
        frame.to_csv(tmp, mode="w" if first else "a", header=first, index=False, lineterminator="\r\n")
        first = False
    if first:  # no rows: still a CSV with its header
        import pandas as pd

        pd.DataFrame(columns=pq.read_schema(parquet).names).to_csv(tmp, index=False, lineterminator="\r\n")
    os.replace(tmp, csv_path)


def _describe(data: AuditData) -> dict:
    return {
        "source": data.source,
        "text_column": data.text_column,
        "label_column": data.label_column,
        "rationale_column": data.rationale_column,
        "rows": len(data.rows),
        "file_rows": data.total_rows,
        "skipped": data.skipped,
    }


@contextlib.contextmanager
def _marked_failed_on_error(out: Path, manifest: dict):
    """A run that fails leaves nothing that blocks the retry (a stop returns normally: it stays resumable);
    what it computed is in the store, so the retry reuses it."""
    try:
        yield
    except BaseException:
        _write_manifest(out, manifest | {"status": "failed"})
        raise


def _claim(out: Path, manifest: dict, resume: bool) -> None:
    """Refuse to mix two different audits in one folder; --resume continues the same one."""
    path = out / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        same = old.get("settings") == manifest["settings"] and old.get("data") == manifest["data"]
        if old.get("status") == "failed":  # a run that failed holds nothing worth keeping: start afresh
            pass
        elif not resume:
            raise InputError(f"'{out}' already holds an audit: pass --resume to continue it, or choose another --out.")
        elif not same:
            raise InputError(
                f"'{out}' holds an audit with other settings or data: --resume continues only the same "
                "audit; choose another --out."
            )
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, manifest | {"status": "running"})


def _write_manifest(out: Path, manifest: dict) -> None:
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False))
    os.replace(tmp, out / MANIFEST)


def load_finished(out_dir) -> dict | None:
    """The summary of a finished audit in `out_dir`, or None (nothing recomputed)."""
    from explainers.audit.summary import SUMMARY

    out = Path(out_dir)
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        if manifest.get("status") != "complete":
            return None
        return json.loads((out / SUMMARY).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _with_revision(settings: AuditSettings, handle) -> AuditSettings:
    """The settings with the model's revision, which every record's key holds."""
    revision = settings.revision or model_revision(settings.model, handle)
    return AuditSettings(**(settings.to_dict() | {"methods": settings.methods, "revision": revision}))


def estimate_cost(handle, data: AuditData, settings: AuditSettings, store: ResultStore | None = None) -> dict:
    """Model rows the audit will run at most (methods + faithfulness checks; rows that repeat, as LIME's
    samples of a short text do, are scored once), and the seconds they should take: what the Explain page
    estimates for each text (explainers/methods: the rates measured on this model and device), summed.
    Records already in `store` cost nothing: "stored" counts the texts it holds whole."""
    from explainers.methods import METHODS, estimated_seconds
    from explainers.metrics.faithfulness import AOPC_BINS, CURVE_STEPS

    settings = _with_revision(settings.checked(), handle)
    have = store.keys() if store is not None else set()
    texts = [row.text for row in data.rows]
    lengths = [len(ids) for ids in handle.tokenizer(texts, truncation=True, max_length=handle.max_tokens)["input_ids"]]
    checks_per_method = 1 + 2 * (len(AOPC_BINS) + 1) + 2 * (CURVE_STEPS + 1)  # upper bound (duplicates are scored once)
    per_row_token = handle.gateway.seconds_per_row_token()
    rows, seconds, stored = 0, 0.0, 0
    for row, n in zip(data.rows, lengths):
        todo = [m for m in settings.methods if settings.key(row.text, m, row.rationale) not in have]
        if not todo:
            stored += 1
            continue
        rows += n  # one leave-one-out pass per text, shared by its methods
        seconds += n * n * per_row_token
        for method in todo:
            params = settings.params.get(method)
            rows += METHODS[method].estimate(n, params).rows + checks_per_method
            seconds += estimated_seconds(handle, method, n, params) + checks_per_method * n * per_row_token
    return {"texts": len(texts), "stored": stored, "rows": int(rows), "seconds": seconds}
