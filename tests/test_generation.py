"""Generated text explained token by token: each number against Captum's LLM attribution or the model
called directly on the same tiny causal LMs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from explainers.generation.tokens import explain_generation, generation_cost

from explainers import strict_json
from explainers.errors import InputError

PROMPT = "The capital of France is"
# Captum turns output ids into text and fails on a random model's half-character tokens: use words
CONTINUATION = " Paris. The capital of Italy"


def _logp(model, ids: list[int], position: int, token: int) -> float:
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, position]
    return float(torch.log_softmax(logits.float(), -1)[token])


@pytest.fixture(scope="module", params=["tiny_gpt2", "tiny_llama"])
def lm(request):
    return request.getfixturevalue(request.param)


def test_generated_tokens_are_the_greedy_choice_with_their_probability_and_entropy(lm):
    exp = explain_generation(lm, PROMPT, "saliency", max_new_tokens=4)
    ids = lm.tokenizer(PROMPT)["input_ids"]
    assert exp.n_prompt == len(ids) and exp.token_ids[: exp.n_prompt] == ids
    with torch.no_grad():
        logits = lm.model(torch.tensor([exp.token_ids])).logits[0].float()
    for j, token in enumerate(exp.generated_ids):
        dist = torch.softmax(logits[exp.n_prompt - 1 + j], -1)
        assert token == int(dist.argmax())
        assert exp.probabilities[j] == pytest.approx(float(dist[token]), rel=1e-4)
        entropy = float(-(dist * dist.clamp_min(1e-30).log()).sum())
        assert exp.entropies[j] == pytest.approx(entropy, rel=1e-4)


def test_occlusion_equals_captum_llm_feature_ablation(lm):
    """Captum's token-by-token path without its KV cache: with the cache (its default), Captum 0.9 on
    transformers 5 reads tokens after the first at shifted positions (its numbers then differ from the
    model's own teacher-forced log-probabilities, which the leave-one-out test checks directly)."""
    from captum.attr import FeatureAblation, LLMAttribution, TextTokenInput

    exp = explain_generation(lm, PROMPT, "occlusion", continuation=CONTINUATION, window=1)
    fill = lm.baseline_token_id()
    captum = LLMAttribution(FeatureAblation(lm.model), lm.tokenizer).attribute(
        TextTokenInput(PROMPT, lm.tokenizer, baselines=fill),
        target=torch.tensor(exp.generated_ids),
        use_cached_outputs=False,
    )
    ours = exp.scores[:, : exp.n_prompt]
    np.testing.assert_allclose(ours, captum.token_attr.cpu().numpy(), atol=2e-5)


def test_leave_one_out_deletes_each_input_and_reads_the_shifted_positions(tiny_gpt2):
    exp = explain_generation(tiny_gpt2, PROMPT, "leave_one_out", max_new_tokens=3, removal="delete")
    full, n, model = exp.token_ids, exp.n_prompt, tiny_gpt2.model
    for j, token in enumerate(exp.generated_ids):
        base = _logp(model, full, n + j - 1, token)
        for i in range(n + j):
            without = full[:i] + full[i + 1 :]
            assert exp.matrix[j][i] == pytest.approx(base - _logp(model, without, n + j - 2, token), abs=1e-5)
        assert all(v is None or np.isnan(v) for v in exp.matrix[j][n + j :])  # not inputs of t_j


def test_integrated_gradients_equal_captum_llm_gradient_attribution(lm):
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

    exp = explain_generation(lm, PROMPT, "integrated_gradients", continuation=CONTINUATION, n_steps=20)
    fill = lm.baseline_token_id()
    ig = LayerIntegratedGradients(lm.model, lm.model.get_input_embeddings())
    inp = TextTokenInput(PROMPT, lm.tokenizer, baselines=fill)
    # Captum's input is an indicator: 1 = the token, anything else = the TextTokenInput's baseline token
    absent = torch.zeros_like(inp.to_tensor())
    captum = LLMGradientAttribution(ig, lm.tokenizer).attribute(
        inp, target=torch.tensor(exp.generated_ids), n_steps=20, baselines=absent
    )
    np.testing.assert_allclose(exp.scores[:, : exp.n_prompt], captum.token_attr.cpu().numpy(), atol=1e-5)
    assert exp.extras["convergence_delta"] < 1e-3  # completeness, per generated token


def test_input_x_gradient_equals_layer_gradient_x_activation_per_token(lm):
    """Over the prompt and the tokens generated before each token: the embedding's gradient × value."""
    exp = explain_generation(lm, PROMPT, "input_x_gradient", max_new_tokens=3)
    emb = lm.model.get_input_embeddings()
    for j, token in enumerate(exp.generated_ids):
        ids = exp.token_ids[: exp.n_prompt + j]
        e = emb(torch.tensor([ids])).detach().requires_grad_()
        logp = torch.log_softmax(lm.model(inputs_embeds=e).logits[0, -1].float(), -1)[token]
        (grad,) = torch.autograd.grad(logp, e)
        np.testing.assert_allclose(exp.scores[j, : len(ids)], (grad * e).sum(-1)[0].detach().numpy(), atol=1e-5)


def test_attention_rows_are_the_last_layers_rows_at_each_generating_position(tiny_gpt2):
    exp = explain_generation(tiny_gpt2, PROMPT, "attention", max_new_tokens=3)
    tiny_gpt2.model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            att = tiny_gpt2.model(torch.tensor([exp.token_ids]), output_attentions=True).attentions[-1][0].mean(0)
    finally:
        tiny_gpt2.model.set_attn_implementation("sdpa")
    for j in range(len(exp.generated_ids)):
        at = exp.n_prompt - 1 + j
        np.testing.assert_allclose(exp.scores[j, : at + 1], att[at, : at + 1].numpy(), atol=1e-6)


def test_a_typed_continuation_is_explained_as_given_and_the_json_is_strict(tiny_llama):
    exp = explain_generation(tiny_llama, PROMPT, "occlusion", continuation="Paris")
    assert exp.typed and tiny_llama.tokenizer.decode(exp.generated_ids) == " Paris"
    d = strict_json.loads(exp.to_json())
    assert d["kind"] == "generation" and d["generated"] == exp.generated
    assert d["matrix"][0][exp.n_prompt] is None  # t_0 is not its own input
    assert d["continuation_logprob"] == pytest.approx(float(np.log(exp.probabilities).sum()))


def test_costs_and_bad_input():
    assert generation_cost("occlusion", 6, 4, {"window": 1}).forward_rows == 6 + 4 - 1 + 1
    assert generation_cost("integrated_gradients", 6, 4, {"n_steps": 10}).backward_rows == 40


def test_generation_needs_a_causal_lm_and_a_known_method(tiny_bert, tiny_gpt2):
    with pytest.raises(InputError, match="causal language model"):
        explain_generation(tiny_bert, "a fine film", "occlusion")
    with pytest.raises(InputError, match="cannot explain generated tokens"):
        explain_generation(tiny_gpt2, PROMPT, "lime")
    with pytest.raises(InputError, match="between 1 and"):
        explain_generation(tiny_gpt2, PROMPT, "occlusion", max_new_tokens=0)


def test_cli_generate_json_gives_the_matrix(capsys, tiny_gpt2_dir, tiny_gpt2):
    from explainers.cli import main

    argv = ["explain", "--model", str(tiny_gpt2_dir), "--text", PROMPT, "--generate", "3", "--json"]
    code = main(argv + ["--method", "leave_one_out", "--param", "removal=mask"])
    data = strict_json.loads(capsys.readouterr().out)
    direct = explain_generation(tiny_gpt2, PROMPT, "leave_one_out", max_new_tokens=3, removal="mask")
    (gen,) = data["generations"]
    assert code == 0 and gen["generated_ids"] == direct.generated_ids
    np.testing.assert_allclose(np.array(gen["matrix"], dtype=float), direct.scores, atol=1e-6)


def test_cli_generation_with_a_classifier_is_a_one_line_error(capsys, tiny_bert_dir):
    from explainers.cli import main

    code = main(["explain", "--model", str(tiny_bert_dir), "--text", "a film", "--generate", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "causal language model" in err and "Traceback" not in err


@pytest.mark.slow
def test_smollm2_per_token_scores_equal_captums():
    """The built-in smollm2 (built on first use): occlusion and IG per generated token against Captum."""
    from captum.attr import (
        FeatureAblation,
        LayerIntegratedGradients,
        LLMAttribution,
        LLMGradientAttribution,
        TextTokenInput,
    )
    from explainers.models.loading import load_model

    lm = load_model("smollm2", device="cpu")
    prompt = "The capital of France is Paris. The capital of Italy is"
    occ = explain_generation(lm, prompt, "occlusion", max_new_tokens=3, window=1)
    inp = TextTokenInput(prompt, lm.tokenizer, baselines=lm.baseline_token_id())
    target = torch.tensor(occ.generated_ids)
    fa = LLMAttribution(FeatureAblation(lm.model), lm.tokenizer).attribute(inp, target=target, use_cached_outputs=False)
    np.testing.assert_allclose(occ.scores[:, : occ.n_prompt], fa.token_attr.numpy(), atol=1e-4)
    ig = explain_generation(lm, prompt, "integrated_gradients", continuation_ids=occ.generated_ids, n_steps=16)
    lig = LLMGradientAttribution(LayerIntegratedGradients(lm.model, lm.model.get_input_embeddings()), lm.tokenizer)
    ref = lig.attribute(inp, target=target, n_steps=16, baselines=torch.zeros_like(inp.to_tensor()))
    np.testing.assert_allclose(ig.scores[:, : ig.n_prompt], ref.token_attr.numpy(), atol=2e-3, rtol=1e-3)
