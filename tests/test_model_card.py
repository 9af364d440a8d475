"""The model card: numbers from whybox's own results, drafted prose marked, audits used or their absence said."""

from __future__ import annotations

import html
import json

import pytest

from explainers import counterfactual as cf
from explainers.model_card import REVIEW_MARK, SECTIONS, Item, Table, build_model_card, load_audit

TEXTS = ["he said the film was fun .", "she found his jokes flat .", "the plot is thin .", "it was very dull ."]
PROBES = {"gender terms": "he -> she, she -> he, his -> her", "intensifiers removed": "very -> "}
AUDIT = {
    "data": "reviews.csv <b>",
    "n_texts": 120,
    "accuracy": 0.8125,
    "slices": {"short": {"accuracy": 0.9}, "long": 0.7},
    "ranking": [{"method": "occlusion", "mean_rank": 1.4}, {"method": "lime", "mean_rank": 2.1}],
    "most_faithful": "occlusion",
    "top_words": {"positive": [{"word": "fun"}, "great"], "negative": ["<script>alert(1)</script>"]},
    "shortcuts": ["film"],
    "seconds": 12.5,
}


def _parts(card, section):
    return card.sections[section]


def _items(card, section):
    return [p for p in _parts(card, section) if isinstance(p, Item)]


def _table(card, caption_start):
    return next(
        p for s in card.sections.values() for p in s if isinstance(p, Table) and p.caption.startswith(caption_start)
    )


def test_card_holds_the_config_the_probes_and_marks_drafts(tiny_bert):
    card = build_model_card(tiny_bert, probe_texts=TEXTS, probes=PROBES)
    assert list(card.sections) == list(SECTIONS)
    details = dict(_table(card, "From the loaded model's config").rows)
    info = tiny_bert.describe()
    assert details["Architecture"] == info["architecture"] and details["Labels"] == "negative, positive"
    assert details["Parameters"] == f"{info['parameters']:,}"
    probes = _table(card, "Substitution probes")
    for name, spec in PROBES.items():
        expected = cf.probe(tiny_bert, TEXTS, spec)
        row = next(r for r in probes.rows if r[0] == name)
        assert row[1:] == [expected.n_changed, len(TEXTS), expected.flip_rate, pytest.approx(expected.mean_change)]
    drafted = [p for s in card.sections.values() for p in s if isinstance(p, Item) and p.drafted]
    assert drafted, "the prose parts are drafts"
    markdown = card.to_markdown()
    assert markdown.count(REVIEW_MARK) == len(drafted) + 1  # + the note at the top
    assert "No audit" not in markdown


def test_an_audit_summary_is_used_and_escaped(tiny_bert, tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(AUDIT))
    card = build_model_card(tiny_bert, audit_dir=tmp_path, probe_texts=[])
    lines = [i.text for s in card.sections.values() for i in s if isinstance(i, Item)]
    assert "Audit accuracy: 0.8125." in lines
    assert "Most faithful explanation method on this model (audit): occlusion." in lines
    assert _table(card, "Audit: accuracy per slice").rows == [["short", 0.9], ["long", 0.7]]
    assert _table(card, "Audit: faithfulness ranking").rows == [["occlusion", 1.4], ["lime", 2.1]]
    assert _table(card, "Audit: words driving each label").rows == [
        ["positive", "fun, great"],
        ["negative", "<script>alert(1)</script>"],
    ]
    assert any("shortcut words: film" in i for i in lines)
    page = card.to_html()
    assert "<script>" not in page and html.escape("<script>alert(1)</script>") in page
    assert "reviews.csv &lt;b&gt;" in page
    markdown = card.to_markdown()
    assert "<script>" not in markdown and "<b>" not in markdown


def test_a_missing_or_broken_audit_is_said_not_fatal(tiny_bert, tmp_path):
    assert load_audit(tmp_path) is None
    card = build_model_card(tiny_bert, audit_dir=tmp_path, probe_texts=[])
    assert any("No audit summary was found" in i.text for i in _items(card, "Evaluation data"))
    (tmp_path / "summary.json").write_text("{not json")
    assert load_audit(tmp_path) is None
    (tmp_path / "summary.json").write_text("[1, 2]")
    assert load_audit(tmp_path) is None


@pytest.mark.slow
def test_builtin_card_takes_recipe_and_heldout_accuracy_from_the_build_record():
    from explainers.builtin import SENTIMENT_RECIPE, builtin_path
    from explainers.loading import load_model

    handle = load_model("sentiment", device="cpu")
    record = json.loads((builtin_path("sentiment") / "whybox_build.json").read_text())
    card = build_model_card(handle, probe_texts=TEXTS)
    assert f"Held-out accuracy: {record['heldout_accuracy']:.4f} on 1000 sentences." in [
        i.text for i in _items(card, "Quantitative analyses")
    ]
    assert dict(_table(card, "Built-in recipe").rows) == SENTIMENT_RECIPE


def _strict_json(text):
    return json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))


def test_cli_model_card(tiny_bert_dir, tmp_path, capsys):
    from explainers.cli import main

    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "summary.json").write_text(json.dumps(AUDIT | {"nan_field": float("nan")}))
    assert main(["model-card", "--model", str(tiny_bert_dir), "--audit", str(tmp_path / "audit"), "--json"]) == 0
    data = _strict_json(capsys.readouterr().out)
    assert data["facts"]["audit"]["accuracy"] == 0.8125 and data["facts"]["audit"]["nan_field"] is None
    out = tmp_path / "card.html"
    assert main(["model-card", "--model", str(tiny_bert_dir), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert capsys.readouterr().err.strip() == f"wrote {out}"
    assert main(["model-card", "--model", str(tiny_bert_dir), "--audit", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and len(err.strip().splitlines()) == 1
