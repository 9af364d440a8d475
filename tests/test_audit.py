"""Dataset audit: readers, the results store (resume, reuse), the local and Ray engines, the summary's
numbers against independent computations, the report and the CLI."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from explainers.metrics.faithfulness import Report, evaluate_many, rank_explanations, spearman

from benchmarks.run import ForwardCounter  # the benchmarks' forward hook: what went through the model
from explainers.audit.data import parse_rationale, read_data
from explainers.audit.engine import estimate_cost, load_finished, run_audit
from explainers.audit.store import ResultStore
from explainers.audit.summary import bootstrap_mean, reliability
from explainers.audit.work import AuditSettings, map_label, rationale_words
from explainers.errors import InputError
from explainers.methods import explain

TEXTS = [
    ("a gripping , funny and beautifully acted film .", "positive"),
    ("the plot is thin and the jokes fall flat .", "negative"),
    ("one of the best movies of the year , full of heart .", "positive"),
    ("dull , lifeless and far too long .", "negative"),
    ("<script>alert(1)</script> & a film", "1"),
]
METHODS = ("occlusion", "lime")
PARAMS = {"lime": {"n_samples": 30}}


def _csv(tmp_path, rows=TEXTS, name="data.csv"):
    path = tmp_path / name
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


def _settings(model, **kw):
    return AuditSettings(str(model), METHODS, PARAMS, **kw)


# ---- reading ------------------------------------------------------------------------------------
def test_missing_column_lists_the_columns_found(tmp_path):
    with pytest.raises(InputError, match=r"no text column 'review'.*'text', 'label'"):
        read_data(str(_csv(tmp_path)), text_column="review")
    with pytest.raises(InputError, match=r"no label column 'gold'"):
        read_data(str(_csv(tmp_path)), label_column="gold")


def test_empty_and_non_text_cells_are_skipped_and_counted(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [
        {"text": "fine film", "y": 1},
        {"text": "", "y": 0},
        {"text": None, "y": 0},
        {"text": 42, "y": 1},
        {"text": ["a list"], "y": 1},
        {"text": "   ", "y": 1},
        {"text": "no label here"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    data = read_data(str(path), label_column="y")
    assert [r.text for r in data.rows] == ["fine film", "no label here"]
    assert [r.row_id for r in data.rows] == [0, 6]
    assert [r.label for r in data.rows] == ["1", None]
    assert data.skipped == {"empty text": 3, "non-text cell": 2, "no label": 1}


def test_unreadable_files_get_one_clear_line(tmp_path):
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("text\ncaf\xe9 cr\xe8me\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_data(str(bad))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(InputError, match="line 2 is not valid JSON"):
        read_data(str(broken))
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_data(str(fake))
    with pytest.raises(InputError, match="over the limit of 0 MB"):
        read_data(str(_csv(tmp_path)), size_limit=10)
    with pytest.raises(InputError, match="No data file"):
        read_data(str(tmp_path / "missing.csv"))
    with pytest.raises(InputError, match="unknown file type"):
        read_data(str(_csv(tmp_path, name="data.xlsx")))


def test_parquet_and_limit(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"t": [t for t, _ in TEXTS], "r": [["film"], None, ["best", "year"], None, None]}).to_parquet(path)
    data = read_data(str(path), text_column="t", rationale_column="r", limit=3)
    assert [r.text for r in data.rows] == [t for t, _ in TEXTS[:3]]
    assert [r.rationale for r in data.rows] == [("film",), None, ("best", "year")]


def test_builtin_heldout_is_the_models_heldout_split():
    from explainers.models.builtin import LABELS, sentiment_splits

    train, heldout = sentiment_splits()
    data = read_data("builtin:rt-heldout", label_column=None)
    assert sorted((r.text, r.label) for r in data.rows) == sorted((t, LABELS[y]) for t, y in heldout)
    assert len(data.rows) == 1000 and sum(r.label == "positive" for r in data.rows) == 500
    # labels alternate, so that a --limit audits both in equal parts
    first = read_data("builtin:rt-heldout", limit=10)
    assert [r.label for r in first.rows].count("positive") == 5 and first.rows[0].label != first.rows[1].label
    assert not {r.text for r in data.rows} & {t for t, _ in train} - {t for t, _ in heldout}
    with pytest.raises(InputError, match="Unknown built-in data set"):
        read_data("builtin:imdb")


def test_rationales_and_labels():
    assert parse_rationale("funny, film|best") == ("funny", "film", "best")
    assert parse_rationale("[1, 3]") == (1, 3)
    assert parse_rationale(None) is None
    words = ["A", "funny", "film", "."]
    assert rationale_words(words, ("FUNNY", "film.")) == {1, 2}
    assert rationale_words(words, (0, 9)) == {0}
    assert map_label("1", ["negative", "positive"]) == "positive"
    assert map_label("Negative", ["negative", "positive"]) == "negative"
    with pytest.raises(InputError, match="not one of the model's labels"):
        map_label("neutral", ["negative", "positive"])


# ---- statistics ------------------------------------------------------------------------------------
def test_bootstrap_interval_matches_scipy():
    from scipy.stats import bootstrap

    values = np.random.default_rng(3).beta(2, 5, size=60)
    ours = bootstrap_mean(values, seed=0, n_boot=4000)
    ref = bootstrap((values,), np.mean, n_resamples=20000, method="percentile", rng=1).confidence_interval
    assert ours["mean"] == pytest.approx(values.mean())
    assert ours["low"] == pytest.approx(ref.low, abs=0.006) and ours["high"] == pytest.approx(ref.high, abs=0.006)
    assert bootstrap_mean(values, seed=5) == bootstrap_mean(values, seed=5)  # seeded
    assert bootstrap_mean([np.nan])["mean"] is None


def test_reliability_by_hand():
    curve = reliability([0.55, 0.58, 0.95, 0.99, 0.91], [1, 0, 1, 1, 0], bins=10)
    assert [(b["low"], b["count"]) for b in curve["bins"]] == [(0.5, 2), (0.9, 3)]
    assert curve["bins"][0]["accuracy"] == 0.5 and curve["bins"][0]["confidence"] == pytest.approx(0.565)
    assert curve["bins"][1]["accuracy"] == pytest.approx(2 / 3)
    expected = 2 / 5 * abs(0.5 - 0.565) + 3 / 5 * abs(2 / 3 - np.mean([0.95, 0.99, 0.91]))
    assert curve["ece"] == pytest.approx(expected)


# ---- the local engine --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def audited(tiny_bert, tiny_bert_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audit")
    data = read_data(str(_csv(tmp)), label_column="label")
    result = run_audit(
        data, _settings(tiny_bert_dir), tmp / "out", handle=tiny_bert, store_dir=tmp / "store", chunk_size=2
    )
    return data, result, tmp


def test_records_match_the_single_text_api(audited, tiny_bert):
    data, result, _ = audited
    table = pd.read_parquet(result.out_dir / "results.parquet")
    assert len(table) == len(TEXTS) * len(METHODS)
    assert sorted(zip(table.row_id, table.method)) == sorted((i, m) for i in range(len(TEXTS)) for m in METHODS)
    for text, _ in TEXTS[:2]:
        exps = [explain(tiny_bert, text, m, seed=0, **PARAMS.get(m, {})) for m in METHODS]
        reports = evaluate_many(tiny_bert, exps, "delete")
        for exp, report in zip(exps, reports):
            row = table[(table.text == text) & (table.method == exp.method)].iloc[0]
            np.testing.assert_allclose(row.word_scores, exp.word_scores, atol=1e-6)
            assert json.loads(row.params)["params"] == exp.params  # the parameters chosen by length too
            assert row.target_label == exp.target.label
            for name, value in report.values.items():
                assert (row[name] != row[name] and value != value) or row[name] == pytest.approx(value, abs=1e-6)
        probs = tiny_bert.predict_proba([text])[0]
        assert row.confidence == pytest.approx(probs.max(), abs=1e-6)


def test_summary_numbers_against_independent_computations(audited):
    from sklearn.metrics import accuracy_score, confusion_matrix

    _, result, _ = audited
    s = result.summary
    table = pd.read_parquet(result.out_dir / "results.parquet")
    texts = table.drop_duplicates("row_id").sort_values("row_id")
    gold = ["positive", "negative", "positive", "negative", "positive"]  # "1" maps to the model's label 1
    assert list(texts.label) == gold
    assert s["prediction"]["accuracy"] == pytest.approx(accuracy_score(gold, texts.predicted))
    assert (
        s["prediction"]["confusion"]["matrix"]
        == confusion_matrix(gold, texts.predicted, labels=["negative", "positive"]).tolist()
    )
    for method in METHODS:
        values = table[table.method == method]["comprehensiveness"].to_numpy(dtype=float)
        assert s["metrics"]["comprehensiveness"]["methods"][method]["mean"] == pytest.approx(np.nanmean(values))
    # ranking: the same per-text ranks as rank_explanations, averaged by hand
    per_text = []
    for _, group in table.groupby("row_id"):
        reports = [Report(r["method"], "", 0.0, {m: r[m] for m in s["metrics"]}) for r in group.to_dict("records")]
        per_text.append(dict(rank_explanations(reports)))
    for entry in s["ranking"]["order"]:
        assert entry["mean_rank"] == pytest.approx(np.mean([r[entry["method"]] for r in per_text]))
        assert entry["low"] <= entry["mean_rank"] <= entry["high"]
    best = [min(r, key=r.get) for r in per_text if len(set(r.values())) == 2]
    ties = sum(len(set(r.values())) == 1 for r in per_text)
    for method in METHODS:
        expected = (best.count(method) + ties / 2) / len(per_text)
        assert s["ranking"]["most_faithful_share"][method] == pytest.approx(expected)
    # agreement: Spearman over word scores, averaged over texts
    rhos = [
        spearman(
            np.array(g[g.method == "occlusion"].word_scores.iloc[0]),
            np.array(g[g.method == "lime"].word_scores.iloc[0]),
        )
        for _, g in table.groupby("row_id")
    ]
    assert s["agreement"]["spearman"][0][1] == pytest.approx(np.nanmean(rhos))
    # words: mean attribution per (method, target label, lower-cased word)
    rows = [
        (r.method, r.target_label, w.lower(), sc) for r in table.itertuples() for w, sc in zip(r.words, r.word_scores)
    ]
    words = pd.DataFrame(rows, columns=["method", "label", "word", "score"])
    for label, entries in s["words"]["per_method"]["occlusion"].items():
        for e in entries[:3]:
            mine = words[(words.method == "occlusion") & (words.label == label) & (words.word == e["word"])].score
            assert e["mean"] == pytest.approx(mine.mean()) and e["count"] == len(mine)
            assert e["std"] == pytest.approx(mine.std(ddof=0), abs=1e-9)


def test_outputs_are_strict_json_csv_and_escaped_html(audited):
    _, result, _ = audited
    out = result.out_dir

    def refuse(constant):
        raise AssertionError(f"non-strict JSON constant {constant}")

    summary = json.loads((out / "summary.json").read_text(), parse_constant=refuse)
    assert summary["texts"] == len(TEXTS)
    assert load_finished(out) == summary
    csv = pd.read_csv(out / "results.csv")
    assert len(csv) == len(TEXTS) * len(METHODS) and json.loads(csv.words[0])
    html = (out / "report.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; a film" in html
    assert "http" not in html.replace("http-equiv", "")  # self-contained: nothing fetched


def test_the_model_card_reads_the_audit_summary_whybox_writes(audited, tiny_bert):
    from explainers.whatif.model_card import build_model_card

    _, result, _ = audited
    s = result.summary
    card = build_model_card(tiny_bert, audit_dir=result.out_dir, probe_texts=[])
    items = [p.text for part in card.sections.values() for p in part if hasattr(p, "text")]
    tables = {p.caption: p.rows for part in card.sections.values() for p in part if hasattr(p, "rows")}
    assert any(i.startswith(f"Audit accuracy: {s['prediction']['accuracy']:.4f}") for i in items)
    assert any(
        i.startswith(f"Most faithful explanation method on this model (audit): {s['ranking']['winner']}") for i in items
    )
    ranking = next(rows for caption, rows in tables.items() if caption.startswith("Audit: faithfulness ranking"))
    assert [row[:2] for row in ranking] == [[r["method"], r["mean_rank"]] for r in s["ranking"]["order"]]
    words = dict(next(rows for caption, rows in tables.items() if caption.startswith("Audit: words driving")))
    for label, entries in s["words"]["consensus"].items():
        assert words[label] == ", ".join(e["word"] for e in entries[:10])
    data = next(i for i in items if i.startswith("Audit data: "))
    assert data.startswith(f"Audit data: {s['data']['source']}, {len(TEXTS)} texts")
    skipped = sum(s["data"]["skipped"].values()) if s["data"]["skipped"] else 0
    assert ("rows skipped" in data) == bool(skipped) and "{" not in data  # a count, not the reasons' dict


def test_stop_resume_and_reuse_without_duplicates(tiny_bert, tiny_bert_dir, tmp_path):
    data = read_data(str(_csv(tmp_path)), label_column="label")
    settings = _settings(tiny_bert_dir, seed=1)
    stop = threading.Event()
    first = run_audit(
        data,
        settings,
        tmp_path / "out",
        handle=tiny_bert,
        store_dir=tmp_path / "store",
        chunk_size=2,
        should_stop=stop,
        progress=lambda p: p.done >= 2 and stop.set(),
    )
    assert first.status == "stopped" and load_finished(first.out_dir) is None
    store = ResultStore(tmp_path / "store")
    assert len(store.keys()) == 2 * len(METHODS)  # the finished chunk is kept
    with pytest.raises(InputError, match="pass --resume"):
        run_audit(data, settings, tmp_path / "out", handle=tiny_bert, store_dir=tmp_path / "store")
    second = run_audit(data, settings, tmp_path / "out", handle=tiny_bert, store_dir=tmp_path / "store", resume=True)
    assert second.status == "complete" and second.computed == len(TEXTS) - 2
    raw = [k for part in store.part_files() for k in pq.read_table(part, columns=["key"]).column("key").to_pylist()]
    assert len(raw) == len(set(raw)) == len(TEXTS) * len(METHODS)
    # another audit over a subset reuses the stored rows: nothing computed
    subset = read_data(str(_csv(tmp_path)), label_column="label", limit=3)
    third = run_audit(subset, settings, tmp_path / "other", handle=tiny_bert, store_dir=tmp_path / "store")
    assert third.computed == 0 and third.summary["texts"] == 3
    with pytest.raises(InputError, match="other settings"):
        run_audit(
            data,
            _settings(tiny_bert_dir, seed=2),
            tmp_path / "out",
            handle=tiny_bert,
            store_dir=tmp_path / "store",
            resume=True,
        )


class _Interrupt(Exception):
    """Stands for Streamlit's StopException, which a page's redraw raises when Stop was pressed."""


def test_interrupt_between_model_batches_drops_the_chunk_in_flight_and_resume_completes(
    tiny_bert, tiny_bert_dir, tmp_path
):
    """The Audit page stops within a model batch: `on_rows` runs after each batch (the page redraws there,
    where Streamlit raises its stop). The interrupted chunk leaves nothing half-written; resume completes."""
    data = read_data(str(_csv(tmp_path)), label_column="label")
    settings = _settings(tiny_bert_dir, seed=3)
    common = dict(handle=tiny_bert, store_dir=tmp_path / "store", chunk_size=2)
    reported, finished_chunks = [], []

    def on_rows(n):
        reported.append(n)
        if finished_chunks:  # in the second chunk, after a model batch
            raise _Interrupt

    with ForwardCounter(tiny_bert.model) as forwarded:
        with pytest.raises(_Interrupt):
            run_audit(
                data,
                settings,
                tmp_path / "out",
                on_rows=on_rows,
                progress=lambda p: p.records and finished_chunks.append(p),
                **common,
            )
    assert 0 < sum(reported) <= forwarded.rows  # batches report their rows (a text's own prediction does not)
    assert len(ResultStore(tmp_path / "store").keys()) == 2 * len(METHODS)  # the first chunk only
    again = run_audit(data, settings, tmp_path / "out", resume=True, **common)
    assert again.status == "complete" and again.computed == len(TEXTS) - 2
    keys = pd.read_parquet(again.out_dir / "results.parquet")["key"]
    assert len(keys) == len(set(keys)) == len(TEXTS) * len(METHODS)


def test_rationale_column_gives_plausibility(tiny_bert, tiny_bert_dir, tmp_path):
    from explainers.metrics.faithfulness import plausibility

    path = tmp_path / "r.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"text": t, "why": w})
            for t, w in [("a gripping , funny film .", "gripping funny"), ("dull and long .", [0])]
        )
    )
    data = read_data(str(path), rationale_column="why")
    result = run_audit(
        data,
        AuditSettings(str(tiny_bert_dir), ("occlusion",)),
        tmp_path / "out",
        handle=tiny_bert,
        store_dir=tmp_path / "store",
    )
    exp = explain(tiny_bert, "a gripping , funny film .", "occlusion")
    expected = plausibility(exp, {1, 3})
    row = pd.read_parquet(result.out_dir / "results.parquet").sort_values("row_id").iloc[0]
    assert row.token_f1 == pytest.approx(expected["token_f1"]) and row.iou == pytest.approx(expected["iou"])
    table = pd.read_parquet(result.out_dir / "results.parquet")
    assert result.summary["plausibility"]["iou"]["methods"]["occlusion"]["mean"] == pytest.approx(table.iou.mean())


def test_causal_lm_is_refused(tiny_gpt2, tiny_gpt2_dir, tmp_path):
    data = read_data(str(_csv(tmp_path)))
    with pytest.raises(InputError, match="explains classifiers"):
        run_audit(
            data,
            AuditSettings(str(tiny_gpt2_dir), ("occlusion",)),
            tmp_path / "o",
            handle=tiny_gpt2,
            store_dir=tmp_path / "s",
        )


# ---- CLI ------------------------------------------------------------------------------------------------
def test_cli_audit_and_its_errors(tiny_bert_dir, tmp_path, capsys):
    from explainers.cli import main

    data = _csv(tmp_path, TEXTS[:2])
    common = [
        "audit",
        "--model",
        str(tiny_bert_dir),
        "--data",
        str(data),
        "--method",
        "occlusion",
        "--out",
        str(tmp_path / "out"),
        "--store",
        str(tmp_path / "store"),
    ]
    assert main(common + ["--label-column", "label"]) == 0
    assert (tmp_path / "out" / "report.html").is_file()
    accuracy = json.loads((tmp_path / "out" / "summary.json").read_text())["prediction"]["accuracy"]
    assert f"accuracy so far {accuracy:.2f}" in capsys.readouterr().err  # the progress line, as texts finish
    assert main(common) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(common[:-4] + ["--text-column", "review"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("whybox: ") and "'text', 'label'" in err[-1] and "Traceback" not in "".join(err)
    assert main(common + ["--param", "lime.n_samples=5"]) == 2


# ---- while it runs -------------------------------------------------------------------------------------
def test_progress_hands_over_each_record_once_and_the_running_means_are_the_results(tiny_bert, tiny_bert_dir, tmp_path):
    """The Audit page draws what the texts computed so far say from the records each step hands over: every
    record once, and at the end the running means are the means of the results file (pandas, independently)."""
    from components.audit_view import running_means_chart
    from explainers.audit.summary import RunningMeans

    data = read_data(str(_csv(tmp_path)), label_column="label")
    running, keys, seen_texts = RunningMeans(METHODS), [], []

    def progress(p):
        keys.extend(r["key"] for r in p.records)
        running.add(p.records)
        seen_texts.append(running.texts)

    result = run_audit(
        data,
        _settings(tiny_bert_dir),
        tmp_path / "out",
        handle=tiny_bert,
        store_dir=tmp_path / "store",
        chunk_size=2,
        progress=progress,
    )
    frame = pd.read_parquet(result.out_dir / "results.parquet")
    assert sorted(keys) == sorted(frame["key"]) and len(set(keys)) == len(keys)
    assert seen_texts[-1] == len(data.rows) and seen_texts == sorted(seen_texts)  # grows chunk by chunk
    assert running.metrics == [m for m in result.summary["metrics"] if result.summary["metrics"][m]["faithfulness"]]
    ok = frame[frame["error"].isna()]
    for method in METHODS:
        for metric in running.metrics:
            expected = ok.loc[ok["method"] == method, metric].mean()
            assert running.mean(method, metric) == pytest.approx(expected, rel=1e-9), (method, metric)
    assert running.accuracy == pytest.approx(result.summary["prediction"]["accuracy"])
    chart = running_means_chart(running)
    assert [list(trace.x) for trace in chart.data] == [
        [running.mean(m, metric) for metric in running.metrics] for m in METHODS
    ]


# ---- the estimate before starting ---------------------------------------------------------------------
def test_estimate_bounds_the_rows_run_and_prices_them_at_the_measured_rates(tiny_bert, tiny_bert_dir, tmp_path):
    """The page says "at most N model rows, about T": N must hold against the rows a real audit runs (counted
    by a hook on the model), and T is each row's tokens at the rate the gateway measured for its method,
    as the Explain page prices one text (it once timed one small batch instead: 7 min for a 1-2 min audit)."""
    from explainers.metrics.faithfulness import AOPC_BINS, CURVE_STEPS

    from explainers.methods import get_method

    data = read_data(str(_csv(tmp_path)), label_column="label")
    settings = AuditSettings(str(tiny_bert_dir), ("integrated_gradients", "occlusion", "lime"), PARAMS)
    rates = {"forward": 1e-5, "integrated_gradients": 4e-5, "lime": 2e-5}
    measured = tiny_bert.gateway._seconds_per_row_token
    tiny_bert.gateway._seconds_per_row_token = dict(rates)
    try:
        cost = estimate_cost(tiny_bert, data, settings)
    finally:
        tiny_bert.gateway._seconds_per_row_token = measured  # the fixture's model serves other tests

    lengths = [len(tiny_bert.tokenizer(r.text, truncation=True)["input_ids"]) for r in data.rows]
    checks = 1 + 2 * (len(AOPC_BINS) + 1) + 2 * (CURVE_STEPS + 1)
    expected = 0.0
    for n in lengths:
        expected += n * n * rates["forward"]
        for method in settings.methods:
            spec = get_method(method)
            rows = spec.cost(n, spec.validate(PARAMS.get(method, {}))).rows
            expected += rows * n * rates.get(method, rates["forward"]) + checks * n * rates["forward"]
    assert cost["texts"] == len(data.rows)
    assert cost["seconds"] == pytest.approx(expected, rel=1e-9)

    with ForwardCounter(tiny_bert.model) as ran:
        run_audit(data, settings, tmp_path / "out", handle=tiny_bert, store_dir=tmp_path / "store")
    assert 0 < ran.rows <= cost["rows"]
    # what the store holds costs nothing: a second audit of the same texts has nothing left to compute
    again = estimate_cost(tiny_bert, data, settings, ResultStore(tmp_path / "store"))
    assert (again["stored"], again["rows"], again["seconds"]) == (len(data.rows), 0, 0.0)


# ---- Ray --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    from explainers.audit.ray_engine import _connect

    started = _connect(None, 2)
    yield ray
    if started:
        ray.shutdown()


def test_ray_workers_start_with_huge_pages(local_ray):
    """As `whybox audit` restarts itself with glibc's huge pages, a Ray started for the run gives them to
    its workers (explainers/allocator.py)."""
    import os
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")

    @local_ray.remote
    def tunables() -> str:
        return os.environ.get("GLIBC_TUNABLES", "")

    assert "glibc.malloc.hugetlb=1" in local_ray.get(tunables.remote()).split(":")


def test_ray_gives_the_local_results(local_ray, audited, tiny_bert_dir, tmp_path):
    data, local, _ = audited
    result = run_audit(
        data,
        _settings(tiny_bert_dir),
        tmp_path / "out",
        store_dir=tmp_path / "store",
        engine="ray",
        chunk_size=2,
        workers=2,
    )
    a = pd.read_parquet(local.out_dir / "results.parquet").set_index("key").sort_index()
    b = pd.read_parquet(result.out_dir / "results.parquet").set_index("key").sort_index()
    assert list(a.index) == list(b.index)
    for column in ("confidence", "comprehensiveness", "sufficiency", "deletion_auc", "kendall_tau_loo"):
        np.testing.assert_allclose(a[column].to_numpy(float), b[column].to_numpy(float), atol=1e-6)
    for x, y in zip(a.word_scores, b.word_scores):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_ray_worker_killed_mid_run_is_retried(local_ray, tiny_bert_dir, tmp_path):
    import os
    import signal

    import psutil

    rows = [(f"{t} number {i}", y) for i in range(4) for t, y in TEXTS[:4]]
    data = read_data(str(_csv(tmp_path, rows)), label_column="label")
    killed = []

    def kill_a_worker(p):
        if p.done and not killed:
            workers = [
                q
                for q in psutil.process_iter(["cmdline", "status"])
                if "MapWorker(MapBatches(_AuditWorker" in " ".join(q.info["cmdline"] or [])
                and q.info["status"] != psutil.STATUS_ZOMBIE
            ]
            if workers:
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)

    result = run_audit(
        data,
        AuditSettings(str(tiny_bert_dir), ("occlusion", "lime"), {"lime": {"n_samples": 200}}),
        tmp_path / "out",
        store_dir=tmp_path / "store",
        engine="ray",
        chunk_size=1,
        workers=2,
        progress=kill_a_worker,
    )
    assert killed, "no Ray worker process was found to kill"
    assert result.status == "complete"
    raw = [
        k
        for part in ResultStore(tmp_path / "store").part_files()
        for k in pq.read_table(part, columns=["key"]).column("key").to_pylist()
    ]
    assert len(raw) == len(set(raw)) == len(rows) * 2
    table = pd.read_parquet(result.out_dir / "results.parquet")
    assert sorted(table.row_id.unique()) == list(range(len(rows)))
