"""Faithfulness and quality of explanations (ERASER, DeYoung et al. 2020, and friends).

Each metric is one object that owns its metadata (direction, range, meaning) and its computation:
it plans the perturbed inputs it needs on a shared `Job`, and reads its value (and curve) once the
job's rows, de-duplicated across every metric asked for, have been scored in one batched pass.
Tables, charts, curves and the ranking iterate over the metric objects instead of naming them.

Conventions:
- The rationale of a fraction f is the ⌈f·n⌉ content tokens (at least one) with the highest *signed*
  scores: the tokens that push hardest towards the explained target. Special tokens are never part of it.
- Leave-one-out has one definition per perturbation mode: in "delete" mode each token is deleted, in
  "mask" mode it is replaced by the baseline (mask) token. The metrics, the `leave_one_out` method
  (its `removal` parameter) and every caller share that definition and its one computation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from explainers.errors import InputError
from explainers.explanation import Explanation
from explainers.models.handle import ModelHandle
from explainers.models.tasks import Target
from explainers.models.text import Encoded

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
RATIONALE_RULE = (
    "The rationale of a fraction f is the ⌈f·n⌉ content tokens (at least one) with the highest signed "
    "scores (most in favour of the target first); special tokens are never part of it."
)
LEAVE_ONE_OUT_RULE = (
    "Leave-one-out removes one content token at a time: in delete mode the token is deleted, in mask "
    "mode it is replaced by the baseline (mask) token. τ vs leave-one-out compares with the "
    "leave-one-out of the same mode; it is computed once per text, target and mode."
)


# ---- perturbations ----------------------------------------------------------------------------
class Perturbations:
    """Perturbed copies of one text, de-duplicated, for one scoring pass."""

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


def leave_one_out(handle: ModelHandle, enc: Encoded, target: Target, mode: str = "delete") -> np.ndarray:
    """p(x) − p(x without token i) per token (0 for special tokens), for this mode's removal.
    Computed once per (text, target, mode) on a model and remembered."""
    key = ("leave_one_out", tuple(enc.ids), target, mode)
    known = handle.gateway.recall(key)
    if known is not None:
        return known.copy()
    plan = Perturbations(handle, enc, mode)
    full = plan.without([])
    rows = [plan.without([i]) for i in enc.content_positions]
    probs = plan.score(handle, target)
    return handle.gateway.remember(key, _loo_from(enc, probs[full], probs[rows])).copy()


def _loo_from(enc: Encoded, base: float, removed: np.ndarray) -> np.ndarray:
    scores = np.zeros(enc.n_tokens)
    scores[enc.content_positions] = base - np.asarray(removed)
    return scores


def _top_k(n: int, fraction: float) -> int:
    return min(n, max(1, math.ceil(fraction * n)))


class Job:
    """One explanation being evaluated: the ranked tokens, the shared perturbations, then their scores."""

    def __init__(self, handle: ModelHandle, exp: Explanation, mode: str):
        self.handle, self.exp, self.mode = handle, exp, mode
        self.enc = exp.encoded
        scores = exp.scores("token")
        self.scores = scores
        self.content = self.enc.content_positions
        self.ranked = sorted(self.content, key=lambda i: (-scores[i], i))  # signed: most in favour first
        self.n = len(self.ranked)
        self.rows = Perturbations(handle, self.enc, mode)
        self.full = self.rows.without([])
        self.probs: np.ndarray | None = None

    def without_top(self, fraction: float) -> int:
        return self.rows.without(self.ranked[: _top_k(self.n, fraction)])

    def only_top(self, fraction: float) -> int:
        return self.rows.only(self.ranked[: _top_k(self.n, fraction)])

    def score(self) -> None:
        self.probs = self.rows.score(self.handle, self.exp.target)

    def p(self, row: int) -> float:
        return float(self.probs[row])

    @property
    def base(self) -> float:
        return self.p(self.full)


# ---- metrics ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """A metric's metadata. Subclasses add `plan(job)` (rows to score) and `value(job, planned)`."""

    name: str
    title: str
    direction: str  # "higher" or "lower" is better
    low: float
    high: float
    meaning: str
    faithfulness: bool = True  # False: describes the explanation's shape, not whether it is true
    compares_with_method: bool = False  # True: rates a method by agreeing with another method
    curve_title: str = ""  # the curve it draws ("" for none)
    curve_x: str = ""

    @property
    def symbol(self) -> str:
        return "↑" if self.direction == "higher" else "↓"

    def plan(self, job: Job):
        return None

    def value(self, job: Job, planned) -> float:
        raise NotImplementedError

    def curve(self, job: Job, planned) -> dict[str, list[float]] | None:
        return None


@dataclass(frozen=True)
class RationaleDrop(Metric):
    """p(x) − p(x without the rationale) (comprehensiveness), or − p(rationale only) (sufficiency)."""

    keep: bool = False
    fractions: tuple[float, ...] = (RATIONALE_FRACTION,)

    def plan(self, job: Job):
        return [job.only_top(f) if self.keep else job.without_top(f) for f in self.fractions]

    def drops(self, job: Job, planned) -> list[float]:
        return [job.base - job.p(row) for row in planned]

    def value(self, job: Job, planned) -> float:
        return float(np.mean(self.drops(job, planned)))

    def curve(self, job: Job, planned):
        if len(self.fractions) < 2:
            return None
        return {"x": list(self.fractions), "y": self.drops(job, planned)}


@dataclass(frozen=True)
class AreaUnderCurve(Metric):
    """Probability as the most important tokens are removed (deletion) or put back (insertion) first."""

    keep: bool = False

    def plan(self, job: Job):
        steps = sorted({round(j * job.n / CURVE_STEPS) for j in range(CURVE_STEPS + 1)})
        rows = [job.rows.only(job.ranked[:k]) if self.keep else job.rows.without(job.ranked[:k]) for k in steps]
        return [k / max(job.n, 1) for k in steps], rows

    def curve(self, job: Job, planned):
        fractions, rows = planned
        return {"x": fractions, "y": [job.p(r) for r in rows]}

    def value(self, job: Job, planned) -> float:
        points = self.curve(job, planned)
        return _auc(points["x"], points["y"])


@dataclass(frozen=True)
class TauAgainstLeaveOneOut(Metric):
    """Kendall τ between the explanation's token scores and this mode's leave-one-out."""

    def plan(self, job: Job):
        known = job.handle.gateway.recall(("leave_one_out", tuple(job.enc.ids), job.exp.target, job.mode))
        return known if known is not None else [job.rows.without([i]) for i in job.content]

    def value(self, job: Job, planned) -> float:
        if isinstance(planned, np.ndarray):
            loo = planned
        else:  # scored in this job's pass: remember it for the next caller
            key = ("leave_one_out", tuple(job.enc.ids), job.exp.target, job.mode)
            loo = job.handle.gateway.remember(key, _loo_from(job.enc, job.base, [job.p(r) for r in planned]))
        return kendall_tau(job.scores[job.content], loo[job.content])


@dataclass(frozen=True)
class Shape(Metric):
    """A property of the scores alone (no model rows): how concentrated the attribution mass is."""

    measure: str = "gini"

    def value(self, job: Job, planned) -> float:
        mass = np.abs(job.scores[job.content])
        return gini(mass) if self.measure == "gini" else normalized_entropy(mass)


_share = f"{RATIONALE_FRACTION:.0%}"
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        RationaleDrop(
            "comprehensiveness",
            "Comprehensiveness",
            "higher",
            -1,
            1,
            f"Probability drop when the top {_share} tokens are removed: did the explanation find what "
            "the model needs?",
        ),
        RationaleDrop(
            "sufficiency",
            "Sufficiency",
            "lower",
            -1,
            1,
            f"Probability drop when only the top {_share} tokens are kept: are they enough on their own?",
            keep=True,
        ),
        RationaleDrop(
            "aopc_comprehensiveness",
            "AOPC comprehensiveness",
            "higher",
            -1,
            1,
            "Comprehensiveness averaged over removing the top 1, 5, 10, 20 and 50 % of tokens.",
            curve_title="AOPC comprehensiveness",
            curve_x="share of tokens removed",
            fractions=AOPC_BINS,
        ),
        RationaleDrop(
            "aopc_sufficiency",
            "AOPC sufficiency",
            "lower",
            -1,
            1,
            "Sufficiency averaged over keeping the top 1, 5, 10, 20 and 50 % of tokens.",
            curve_title="AOPC sufficiency",
            curve_x="share of tokens kept",
            fractions=AOPC_BINS,
            keep=True,
        ),
        AreaUnderCurve(
            "deletion_auc",
            "Deletion AUC",
            "lower",
            0,
            1,
            "Area under the probability curve as the most important tokens are removed first: a fast fall is good.",
            curve_title="Deletion",
            curve_x="share of tokens removed",
        ),
        AreaUnderCurve(
            "insertion_auc",
            "Insertion AUC",
            "higher",
            0,
            1,
            "Area under the probability curve as the most important tokens are put back first: a fast rise is good.",
            curve_title="Insertion",
            curve_x="share of tokens put back",
            keep=True,
        ),
        TauAgainstLeaveOneOut(
            "kendall_tau_loo",
            "Kendall τ vs leave-one-out",
            "higher",
            -1,
            1,
            "Rank agreement with the effect of removing each token on its own (deleted or masked, as the mode says).",
            compares_with_method=True,
        ),
        Shape(
            "sparsity_gini",
            "Sparsity (Gini)",
            "higher",
            0,
            1,
            "How concentrated the attribution mass is on few tokens (descriptive: easier to read, not more faithful).",
            faithfulness=False,
        ),
        Shape(
            "normalized_entropy",
            "Normalized entropy",
            "lower",
            0,
            1,
            "How evenly the attribution mass is spread, 1 = uniform (descriptive: lower is more focused, not more "
            "faithful).",
            faithfulness=False,
            measure="entropy",
        ),
    )
}
CURVE_METRICS = tuple(m for m in METRICS.values() if m.curve_title)

PLAUSIBILITY: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "token_f1",
            "Token F1",
            "higher",
            0,
            1,
            "Overlap of the explanation's top tokens with the words you marked (as many tokens as you marked).",
        ),
        Metric("iou", "IOU", "higher", 0, 1, "Intersection over union of those two token sets."),
        Metric(
            "auprc", "AUPRC", "higher", 0, 1, "Area under the precision-recall curve of the scores against your marks."
        ),
    )
}


def ranking_metrics() -> list[Metric]:
    """The metrics the ranking averages: faithfulness metrics that do not compare with another method
    (τ vs leave-one-out would let leave-one-out rate itself perfect)."""
    return [m for m in METRICS.values() if m.faithfulness and not m.compares_with_method]


RANKING_RULE = (
    "Methods are ranked by their mean rank over "
    + ", ".join(m.title for m in ranking_metrics())
    + ". τ vs leave-one-out is left out of the ranking: it rates a method by its agreement with another "
    "method, so leave-one-out would rate itself perfect."
)


@dataclass
class Report:
    """The metrics of one explanation, the curves behind them, and how they were computed."""

    method: str
    mode: str
    base_prob: float
    values: dict[str, float]
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    forward_rows: int = 0
    title: str = ""  # the method's title, for tables and charts
    normaliser: str = AOPC_NORMALISER
    rationale: str = RATIONALE_RULE

    def to_dict(self) -> dict:
        from explainers.strict_json import clean

        return clean(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> Report:
        d = dict(d)
        d["values"] = {k: float("nan") if v is None else v for k, v in d["values"].items()}
        return cls(**d)


def evaluate(
    handle: ModelHandle, exp: Explanation, mode: str = "delete", metrics: list[str] | tuple[str, ...] | None = None
) -> Report:
    """The metrics asked for (default: all) of one explanation, from one batched pass over every
    perturbed input they need, de-duplicated."""
    chosen = [METRICS[name] for name in metrics] if metrics is not None else list(METRICS.values())
    job = Job(handle, exp, mode)
    planned = [(metric, metric.plan(job)) for metric in chosen]
    job.score()
    values = {metric.name: metric.value(job, plan) for metric, plan in planned}
    curves = {metric.name: points for metric, plan in planned if (points := metric.curve(job, plan))}
    return Report(
        method=exp.method,
        mode=mode,
        base_prob=job.base,
        values=values,
        curves=curves,
        forward_rows=len(job.rows.index),
        title=exp.title,
    )


def evaluate_many(
    handle: ModelHandle,
    explanations: list[Explanation],
    mode: str = "delete",
    metrics: list[str] | tuple[str, ...] | None = None,
) -> list[Report]:
    """Reports for several explanations; leave-one-out is computed once per text, target and mode."""
    return [evaluate(handle, e, mode, metrics) for e in explanations]


def rank_explanations(reports: list[Report]) -> list[tuple[str, float]]:
    """Methods ordered by their mean rank over `ranking_metrics()` (1 = best everywhere); see RANKING_RULE.

    Ranks, not raw values, so that metrics on different scales weigh the same; an undefined value
    ranks last."""
    if not reports:
        return []
    names = [r.method for r in reports]
    ranks = np.zeros(len(reports))
    used = [m for m in ranking_metrics() if all(m.name in r.values for r in reports)]
    for metric in used:
        values = np.array([r.values[metric.name] for r in reports], dtype=float)
        values = np.where(np.isnan(values), -np.inf if metric.direction == "higher" else np.inf, values)
        order = -values if metric.direction == "higher" else values
        ranks += _average_ranks(order)
    mean = ranks / max(len(used), 1)
    return sorted(zip(names, mean.tolist()), key=lambda x: x[1])


def mode_dependence(reports_by_mode: dict[str, list[Report]]) -> str:
    """Whether the ranking of methods depends on how tokens are removed: one sentence for the verdict."""
    winners = {}
    for mode, reports in reports_by_mode.items():
        ranking = rank_explanations(reports)
        if ranking:
            title = next(r.title or r.method for r in reports if r.method == ranking[0][0])
            winners[mode] = title
    if len(set(winners.values())) <= 1:
        best = next(iter(winners.values()), "")
        return f"Both perturbation modes agree: {best} ranks first whether tokens are deleted or masked."
    each = "; ".join(f"{mode}: {title}" for mode, title in winners.items())
    return (
        f"The ranking depends on how tokens are removed ({each}), so the verdict is fragile: the methods' "
        "differences are partly the model's reaction to edited text."
    )


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
