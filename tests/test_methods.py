"""Every attribution method on tiny real models of three architectures."""

import numpy as np
import pytest
import torch

from explainers.errors import InputError
from explainers.explanation import Explanation
from explainers.methods import METHODS, explain, get_method

TEXT = "a gripping , funny film , though far too long ."
PROMPT = "The capital of France is"


@pytest.fixture(params=["tiny_bert", "tiny_gpt2", "tiny_llama"])
def handle(request):
    return request.getfixturevalue(request.param)


def _target_for(handle):
    return None if handle.task.name == "classification" else " Paris"


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_gives_finite_scores_on_content_tokens(handle, method):
    text = TEXT if handle.task.name == "classification" else PROMPT
    exp = explain(handle, text, method, target=_target_for(handle), seed=3)
    scores = exp.scores("token")
    assert len(scores) == len(exp.tokens) == len(exp.token_ids)
    assert np.all(np.isfinite(scores))
    assert all(scores[i] == 0 for i, s in enumerate(exp.special) if s), "special tokens are never attributed"
    assert np.abs(scores).sum() > 0
    assert len(exp.word_scores) == len(exp.words)
    if method != "lime":  # words are sums of their tokens (LIME scores words natively)
        np.testing.assert_allclose(sum(exp.word_scores), scores.sum(), atol=1e-9)
    if not METHODS[method].signed:
        assert np.all(scores >= 0)
    assert Explanation.from_json(exp.to_json()) == exp


def test_integrated_gradients_equals_captum_called_directly(tiny_bert):
    from captum.attr import LayerIntegratedGradients

    exp = explain(tiny_bert, TEXT, "integrated_gradients", target="positive", n_steps=32)
    model = tiny_bert.model
    ids = torch.tensor([exp.token_ids])
    baseline = ids.clone()
    content = ~torch.tensor(exp.special)
    baseline[0, content] = tiny_bert.tokenizer.mask_token_id

    def forward(input_ids):
        return torch.softmax(model(input_ids=input_ids).logits, -1)[:, 1]

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    direct, delta = lig.attribute(ids, baselines=baseline, n_steps=32, return_convergence_delta=True)
    expected = direct.sum(-1)[0].detach().numpy()
    expected[~content.numpy()] = 0
    np.testing.assert_allclose(exp.scores("token"), expected, rtol=1e-4, atol=1e-7)
    assert exp.extras["convergence_delta"] == pytest.approx(abs(delta.item()), abs=1e-6)


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_llama"])
def test_integrated_gradients_completeness(request, fixture):
    """Attributions add up to p(input) - p(baseline), within the reported convergence delta."""
    handle = request.getfixturevalue(fixture)
    text = TEXT if handle.task.name == "classification" else PROMPT
    exp = explain(handle, text, "integrated_gradients", target=_target_for(handle), n_steps=64)
    enc = exp.encoded
    baseline = [t if s else handle.baseline_token_id() for t, s in zip(enc.ids, enc.special)]
    p_input, p_baseline = handle.score_ids([enc.ids, baseline], exp.target)
    gap = abs(sum(exp.token_scores) - (p_input - p_baseline))
    assert gap <= exp.extras["convergence_delta"] + 1e-6
    assert exp.target_prob == pytest.approx(p_input, abs=1e-6)


def test_explaining_the_other_class_flips_the_sign(tiny_bert):
    """With two classes p(neg) = 1 - p(pos): every additive attribution must change sign."""
    for method in ("integrated_gradients", "leave_one_out", "occlusion", "input_x_gradient"):
        pos = explain(tiny_bert, TEXT, method, target="positive").scores()
        neg = explain(tiny_bert, TEXT, method, target="negative").scores()
        # float32: p(neg) and 1 - p(pos) agree to ~1e-7, summed over IG's steps
        np.testing.assert_allclose(pos, -neg, atol=0.02 * np.abs(pos).max(), err_msg=method)


@pytest.mark.parametrize("method", [m for m, spec in METHODS.items() if spec.random])
def test_random_methods_are_reproducible_with_a_seed(tiny_bert, method):
    a = explain(tiny_bert, TEXT, method, seed=7)
    b = explain(tiny_bert, TEXT, method, seed=7)
    c = explain(tiny_bert, TEXT, method, seed=8)
    assert a.token_scores == b.token_scores and a.seed == 7
    assert a.token_scores != c.token_scores


def test_leave_one_out_is_the_probability_drop_of_each_deletion(tiny_bert):
    exp = explain(tiny_bert, TEXT, "leave_one_out")
    ids = exp.token_ids
    i = exp.encoded.content_positions[2]
    p_full, p_without = tiny_bert.score_ids([ids, ids[:i] + ids[i + 1 :]], exp.target)
    assert exp.token_scores[i] == pytest.approx(p_full - p_without, abs=1e-7)


def test_lime_scores_our_words_and_reports_its_fit(tiny_bert):
    exp = explain(tiny_bert, TEXT, "lime", n_samples=300)
    assert 0 <= exp.extras["surrogate_r2"] <= 1
    assert np.count_nonzero(exp.scores("word")) == len(exp.words)


def test_attention_rollout_rows_are_distributions(tiny_bert):
    from explainers.methods import attention_rollout

    attentions = tiny_bert.attentions(tiny_bert.encode(TEXT))
    rollout = attention_rollout(attentions)
    np.testing.assert_allclose(rollout.sum(-1).numpy(), 1.0, atol=1e-5)


def test_parameters_are_validated(tiny_bert):
    with pytest.raises(InputError, match="between"):
        explain(tiny_bert, TEXT, "integrated_gradients", n_steps=0)
    with pytest.raises(InputError, match="no parameter"):
        explain(tiny_bert, TEXT, "saliency", n_steps=5)
    with pytest.raises(InputError, match="Unknown method"):
        explain(tiny_bert, TEXT, "magic")
    with pytest.raises(InputError, match="Layer 9"):
        explain(tiny_bert, TEXT, "layer_conductance", layer=9)
    with pytest.raises(InputError, match="one of"):
        explain(tiny_bert, TEXT, "lime", removal="shred")


def test_cost_estimates_grow_with_their_parameters():
    ig = get_method("integrated_gradients")
    assert ig.estimate(20, {"n_steps": 100}).forward_rows == 100
    assert get_method("leave_one_out").estimate(30).forward_rows == 31
    assert get_method("lime").estimate(10, {"n_samples": 2000}).rows == 2000
    assert get_method("attention").estimate(500).describe() == "1 forward pass"


def test_bad_inputs_give_defined_behaviour(tiny_bert):
    with pytest.raises(InputError, match="empty"):
        explain(tiny_bert, "   ", "saliency")
    long = explain(tiny_bert, " ".join(["great"] * 5000), "saliency")
    assert long.truncated and len(long.tokens) == tiny_bert.max_tokens
    html = explain(tiny_bert, "<script>alert('x')</script> nice", "occlusion")
    assert "<" in html.words and "script" in html.words  # text is data, kept verbatim
    for text in ["so good 😍😍", "هذا الفيلم رائع", "bell\x07 and \x1b[31m escape"]:
        exp = explain(tiny_bert, text, "leave_one_out")
        assert np.all(np.isfinite(exp.scores()))


@pytest.mark.parametrize("method", [m for m, spec in METHODS.items() if spec.family != "attention"])
def test_causal_lm_with_a_multi_token_continuation(tiny_gpt2, method):
    exp = explain(tiny_gpt2, PROMPT, method, target="Paris. The capital", seed=0)
    assert len(exp.target.token_ids) > 1
    assert np.all(np.isfinite(exp.scores())) and np.abs(exp.scores()).sum() > 0


@pytest.mark.parametrize("fixture, window, stride", [("tiny_bert", 3, 1), ("tiny_bert", 3, 2), ("tiny_gpt2", 3, 2)])
def test_occlusion_matches_captum(request, fixture, window, stride):
    """One batched pass over all windows gives what Captum's Occlusion gives on the embeddings."""
    from captum.attr import Occlusion

    from explainers.methods import Context

    handle = request.getfixturevalue(fixture)
    text = TEXT if handle.task.name == "classification" else PROMPT
    target = "Paris. The" if handle.task.name == "causal_lm" else None  # a multi-token continuation too
    exp = explain(handle, text, "occlusion", target=target, window=window, stride=stride)
    prediction = handle.predict(exp.encoded)
    ctx = Context(handle, exp.encoded, exp.target, {"baseline": "auto"}, None, prediction, exp.target_prob)
    with torch.no_grad():
        reference = Occlusion(ctx.forward).attribute(
            ctx.embeds,
            sliding_window_shapes=(window, ctx.embeds.shape[-1]),
            strides=(stride, ctx.embeds.shape[-1]),
            baselines=ctx.baseline_embeds,
        )
    expected = reference[0, :, 0].numpy().astype(np.float64)
    expected[list(i for i, s in enumerate(exp.encoded.special) if s)] = 0.0
    np.testing.assert_allclose(exp.token_scores, expected, atol=1e-5)


def test_occlusion_stride_wider_than_its_window_is_refused(tiny_bert):
    with pytest.raises(InputError, match="stride must not exceed its window"):
        explain(tiny_bert, TEXT, "occlusion", window=2, stride=3)


def test_occlusion_with_window_one_is_the_drop_from_masking_each_token(tiny_bert):
    exp = explain(tiny_bert, TEXT, "occlusion", window=1)
    ids = exp.token_ids
    i = exp.encoded.content_positions[1]
    masked = ids[:i] + [tiny_bert.baseline_token_id()] + ids[i + 1 :]
    p_full, p_masked = tiny_bert.score_ids([ids, masked], exp.target)
    assert exp.token_scores[i] == pytest.approx(p_full - p_masked, abs=1e-6)


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion", "lime", "layer_conductance"])
def test_out_of_memory_inside_a_method_retries_with_smaller_batches(tiny_bert, method, monkeypatch):
    """A batch that does not fit (simulated: more than 2 rows) halves the budget until it does,
    and the explanation comes out the same."""
    expected = explain(tiny_bert, TEXT, method, n_samples=40) if method == "lime" else explain(tiny_bert, TEXT, method)
    real_forward = tiny_bert.model.forward

    def forward_that_runs_out_of_memory(*args, **kwargs):
        inputs = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
        if inputs is not None and inputs.shape[0] > 2:
            raise torch.OutOfMemoryError("simulated")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(tiny_bert.model, "forward", forward_that_runs_out_of_memory)
    monkeypatch.setattr(tiny_bert.gateway, "token_budget", tiny_bert.gateway.token_budget)  # restored afterwards
    params = {"n_samples": 40} if method == "lime" else {}
    got = explain(tiny_bert, TEXT, method, **params)
    assert tiny_bert.rows_per_batch(len(got.token_ids)) <= 2  # halved until the batches fit
    np.testing.assert_allclose(got.token_scores, expected.token_scores, atol=1e-5)
