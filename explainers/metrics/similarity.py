"""How alike two attribution maps over the same features are: one object per measure (name, range, one-line
meaning, computation), shared by the randomisation sanity check and the paraphrase-consistency check.

Importance is the absolute score (a strongly negative word matters as much as a strongly positive one),
except where a measure says it keeps the sign.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from explainers.metrics.faithfulness import spearman

RBO_PERSISTENCE = 0.9  # rank-biased overlap's p: the top ranks weigh most (Webber et al. 2010)


def top_k(n: int) -> int:
    """k of the top-k intersection: half the features, at least one (Sinha et al. 2021)."""
    return max(1, n // 2)


def _order(scores: np.ndarray) -> np.ndarray:
    """Feature indices by decreasing importance; ties keep their order (a stable, reproducible ranking)."""
    return np.argsort(-np.abs(scores), kind="stable")


def top_k_intersection(a: np.ndarray, b: np.ndarray, k: int | None = None) -> float:
    """Share of a's k most important features that are also among b's k most important."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0:
        return float("nan")
    k = top_k(len(a)) if k is None else k
    return len(set(_order(a)[:k].tolist()) & set(_order(b)[:k].tolist())) / k


def rank_biased_overlap(a: np.ndarray, b: np.ndarray, p: float = RBO_PERSISTENCE) -> float:
    """Rank-biased overlap of the two importance rankings, extrapolated to full length (Webber et al. 2010,
    eq. 32, for two rankings of the same n items): 1 = same order, near 0 = unrelated tops."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    if n == 0:
        return float("nan")
    ra, rb = _order(a).tolist(), _order(b).tolist()
    seen_a: set[int] = set()
    seen_b: set[int] = set()
    overlap = 0
    total = 0.0
    for d in range(1, n + 1):
        x, y = ra[d - 1], rb[d - 1]
        if x == y:
            overlap += 1
        else:
            overlap += (x in seen_b) + (y in seen_a)
        seen_a.add(x)
        seen_b.add(y)
        total += overlap / d * p**d
    # the agreement at depth n (all items seen: 1) carried on past the end of the lists
    return float((1 - p) / p * total + p**n)


def spearman_abs(a: np.ndarray, b: np.ndarray) -> float:
    return spearman(np.abs(np.asarray(a, dtype=float)), np.abs(np.asarray(b, dtype=float)))


@dataclass(frozen=True)
class Similarity:
    name: str
    title: str
    meaning: str
    compute: Callable[[np.ndarray, np.ndarray], float]
    low: float = -1.0  # the range: 1 is always "the same"

    def __call__(self, a, b) -> float:
        value = self.compute(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
        return float("nan") if value is None or math.isnan(value) else float(value)


SIMILARITIES = {
    s.name: s
    for s in (
        Similarity(
            "spearman_abs",
            "Spearman ρ of |scores|",
            "rank correlation of the importances, sign ignored (Adebayo et al.'s absolute map)",
            spearman_abs,
        ),
        Similarity(
            "spearman",
            "Spearman ρ",
            "rank correlation of the signed scores: 1 = same order, 0 = unrelated, −1 = reversed",
            spearman,
        ),
        Similarity(
            "top_k",
            "top-k intersection",
            "share of the k = n/2 most important features (by |score|) that both maps put in their top k",
            top_k_intersection,
            low=0.0,
        ),
        Similarity(
            "rbo",
            f"rank-biased overlap (p = {RBO_PERSISTENCE})",
            "overlap of the importance rankings, weighted towards the top: 1 = same order",
            rank_biased_overlap,
            low=0.0,
        ),
    )
}


def describe(names) -> list[dict]:
    """The measures `names` as the JSON gives them: name, title and one-line meaning."""
    return [{"name": m, "title": SIMILARITIES[m].title, "meaning": SIMILARITIES[m].meaning} for m in names]
