"""Memory of an audit stays flat as the data set grows: what the engine and the summary keep per text."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from explainers.inference import gateway

from explainers.audit import engine
from explainers.audit.data import read_data
from explainers.audit.engine import run_audit
from explainers.audit.summary import _word_pass
from explainers.audit.work import AuditSettings

VOCAB = [f"w{i}" for i in range(40)]
METHODS = ["a", "b"]
LABELS = ["neg", "pos"]


def _results(path, n_texts: int, seed: int = 0):
    """A results file of n_texts texts × 2 methods, 12 words each from a 40-word vocabulary (mixed case)."""
    rng = np.random.default_rng(seed)
    rows = {"row_id": [], "method": [], "target_label": [], "words": [], "word_scores": [], "error": []}
    words_of, class_of = {}, {}
    for i in range(n_texts):
        words = [VOCAB[k].upper() if k % 7 == 0 and i % 3 == 0 else VOCAB[k] for k in rng.integers(0, 40, 12)]
        words_of[i], class_of[i] = words, LABELS[i % 2]
        for method in METHODS:
            rows["row_id"].append(i)
            rows["method"].append(method)
            rows["target_label"].append(class_of[i])
            rows["words"].append(words)
            rows["word_scores"].append(rng.normal(size=12).tolist())
            rows["error"].append(None)
    pq.write_table(pa.table(rows), path)
    texts = pd.DataFrame({"row_id": list(class_of), "label": list(class_of.values())}).set_index("row_id")
    texts["predicted"] = texts["label"]
    return texts, words_of, class_of


def _peak_of_word_pass(path, texts) -> tuple[int, dict]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        words, _, _ = _word_pass(path, METHODS, LABELS, texts)
        return tracemalloc.get_traced_memory()[1] - base, words
    finally:
        tracemalloc.stop()


def test_word_pass_counts_texts_per_word_and_keeps_no_per_word_row_ids(tmp_path):
    texts_w, _, _ = _results(tmp_path / "w.parquet", 50)
    _peak_of_word_pass(tmp_path / "w.parquet", texts_w)  # warm-up: first-use imports are not the pass's memory
    small, large = 1024, 3072  # both read in full batches of 1,024 records
    texts_s, _, _ = _results(tmp_path / "s.parquet", small)
    texts_l, words_of, class_of = _results(tmp_path / "l.parquet", large)
    peak_s, _ = _peak_of_word_pass(tmp_path / "s.parquet", texts_s)
    peak_l, words = _peak_of_word_pass(tmp_path / "l.parquet", texts_l)
    # Per text the pass keeps a few scalars (its disagreement, that its words were counted: ~340 bytes
    # here), not its words: a set of row ids per word (the old way) cost ~1,250 bytes a text here.
    per_text = (peak_l - peak_s) / (large - small)
    assert per_text < 700, f"{per_text:.0f} bytes a text"
    # texts per word and the share in the other label's texts, counted by hand
    checked = 0
    for label, entries in words["consensus"].items():
        for entry in entries:
            having = [i for i, ws in words_of.items() if entry["word"] in {w.lower() for w in ws}]
            assert entry["texts"] == len(having)
            other = sum(class_of[i] != label for i in having)
            assert entry["other_label_share"] == other / len(having)
            checked += 1
    assert checked >= 10


def test_local_engine_hands_freed_memory_back_after_every_chunk(tiny_bert, tiny_bert_dir, tmp_path, monkeypatch):
    """glibc keeps what each chunk's tensors freed (RSS grew ~1.7 MB a text on `sentiment`); the engine
    trims after writing each chunk, so what it holds is one chunk's worth."""
    path = tmp_path / "data.csv"
    pd.DataFrame({"text": [f"a fine film number {i}" for i in range(5)]}).to_csv(path, index=False)
    calls, progress = [], []
    monkeypatch.setattr(engine, "release_free_memory", lambda: calls.append(len(progress)))
    monkeypatch.setattr(engine, "map_large_blocks", lambda: calls.append("map"))
    monkeypatch.setattr(gateway, "MEMO_ENTRIES", 3)
    tiny_bert.gateway._memo.clear()
    result = run_audit(
        read_data(str(path), text_column="text"),
        AuditSettings(str(tiny_bert_dir), ("attention",)),
        tmp_path / "out",
        handle=tiny_bert,
        store_dir=tmp_path / "store",
        chunk_size=2,
        progress=lambda p: progress.append(p.done),
    )
    assert result.status == "complete"
    # large blocks mapped before the first chunk; a trim once per chunk (3 chunks of 2, 2, 1), each before
    # its progress report
    assert calls == ["map", 1, 2, 3]
    # the gateway's memo (one leave-one-out per text) keeps its bound however many texts go through
    assert len(tiny_bert.gateway._memo) == 3


MAPPED_AFTER_A_FREED_LARGER_BLOCK = """
import ctypes, sys
from explainers.serving.allocator import map_large_blocks
FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in FIELDS.split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "fixed":
    map_large_blocks()
libc.free(libc.malloc(4 << 20))  # what raises glibc's threshold when it is not fixed
before = libc.mallinfo2().hblks
block = libc.malloc(512 << 10)
print(libc.mallinfo2().hblks - before)
"""


def test_large_blocks_stay_mapped_after_larger_ones_were_freed():
    """glibc raises its mapping threshold past a freed 4 MB block, so that a 512 KB block then comes from the
    heap (glibc's count of mapped blocks does not move); once the threshold is fixed, it is mapped. Each in a
    fresh process: the setting is process-wide."""
    if not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("not glibc 2.33+")
    root = Path(__file__).resolve().parents[1]

    def mapped(how: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", MAPPED_AFTER_A_FREED_LARGER_BLOCK, how], cwd=root, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        return int(run.stdout.strip())

    assert mapped("glibc's default") == 0
    assert mapped("fixed") == 1


def test_exported_results_gather_small_chunks_into_few_row_groups(tmp_path):
    """Each chunk's few records used to become a row group of the exported file: 1,250 of them at 10,000
    texts, whose metadata the writer and every reader (CSV export, summary) kept in memory."""
    from explainers.audit.store import ROW_GROUP_ROWS, write_parquet_stream

    schema = pa.schema([("row_id", pa.int64()), ("text", pa.string())])
    batches = [
        pa.record_batch(
            [pa.array(range(k * 8, k * 8 + 8)), pa.array([f"t{i}" for i in range(k * 8, k * 8 + 8)])], schema=schema
        )
        for k in range(300)
    ]
    path = tmp_path / "results.parquet"
    assert write_parquet_stream(path, iter(batches), schema) == 2400
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == -(-2400 // ROW_GROUP_ROWS)
    assert pq.read_table(path).column("row_id").to_pylist() == list(range(2400))


def test_audit_command_restarts_itself_with_huge_pages(monkeypatch, tmp_path):
    """glibc reads its tunables only when a process starts, so `whybox audit` from the command line starts
    again with huge pages added to what the user set; the restarted one, other commands and callers in
    Python go on."""
    from explainers import cli

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    started = []

    def execve(path, args, env):
        started.append((path, args, env["GLIBC_TUNABLES"]))
        raise SystemExit(0)  # the new process takes over

    monkeypatch.setattr(cli.os, "execve", execve)
    missing = str(tmp_path / "missing.csv")
    monkeypatch.setattr(sys, "argv", ["whybox", "audit", "--data", missing, "--limit", "3"])
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    with pytest.raises(SystemExit):
        cli.main()
    assert started == [
        (
            sys.executable,
            [sys.executable, "-m", "explainers.cli", "audit", "--data", missing, "--limit", "3"],
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1",
        )
    ]
    monkeypatch.setenv("GLIBC_TUNABLES", started[0][2])  # the restarted process runs the audit
    assert cli.main() == cli.EXIT_BAD_INPUT  # the missing file, said as for any audit
    assert cli.main(["audit", "--data", missing]) == cli.EXIT_BAD_INPUT  # a caller in Python: no restart
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setattr(sys, "argv", ["whybox", "build-models", "--only", "no-such-model"])
    assert cli.main() == cli.EXIT_BAD_INPUT  # other commands do not restart
    assert len(started) == 1


def test_restarted_audit_command_runs(tmp_path):
    """The restart itself, in a real process: `python -m explainers.cli` finds the command again."""
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    run = subprocess.run(
        [sys.executable, "-m", "explainers.cli", "audit", "--data", str(tmp_path / "missing.csv")],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2, run.stderr
    assert "missing.csv" in run.stderr
