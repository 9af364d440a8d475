"""Contrastive targets, "why A rather than B": the score becomes p(A) − p(B) for a classifier and
log p(A) − log p(B) for a causal LM's continuations, for every method and metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from explainers.metrics.faithfulness import evaluate

from explainers import strict_json
from explainers.errors import InputError
from explainers.explanation import Explanation
from explainers.methods import explain

TEXT = "a gripping , funny and beautifully acted film ."
PROMPT = "The capital of France is"

# Linear in the explained function: explaining f_A − f_B gives the difference of the two explanations.
LINEAR = [
    ("input_x_gradient", {}),
    ("occlusion", {"window": 2}),
    ("leave_one_out", {"removal": "delete"}),
    ("integrated_gradients", {"n_steps": 16}),
]


@pytest.mark.parametrize("method,params", LINEAR)
def test_classifier_contrast_is_the_difference_of_the_plain_explanations(tiny_bert, method, params):
    both = explain(tiny_bert, TEXT, method, target="positive", contrast="negative", **params)
    a = explain(tiny_bert, TEXT, method, target="positive", **params)
    b = explain(tiny_bert, TEXT, method, target="negative", **params)
    np.testing.assert_allclose(both.scores(), a.scores() - b.scores(), atol=1e-6)
    assert both.target_prob == pytest.approx(a.target_prob - b.target_prob, abs=1e-6)


def _logp_after(model, ids: list[int], continuation: tuple[int, ...]) -> float:
    """log p(continuation | ids), with the model called directly."""
    with torch.no_grad():
        logits = model(torch.tensor([list(ids) + list(continuation)])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    return float(sum(logp[len(ids) - 1 + k, t] for k, t in enumerate(continuation)))


def test_causal_lm_contrast_is_a_log_probability_difference(tiny_gpt2):
    exp = explain(tiny_gpt2, PROMPT, "leave_one_out", target="Paris", contrast="Rome", removal="delete")
    assert exp.target.contrast is not None and exp.target.contrast.label == " Rome"
    a, b = exp.target.token_ids, exp.target.contrast.token_ids
    ids, model = exp.token_ids, tiny_gpt2.model

    def score(row):
        return _logp_after(model, row, a) - _logp_after(model, row, b)

    assert exp.target_prob == pytest.approx(score(ids), abs=1e-4)
    for i in range(len(ids)):
        assert exp.token_scores[i] == pytest.approx(score(ids) - score(ids[:i] + ids[i + 1 :]), abs=1e-4)


def test_causal_lm_gradient_contrast_is_the_difference_of_log_probability_gradients(tiny_llama):
    exp = explain(tiny_llama, PROMPT, "input_x_gradient", target="Paris", contrast="Rome")
    emb = tiny_llama.model.get_input_embeddings()
    totals = []
    for continuation in (exp.target.token_ids, exp.target.contrast.token_ids):
        e = emb(torch.tensor([exp.token_ids])).detach().requires_grad_()
        tail = emb(torch.tensor([list(continuation[:-1])])) if len(continuation) > 1 else e[:, :0]
        logits = tiny_llama.model(inputs_embeds=torch.cat([e, tail], 1)).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        n = len(exp.token_ids)
        total = sum(logp[n - 1 + k, t] for k, t in enumerate(continuation))
        (grad,) = torch.autograd.grad(total, e)
        totals.append((grad * e).sum(-1)[0].detach().numpy())
    np.testing.assert_allclose(exp.scores(), totals[0] - totals[1], atol=1e-5)


def test_metrics_score_the_contrast(tiny_bert):
    exp = explain(tiny_bert, TEXT, "occlusion", target="positive", contrast="negative")
    report = evaluate(tiny_bert, exp, mode="delete", metrics=["comprehensiveness"])
    enc = exp.encoded
    content = enc.content_positions
    top = sorted(content, key=lambda i: (-exp.token_scores[i], i))[: math.ceil(0.2 * len(content))]
    kept = [t for i, t in enumerate(enc.ids) if i not in top]
    with torch.no_grad():
        p = torch.softmax(tiny_bert.model(torch.tensor([kept])).logits[0], -1)
    assert report.values["comprehensiveness"] == pytest.approx(exp.target_prob - float(p[1] - p[0]), abs=1e-5)


def test_contrast_travels_in_the_json_and_is_checked(tiny_bert):
    exp = explain(tiny_bert, TEXT, "saliency", target="positive", contrast="negative")
    back = Explanation.from_json(exp.to_json())
    assert back.target == exp.target and back.target.contrast.label == "negative"
    assert strict_json.loads(exp.to_json())["target"]["contrast"]["class_index"] == 0
    assert tiny_bert.task.display(exp.target) == "positive rather than negative"
    with pytest.raises(InputError, match="must differ"):
        explain(tiny_bert, TEXT, "saliency", target="positive", contrast="positive")


def test_lime_black_box_view_scores_the_contrast(tiny_bert):
    enc = tiny_bert.encode(TEXT)
    target = tiny_bert.resolve_target(enc, "positive", contrast="negative")
    view = tiny_bert.predict_proba([TEXT, "dull film ."], target)
    with torch.no_grad():
        p = torch.softmax(
            tiny_bert.model(**tiny_bert.tokenizer([TEXT, "dull film ."], padding=True, return_tensors="pt")).logits, -1
        )
    np.testing.assert_allclose(view[:, 1], (p[:, 1] - p[:, 0]).numpy(), atol=1e-5)
    assert tiny_bert.task.lime_view(target) == (1, ["other", "positive rather than negative"])


def test_cli_contrast(capsys, tiny_bert_dir, tiny_bert):
    from explainers.cli import main

    argv = ["explain", "--model", str(tiny_bert_dir), "--text", TEXT, "--method", "occlusion", "--json"]
    code = main(argv + ["--target", "positive", "--contrast", "negative"])
    got = Explanation.from_dict(strict_json.loads(capsys.readouterr().out)["explanations"][0])
    direct = explain(tiny_bert, TEXT, "occlusion", target="positive", contrast="negative")
    assert code == 0 and got.target == direct.target
    np.testing.assert_allclose(got.scores(), direct.scores(), atol=1e-7)


def test_the_narrative_speaks_of_a_difference_not_a_probability(tiny_bert):
    from explainers.whatif.summary import summarize

    exp = explain(tiny_bert, TEXT, "occlusion", target="positive", contrast="negative")
    text = summarize(exp)
    assert "'positive' rather than 'negative'" in text and f"{exp.target_prob:+.3g}" in text
