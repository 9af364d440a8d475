"""Inside the layers: the logit lens (and a classifier's head per layer) against the model called directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from explainers.inside.lens import logit_lens

from explainers import strict_json

PROMPT = "The capital of France is"
REVIEW = "a gripping , funny and beautifully acted film ."


def _own_distribution(handle, text, position):
    with torch.no_grad():
        logits = handle.model(torch.tensor([handle.encode(text).ids])).logits
    return torch.softmax(logits[0, position].float() if logits.dim() == 3 else logits[0].float(), -1)


@pytest.mark.parametrize("name", ["tiny_gpt2", "tiny_llama", "tiny_bert"])
def test_the_last_layer_is_the_models_own_output_distribution(request, name):
    handle = request.getfixturevalue(name)
    text = REVIEW if name == "tiny_bert" else PROMPT
    lens = logit_lens(handle, text, top_k=3)
    own = _own_distribution(handle, text, lens.position)
    top = torch.topk(own, min(3, own.shape[0]))
    assert [p for _, p in lens.layers[-1].top] == pytest.approx(top.values.tolist(), abs=1e-6)
    assert lens.layers[-1].target_rank == 1 and lens.layers[-1].target_prob == pytest.approx(float(top.values[0]))
    assert len(lens.layers) == handle.n_layers + 1 and lens.indicative == (name == "tiny_bert")


def _lens_by_hand(handle, hidden, norm, head):
    return torch.softmax(head(norm(hidden))[0, -1].float(), -1)


@pytest.mark.parametrize(
    "name,norm,expected",
    [
        ("tiny_gpt2", "transformer.ln_f", ["transformer.ln_f", "lm_head"]),
        ("tiny_llama", "model.norm", ["model.norm", "lm_head"]),
    ],
)
def test_a_middle_layer_goes_through_the_final_norm_and_the_output_embedding(request, name, norm, expected):
    handle = request.getfixturevalue(name)
    lens = logit_lens(handle, PROMPT, target="Paris", contrast="Rome")
    assert lens.after_last_block == expected
    with torch.no_grad():
        states = handle.model(torch.tensor([handle.encode(PROMPT).ids]), output_hidden_states=True).hidden_states
        p = _lens_by_hand(handle, states[1], handle.model.get_submodule(norm), handle.model.get_output_embeddings())
    paris = handle.tokenizer(" Paris", add_special_tokens=False)["input_ids"][0]
    rome = handle.tokenizer(" Rome", add_special_tokens=False)["input_ids"][0]
    layer = lens.layers[1]
    assert layer.target_prob == pytest.approx(float(p[paris]), rel=1e-5)
    assert layer.target_rank == int((p > p[paris]).sum()) + 1
    assert layer.contrast_prob == pytest.approx(float(p[rome]), rel=1e-5)
    assert layer.contrast_rank == int((p > p[rome]).sum()) + 1


def test_a_classifier_layer_goes_through_the_pooler_and_the_head(tiny_bert):
    lens = logit_lens(tiny_bert, REVIEW, target="negative")
    assert lens.after_last_block[-1] == "classifier" and lens.method == "classifier_head"
    model = tiny_bert.model
    with torch.no_grad():
        states = model(torch.tensor([tiny_bert.encode(REVIEW).ids]), output_hidden_states=True).hidden_states
        p = torch.softmax(model.classifier(model.bert.pooler(states[1]))[0], -1)
    assert lens.layers[1].target_prob == pytest.approx(float(p[0]), rel=1e-5)
    assert dict(lens.layers[1].top) == pytest.approx({"negative": float(p[0]), "positive": float(p[1])}, rel=1e-5)


def test_cli_layers_json(capsys, tiny_llama_dir, tiny_llama):
    from explainers.cli import main

    code = main(["layers", "--model", str(tiny_llama_dir), "--text", PROMPT, "--target", "Paris", "--json"])
    data = strict_json.loads(capsys.readouterr().out)
    direct = logit_lens(tiny_llama, PROMPT, target="Paris")
    assert code == 0 and data["kind"] == "layers" and data["target"] == " Paris"
    np.testing.assert_allclose([row["target_prob"] for row in data["layers"]], direct.target_probs, rtol=1e-6)
