"""A causal LM used as a classifier: label probabilities, label mass, calibration and the template's tokens,
checked against transformers' model called directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers.errors import InputError
from explainers.methods.explain import explain
from explainers.models.loading import load_model
from explainers.models.prompt_classifier import CONTENT_FREE, PromptSpec

TEMPLATE = "Review: {text}\nThe film is"
TEXT = "a gripping , funny and beautifully acted film ."
LABELS = "funny|gripping,dull"  # one-token and several-token forms on the fixtures' tokenizer


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model_dir(request, tiny_gpt2_dir, tiny_llama_dir):
    return tiny_gpt2_dir if request.param == "gpt2" else tiny_llama_dir


def _load(path, calibrate=False, labels=LABELS):
    return load_model(str(path), device="cpu", prompt=PromptSpec.parse(TEMPLATE, labels, calibrate))


def _hand_label_probs(path, text, labels=LABELS):
    """Each surface form (with and without a space) as a teacher-forced continuation of the filled
    template, summed per label: transformers' model, called directly."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path)).eval()
    prompt = tok(TEMPLATE.replace("{text}", text))["input_ids"]
    raw, seen = [], set()
    for label in labels.split(","):
        total = 0.0
        for word in label.split("|"):
            for form in (word, " " + word):
                ids = tok(form, add_special_tokens=False)["input_ids"]
                if tuple(ids) in seen:
                    continue
                seen.add(tuple(ids))
                with torch.no_grad():
                    logp = torch.log_softmax(model(torch.tensor([prompt + ids])).logits[0].double(), -1)
                total += float(np.exp(sum(logp[len(prompt) - 1 + j, t].item() for j, t in enumerate(ids))))
        raw.append(total)
    return np.array(raw)


def test_forms_cover_one_and_several_tokens(model_dir):
    task = _load(model_dir).task
    lengths = {len(ids) for _, ids, _ in task.forms}
    assert 1 in lengths and max(lengths) > 1  # both paths (one pass, teacher forcing) are exercised


def test_label_probabilities_and_mass_equal_a_hand_computation(model_dir):
    handle = _load(model_dir)
    raw = _hand_label_probs(model_dir, TEXT)
    pred = handle.predict(handle.encode(TEXT))
    np.testing.assert_allclose(pred.probs, raw / raw.sum(), atol=1e-5)
    assert pred.facts["label_mass"] == pytest.approx(raw.sum(), rel=1e-4)
    assert list(pred.facts["label_probabilities"]) == ["funny", "dull"]


def test_calibration_divides_by_the_content_free_input(model_dir):
    handle = _load(model_dir, calibrate=True)
    raw, free = _hand_label_probs(model_dir, TEXT), _hand_label_probs(model_dir, CONTENT_FREE)
    q = (raw / raw.sum()) / (free / free.sum())
    np.testing.assert_allclose(handle.predict(handle.encode(TEXT)).probs, q / q.sum(), atol=1e-5)


@pytest.mark.parametrize(
    "method,params",
    [
        ("occlusion", {}),
        ("leave_one_out", {}),
        ("integrated_gradients", {"n_steps": 8}),
        ("input_x_gradient", {}),
        ("lime", {"n_samples": 60}),
    ],
)
def test_calibrated_and_uncalibrated_attributions_are_identical(tiny_gpt2_dir, method, params):
    """Log-odds of A against B move by a constant under renormalising and diagonal calibration."""
    plain, calibrated = _load(tiny_gpt2_dir), _load(tiny_gpt2_dir, calibrate=True)
    a = explain(plain, TEXT, method, target="funny", **params)
    b = explain(calibrated, TEXT, method, target="funny", **params)
    assert not np.allclose(plain.predict(plain.encode(TEXT)).probs, calibrated.predict(calibrated.encode(TEXT)).probs)
    assert np.abs(a.token_scores).max() > 0
    np.testing.assert_allclose(a.token_scores, b.token_scores, atol=1e-5)


def test_the_template_is_never_scored(tiny_gpt2_dir):
    handle = _load(tiny_gpt2_dir)
    enc = handle.encode(TEXT)
    assert enc.text == TEMPLATE.replace("{text}", TEXT)
    assert "".join(enc.words) == TEXT.replace(" ", "")
    exp = explain(handle, TEXT, "occlusion", target="dull")
    assert all(score == 0 for score, special in zip(exp.token_scores, enc.special) if special)
    assert exp.target.contrast.label == "funny"  # two labels: A against B


def test_target_score_is_the_log_odds(tiny_gpt2_dir):
    handle = _load(tiny_gpt2_dir)
    raw = _hand_label_probs(tiny_gpt2_dir, TEXT)
    exp = explain(handle, TEXT, "occlusion", target="funny")
    assert exp.target_prob == pytest.approx(np.log(raw[0] / raw[1]), abs=1e-4)


def test_metrics_run_on_a_prompt_classifier(tiny_gpt2_dir):
    from explainers.metrics.faithfulness import evaluate

    handle = _load(tiny_gpt2_dir)
    report = evaluate(handle, explain(handle, TEXT, "occlusion"))
    assert report is not None


@pytest.mark.parametrize(
    "template,labels,message",
    [
        ("Review: the text\nAnswer:", "positive,negative", "slot"),
        ("{text} {text}", "positive,negative", "more than one"),
        (TEMPLATE, "positive", "at least two"),
        (TEMPLATE, "positive,Positive", "not distinct"),
        (TEMPLATE, "funny,dull|funny", "not distinct"),
    ],
)
def test_bad_templates_and_labels_are_refused(tiny_gpt2_dir, template, labels, message):
    with pytest.raises(InputError, match=message):
        _load_with(tiny_gpt2_dir, template, labels)


def _load_with(path, template, labels):
    return load_model(str(path), device="cpu", prompt=PromptSpec.parse(template, labels))


def test_a_classifier_cannot_take_a_template(tiny_bert_dir):
    with pytest.raises(InputError, match="causal language model"):
        _load_with(tiny_bert_dir, TEMPLATE, "positive,negative")
