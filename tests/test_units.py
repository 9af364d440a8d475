"""Granularity: token, word, sentence and separator units; for perturbation methods the unit is the
feature (checked against the model called directly), for gradient methods unit scores are sums."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from explainers.methods.units import describe_unit_cost, segment, unit_cost

from explainers import strict_json
from explainers.methods import explain, get_method

TWO = "The capital of France is Paris. The capital of Italy is Rome."
LINES = "first line here\nsecond line\nthird"


def _p(handle, ids, target):
    """p(target continuation | ids), the model called directly."""
    with torch.no_grad():
        logits = handle.model(torch.tensor([list(ids) + list(target.token_ids[:-1])])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    return float(torch.exp(sum(logp[len(ids) - 1 + k, t] for k, t in enumerate(target.token_ids))))


def test_segments(tiny_gpt2):
    enc = tiny_gpt2.encode(TWO)
    sentences = segment(enc, "sentence")
    assert sentences.texts == ["The capital of France is Paris.", "The capital of Italy is Rome."]
    assert sorted(i for g in sentences.positions for i in g) == enc.content_positions
    assert len(segment(enc, "word")) == len(enc.words)
    assert segment(tiny_gpt2.encode(LINES), separator="\n").texts == ["first line here", "second line", "third"]


def test_sentence_occlusion_hides_whole_sentences(tiny_gpt2):
    exp = explain(tiny_gpt2, TWO, "occlusion", target="Paris", unit="sentence", window=1)
    enc, fill = tiny_gpt2.encode(TWO), tiny_gpt2.baseline_token_id()
    units = segment(enc, "sentence")
    full = _p(tiny_gpt2, enc.ids, exp.target)
    expected = []
    for where in units.positions:
        hidden = [fill if i in where else t for i, t in enumerate(enc.ids)]
        expected.append(full - _p(tiny_gpt2, hidden, exp.target))
    np.testing.assert_allclose(exp.extras["unit_scores"], expected, atol=1e-6)
    assert exp.extras["unit"] == "sentence" and exp.extras["units"] == units.texts
    # each sentence's score spread evenly over its tokens
    first = units.positions[0]
    np.testing.assert_allclose(np.array(exp.token_scores)[first], expected[0] / len(first), atol=1e-9)


def test_word_leave_one_out_deletes_whole_words(tiny_gpt2):
    exp = explain(tiny_gpt2, TWO, "leave_one_out", target="Paris", unit="word", removal="delete")
    enc = tiny_gpt2.encode(TWO)
    units = segment(enc, "word")
    full = _p(tiny_gpt2, enc.ids, exp.target)
    for score, where in zip(exp.extras["unit_scores"], units.positions):
        kept = [t for i, t in enumerate(enc.ids) if i not in where]
        assert score == pytest.approx(full - _p(tiny_gpt2, kept, exp.target), abs=1e-6)


def test_gradient_unit_scores_are_sums_of_token_scores(tiny_bert):
    text = "a gripping film. the jokes fall flat."
    plain = explain(tiny_bert, text, "input_x_gradient")
    by_sentence = explain(tiny_bert, text, "input_x_gradient", unit="sentence")
    units = segment(tiny_bert.encode(text), "sentence")
    expected = [sum(plain.token_scores[i] for i in where) for where in units.positions]
    np.testing.assert_allclose(by_sentence.extras["unit_scores"], expected, atol=1e-7)
    np.testing.assert_allclose(by_sentence.token_scores, plain.token_scores, atol=1e-9)


def test_shapley_over_sentences_is_efficient(tiny_bert):
    text = "a gripping film. the jokes fall flat. dull."
    exp = explain(tiny_bert, text, "shapley_sampling", target="positive", unit="sentence", n_samples=4)
    enc = tiny_bert.encode(text)
    base = [t if s else tiny_bert.baseline_token_id() for t, s in zip(enc.ids, enc.special)]
    with torch.no_grad():
        p = torch.softmax(tiny_bert.model(torch.tensor([enc.ids, base])).logits, -1)[:, 1]
    assert sum(exp.extras["unit_scores"]) == pytest.approx(float(p[0] - p[1]), abs=1e-5)


def test_the_cost_counts_units_for_perturbation_methods(tiny_gpt2):
    enc = tiny_gpt2.encode(TWO)
    units = segment(enc, "sentence")
    occlusion = get_method("occlusion")
    assert unit_cost(occlusion, enc, units, {"window": 1}).forward_rows == 2
    assert "2 sentences as features" in describe_unit_cost(occlusion, enc, units, {"window": 1})
    ig = get_method("integrated_gradients")
    assert f"{enc.n_tokens} tokens" in describe_unit_cost(ig, enc, units)


def test_cli_unit_and_separator(capsys, tiny_gpt2_dir):
    from explainers.cli import main

    argv = ["explain", "--model", str(tiny_gpt2_dir), "--text", LINES, "--method", "occlusion", "--json"]
    code = main(argv + ["--separator", "\\n", "--param", "window=1"])
    extras = strict_json.loads(capsys.readouterr().out)["explanations"][0]["extras"]
    assert code == 0 and extras["unit"] == "piece" and extras["units"] == ["first line here", "second line", "third"]
