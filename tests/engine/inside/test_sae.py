"""Sparse autoencoders: the forward pass, SAELens's file format, training, quality numbers, splicing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explainers.errors import CancelledError, InputError
from explainers.inference.gateway import watching
from explainers.inside import sae as sae_mod
from explainers.inside.sae_train import Trainer, TrainSettings, build


def _random_sae(d_in=8, d_sae=24, k=3, scale=1.7, seed=0, architecture="topk"):
    g = torch.Generator().manual_seed(seed)
    cfg = {"architecture": architecture, "d_in": d_in, "d_sae": d_sae, "k": k, "hook_layer": 1}
    cfg.update({"normalize_activations": "expected_average_only_in", "scale": scale})
    sae = sae_mod.SparseAutoencoder(cfg)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return sae


def test_forward_equals_a_hand_computation_and_topk_keeps_exactly_k():
    sae = _random_sae()
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(1))
    pre = ((x * 1.7 - sae.b_dec) @ sae.W_enc + sae.b_enc).detach().numpy()
    z_hand = np.zeros_like(pre)
    for row in range(len(pre)):
        top = np.argsort(-pre[row])[:3]
        z_hand[row, top] = np.maximum(pre[row, top], 0)
    x_hat_hand = (z_hand @ sae.W_dec.detach().numpy() + sae.b_dec.detach().numpy()) / 1.7
    with torch.no_grad():
        z = sae.encode(x)
        np.testing.assert_allclose(z.numpy(), z_hand, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(sae(x).numpy(), x_hat_hand, rtol=1e-4, atol=1e-4)
        positive = sae.encode(x * 0) + 0  # b_enc decides: rows whose top k are all positive keep k
    assert ((z != 0).sum(1) <= 3).all()
    all_positive = (np.sort(pre, axis=1)[:, -3:] > 0).all(1)
    assert ((z != 0).sum(1).numpy()[all_positive] == 3).all() and all_positive.any()
    assert positive.shape == (50, 24)


def test_saelens_format_round_trip_folds_the_scale_and_keeps_density(tmp_path):
    sae = _random_sae()
    density = np.linspace(0, 0.5, 24)
    sae_mod.save(sae, tmp_path / "sae", density)
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["d_in"] == 8 and cfg["d_sae"] == 24 and cfg["k"] == 3 and cfg["normalize_activations"] == "none"
    assert cfg["activation_norm_scaling_factor"] == pytest.approx(1.7)
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "sae" / "sae_weights.safetensors"))
    assert weights["W_enc"].shape == (8, 24) and weights["W_dec"].shape == (24, 8)
    # SAELens's fold: W_enc·s, W_dec/s, b_dec/s
    torch.testing.assert_close(weights["W_enc"], sae.W_enc.detach() * 1.7)
    torch.testing.assert_close(weights["b_dec"], sae.b_dec.detach() / 1.7)
    loaded = sae_mod.load(tmp_path / "sae")
    x = torch.randn(20, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(loaded.sae.encode(x), sae.encode(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(loaded.sae(x), sae(x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(loaded.density, density, rtol=1e-4, atol=1e-9)
    assert not list(tmp_path.glob(".sae.*"))  # no temporary folder left behind


def test_a_file_written_elsewhere_loads_and_bad_files_get_clear_errors(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "jumprelu"
    folder.mkdir()
    g = torch.Generator().manual_seed(3)
    w = {"W_enc": torch.randn(6, 10, generator=g), "b_enc": torch.zeros(10), "W_dec": torch.randn(10, 6, generator=g)}
    w |= {"b_dec": torch.zeros(6), "threshold": torch.full((10,), 0.5)}
    save_file(w, str(folder / "sae_weights.safetensors"))
    cfg = {"architecture": "jumprelu", "d_in": 6, "d_sae": 10, "hook_layer": 2, "normalize_activations": "none"}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    loaded = sae_mod.load(folder).sae
    x = torch.randn(4, 6, generator=g)
    pre = x @ w["W_enc"]
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), pre * (pre > 0.5))
    save_file({k: v for k, v in w.items() if k != "threshold"}, str(folder / "sae_weights.safetensors"))
    with pytest.raises(InputError, match="lacks threshold"):
        sae_mod.load(folder)
    (folder / "cfg.json").write_text(json.dumps({**cfg, "architecture": "standard", "d_in": 7}))
    with pytest.raises(InputError, match="W_enc has shape"):
        sae_mod.load(folder)
    (folder / "cfg.json").unlink()
    with pytest.raises(InputError, match="cfg.json is missing"):
        sae_mod.load(folder)


def test_quality_numbers_equal_hand_formulas():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(300, 8, generator=g) * 3 + 1
    sae = _random_sae()
    tally = sae_mod.Tally(8, 24)
    with torch.no_grad():
        for part in x.split(70):
            z = sae.encode(part)
            tally.add(part, z, sae.decode(z))
        z, x_hat = sae.encode(x).numpy(), sae(x).numpy()
    got = tally.result()
    xn = x.numpy().astype(np.float64)
    ev = 1 - ((xn - x_hat) ** 2).sum() / ((xn - xn.mean(0)) ** 2).sum()
    assert got["explained_variance"] == pytest.approx(ev, rel=1e-6)
    assert got["fvu"] == pytest.approx(1 - ev, rel=1e-6)
    assert got["l0"] == pytest.approx((z != 0).sum(1).mean())
    assert got["dead_fraction"] == pytest.approx(((z != 0).sum(0) == 0).mean())


def _planted(n=12000, d=16, atoms=32, per=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    dictionary = torch.nn.functional.normalize(torch.randn(atoms, d, generator=g), dim=1)
    which = torch.stack([torch.randperm(atoms, generator=g)[:per] for _ in range(n)])
    coefficients = 1 + torch.rand(n, per, generator=g)
    x = (coefficients[..., None] * dictionary[which]).sum(1)
    return x, dictionary


def _synthetic_trainer(x, settings):
    return Trainer(x.shape[1], 1, "planted", [1] * len(x), lambda chunk: x[chunk], settings)


def test_training_recovers_a_planted_sparse_dictionary():
    x, dictionary = _planted()
    settings = TrainSettings(k=3, expansion=4, tokens=40000, batch_size=256, buffer_tokens=4096, lr=3e-3)
    trainer = _synthetic_trainer(x, settings)
    losses = []
    trainer.run(lambda p: losses.append(p.mse))
    assert losses[-1] < 0.35 * losses[0]
    decoder = torch.nn.functional.normalize(trainer.sae.W_dec.detach(), dim=1)
    best = (dictionary @ decoder.T).max(1).values  # each atom's closest decoder row
    assert (best >= 0.9).float().mean() >= 0.8, best


def test_training_is_seeded_and_a_stopped_run_resumes_to_the_same_weights():
    x, _ = _planted(n=4000)
    settings = TrainSettings(k=3, expansion=2, tokens=8000, batch_size=256, buffer_tokens=2000, lr=3e-3)
    full = _synthetic_trainer(x, settings)
    full.run()
    again = _synthetic_trainer(x, settings)
    again.run()
    torch.testing.assert_close(again.sae.W_dec, full.sae.W_dec, rtol=0, atol=0)

    stopped, saved = _synthetic_trainer(x, settings), []
    chunks = []
    with pytest.raises(CancelledError), watching(should_stop=lambda: len(chunks) >= 2):
        stopped.run(lambda p: chunks.append(p), lambda: saved.append(stopped.state()))
    resumed = _synthetic_trainer(x, settings)
    resumed.restore(*saved[-1])
    assert 0 < resumed.done < resumed.total
    resumed.run()
    torch.testing.assert_close(resumed.sae.W_dec, full.sae.W_dec, rtol=1e-6, atol=1e-6)


def test_too_small_a_corpus_says_how_many_tokens_it_needs():
    x, _ = _planted(n=100)
    with pytest.raises(InputError, match=r"needs at least 512"):
        _synthetic_trainer(x, TrainSettings(k=3, expansion=8))


@pytest.fixture(scope="module")
def reviews():
    from explainers.models.builtin import sentiment_splits

    train, _ = sentiment_splits()
    return [text for text, _ in train[:400]]


def _hand_splice(handle, sae, layer, sequences):
    """The spliced forward by hand: a hook on the block itself (not activations.editing)."""
    block = handle.blocks[layer - 1]

    def hook(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        new = sae(hidden)
        return (new, *output[1:]) if isinstance(output, tuple) else new

    out = []
    handle_hook = block.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for seq in sequences:
                out.append(handle.model(input_ids=torch.tensor([seq])).logits[0].float())
    finally:
        handle_hook.remove()
    return out


def test_splice_effect_of_a_causal_lm_equals_a_hand_spliced_forward(tiny_gpt2):
    texts = ["The capital of France is Paris.", "a gripping , funny film .", "the plot is thin ."]
    sequences = [tiny_gpt2.encode(t).ids for t in texts]
    sae = _random_sae(d_in=32, d_sae=64, k=8, scale=1.0)
    got = sae_mod.splice_effect(tiny_gpt2, sae, 1, sequences)
    with torch.no_grad():
        clean = [tiny_gpt2.model(input_ids=torch.tensor([s])).logits[0].float() for s in sequences]
    spliced = _hand_splice(tiny_gpt2, sae, 1, sequences)

    def ce(all_logits):
        losses = [
            torch.nn.functional.cross_entropy(lg[:-1], torch.tensor(s[1:]), reduction="none")
            for lg, s in zip(all_logits, sequences)
        ]
        return float(torch.cat(losses).mean())

    assert got["ce_clean"] == pytest.approx(ce(clean), rel=1e-4)
    assert got["ce_sae"] == pytest.approx(ce(spliced), rel=1e-4)
    kl = torch.cat(
        [
            torch.nn.functional.kl_div(s.log_softmax(-1), c.log_softmax(-1), log_target=True, reduction="none").sum(-1)
            for c, s in zip(clean, spliced)
        ]
    ).mean()
    assert got["kl_sae"] == pytest.approx(float(kl), rel=1e-4)
    assert got["ce_loss_score"] == pytest.approx(
        (got["ce_zero"] - got["ce_sae"]) / (got["ce_zero"] - got["ce_clean"]), rel=1e-9
    )


def test_build_on_a_classifier_learns_saves_and_reports(tiny_bert, reviews, tmp_path):
    settings = TrainSettings(k=8, expansion=4, tokens=12000, batch_size=256, buffer_tokens=3000, lr=2e-3)
    bag = _bag_of_words(reviews)
    quality = build(tiny_bert, 1, reviews, tmp_path / "sae", settings, embed=bag)
    loaded = sae_mod.load(tmp_path / "sae")
    assert loaded.sae.k == 8 and loaded.sae.d_sae == 128 and loaded.sae.layer == 1
    assert quality["explained_variance"] > 0.5 and quality["l0"] <= 8
    # against a fresh SAE: training reduced the held-out reconstruction error
    from explainers.inside.sae_train import split, token_rows

    _, held = split(reviews, settings)
    sequences = token_rows(tiny_bert, held)
    fresh = sae_mod.new_sae(32, 128, 8, 1, "x")
    untrained = sae_mod.measure(tiny_bert, fresh, 1, sequences)
    again = sae_mod.measure(tiny_bert, loaded.sae, 1, sequences)
    assert again["explained_variance"] == pytest.approx(quality["explained_variance"], abs=1e-6)
    assert again["mse"] < 0.5 * untrained["mse"]
    # the classifier's splice numbers, by hand
    clean = tiny_bert.score_ids(sequences, None)
    spliced = []
    for s in sequences:
        spliced.append(torch.softmax(_hand_splice(tiny_bert, loaded.sae, 1, [s])[0], -1).numpy())
    spliced = np.stack(spliced)
    assert quality["predictions_unchanged"] == pytest.approx((spliced.argmax(1) == clean.argmax(1)).mean())
    rows = np.arange(len(clean))
    delta = np.abs(spliced[rows, clean.argmax(1)] - clean[rows, clean.argmax(1)]).mean()
    assert quality["mean_abs_delta_p"] == pytest.approx(delta, abs=1e-5)
    assert not list(tmp_path.glob(".sae*"))  # the work folder is gone once the SAE is in place


def test_a_stopped_build_leaves_no_sae_and_resumes(tiny_bert, reviews, tmp_path):
    settings = TrainSettings(k=8, expansion=4, tokens=9000, batch_size=256, buffer_tokens=3000, lr=2e-3)
    bag = _bag_of_words(reviews)
    seen = []
    with pytest.raises(CancelledError), watching(should_stop=lambda: len(seen) >= 1):
        build(tiny_bert, 1, reviews, tmp_path / "sae", settings, on_progress=seen.append, save_every_s=0, embed=bag)
    assert not (tmp_path / "sae").exists() and (tmp_path / ".sae.partial" / "progress.json").is_file()
    resumed = []
    build(tiny_bert, 1, reviews, tmp_path / "sae", settings, on_progress=resumed.append, embed=bag)
    assert resumed[0].tokens > seen[0].tokens - 1 and resumed[0].tokens > 3000  # did not start again
    build(tiny_bert, 1, reviews, tmp_path / "clean", settings, embed=bag)
    a, b = sae_mod.load(tmp_path / "sae").sae, sae_mod.load(tmp_path / "clean").sae
    torch.testing.assert_close(a.W_dec, b.W_dec, rtol=1e-5, atol=1e-5)


def test_a_layer_that_does_not_exist_is_bad_input(tiny_bert, reviews, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        build(tiny_bert, 9, reviews, tmp_path / "sae")


def _bag_of_words(texts):
    """A stand-in judge for tests: unit bag-of-words vectors over the corpus's words."""
    vocab = {w: i for i, w in enumerate(sorted({w for t in texts for w in t.lower().split()}))}

    def embed(batch):
        out = np.zeros((len(batch), len(vocab) + 1))
        for row, text in enumerate(batch):
            for w in text.lower().split():
                out[row, vocab.get(w, len(vocab))] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    return embed


def test_a_harvest_that_stops_early_reads_the_same_activations_and_runs_fewer_blocks(tiny_gpt2):
    from explainers.inside import activations

    sequences = [tiny_gpt2.encode(t).ids for t in ["a gripping , funny film .", "dull ."]]
    calls = []
    hook = tiny_gpt2.blocks[1].register_forward_hook(lambda *_: calls.append(1))
    try:
        full = activations.read(tiny_gpt2, sequences, [1])
        ran_full = len(calls)
        early = activations.read(tiny_gpt2, sequences, [1], stop_early=True)
    finally:
        hook.remove()
    assert ran_full > 0 and len(calls) == ran_full  # the second block never ran in the early read
    for a, b in zip(full, early):
        torch.testing.assert_close(a, b)


def test_a_features_direction_steers_like_any_direction(tiny_gpt2):
    from explainers.inside import activations

    sae = _random_sae(d_in=32, d_sae=64, k=8, scale=2.0)
    seq = tiny_gpt2.encode("The capital of France is").ids
    before = activations.read(tiny_gpt2, [seq], [1])[0][0]
    with activations.adding(tiny_gpt2, {1: 3.0 * sae.direction(5)}):
        after = activations.read(tiny_gpt2, [seq], [1])[0][0]
    torch.testing.assert_close(
        after - before, (3.0 * sae.W_dec[5].detach() / 2.0).expand_as(before), atol=1e-5, rtol=1e-4
    )
