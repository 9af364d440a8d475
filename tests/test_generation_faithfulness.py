"""Faithfulness of generation explanations: every value against the model called directly on the
perturbed text, with the rationale picked by hand from the explanation's matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from explainers.generation.tokens import explain_generation
from explainers.metrics.generation import evaluate_generation

from explainers.errors import InputError

PROMPT = "The capital of France is"
CONTINUATION = " Paris. The capital of Italy"


@pytest.fixture(scope="module", params=["tiny_gpt2", "tiny_llama"])
def lm(request):
    return request.getfixturevalue(request.param)


def _logps(model, ids: list[int], reads: list[tuple[int, int]]) -> list[float]:
    """log p(token) at each (index of the token in ids) read, by the model called directly."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    return [float(logp[at - 1, token]) for at, token in reads]


def _top(scores: dict[int, float], fraction: float) -> set[int]:
    k = min(len(scores), max(1, math.ceil(fraction * len(scores))))
    return set(sorted(scores, key=lambda i: (-scores[i], i))[:k])


def _delete(
    full: list[int], removed: set[int], n: int, fill: int
) -> tuple[list[int], list[tuple[int, int]], list[int]]:
    """The row with `removed` deleted, where each remaining generated token now sits, and which it is.
    A row left with no prompt starts from the fill token (as an emptied text does for a classifier)."""
    kept = [i for i in range(len(full)) if i not in removed]
    if kept[0] >= n:
        kept = [-1] + kept
    ids = [full[i] if i >= 0 else fill for i in kept]
    reads = [(kept.index(n + j), full[n + j]) for j in range(len(full) - n) if n + j in kept]
    return ids, reads, [j for j in range(len(full) - n) if n + j in kept]


def test_each_generated_token_and_the_continuation_against_a_hand_computation(lm):
    gen = explain_generation(lm, PROMPT, "occlusion", continuation=CONTINUATION, window=1)
    report = evaluate_generation(lm, gen, mode="delete")
    full, n, matrix = gen.token_ids, gen.n_prompt, gen.scores
    assert not any(gen.special)  # this tokenizer adds no special tokens: every input is a candidate
    model = lm.model
    base = _logps(model, full, [(n + j, t) for j, t in enumerate(gen.generated_ids)])
    for j in range(len(gen.generated_ids)):
        scores = {i: matrix[j, i] for i in range(n + j)}  # t_j's inputs: the prompt and t_<j
        top = _top(scores, 0.2)
        ids, reads, which = _delete(full, top, n, lm.baseline_token_id())
        comprehensiveness = math.exp(base[j]) - math.exp(_logps(model, ids, [reads[which.index(j)]])[0])
        ids, reads, which = _delete(full, set(scores) - top, n, lm.baseline_token_id())
        sufficiency = math.exp(base[j]) - math.exp(_logps(model, ids, [reads[which.index(j)]])[0])
        assert report.token_base[j] == pytest.approx(math.exp(base[j]), rel=1e-4)
        assert report.token_values["comprehensiveness"][j] == pytest.approx(comprehensiveness, abs=1e-5)
        assert report.token_values["sufficiency"][j] == pytest.approx(sufficiency, abs=1e-5)
    # the continuation: the column sums over the prompt, scored by the continuation's log-probability
    sums = {i: float(np.nansum(matrix[:, i])) for i in range(n)}
    top = _top(sums, 0.2)
    whole = sum(base)
    assert report.continuation_base == pytest.approx(whole, abs=1e-4)
    ids, reads, _ = _delete(full, top, n, lm.baseline_token_id())
    assert report.continuation_values["comprehensiveness"] == pytest.approx(
        whole - sum(_logps(model, ids, reads)), abs=1e-4
    )
    ids, reads, _ = _delete(full, set(sums) - top, n, lm.baseline_token_id())
    assert report.continuation_values["sufficiency"] == pytest.approx(whole - sum(_logps(model, ids, reads)), abs=1e-4)


def test_mask_mode_replaces_the_rationale_and_integrated_gradients_leave_generated_tokens_alone(tiny_gpt2):
    """IG gives the generated tokens no score: they are never in a rationale, never removed."""
    gen = explain_generation(tiny_gpt2, PROMPT, "integrated_gradients", continuation=CONTINUATION, n_steps=8)
    report = evaluate_generation(tiny_gpt2, gen, mode="mask", metrics=["aopc_sufficiency"])
    full, n, fill = gen.token_ids, gen.n_prompt, tiny_gpt2.baseline_token_id()
    for j, token in enumerate(gen.generated_ids):
        scores = {i: gen.scores[j, i] for i in range(n)}
        drops = []
        base = math.exp(_logps(tiny_gpt2.model, full, [(n + j, token)])[0])
        for fraction in (0.01, 0.05, 0.10, 0.20, 0.50):
            keep = _top(scores, fraction)
            ids = [fill if i < n and i not in keep else t for i, t in enumerate(full)]
            drops.append(base - math.exp(_logps(tiny_gpt2.model, ids, [(n + j, token)])[0]))
        assert report.token_values["aopc_sufficiency"][j] == pytest.approx(np.mean(drops), abs=1e-5)


def test_rows_are_shared_across_tokens_and_one_pass_scores_them(tiny_gpt2, monkeypatch):
    gen = explain_generation(tiny_gpt2, PROMPT, "leave_one_out", continuation=CONTINUATION)
    calls = []
    real = tiny_gpt2.gateway.token_logprobs
    monkeypatch.setattr(tiny_gpt2.gateway, "token_logprobs", lambda s, r: calls.append(len(s)) or real(s, r))
    report = evaluate_generation(tiny_gpt2, gen, metrics=["comprehensiveness", "sufficiency"])
    assert len(calls) == 1 and calls[0] == report.forward_rows
    # at most: the full row + (comprehensiveness, sufficiency) per token and for the continuation
    assert report.forward_rows <= 1 + 2 * (len(gen.generated_ids) + 1)


def test_metrics_that_cannot_judge_generated_text_are_refused(tiny_gpt2):
    gen = explain_generation(tiny_gpt2, PROMPT, "saliency", max_new_tokens=2)
    with pytest.raises(InputError, match="cannot judge generated text"):
        evaluate_generation(tiny_gpt2, gen, metrics=["kendall_tau_loo"])
    with pytest.raises(InputError, match="perturbation mode"):
        evaluate_generation(tiny_gpt2, gen, mode="blur")


def test_cli_generate_carries_the_faithfulness_of_each_token_and_the_continuation(capsys, tiny_gpt2_dir, tiny_gpt2):
    from explainers import strict_json
    from explainers.cli import main

    argv = ["explain", "--model", str(tiny_gpt2_dir), "--text", PROMPT, "--continuation", CONTINUATION]
    code = main(argv + ["--method", "occlusion", "--mode", "mask", "--json"])
    (gen,) = strict_json.loads(capsys.readouterr().out)["generations"]
    direct = evaluate_generation(
        tiny_gpt2, explain_generation(tiny_gpt2, PROMPT, "occlusion", continuation=CONTINUATION), "mask"
    )
    faith = gen["faithfulness"]
    assert code == 0 and faith["mode"] == "mask"
    for name in ("comprehensiveness", "sufficiency"):
        np.testing.assert_allclose(faith["token_values"][name], direct.token_values[name], atol=1e-6)
        assert faith["continuation_values"][name] == pytest.approx(direct.continuation_values[name], abs=1e-5)
    assert main(argv + ["--method", "occlusion"]) == 0
    out = capsys.readouterr().out
    assert "continuation: log p=" in out and "comprehensiveness=" in out


def test_the_registry_names_the_functions_that_explain_units_and_generated_tokens():
    """The capability fields point at functions that exist (they are looked up lazily, by name)."""
    import explainers.generation.tokens as generation
    import explainers.methods.units as units

    from explainers.methods import METHODS

    modules = {"generation": generation, "units": units}
    fields = [(m, f) for m in METHODS.values() for f in (m.unit_features, m.per_output_token) if f is not None]
    assert {m.name for m, f in fields} >= {"occlusion", "leave_one_out", "lime", "integrated_gradients", "attention"}
    for method, function in fields:
        module, name = function.__qualname__.split(".")
        assert callable(getattr(modules[module], name)), (method.name, name)
    assert generation.generation_methods() == [m.name for m in METHODS.values() if m.per_output_token_cost]
