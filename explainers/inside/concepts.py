"""Concepts: two sets of texts (A has the concept, B lacks it), their activations per layer, and the
concept's direction per layer.

A set pair comes from typed lists, a table's text column split by a label column, the built-in data's
labels, or pairs (a text and its edited twin, e.g. a What-if substitution "he -> she"); pairs stay
pairs (row i of A belongs with row i of B) so that probes keep a pair in one fold and `pca_diff` can
take their differences. Activations are read once, in batches, through `activations.read_pooled`.

Directions follow the representation-engineering recipes: difference of means (CAA, Rimsky et al.
2024) and the first principal component of paired differences (repeng's `pca_diff`). Each is scaled
to the mean A − B gap along it, so adding 1 × the vector moves a text by one typical concept gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from explainers.errors import InputError
from explainers.inside import activations
from explainers.models.handle import ModelHandle

MIN_SET = 2  # fewer texts in a set and nothing can be learned or tested
HOLDOUT_SHARE = 0.3  # share of examples (pairs) kept out of a direction's fit to measure its AUROC


@dataclass(frozen=True)
class ConceptSets:
    """Set A (has the concept) and set B (lacks it); `paired`: A[i] and B[i] are twins."""

    a: tuple[str, ...]
    b: tuple[str, ...]
    name_a: str = "A"
    name_b: str = "B"
    paired: bool = False
    source: str = "typed"

    def checked(self) -> ConceptSets:
        """These sets, or an InputError saying what is wrong with them."""
        for name, texts in ((self.name_a, self.a), (self.name_b, self.b)):
            if len(texts) < MIN_SET:
                have = "is empty" if not texts else f"has {len(texts)} text"
                raise InputError(f"Set '{name}' {have}: each set needs at least {MIN_SET} texts.")
            if any(not t.strip() for t in texts):
                raise InputError(f"Set '{name}' has an empty text: one text a line, no blank lines.")
        if self.paired and len(self.a) != len(self.b):
            raise InputError(f"Pairs need as many A texts as B texts ({len(self.a)} vs {len(self.b)}).")
        both = set(self.a) & set(self.b)
        if both:
            raise InputError(
                f"{len(both)} text(s) are in both sets (e.g. {sorted(both)[0][:60]!r}): a text cannot have and "
                "lack the concept; remove them from one set."
            )
        return self

    @property
    def n(self) -> int:
        return len(self.a) + len(self.b)

    @classmethod
    def from_lines(cls, a: str, b: str, name_a: str = "A", name_b: str = "B", paired: bool = False) -> ConceptSets:
        """Two blocks of text, one text a line (blank lines skipped)."""
        lines = [tuple(x.strip() for x in block.splitlines() if x.strip()) for block in (a, b)]
        return cls(lines[0], lines[1], name_a, name_b, paired, "typed").checked()

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, str]], name_a: str = "A", name_b: str = "B") -> ConceptSets:
        kept = [(x, y) for x, y in pairs if x != y]  # an edit that changed nothing is no contrast
        return cls(tuple(x for x, _ in kept), tuple(y for _, y in kept), name_a, name_b, True, "pairs").checked()

    @classmethod
    def from_substitution(cls, texts: Sequence[str], spec: str) -> ConceptSets:
        """Pairs made by a What-if substitution list ('he -> she, his -> her'): A = the texts it changes,
        B = their edited twins."""
        from explainers.whatif.counterfactual import apply_substitutions, parse_substitutions

        subs = parse_substitutions(spec)
        pairs = [(t, apply_substitutions(t, subs)) for t in texts]
        left = ", ".join(x for x, _ in subs)
        right = ", ".join(y for _, y in subs)
        sets = cls(
            tuple(x for x, y in pairs if x != y),
            tuple(y for x, y in pairs if x != y),
            left,
            right,
            True,
            "substitution",
        )
        if len(sets.a) < MIN_SET:
            raise InputError(f"The substitution '{spec}' changes only {len(sets.a)} of the {len(texts)} texts.")
        return sets.checked()

    @classmethod
    def from_table(cls, texts: Sequence[str], labels: Sequence, label_a, label_b, limit: int | None = None):
        """A table's text column split by its label column: rows labelled `label_a` form A, `label_b` B."""
        names = [str(x) for x in labels]
        a = [t for t, y in zip(texts, names, strict=True) if y == str(label_a)]
        b = [t for t, y in zip(texts, names, strict=True) if y == str(label_b)]
        if not a or not b:
            seen = ", ".join(sorted(set(names))[:10])
            raise InputError(f"No rows labelled '{label_a if not a else label_b}' (the labels are: {seen}).")
        return cls(tuple(a[:limit]), tuple(b[:limit]), str(label_a), str(label_b), False, "table").checked()

    @classmethod
    def from_builtin(cls, limit: int = 100, split: str = "heldout") -> ConceptSets:
        """The built-in movie-review sentences: A = positive, B = negative (`limit` of each)."""
        from explainers.models.builtin import LABELS, sentiment_splits

        train, heldout = sentiment_splits()
        rows = heldout if split == "heldout" else train
        texts, labels = [t for t, _ in rows], [LABELS[y] for _, y in rows]
        sets = cls.from_table(texts, labels, "positive", "negative", limit)
        return ConceptSets(sets.a, sets.b, "positive", "negative", False, f"builtin:rt-{split}")

    def to_dict(self) -> dict:
        return {
            "a": list(self.a),
            "b": list(self.b),
            "name_a": self.name_a,
            "name_b": self.name_b,
            "paired": self.paired,
            "source": self.source,
        }


@dataclass
class ConceptActivations:
    """One pooled vector per text per layer: `a` (len(layers), N_A, H) and `b` (len(layers), N_B, H)."""

    sets: ConceptSets
    layers: list[int]
    a: np.ndarray
    b: np.ndarray
    pooling: str
    truncated: int = 0  # texts cut to the model's length

    @property
    def pooling_text(self) -> str:
        return activations.POOLINGS[self.pooling]

    def layer(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        if layer not in self.layers:
            raise InputError(f"Layer {layer} was not read: the layers read are {self.layers}.")
        i = self.layers.index(layer)
        return self.a[i], self.b[i]

    def xy(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X, y, groups) for a probe at `layer`: y = 1 for A; a pair shares its group."""
        a, b = self.layer(layer)
        x = np.concatenate([a, b])
        y = np.r_[np.ones(len(a), int), np.zeros(len(b), int)]
        groups = np.r_[np.arange(len(a)), np.arange(len(b)) if self.sets.paired else len(a) + np.arange(len(b))]
        return x, y, groups


def all_layers(handle: ModelHandle) -> list[int]:
    return list(range(len(handle.blocks) + 1))


def concept_activations(
    handle: ModelHandle, sets: ConceptSets, layers: Sequence[int] | None = None, pooling: str | None = None
) -> ConceptActivations:
    """Both sets' pooled residual streams at `layers` (all by default), in one batched pass."""
    sets = sets.checked()
    pooling = pooling or activations.default_pooling(handle)
    activations.pooled_positions(pooling, 1)  # an unknown pooling fails before the model runs
    layers = list(layers) if layers is not None else all_layers(handle)
    for layer in layers:
        activations.check_layer(handle, layer)
    encoded = [handle.encode(t) for t in (*sets.a, *sets.b)]
    pooled = activations.read_pooled(handle, [e.ids for e in encoded], layers, pooling)  # (N, L, H)
    pooled = pooled.transpose(1, 0, 2)
    n_a = len(sets.a)
    return ConceptActivations(
        sets, layers, pooled[:, :n_a], pooled[:, n_a:], pooling, sum(e.truncated for e in encoded)
    )


# ---- directions ---------------------------------------------------------------------------------------

DIRECTION_METHODS = {
    "mean_diff": "difference of the sets' means (CAA)",
    "pca_diff": "first principal component of the pairs' differences, about zero (repeng's pca_diff)",
}


def holdout_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices of `n` examples (or pairs): HOLDOUT_SHARE of them, at least one, tested."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * HOLDOUT_SHARE)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def fit_direction(a: np.ndarray, b: np.ndarray, method: str, paired: bool) -> np.ndarray:
    """The concept's direction from A's and B's vectors, scaled to the mean A − B gap along it."""
    gap = a.mean(axis=0) - b.mean(axis=0)
    if method == "mean_diff":
        return gap
    if method != "pca_diff":
        raise InputError(f"Unknown direction method '{method}': use one of {', '.join(DIRECTION_METHODS)}.")
    if not paired:
        raise InputError("pca_diff needs pairs (a text and its edited twin): use mean_diff for two free sets.")
    # About zero, not about the differences' mean: with every pair in the same order, centring would
    # subtract the very direction they share (RepE shuffles the pair order for this; same axis).
    unit = np.linalg.svd(a - b, full_matrices=False)[2][0]
    along = float(gap @ unit)  # repeng's sign rule: A must project above B
    return unit * along


def difference_consistency(a: np.ndarray, b: np.ndarray, paired: bool, seed: int) -> float | None:
    """Mean cosine similarity among the A − B differences (Braun et al. 2025: low values predict
    unreliable steering). Free sets are paired at random (seeded)."""
    n = min(len(a), len(b))
    if n < 2:
        return None
    if not paired:
        rng = np.random.default_rng(seed)
        a, b = a[rng.permutation(len(a))[:n]], b[rng.permutation(len(b))[:n]]
    d = a[:n] - b[:n]
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    sims = d @ d.T
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


@dataclass
class LayerDirection:
    layer: int
    vector: np.ndarray  # fitted on the training part; A − B gap scale
    auroc: float | None  # of the projection, on the held-out examples
    consistency: float | None
    projection_a: np.ndarray  # every example's projection on the unit direction
    projection_b: np.ndarray
    held_out_a: np.ndarray  # bool masks: which examples the direction did not see
    held_out_b: np.ndarray

    @property
    def norm(self) -> float:
        return float(np.linalg.norm(self.vector))

    @property
    def unit(self) -> np.ndarray:
        return self.vector / max(self.norm, 1e-12)

    def to_dict(self, with_vector: bool = False) -> dict:
        out = {
            "layer": self.layer,
            "norm": self.norm,
            "auroc_heldout": self.auroc,
            "difference_consistency": self.consistency,
            "projection_a": self.projection_a.tolist(),
            "projection_b": self.projection_b.tolist(),
            "held_out_a": self.held_out_a.tolist(),
            "held_out_b": self.held_out_b.tolist(),
        }
        if with_vector:
            out["vector"] = self.vector.tolist()
        return out


@dataclass
class DirectionReport:
    method: str
    pooling: str
    layers: list[LayerDirection]
    name_a: str
    name_b: str
    seed: int
    notes: list[str] = field(default_factory=list)

    @property
    def method_text(self) -> str:
        return DIRECTION_METHODS[self.method]

    def at(self, layer: int) -> LayerDirection:
        for d in self.layers:
            if d.layer == layer:
                return d
        raise InputError(f"No direction at layer {layer}: the layers are {[d.layer for d in self.layers]}.")

    @property
    def best(self) -> LayerDirection:
        """The layer whose held-out AUROC is highest (the earliest among ties)."""
        return max(self.layers, key=lambda d: (-1 if d.auroc is None else d.auroc, -d.layer))

    def to_dict(self, with_vectors: bool = False) -> dict:
        return {
            "method": self.method,
            "method_text": self.method_text,
            "pooling": self.pooling,
            "set_a": self.name_a,
            "set_b": self.name_b,
            "seed": self.seed,
            "holdout_share": HOLDOUT_SHARE,
            "notes": self.notes,
            "layers": [d.to_dict(with_vectors) for d in self.layers],
        }


def directions(acts: ConceptActivations, method: str = "mean_diff", seed: int = 0) -> DirectionReport:
    """The concept's direction at every layer read, fitted on a seeded training part, with the AUROC of
    the projection on the rest and every example's projection."""
    from sklearn.metrics import roc_auc_score

    if method not in DIRECTION_METHODS:
        raise InputError(f"Unknown direction method '{method}': use one of {', '.join(DIRECTION_METHODS)}.")
    paired = acts.sets.paired
    n_a, n_b = len(acts.sets.a), len(acts.sets.b)
    if paired:
        train_a, test_a = holdout_split(n_a, seed)
        train_b, test_b = train_a, test_a
    else:
        train_a, test_a = holdout_split(n_a, seed)
        train_b, test_b = holdout_split(n_b, seed + 1)
    out = []
    for layer in acts.layers:
        a, b = acts.layer(layer)
        vector = fit_direction(a[train_a], b[train_b], method, paired)
        unit = vector / max(float(np.linalg.norm(vector)), 1e-12)
        pa, pb = a @ unit, b @ unit
        scores = np.r_[pa[test_a], pb[test_b]]
        truth = np.r_[np.ones(len(test_a)), np.zeros(len(test_b))]
        auroc = float(roc_auc_score(truth, scores)) if len(test_a) and len(test_b) else None
        held_a, held_b = np.zeros(n_a, bool), np.zeros(n_b, bool)
        held_a[test_a], held_b[test_b] = True, True
        consistency = difference_consistency(a[train_a], b[train_b], paired, seed)
        out.append(LayerDirection(layer, vector, auroc, consistency, pa, pb, held_a, held_b))
    notes = []
    if min(len(test_a), len(test_b)) < 5:
        notes.append(f"Only {len(test_a)} + {len(test_b)} held-out examples: the AUROC can take few values; add texts.")
    return DirectionReport(method, acts.pooling, out, acts.sets.name_a, acts.sets.name_b, seed, notes)
