"""The model card: numbers from whybox's own results, drafted prose marked, audits used or their absence said."""

from __future__ import annotations

import html
import json

import pytest
from explainers.whatif import counterfactual as cf
from explainers.whatif.model_card import REVIEW_MARK, SECTIONS, Item, Table, build_model_card, load_audit

TEXTS = ["he said the film was fun .", "she found his jokes flat .", "the plot is thin .", "it was very dull ."]
PROBES = {"gender terms": "he -> she, she -> he, his -> her", "intensifiers removed": "very -> "}
AUDIT_TEXTS = [
    ("a gripping , funny and beautifully acted film .", "positive"),
    ("the plot is thin and the jokes fall flat .", "negative"),
    ("one of the best movies of the year , full of heart .", "positive"),
    ("dull , lifeless and far too long .", "negative"),
    ("<script>alert(1)</script> & a film", "positive"),
]


@pytest.fixture(scope="module")
def audit_dir(tiny_bert, tiny_bert_dir, tmp_path_factory):
    """A real audit (explainers.audit) of five texts: its summary.json is what the card reads."""
    import pandas as pd

    from explainers.audit.data import read_data
    from explainers.audit.engine import run_audit
    from explainers.audit.work import AuditSettings

    tmp = tmp_path_factory.mktemp("card_audit")
    pd.DataFrame(AUDIT_TEXTS, columns=["text", "label"]).to_csv(tmp / "data.csv", index=False)
    settings = AuditSettings(str(tiny_bert_dir), ("occlusion", "lime"), {"lime": {"n_samples": 30}})
    run_audit(
        read_data(str(tmp / "data.csv"), label_column="label"),
        settings,
        tmp / "out",
        handle=tiny_bert,
        store_dir=tmp / "store",
    )
    return tmp / "out"


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


def test_a_real_audit_summary_is_read_and_its_figures_shown(tiny_bert, audit_dir):
    summary = json.loads((audit_dir / "summary.json").read_text())
    card = build_model_card(tiny_bert, audit_dir=audit_dir, probe_texts=[])
    lines = [i.text for s in card.sections.values() for i in s if isinstance(i, Item)]
    # accuracy and accuracy per true label, recomputed from the model's own predictions
    probs = tiny_bert.predict_proba([t for t, _ in AUDIT_TEXTS])
    predicted = [tiny_bert.labels[i] for i in probs.argmax(axis=1)]
    gold = [label for _, label in AUDIT_TEXTS]
    accuracy = sum(p == g for p, g in zip(predicted, gold)) / len(gold)
    assert summary["prediction"]["accuracy"] == pytest.approx(accuracy)
    assert any(line.startswith(f"Audit accuracy: {accuracy:.4f} (95 % interval ") for line in lines)
    per_label = _table(card, "Audit: accuracy per slice").rows
    expected = []
    for label in ("negative", "positive"):
        mine = [p == g for p, g in zip(predicted, gold) if g == label]
        expected.append([label, len(mine), pytest.approx(sum(mine) / len(mine))])
    assert per_label == expected
    # the faithfulness ranking, its metric means and the words, as the summary holds them
    ranking = summary["ranking"]
    assert f"Most faithful explanation method on this model (audit): {ranking['winner']}" in " ".join(lines)
    assert [r[:4] for r in _table(card, "Audit: faithfulness ranking").rows] == [
        [r["method"], r["mean_rank"], r["low"], r["high"]] for r in ranking["order"]
    ]
    metrics = _table(card, "Audit: faithfulness metrics")
    comp = metrics.columns.index(summary["metrics"]["comprehensiveness"]["title"])
    for row in metrics.rows:
        assert row[comp] == summary["metrics"]["comprehensiveness"]["methods"][row[0]]["mean"]
    words = dict(_table(card, "Audit: words driving each label").rows)
    for label, entries in summary["words"]["consensus"].items():
        assert words[label] == ", ".join(e["word"] for e in entries[:10])
    assert any(f"Audit data: {summary['data']['source']}, 5 texts, explained with occlusion, lime" in i for i in lines)
    # every audit figure is in both downloads, and the user's text is escaped
    markdown, page = card.to_markdown(), card.to_html()
    for figure in (f"{accuracy:.4f}", f"{ranking['order'][0]['mean_rank']:.4g}"):
        assert figure in markdown and figure in page
    assert "<script>" not in page and "<script>" not in markdown


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
    from explainers.models.builtin import SENTIMENT_RECIPE, builtin_path
    from explainers.models.loading import load_model

    handle = load_model("sentiment", device="cpu")
    record = json.loads((builtin_path("sentiment") / "whybox_build.json").read_text())
    card = build_model_card(handle, probe_texts=TEXTS)
    assert f"Held-out accuracy: {record['heldout_accuracy']:.4f} on 1000 sentences." in [
        i.text for i in _items(card, "Quantitative analyses")
    ]
    assert dict(_table(card, "Built-in recipe").rows) == SENTIMENT_RECIPE


def _strict_json(text):
    return json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))


def test_cli_model_card(tiny_bert_dir, audit_dir, tmp_path, capsys):
    from explainers.cli import main

    summary = json.loads((audit_dir / "summary.json").read_text())
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "summary.json").write_text(json.dumps(summary | {"nan_field": float("nan")}))
    assert main(["model-card", "--model", str(tiny_bert_dir), "--audit", str(tmp_path / "audit"), "--json"]) == 0
    data = _strict_json(capsys.readouterr().out)
    audit = data["facts"]["audit"]
    assert audit["prediction"]["accuracy"] == summary["prediction"]["accuracy"] and audit["nan_field"] is None
    out = tmp_path / "card.html"
    assert main(["model-card", "--model", str(tiny_bert_dir), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert capsys.readouterr().err.strip() == f"wrote {out}"
    assert main(["model-card", "--model", str(tiny_bert_dir), "--audit", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and len(err.strip().splitlines()) == 1


# ---- drafted prose: the template by default, a language model's draft when asked, every sentence checked --
class StubWriter:
    """A drafting model that answers each section's prompt with planted sentences."""

    name = "stub-llm"

    def __init__(self, replies: dict[str, str]):
        self.replies, self.prompts = replies, []

    def generate(self, prompts):
        self.prompts += prompts
        return [next((r for s, r in self.replies.items() if f"Write the '{s}' section" in p), "") for p in prompts]


def _drafted(card):
    return {s: [p for p in parts if isinstance(p, Item) and p.drafted] for s, parts in card.sections.items()}


def test_template_prose_is_checked_and_never_unsupported(tiny_bert):
    card = build_model_card(tiny_bert, probe_texts=TEXTS, probes=PROBES)
    drafted = [p for parts in _drafted(card).values() for p in parts]
    assert drafted and all(p.verdict is not None for p in drafted)
    assert not [p.text for p in drafted if p.verdict.verdict == "unsupported"]
    assert card.facts["prose"]["source"] == "template"


def test_planted_wrong_claims_in_a_drafted_card_are_marked(tiny_bert, audit_dir):
    summary = json.loads((audit_dir / "summary.json").read_text())
    winner = summary["ranking"]["winner"]
    loser = next(m for m in summary["methods"] if m != winner)
    positive_words = [w["word"] for w in summary["words"]["consensus"]["positive"]]
    foreign = next(w for w in ("dull", "lifeless", "thin", "flat", "zebra") if w not in positive_words)
    gender = cf.probe(tiny_bert, TEXTS, PROBES["gender terms"])
    true_count = f"Swapping gendered words changed {gender.n_changed} of {len(TEXTS)} probed texts."
    writer = StubWriter(
        {
            "Intended use": "Intended use:\n- The model is 99.7 % accurate on movie reviews.\n- Use it for teaching.",
            "Factors": f"{true_count} Dialect was not evaluated.",
            "Ethical considerations": "Swapping gendered words never changes the prediction.",
            "Caveats and recommendations": f"The method {loser} is the most faithful on this model. "
            f"The word '{foreign}' drives 'positive'. "
            f"The method {winner} is the most faithful on this model.",
        }
    )
    card = build_model_card(tiny_bert, audit_dir=audit_dir, probe_texts=TEXTS, probes=PROBES, generator=writer)
    assert len(writer.prompts) == 4  # one batch: a prompt per prose section, holding the card's own figures
    assert all("Audit accuracy:" in p for p in writer.prompts)
    verdicts = {p.text: p.verdict for parts in _drafted(card).values() for p in parts}
    assert verdicts["The model is 99.7 % accurate on movie reviews."].verdict == "unsupported"
    assert verdicts["Use it for teaching."].verdict == "not checkable"
    assert verdicts[true_count].verdict == "supported"
    never = verdicts["Swapping gendered words never changes the prediction."].verdict
    assert never == ("supported" if gender.flip_rate == 0 else "unsupported")
    assert verdicts[f"The method {loser} is the most faithful on this model."].verdict == "unsupported"
    assert verdicts[f"The method {winner} is the most faithful on this model."].verdict == "supported"
    assert verdicts[f"The word '{foreign}' drives 'positive'."].verdict == "unsupported"
    assert card.facts["prose"]["source"] == "stub-llm"
    # both downloads mark every drafted sentence for review, and say which failed the check and why
    markdown, page = card.to_markdown(), card.to_html()
    assert markdown.count(REVIEW_MARK) == len(verdicts) + 1 and page.count(REVIEW_MARK) == len(verdicts) + 1
    assert "99.7 % is not a figure whybox measured" in markdown
    assert html.escape(f"the audit's most faithful method is {winner}") in page


def test_a_failing_or_silent_writer_falls_back_to_the_template(tiny_bert):
    class Broken:
        name = "broken"

        def generate(self, prompts):
            raise RuntimeError("out of memory")

    template = build_model_card(tiny_bert, probe_texts=TEXTS, probes=PROBES)
    for writer, reason in ((Broken(), "broken failed: out of memory"), (StubWriter({}), "returned nothing usable")):
        card = build_model_card(tiny_bert, probe_texts=TEXTS, probes=PROBES, generator=writer)
        assert [p.text for ps in _drafted(card).values() for p in ps] == [
            p.text for ps in _drafted(template).values() for p in ps
        ]
        assert all(reason in s["fallback_reason"] for s in card.facts["prose"]["sections"].values())


def test_card_checker_on_figures_probes_methods_and_words():
    from explainers.whatif.claims import CardFacts, check_card_sentence

    facts = CardFacts(
        [0.8125, 1000, 0.25, 8],
        labels=["negative", "positive"],
        probe_flip_rates={"gender terms": 0.25, "negation": 0.0},
        most_faithful="occlusion",
        methods=["occlusion", "lime"],
        words_by_label={"positive": ["fun", "great"]},
    )

    def verdict(sentence):
        return check_card_sentence(sentence, facts).verdict

    assert verdict("Held-out accuracy is 81.25 % on 1,000 sentences.") == "supported"
    assert verdict("Held-out accuracy is 0.81.") == "supported"  # rounding as written
    assert verdict("Held-out accuracy is 0.83.") == "unsupported"
    assert verdict("Gender swaps flipped 25 % of 8 texts.") == "supported"
    assert verdict("Gender swaps never change the label.") == "unsupported"
    assert verdict("Negation never changes the label.") == "supported"
    assert verdict("Intensifiers never change the label.") == "unsupported"  # that probe did not run
    assert verdict("LIME is the most faithful method.") == "unsupported"
    assert verdict("'fun' pushes towards 'positive'.") == "supported"
    assert verdict("'boring' pushes towards 'positive'.") == "unsupported"
    assert verdict("The word '42' drives 'positive'.") == "unsupported"  # quoted text is not a figure
    assert verdict("Review the model before use.") == "not checkable"


def test_cli_model_card_llm_drafts_are_checked(tiny_bert_dir, monkeypatch, capsys):
    import explainers.whatif.llm

    from explainers.cli import main

    writer = StubWriter({"Intended use": "It is 97.3 % accurate."})
    monkeypatch.setattr(explainers.whatif.llm, "default_generator", lambda load=None: writer)
    assert main(["model-card", "--model", str(tiny_bert_dir), "--llm", "--json"]) == 0
    data = _strict_json(capsys.readouterr().out)
    use = data["sections"]["Intended use"]
    assert use == [{"text": "It is 97.3 % accurate.", "drafted": True, "check": use[0]["check"]}]
    assert use[0]["check"]["verdict"] == "unsupported" and data["facts"]["prose"]["source"] == "stub-llm"


def test_a_drafted_reply_is_cleaned_before_it_is_checked():
    from explainers.whatif.narration import clean_reply

    reply = "Intended use:\n- It sorts reviews.\n- It is a demo. It is a demo. It was trained on a dataset of"
    assert clean_reply(reply, "Intended use") == "It sorts reviews. It is a demo."  # heading, repeat, cut-off gone
    assert clean_reply("**Factors**: length\n1. Domain.", "Factors") == "length. Domain."


def test_benchmark_card_section_counts_the_checkers_verdicts(tiny_bert, capsys):
    from benchmarks.counterfactual import card_section, print_report

    writer = StubWriter({"Intended use": "It is 97.3 % accurate. Use it with care.", "Factors": "Length matters."})
    out = card_section(tiny_bert, writer, TEXTS[:2])
    drafted = out["stub-llm"]
    assert drafted["text"]["Intended use"] == ["It is 97.3 % accurate.", "Use it with care."]
    assert drafted["unsupported"] == 1  # the planted 97.3 %
    assert drafted["supported"] + drafted["unsupported"] + drafted["not checkable"] == drafted["sentences"]
    assert drafted["fell_back"] == 2  # the two sections the stub left empty keep the template
    assert out["template"]["unsupported"] == 0
    print_report({"card": out})
    assert "stub-llm" in capsys.readouterr().out


def test_the_card_counts_skipped_audit_rows_by_reason():
    from explainers.whatif.model_card import _skipped

    counts = {"empty text": 2, "non-text cell": 0, "no label": 1}
    assert _skipped(counts) == " (rows by reason: empty text 2, no label 1)"
    assert _skipped({}) == "" and _skipped(None) == ""
