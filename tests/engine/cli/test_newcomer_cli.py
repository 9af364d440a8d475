"""The README followed literally by a newcomer (issue 20, point 18): labels that are not the model's, a
failed audit's folder, what `evaluate` prints, help on every flag, progress for the model card."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from explainers.cli.commands import build_parser, main

STARS = [
    ("a gripping , funny and beautifully acted film .", 5),
    ("the plot is thin and the jokes fall flat .", 1),
    ("one of the best movies of the year , full of heart .", 4),
    ("dull , lifeless and far too long .", 2),
    ("an ordinary film .", 3),
]


def _audit(tiny_bert_dir, tmp_path, data, *extra):
    return [
        "audit",
        "--model",
        str(tiny_bert_dir),
        "--data",
        str(data),
        "--text-column",
        "review",
        "--label-column",
        "stars",
        "--method",
        "occlusion",
        "--out",
        str(tmp_path / "out"),
        "--store",
        str(tmp_path / "store"),
        *extra,
    ]


def test_star_labels_say_how_to_map_them_and_the_failed_run_does_not_block_the_retry(tiny_bert_dir, tmp_path, capsys):
    data = tmp_path / "reviews.csv"
    pd.DataFrame(STARS, columns=["review", "stars"]).to_csv(data, index=False)
    assert main(_audit(tiny_bert_dir, tmp_path, data)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "Label '5' is not one of the model's labels" in err and "--label-map 5=positive" in err
    assert not (tmp_path / "out" / "audit.json").exists()  # nothing claimed --out
    mapping = "5=positive,4=positive,1=negative,2=negative"
    assert main(_audit(tiny_bert_dir, tmp_path, data, "--label-map", mapping)) == 0
    captured = capsys.readouterr()
    assert "1 label not in --label-map" in captured.err  # the 3-star text: audited without a label
    table = pd.read_parquet(tmp_path / "out" / "results.parquet").sort_values("row_id")
    assert list(table.label.iloc[:4]) == ["positive", "negative", "positive", "negative"]
    assert pd.isna(table.label.iloc[4])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    gold, predicted = table.label.iloc[:4].to_numpy(), table.predicted.iloc[:4].to_numpy()
    assert summary["prediction"]["labelled"] == 4
    assert summary["prediction"]["accuracy"] == pytest.approx(np.mean(gold == predicted))
    assert main(_audit(tiny_bert_dir, tmp_path, data, "--label-map", "5")) == 2
    assert "FILE_LABEL=MODEL_LABEL" in capsys.readouterr().err


def test_a_run_that_fails_after_claiming_out_leaves_it_free_for_the_retry(
    tiny_bert, tiny_bert_dir, tmp_path, monkeypatch
):
    from explainers.audit import engine
    from explainers.audit.data import read_data
    from explainers.audit.work import AuditSettings

    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "fine film"}\n{"text": "dull film"}\n')
    data = read_data(str(path))
    settings = AuditSettings(str(tiny_bert_dir), ("occlusion",), {})

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(engine, "explain_items", broken)
    with pytest.raises(RuntimeError):
        engine.run_audit(data, settings, tmp_path / "out", handle=tiny_bert, store_dir=tmp_path / "s")
    assert json.loads((tmp_path / "out" / "audit.json").read_text())["status"] == "failed"
    monkeypatch.undo()
    result = engine.run_audit(data, settings, tmp_path / "out", handle=tiny_bert, store_dir=tmp_path / "s")
    assert result.status == "complete" and result.summary["texts"] == 2
    with pytest.raises(Exception, match="pass --resume"):  # a finished audit is still protected
        engine.run_audit(data, settings, tmp_path / "out", handle=tiny_bert, store_dir=tmp_path / "s")


# ---- help on every flag --------------------------------------------------------------------------------------
def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_flag_of_every_command_has_help():
    missing = [
        f"{name} {action.option_strings[-1]}"
        for name, sub in _subparsers(build_parser())
        for action in sub._actions
        if action.option_strings and action.help in (None, "") and not isinstance(action, argparse._HelpAction)
    ]
    assert not missing
    explain = dict(_subparsers(build_parser()))["explain"]
    helps = {a.option_strings[-1]: a.help for a in explain._actions if a.option_strings}
    assert "--precision" in helps["--dtype"] and "--dtype" in helps["--precision"]  # each says how they differ


# ---- evaluate's table --------------------------------------------------------------------------------------------
def test_evaluate_prints_full_metric_names_their_direction_and_the_agreement(tiny_bert, tiny_bert_dir, capsys):
    from scipy.stats import spearmanr

    from explainers.methods import explain
    from explainers.metrics.faithfulness import METRICS, evaluate_many

    text = "a gripping , funny and beautifully acted film ."
    methods = ["occlusion", "leave_one_out"]
    args = ["evaluate", "--model", str(tiny_bert_dir), "--text", text]
    assert main(args + [a for m in methods for a in ("--method", m)]) == 0
    out = capsys.readouterr().out
    exps = [explain(tiny_bert, text, m, seed=0) for m in methods]
    reports = evaluate_many(tiny_bert, exps, "delete")
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    for key in reports[0].values:
        row = lines[METRICS[key].name]  # the whole name, however long
        assert row[1] == METRICS[key].direction
        assert [float(v) for v in row[2:]] == [pytest.approx(r.values[key], abs=6e-4) for r in reports]
    assert "agreement (Spearman" in out
    content = [i for i, s in enumerate(exps[0].special) if not s]
    rho = spearmanr(np.asarray(exps[0].token_scores)[content], np.asarray(exps[1].token_scores)[content]).statistic
    assert float(lines["occlusion"][-1]) == pytest.approx(rho, abs=6e-4)
    assert float(lines["leave_one_out"][-2]) == pytest.approx(rho, abs=6e-4)


# ---- the model card shows progress ----------------------------------------------------------------------------
def test_model_card_reports_each_stage_and_every_model_row(tiny_bert):
    from benchmarks.run import ForwardCounter
    from explainers.inference.gateway import watching
    from explainers.whatif.model_card import DEFAULT_PROBES, build_model_card

    texts = ["he is a good actor and his film works .", "she was not funny .", "a dull film ."]
    stages, rows = [], []
    with ForwardCounter(tiny_bert.model) as counter, watching(on_rows=rows.append):
        build_model_card(tiny_bert, probe_texts=texts, progress=stages.append)
    assert stages == [
        f"probe {k + 1} of {len(DEFAULT_PROBES)} ({name}) on 3 texts" for k, name in enumerate(DEFAULT_PROBES)
    ] + ["writing the prose from templates"]
    assert sum(rows) == counter.rows > 0  # every row through the model was reported


def test_drafting_reports_each_generated_token_and_can_be_stopped(tiny_gpt2):
    from benchmarks.run import ForwardCounter
    from explainers.errors import CancelledError
    from explainers.inference.gateway import watching
    from explainers.whatif.llm import LocalGenerator

    generator = LocalGenerator(tiny_gpt2, max_new_tokens=5)
    rows = []
    with ForwardCounter(tiny_gpt2.model) as counter, watching(on_rows=rows.append):
        generator.generate(["The capital of France is", "The plot"])
    assert rows and set(rows) == {2} and len(rows) == counter.calls  # one report per generation step
    with pytest.raises(CancelledError), watching(should_stop=lambda: len(rows) > 6, on_rows=rows.append):
        generator.generate(["The capital of France is", "The plot"])


def test_cli_model_card_shows_its_stages(tiny_bert_dir, tmp_path, capsys):
    assert main(["model-card", "--model", str(tiny_bert_dir), "--out", str(tmp_path / "card.md")]) == 0
    assert "writing the prose from templates" in capsys.readouterr().err
