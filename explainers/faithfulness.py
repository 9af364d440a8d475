"""Faithfulness and quality of explanations (ERASER, DeYoung et al. 2020, and friends).

Every perturbed input that the metrics of one explanation need (rationale removals and keeps for
each AOPC bin, deletion and insertion curves, leave-one-out) is built first, de-duplicated, and
scored in one batched pass through the model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import InputError
from .explanation import Explanation
from .model import Encoded, ModelHandle, Target

AOPC_BINS = (0.01, 0.05, 0.10, 0.20, 0.50)
RATIONALE_FRACTION = 0.20
CURVE_STEPS = 20
MODES = {
    "delete": "tokens are deleted from the input (the sequence gets shorter)",
    "mask": "tokens are replaced by the model's mask token (or pad token when it has none)",
}
AOPC_NORMALISER = (
    f"AOPC is the mean over the {len(AOPC_BINS)} bins (top 1, 5, 10, 20, 50 % of tokens): normaliser |B| = "
    f"{len(AOPC_BINS)}. ERASER's paper divides by |B| + 1 (an empty bin), which would scale values by 5/6."
)


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    direction: str  # "higher" or "lower" is better
    low: float
    high: float
    meaning: str
    faithfulness: bool = True  # False: describes the explanation's shape, not whether it is true


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("comprehensiveness", "Comprehensiveness", "higher", -1, 1,
           f"Probability drop when the top {RATIONALE_FRACTION:.0%} tokens are removed: did the explanation find what the model needs?"),
    Metric("sufficiency", "Sufficiency", "lower", -1, 1,
           f"Probability drop when only the top {RATIONALE_FRACTION:.0%} tokens are kept: are they enough on their own?"),
    Metric("aopc_comprehensiveness", "AOPC comprehensiveness", "higher", -1, 1,
           "Comprehensiveness averaged over removing the top 1, 5, 10, 20 and 50 % of tokens."),
    Metric("aopc_sufficiency", "AOPC sufficiency", "lower", -1, 1,
           "Sufficiency averaged over keeping the top 1, 5, 10, 20 and 50 % of tokens."),
    Metric("deletion_auc", "Deletion AUC", "lower", 0, 1,
           "Area under the probability curve as the most important tokens are removed first: a fast fall is good."),
    Metric("insertion_auc", "Insertion AUC", "higher", 0, 1,
           "Area under the probability curve as the most important tokens are put back first: a fast rise is good."),
    Metric("kendall_tau_loo", "Kendall τ vs leave-one-out", "higher", -1, 1,
           "Rank agreement with the effect of deleting each token on its own."),
    Metric("sparsity_gini", "Sparsity (Gini)", "higher", 0, 1,
           "How concentrated the attribution mass is on few tokens: easier to read, not more faithful.", False),
    Metric("normalized_entropy", "Normalized entropy", "lower", 0, 1,
           "How evenly the attribution mass is spread (1 = uniform): lower is more focused, not more faithful.", False),
)}

PLAUSIBILITY: dict[str, Metric] = {m.name: m for m in (
    Metric("token_f1", "Token F1", "higher", 0, 1,
           "Overlap of the explanation's top tokens with the words you marked (as many tokens as you marked)."),
    Metric("iou", "IOU", "higher", 0, 1, "Intersection over union of those two token sets."),
    Metric("auprc", "AUPRC", "higher", 0, 1, "Area under the precision-recall curve of the scores against your marks."),
)}


@dataclass
class Report:
    """All metrics of one explanation, the curves behind them, and how they were computed."""

    method: str
    mode: str
    base_prob: float
    values: dict[str, float]
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    forward_rows: int = 0
    normaliser: str = AOPC_NORMALISER

    def to_dict(self) -> dict:
        return asdict(self)


# ---- perturbations ----------------------------------------------------------------------------
def _ranked_positions(exp: Explanation) -> list[int]:
    """Content positions, most important first (signed: most in favour of the target first)."""
    enc = exp.encoded
    scores = exp.scores("token")
    return sorted(enc.content_positions, key=lambda i: (-scores[i], i))


def _top_k(n: int, fraction: float) -> int:
    return min(n, max(1, math.ceil(fraction * n)))


class _Batch:
    """Collects perturbed sequences, de-duplicated, for one scoring pass."""

    def __init__(self, handle: ModelHandle, enc: Encoded, mode: str):
        if mode not in MODES:
            raise InputError(f"Unknown perturbation mode '{mode}': use {' or '.join(MODES)}.")
        self.enc, self.mode = enc, mode
        self.fill = handle.baseline_token_id()
        self.index: dict[tuple[int, ...], int] = {}

    def without(self, positions) -> int:
        drop = set(positions)
        if self.mode == "delete":
            seq = [t for i, t in enumerate(self.enc.ids) if i not in drop]
        else:
            seq = [self.fill if i in drop else t for i, t in enumerate(self.enc.ids)]
        return self._add(tuple(seq) or (self.fill,))  # a model cannot read an empty sequence

    def only(self, positions) -> int:
        keep = set(positions)
        return self.without([i for i in self.enc.content_positions if i not in keep])

    def _add(self, seq: tuple[int, ...]) -> int:
        return self.index.setdefault(seq, len(self.index))

    def score(self, handle: ModelHandle, target: Target) -> np.ndarray:
        return handle.score_ids([list(s) for s in self.index], target)


# ---- metrics ------------------------------------------------------------------------------------
def evaluate(handle: ModelHandle, exp: Explanation, mode: str = "delete", loo_scores: np.ndarray | None = None) -> Report:
    """Every faithfulness metric of one explanation, in one batched forward pass."""
    enc, target = exp.encoded, exp.target
    ranked = _ranked_positions(exp)
    n = len(ranked)
    batch = _Batch(handle, enc, mode)
    full = batch.without([])
    comp = {f: batch.without(ranked[: _top_k(n, f)]) for f in AOPC_BINS + (RATIONALE_FRACTION,)}
    suff = {f: batch.only(ranked[: _top_k(n, f)]) for f in AOPC_BINS + (RATIONALE_FRACTION,)}
    steps = sorted({round(j * n / CURVE_STEPS) for j in range(CURVE_STEPS + 1)})
    deletion = [batch.without(ranked[:k]) for k in steps]
    insertion = [batch.only(ranked[:k]) for k in steps]
    loo = None
    if loo_scores is None:
        loo = [batch.without([i]) for i in enc.content_positions]
    probs = batch.score(handle, target)

    base = float(probs[full])
    fractions = [k / max(n, 1) for k in steps]
    deletion_curve = [float(probs[i]) for i in deletion]
    insertion_curve = [float(probs[i]) for i in insertion]
    if loo is not None:
        loo_scores = np.zeros(enc.n_tokens)
        loo_scores[enc.content_positions] = base - probs[loo]
    scores = exp.scores("token")
    content = enc.content_positions

    values = {
        "comprehensiveness": base - float(probs[comp[RATIONALE_FRACTION]]),
        "sufficiency": base - float(probs[suff[RATIONALE_FRACTION]]),
        "aopc_comprehensiveness": float(np.mean([base - probs[comp[f]] for f in AOPC_BINS])),
        "aopc_sufficiency": float(np.mean([base - probs[suff[f]] for f in AOPC_BINS])),
        "deletion_auc": _auc(fractions, deletion_curve),
        "insertion_auc": _auc(fractions, insertion_curve),
        "kendall_tau_loo": kendall_tau(scores[content], np.asarray(loo_scores)[content]),
        "sparsity_gini": gini(np.abs(scores[content])),
        "normalized_entropy": normalized_entropy(np.abs(scores[content])),
    }
    return Report(
        method=exp.method,
        mode=mode,
        base_prob=base,
        values=values,
        curves={
            "aopc_comprehensiveness": {"x": list(AOPC_BINS), "y": [base - float(probs[comp[f]]) for f in AOPC_BINS]},
            "aopc_sufficiency": {"x": list(AOPC_BINS), "y": [base - float(probs[suff[f]]) for f in AOPC_BINS]},
            "deletion": {"x": fractions, "y": deletion_curve},
            "insertion": {"x": fractions, "y": insertion_curve},
        },
        forward_rows=len(batch.index),
    )


def evaluate_many(handle: ModelHandle, explanations: list[Explanation], mode: str = "delete") -> list[Report]:
    """Reports for several explanations of one text, sharing one leave-one-out pass."""
    if not explanations:
        return []
    from .methods import leave_one_out_scores

    first = explanations[0]
    loo = leave_one_out_scores(handle, first.encoded, first.target)
    return [evaluate(handle, e, mode, loo_scores=loo if _same_input(e, first) else None) for e in explanations]


def _same_input(a: Explanation, b: Explanation) -> bool:
    return a.token_ids == b.token_ids and a.target == b.target


def rank_explanations(reports: list[Report]) -> list[tuple[str, float]]:
    """Methods ordered by their mean rank over the faithfulness metrics (1 = best everywhere).

    Ranks, not raw values, so that metrics on different scales weigh the same."""
    if not reports:
        return []
    names = [r.method for r in reports]
    ranks = np.zeros(len(reports))
    used = [m for m in METRICS.values() if m.faithfulness]
    for metric in used:
        values = np.array([r.values[metric.name] for r in reports], dtype=float)
        values = np.where(np.isnan(values), -np.inf if metric.direction == "higher" else np.inf, values)
        order = -values if metric.direction == "higher" else values
        ranks += _average_ranks(order)
    mean = ranks / len(used)
    return sorted(zip(names, mean.tolist()), key=lambda x: x[1])


def agreement(explanations: list[Explanation], level: str = "token") -> tuple[list[str], np.ndarray]:
    """Spearman rank correlation between every pair of explanations of the same text."""
    names = [e.method for e in explanations]
    matrix = np.eye(len(explanations))
    for i, a in enumerate(explanations):
        for j in range(i + 1, len(explanations)):
            b = explanations[j]
            if a.token_ids != b.token_ids:
                raise InputError("Agreement compares explanations of the same text only.")
            keep = [k for k, s in enumerate(a.special) if not s] if level == "token" else slice(None)
            matrix[i, j] = matrix[j, i] = spearman(a.scores(level)[keep], b.scores(level)[keep])
    return names, matrix


def plausibility(exp: Explanation, rationale_words: set[int] | list[int]) -> dict[str, float]:
    """Agreement of the explanation with the words a person marked as important (ERASER)."""
    rationale_words = set(rationale_words)
    if not rationale_words:
        raise InputError("Mark at least one word to compare the explanation with.")
    content = exp.encoded.content_positions
    truth = np.array([exp.word_of_token[i] in rationale_words for i in content])
    scores = exp.scores("token")[content]
    k = int(truth.sum())
    top = set(np.argsort(-scores, kind="stable")[:k].tolist())
    predicted = np.array([i in top for i in range(len(content))])
    tp = float((predicted & truth).sum())
    precision = tp / max(predicted.sum(), 1)
    recall = tp / max(truth.sum(), 1)
    return {
        "token_f1": 0.0 if tp == 0 else float(2 * precision * recall / (precision + recall)),
        "iou": tp / float((predicted | truth).sum()),
        "auprc": average_precision(scores, truth),
    }


# ---- small numerics (kept here so their edge cases are ours and tested) -----------------------
def _auc(x: list[float], y: list[float]) -> float:
    if len(x) < 2:
        return float(y[0]) if y else float("nan")
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(values, method="average")


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import kendalltau

    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(kendalltau(a, b).statistic)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 = all equal, -> 1 = all mass on one."""
    v = np.sort(np.asarray(values, dtype=float))
    if len(v) == 0 or v.sum() == 0:
        return float("nan")
    n = len(v)
    return float((2 * np.arange(1, n + 1) - n - 1) @ v / (n * v.sum()))


def normalized_entropy(values: np.ndarray) -> float:
    """Shannon entropy of the normalised mass, divided by log(n): 1 = uniform, 0 = one token."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2 or v.sum() == 0:
        return float("nan")
    p = v / v.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(len(v)))


def average_precision(scores: np.ndarray, truth: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    if truth.all() or not truth.any():
        return float("nan")
    return float(average_precision_score(truth.astype(int), scores))
