"""The model-randomisation sanity check against an independent computation: the tiny BERT reloaded from its
folder, re-initialised by hand layer by layer (groups chosen by parameter name), maps from Captum called
directly, similarity from scipy; the loaded handle's weights untouched; a map that ignores the model
keeps correlation 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from explainers.checks.sanity import randomisable_copy, sanity_check
from explainers.cli import main
from explainers.errors import CancelledError
from explainers.inference.gateway import watching
from explainers.methods import METHODS, Cost, Method, Scores

TEXT = "a gripping , funny film , though far too long ."
SEED = 5


def _hand_randomised_models(folder, seed: int):
    """The tiny BERT after each cascade step, re-initialised by hand: N(0, 0.02²) matrices, zero biases,
    LayerNorms reset to identity; one generator in cascade order, then parameter order."""
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(folder).eval()
    groups = [
        ("bert.pooler.", "classifier."),
        ("bert.encoder.layer.1.",),
        ("bert.encoder.layer.0.",),
        ("bert.embeddings.",),
    ]
    generator = torch.Generator().manual_seed(seed)
    for prefixes in groups:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if not name.startswith(prefixes):
                    continue
                if "LayerNorm" in name:
                    p.fill_(1.0 if name.endswith("weight") else 0.0)
                elif p.ndim == 2:
                    p.copy_(torch.randn(p.shape, generator=generator) * model.config.initializer_range)
                else:
                    p.zero_()
        yield model


def _captum_maps(model, ids: torch.Tensor, target: int, content: np.ndarray) -> tuple[dict, float]:
    import captum.attr as ca

    embeds = model.get_input_embeddings()(ids).detach()

    def forward(x):
        return torch.softmax(model(inputs_embeds=x, attention_mask=torch.ones(x.shape[:2])).logits, -1)[:, target]

    saliency = ca.Saliency(forward).attribute(embeds.clone().requires_grad_(), abs=True).sum(-1)[0]
    ixg = ca.InputXGradient(forward).attribute(embeds.clone().requires_grad_()).sum(-1)[0]
    with torch.no_grad():
        prob = float(forward(embeds)[0])
    return {"saliency": saliency.detach().numpy()[content], "input_x_gradient": ixg.detach().numpy()[content]}, prob


def _top_half_shared(a, b) -> float:
    k = len(a) // 2
    top = lambda s: set(sorted(range(len(s)), key=lambda i: -abs(s[i]))[:k])  # noqa: E731
    return len(top(a) & top(b)) / k


def test_similarities_equal_scipy_on_a_hand_randomised_copy(tiny_bert, tiny_bert_dir):
    methods = ["saliency", "input_x_gradient"]
    result = sanity_check(tiny_bert, TEXT, methods, target="positive", seed=SEED)
    assert result.layers == ["head", "block 2", "block 1", "embeddings"]

    first = result.originals[0]
    ids = torch.tensor([first.token_ids])
    content = np.array(first.encoded.content_positions)
    from transformers import BertForSequenceClassification

    trained = BertForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    originals, _ = _captum_maps(trained, ids, 1, content)
    for m, exp in zip(methods, result.originals):  # the starting maps are Captum's
        np.testing.assert_allclose(exp.scores("token")[content], originals[m], rtol=1e-4, atol=1e-8)

    for step, model in enumerate(_hand_randomised_models(tiny_bert_dir, SEED)):
        maps, prob = _captum_maps(model, ids, 1, content)
        assert result.target_probs[step] == pytest.approx(prob, abs=1e-6)
        for m in methods:
            a, b = originals[m], maps[m]
            values = result.values[m]
            assert values["spearman_abs"][step] == pytest.approx(spearmanr(np.abs(a), np.abs(b)).statistic, abs=1e-6)
            assert values["spearman"][step] == pytest.approx(spearmanr(a, b).statistic, abs=1e-6)
            assert values["top_k"][step] == pytest.approx(_top_half_shared(a, b))
    # the randomisation did change the maps: a check that could not fail would prove nothing
    assert min(result.values["input_x_gradient"]["spearman"]) < 0.9


def test_the_loaded_model_is_never_touched(tiny_bert, tiny_gpt2, tiny_llama):
    for handle in (tiny_bert, tiny_gpt2, tiny_llama):
        before = {k: v.clone() for k, v in handle.model.state_dict().items()}
        head, embeddings = handle.model.get_output_embeddings(), handle.model.get_input_embeddings()
        tied = head is not None and head.weight is embeddings.weight
        sanity_check(handle, TEXT, ["input_x_gradient"], seed=SEED)
        after = handle.model.state_dict()
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)
        if tied:  # GPT-2's head shares the input embeddings: the copy unties them, the handle keeps them tied
            assert handle.model.get_output_embeddings().weight is handle.model.get_input_embeddings().weight


def test_a_tied_head_is_randomised_at_its_own_step(tiny_gpt2):
    from explainers.models.architecture import cascade_groups

    assert tiny_gpt2.model.lm_head.weight is tiny_gpt2.model.transformer.wte.weight  # tied in the loaded model
    twin = randomisable_copy(tiny_gpt2)
    groups = dict(cascade_groups(twin.model, twin.blocks))
    assert "lm_head.weight" in groups["head"] and "transformer.wte.weight" in groups["embeddings"]
    assert torch.equal(twin.model.lm_head.weight, tiny_gpt2.model.lm_head.weight)
    assert twin.model.lm_head.weight is not twin.model.get_input_embeddings().weight


def _ignores_the_model(ctx) -> Scores:
    """A planted 'method' that scores tokens by their length: it never asks the model anything."""
    return Scores(
        np.array(
            [0.0 if s else float(len(t)) + 0.01 * i for i, (t, s) in enumerate(zip(ctx.enc.tokens, ctx.enc.special))]
        )
    )


def test_a_map_that_ignores_the_model_keeps_correlation_one(tiny_bert, monkeypatch):
    planted = Method(
        "token_length", "Token length", "perturbation", "ignores the model", _ignores_the_model, lambda n, p: Cost(0, 0)
    )
    monkeypatch.setitem(METHODS, planted.name, planted)
    result = sanity_check(tiny_bert, TEXT, ["token_length", "attention"], seed=SEED)
    for measure in result.measures:
        assert result.values["token_length"][measure] == [1.0] * len(result.layers)
    # attention is read below the head: randomising the head alone leaves it exactly as it was
    assert result.values["attention"]["spearman"][0] == pytest.approx(1.0)
    assert result.values["attention"]["spearman"][-1] < 0.9
    assert result.insensitive() == ["token_length"]  # what the page and the JSON flag


def test_steps_arrive_as_they_are_done_and_a_stop_ends_the_check(tiny_bert):
    seen = []
    with pytest.raises(CancelledError), watching(should_stop=lambda: len(seen) >= 2):
        sanity_check(tiny_bert, TEXT, ["saliency"], seed=SEED, on_step=lambda r: seen.append(list(r.layers)))
    assert seen == [["head"], ["head", "block 2"]]


def test_cli_json_and_bad_input(tiny_bert, tiny_bert_dir, capsys):
    code = main(
        ["sanity", "--model", str(tiny_bert_dir), "--text", TEXT, "--method", "saliency", "--seed", str(SEED), "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    expected = sanity_check(tiny_bert, TEXT, ["saliency"], seed=SEED)
    assert out["randomised_layers"] == expected.layers and out["complete"]
    np.testing.assert_allclose(out["values"]["saliency"]["spearman_abs"], expected.values["saliency"]["spearman_abs"])
    assert "not explaining the model" in out["reading"]

    code = main(
        ["sanity", "--model", str(tiny_bert_dir), "--text", TEXT, "--method", "saliency", "--param", "n_steps=4"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "n_steps" in err


def test_layers_that_share_weights_are_refused():
    from transformers import AlbertConfig, AlbertForSequenceClassification

    from explainers.errors import InputError
    from explainers.models import architecture

    config = AlbertConfig(
        vocab_size=100,
        embedding_size=8,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
    )
    model = AlbertForSequenceClassification(config)
    architecture.prepare(model)  # one shared layer, unrolled into two applications
    with pytest.raises(InputError, match="shares weights between its layers"):
        architecture.cascade_groups(model, architecture.find_blocks(model))


@pytest.mark.parametrize("argv", [["sanity", "--help"], ["consistency", "--help"]])
def test_help_imports_no_heavy_module(argv):
    import subprocess
    import sys

    from tests.engine.cli.test_cli_startup import PROBE, ROOT

    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "[] 0", proc.stderr


def test_consistency_help_states_the_engines_defaults(capsys):
    from explainers.checks.consistency import MAX_VARIANTS, SIMILARITY_THRESHOLD

    with pytest.raises(SystemExit):
        main(["consistency", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"({SIMILARITY_THRESHOLD})" in text and f"({MAX_VARIANTS})" in text
