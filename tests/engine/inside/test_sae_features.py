"""Feature cards, label scores and feature attributions, against brute-force computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explainers.cli import main
from explainers.inside import activations, sae_attribution, sae_features
from explainers.inside import sae as sae_mod

TEXTS = [
    "a gripping , funny and beautifully acted film .",
    "the plot is thin and the jokes fall flat .",
    "one of the best movies of the year , full of heart .",
    "dull , lifeless and far too long .",
    "The capital of France is Paris. The capital of Italy is Rome.",
    "a warm , funny film about a family .",
    "the acting is flat and the story is dull .",
    "Paris is the capital of France .",
    "a moving and gripping story .",
    "too long , too loud and too dull .",
    "the best film of the year .",
    "thin jokes and a flat plot .",
]


def _sae(d_in=32, d_sae=64, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    sae = sae_mod.SparseAutoencoder({"architecture": "topk", "d_in": d_in, "d_sae": d_sae, "k": k, "hook_layer": 1})
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return sae


def _bag(texts):
    vocab = {w: i for i, w in enumerate(sorted({w.strip(" .,").lower() for t in texts for w in t.split()}))}

    def embed(batch):
        out = np.zeros((len(batch), len(vocab) + 1))
        for row, text in enumerate(batch):
            for w in text.split():
                out[row, vocab.get(w.strip(" .,").lower(), len(vocab))] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    return embed


@pytest.fixture(scope="module")
def harvested(tiny_bert):
    sae = _sae()
    sequences = [tiny_bert.encode(t).ids for t in TEXTS]
    features = sae_features.harvest(tiny_bert, sae, 1, sequences, TEXTS, embed=_bag(TEXTS))
    with torch.no_grad():
        z = [sae.encode(a[0]).numpy() for a in activations.read(tiny_bert, sequences, [1])]
    return sae, sequences, features, z


def test_cards_equal_a_brute_force_over_every_token(harvested):
    _, _, features, z = harvested
    every = np.concatenate(z)
    np.testing.assert_allclose(features.density, (every > 0).mean(0))
    assert set(features.cards) == set(np.flatnonzero((every > 0).any(0)).tolist())
    for latent, card in features.cards.items():
        peaks = [(float(zt[:, latent].max()), t) for t, zt in enumerate(z)]
        best = sorted((peak for peak in peaks if peak[0] > 0), reverse=True)
        assert [e["text"] for e in card["top"]] == [t for _, t in best[: sae_features.TOP_CONTEXTS]]
        assert card["top"][0]["value"] == pytest.approx(best[0][0], rel=1e-5)
        example = card["top"][0]
        np.testing.assert_allclose(example["acts"], z[example["text"]][:, latent], atol=1e-4)
        values = every[:, latent][every[:, latent] > 0]
        counts, edges = np.histogram(values, bins=sae_features.HISTOGRAM_BINS)
        assert card["histogram"]["counts"] == counts.tolist() and card["fires"] == len(values)


def test_tokens_read_as_the_text_and_labels_are_whole_words(harvested):
    _, _, features, _ = harvested
    for text, tokens, words in zip(features.texts, features.tokens, features.words):
        assert "".join(t for t, w in zip(tokens, words) if w) == text  # special tokens have no word
        assert {w for w in words if w} <= {w.strip(".,") or w for w in text.split()}
    for card in features.cards.values():
        for word in card["label"]["text"].split():
            assert any(word in (w.lower() for w in ws) for ws in features.words)


def test_correlated_latents_equal_numpys_correlation(harvested):
    _, _, features, z = harvested
    every = np.concatenate(z)
    live = np.flatnonzero((every > 0).any(0))
    corr = np.corrcoef(every[:, live].T)
    for i, latent in enumerate(live[:10]):
        expected = live[[j for j in np.argsort(-np.where(np.arange(len(live)) == i, -np.inf, corr[i])) if j != i][0]]
        got = features.cards[int(latent)]["correlated"][0]
        assert got[0] == expected
        assert got[1] == pytest.approx(corr[i, list(live).index(expected)], abs=1e-3)


def test_label_effect_of_a_classifier_equals_hand_gradients(harvested, tiny_bert):
    sae, sequences, features, _ = harvested
    block = tiny_bert.blocks[0]
    grads, count = [], 0
    for seq in sequences:  # one text at a time, with a hook of our own
        kept = {}

        def hook(_m, _i, output, kept=kept):
            hidden = output[0] if isinstance(output, tuple) else output
            kept["h"] = hidden.detach().requires_grad_(True)
            return (kept["h"], *output[1:]) if isinstance(output, tuple) else kept["h"]

        h = block.register_forward_hook(hook)
        try:
            logits = tiny_bert.model(input_ids=torch.tensor([seq])).logits[0]
            per_class = []
            for c in range(2):
                g = torch.autograd.grad(logits[c], kept["h"], retain_graph=True)[0][0]
                per_class.append(g.sum(0))
        finally:
            h.remove()
        grads.append(torch.stack(per_class))
        count += len(seq)
    mean = torch.stack(grads).sum(0) / count
    expected = (sae.W_dec.detach() @ mean.T).numpy()
    for latent, card in list(features.cards.items())[:10]:
        got = [card["effect"][label] for label in tiny_bert.labels]
        np.testing.assert_allclose(got, expected[latent], rtol=1e-3, atol=1e-6)


def test_label_scores_are_aucs_with_a_shuffled_control(harvested):
    from sklearn.metrics import roc_auc_score

    _, _, features, z = harvested
    embed = _bag(TEXTS)
    scored = [(i, c) for i, c in features.cards.items() if c["label"].get("score")]
    assert scored, "no label was scored"
    score_half = list(range(1, len(TEXTS), 2))
    for latent, card in scored[:5]:
        fired = {t for t, zt in enumerate(z) if zt[:, latent].max() > 0}
        positive = [e["text"] for e in card["top"] if e["text"] in score_half]
        negative = [t for t in score_half if t not in fired]
        assert len(negative) >= 3 and len(positive) >= 3
        label = embed([card["label"]["text"]])[0]
        sims = {t: float(embed([TEXTS[t]])[0] @ label) for t in positive + negative}
        y = [1] * len(positive) + [0] * len(negative)
        expected = roc_auc_score(y, [sims[t] for t in positive + negative])
        assert card["label"]["score"]["auc"] == pytest.approx(expected)
        assert 0 <= card["label"]["control_auc"] <= 1
    summary = features.label_scores
    aucs = [c["label"]["score"]["auc"] for _, c in scored]
    assert summary["labels"]["median_auc"] == pytest.approx(float(np.median(aucs)))
    assert summary["control"]["scored"] == len(scored)


def test_auc_and_balanced_accuracy_by_hand():
    assert sae_features.auc([3, 2], [1, 2]) == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert sae_features.balanced_accuracy([3, 4], [1, 2]) == 1.0


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_gpt2"])
def test_feature_attributions_add_up_and_equal_a_hand_integral(request, fixture):
    handle = request.getfixturevalue(fixture)
    sae = _sae()
    text = "a gripping , funny film ."
    got = sae_attribution.attribute(handle, sae, text, steps=64)
    assert abs(got.gap) <= 0.02 * abs(got.score - got.baseline_score) + 1e-5
    enc = handle.encode(text)
    target = handle.resolve_target(enc)
    assert got.score == pytest.approx(handle.target_probability(enc, target), rel=1e-4)
    # the same integral by hand: one α at a time, our own hook on the block
    x = activations.read(handle, [enc.ids], [1])[0][0]
    block = handle.blocks[0]
    steps, total = 8, torch.zeros_like(x)
    for m in range(steps):
        alpha = (m + 0.5) / steps
        h = (sae.b_dec + alpha * (x - sae.b_dec)).detach().requires_grad_(True)

        def hook(_m, _i, output, h=h):
            return (h[None], *output[1:]) if isinstance(output, tuple) else h[None]

        hook_handle = block.register_forward_hook(hook)
        try:
            score = handle.score_embeds(handle.embed_ids(enc.ids), target)[0]
            total += torch.autograd.grad(score, h)[0]
        finally:
            hook_handle.remove()
    mean = total / steps
    with torch.no_grad():
        z = sae.encode(x)
        expected = (z * (mean @ sae.W_dec.T)).sum(0).numpy()
    coarse = sae_attribution.attribute(handle, sae, text, steps=8)
    np.testing.assert_allclose(coarse.attributions, expected, rtol=1e-3, atol=1e-6)
    assert coarse.top(3) and all(coarse.activations[:, i].max() > 0 for i in coarse.top(3))


def test_build_sae_cli_json_and_bad_input(tiny_bert_dir, tmp_path, capsys):
    from explainers.models.builtin import sentiment_splits

    data = tmp_path / "reviews.jsonl"
    data.write_text("\n".join(json.dumps({"text": t}) for t, _ in sentiment_splits()[0][:300]))
    out = tmp_path / "sae"
    argv = ["build-sae", "--model", str(tiny_bert_dir), "--layer", "1", "--data", str(data), "--out", str(out)]
    code = main([*argv, "--k", "8", "--expansion", "4", "--tokens", "5000", "--json"])
    printed, _ = capsys.readouterr()
    assert code == 0
    result = json.loads(printed)
    saved = json.loads((out / "quality.json").read_text())
    assert result["explained_variance"] == saved["explained_variance"] and result["d_sae"] == 128
    assert sae_mod.load(out).sae.k == 8
    assert main([*argv[:4], "9", *argv[5:]]) == 2
    assert "Layer 9 does not exist" in capsys.readouterr().err
    assert main([*argv, "--tokens", "50"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress line: one line, the fix
    assert last.startswith("whybox: Too little to train on") and "needs at least 1,024" in last


class _Writer:
    """A stand-in language model: names the bracketed words of the first context it is shown."""

    name = "test writer"

    def __init__(self):
        self.prompts = []

    def generate(self, prompts):
        self.prompts.extend(prompts)
        import re

        return [" ".join(re.findall(r"\[\[(.*?)\]\]", p)[:3]) + ".\nmore text" for p in prompts]


def test_drafted_labels_are_parsed_scored_and_saved(harvested, tmp_path):
    _, _, features, _ = harvested
    latents = list(features.cards)[:6]
    writer = _Writer()
    summary = sae_features.draft_labels(features, latents, writer, embed=_bag(TEXTS))
    assert len(writer.prompts) == 6 and all("[[" in p for p in writer.prompts)
    for latent in latents:
        drafted = features.cards[latent]["drafted"]
        assert drafted["source"] == "test writer" and "\n" not in drafted["text"] and not drafted["text"].endswith(".")
    scored = [features.cards[i]["drafted"]["score"]["auc"] for i in latents if features.cards[i]["drafted"]["score"]]
    assert summary["labels"]["scored"] == len(scored)
    if scored:
        assert summary["labels"]["median_auc"] == pytest.approx(float(np.median(scored)))
    sae_features.save(features, tmp_path)
    again = sae_features.read(tmp_path)
    assert again.cards[latents[0]]["drafted"] == features.cards[latents[0]]["drafted"]
    assert again.drafted_scores == summary


def test_a_persons_labels_are_kept_and_checked(tmp_path):
    from explainers.errors import InputError

    sae_features.set_label(tmp_path, 3, " warm praise ", "edited")
    sae_features.set_label(tmp_path, 5, "x", "rejected")
    assert sae_features.people_labels(tmp_path) == {
        3: {"text": "warm praise", "status": "edited"},
        5: {"text": "x", "status": "rejected"},
    }
    with pytest.raises(InputError, match="status"):
        sae_features.set_label(tmp_path, 3, "a", "maybe")
    with pytest.raises(InputError, match="empty"):
        sae_features.set_label(tmp_path, 3, " ", "edited")
