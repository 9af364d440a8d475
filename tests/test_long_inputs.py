"""Sentences first: the sentences explained, then the words of the top sentences only; every score
against the model called directly on the text with a unit hidden (occlusion, one unit at a time)."""

from __future__ import annotations

import math

import pytest
import torch
from explainers.generation.long_inputs import sentences_first

from explainers.errors import InputError
from explainers.methods import METHODS

TEXT = "The food is good. The capital of France is big. It is a city"


def _p(model, ids: list[int], target: list[int]) -> float:
    """p(target | ids): the product of its tokens' probabilities, teacher-forced, by the model itself."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids + target[:-1]])).logits[0].float(), -1)
    return math.exp(sum(float(logp[len(ids) - 1 + k, t]) for k, t in enumerate(target)))


def test_sentences_then_the_words_of_the_top_sentences(tiny_gpt2):
    result = sentences_first(tiny_gpt2, TEXT, "occlusion", top=1, target="Paris", window=1)
    enc = result.sentences.encoded
    ids, fill, model = list(enc.ids), tiny_gpt2.baseline_token_id(), tiny_gpt2.model
    target = list(result.sentences.target.token_ids)
    base = _p(model, ids, target)

    def hidden(positions):
        return base - _p(model, [fill if i in positions else t for i, t in enumerate(ids)], target)

    sentences = ["The food is good.", "The capital of France is big.", "It is a city"]
    assert result.sentences.extras["units"] == sentences
    starts = [TEXT.index(sentence) for sentence in sentences]  # a token belongs to the sentence its word starts in
    sentence_of_word = [sum(a >= start for start in starts) - 1 for a, _ in enc.word_spans]
    spans = [[i for i in enc.content_positions if sentence_of_word[enc.word_of_token[i]] == k] for k in range(3)]
    by_hand = [hidden(set(where)) for where in spans]
    assert result.sentences.extras["unit_scores"] == pytest.approx(by_hand, rel=1e-3, abs=1e-9)
    best = max(range(3), key=lambda k: by_hand[k])
    assert result.chosen == [best] and result.chosen_texts == [sentences[best]]
    # the words of that sentence only, each hidden on its own; the other sentences are not scored
    words = [w for w in range(len(enc.words)) if any(enc.word_of_token[i] == w for i in spans[best])]
    assert result.words.extras["units"] == [enc.words[w] for w in words]
    expected = [hidden({i for i in enc.content_positions if enc.word_of_token[i] == w}) for w in words]
    assert result.words.extras["unit_scores"] == pytest.approx(expected, rel=1e-3, abs=1e-9)
    outside = [i for i in enc.content_positions if i not in spans[best]]
    assert all(result.words.token_scores[i] == 0 for i in outside)


def test_sentences_first_costs_fewer_rows_than_tokens(tiny_gpt2):
    result = sentences_first(tiny_gpt2, TEXT, "leave_one_out", top=1, target="Paris")
    n_tokens = result.sentences.encoded.n_tokens
    rows = 3 + 1 + len(result.words.extras["units"]) + 1  # each run: its units, then the full text once
    assert rows < METHODS["leave_one_out"].estimate(n_tokens).rows


def test_at_least_one_sentence(tiny_gpt2):
    with pytest.raises(InputError, match="at least one sentence"):
        sentences_first(tiny_gpt2, TEXT, "occlusion", top=0)


def test_cli_sentences_first_json_equals_the_engine(capsys, tiny_gpt2_dir, tiny_gpt2):
    from explainers import strict_json
    from explainers.cli import main

    argv = ["explain", "--model", str(tiny_gpt2_dir), "--text", TEXT, "--method", "occlusion", "--param", "window=1"]
    assert main(argv + ["--target", "Paris", "--sentences-first", "2", "--json"]) == 0
    (shown,) = strict_json.loads(capsys.readouterr().out)["sentences_first"]
    direct = sentences_first(tiny_gpt2, TEXT, "occlusion", top=2, target="Paris", window=1)
    assert shown["chosen"] == direct.chosen and shown["chosen_texts"] == direct.chosen_texts
    assert shown["words"]["extras"]["unit_scores"] == pytest.approx(direct.words.extras["unit_scores"], abs=1e-9)
