"""Every output names the scale of its target score and the contrast (issue 20, points 13 and 14): a
contrast is a difference of probabilities or of log-probabilities, never printed as `p=`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explainers.cli import main
from tests.support import ROOT


def _logp_next(handle, prompt: str, token_ids) -> float:
    """log p(a continuation | prompt), teacher-forced, by hand with transformers."""
    ids = handle.tokenizer(prompt)["input_ids"] + list(token_ids)
    with torch.no_grad():
        logits = handle.model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    start = len(ids) - len(token_ids)
    return float(sum(logp[start - 1 + j, t] for j, t in enumerate(token_ids)))


def test_lm_contrast_is_printed_and_written_as_log_p_difference_naming_both(tiny_gpt2, tiny_gpt2_dir, capsys):
    prompt = "The capital of France is"
    args = ["explain", "--model", str(tiny_gpt2_dir), "--text", prompt, "--method", "occlusion"]
    assert main(args + ["--target", "Paris", "--contrast", "Rome"]) == 0
    out = capsys.readouterr().out.splitlines()[0]
    paris = tiny_gpt2.tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    rome = tiny_gpt2.tokenizer(" Rome", add_special_tokens=False)["input_ids"]
    expected = _logp_next(tiny_gpt2, prompt, paris) - _logp_next(tiny_gpt2, prompt, rome)
    assert f"log p(A) − log p(B) = {expected:.3f} (A=' Paris', B=' Rome')" in out and "p=" not in out
    assert main(args + ["--target", "Paris", "--contrast", "Rome", "--json"]) == 0
    exp = json.loads(capsys.readouterr().out)["explanations"][0]
    scale = exp["extras"]["target_scale"]
    assert (scale["formula"], scale["A"], scale["B"], scale["probability"]) == (
        "log p(A) − log p(B)",
        " Paris",
        " Rome",
        False,
    )
    assert exp["target_prob"] == pytest.approx(expected, abs=1e-5)


def test_plain_and_teacher_forced_and_classifier_contrast_scales(tiny_gpt2, tiny_gpt2_dir, tiny_bert, capsys):
    from explainers.methods import explain

    prompt = "The capital of France is"
    exp = explain(tiny_gpt2, prompt, "occlusion", target="Paris. The")
    ids = exp.target.token_ids
    assert len(ids) > 1  # a continuation of several tokens: their teacher-forced product
    scale = exp.extras["target_scale"]
    assert scale["formula"].startswith("p(A) = Π") and scale["probability"]
    assert exp.target_prob == pytest.approx(np.exp(_logp_next(tiny_gpt2, prompt, ids)), rel=1e-4)
    text = "a gripping , funny film ."
    exp = explain(tiny_bert, text, "occlusion", target="positive", contrast="negative")
    with torch.no_grad():
        p = torch.softmax(tiny_bert.model(**tiny_bert.tokenizer(text, return_tensors="pt")).logits[0].float(), -1)
    assert exp.target_prob == pytest.approx(float(p[1] - p[0]), abs=1e-6)
    assert exp.extras["target_scale"]["line"] == f"p(A) − p(B) = {float(p[1] - p[0]):.3f} (A='positive', B='negative')"
    plain = explain(tiny_bert, text, "occlusion", target="positive").extras["target_scale"]
    assert plain["line"] == f"p(A) = {float(p[1]):.3f} (A='positive')" and plain["B"] is None


# ---- 14. the conventions, written once -----------------------------------------------------------------------
def test_readme_guide_and_json_carry_the_conventions_from_one_source(tiny_bert_dir, capsys):

    from explainers import conventions as c

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert c.readme_block() in readme  # else: python -m explainers.conventions
    notes = c.conventions()
    for title in ("Scales", "Units", "Generation", "Logit lens", "Minimal flips", "Narration"):
        assert notes[title] in readme
    guide = (ROOT / "dashboard" / "app_pages" / "guide.py").read_text()
    assert "conventions_markdown()" in guide
    assert (
        main(["explain", "--model", str(tiny_bert_dir), "--text", "a fine film .", "--method", "occlusion", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["conventions"] == notes


def test_unit_sentence_prints_the_sentences_and_spreads_their_scores_evenly(tiny_bert, tiny_bert_dir, capsys):
    from explainers.methods import explain

    text = "A gripping film. The plot is thin!\nDull and far too long."
    args = ["explain", "--model", str(tiny_bert_dir), "--text", text, "--method", "occlusion", "--unit", "sentence"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    exp = explain(tiny_bert, text, "occlusion", unit="sentence")
    units, scores = exp.extras["units"], exp.extras["unit_scores"]
    assert len(units) == 3 and len(lines) == 3 and np.abs(scores).max() > 0
    for line, unit, score in zip(lines, units, scores):
        assert line.strip().startswith(" ".join(unit.split())) and f"{score:+.4f}" in line
    from explainers.methods.units import segment

    tokens = np.asarray(exp.token_scores)
    positions = segment(tiny_bert.encode(text), "sentence", None, None).positions
    for where, score in zip(positions, scores):  # a perturbation method spreads a unit's score evenly
        np.testing.assert_allclose(tokens[list(where)], score / len(where), atol=1e-12)
    outside = np.ones(len(tokens), bool)
    outside[[i for where in positions for i in where]] = False
    assert not tokens[outside].any()
