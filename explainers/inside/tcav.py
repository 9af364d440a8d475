"""TCAV (Kim et al. 2018) for a classifier, with its significance test as the paper and LIT run it.

A concept activation vector (CAV) at a layer is the normal of a linear classifier (logistic regression)
separating the concept's texts from a random set, pointing toward the concept. A text's sensitivity is
the directional derivative of the class logit along the CAV: the gradient of the logit with respect to
the layer's residual stream, summed over the pooled positions (adding v at each of them moves the
pooled vector by v), dotted with the CAV. The TCAV score is the share of the class's texts with a
positive sensitivity.

One CAV can be luck, so each of `runs` runs draws a fresh random set (and a subsample of the concept);
beside each, a CAV between two random sets gives a score of what no concept looks like. A two-sided
t-test between the two lists of scores (scipy's ttest_ind, as LIT) says whether the concept's scores
differ from random: "not significant (p > 0.05)" is said plainly.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from explainers.errors import InputError
from explainers.inference.gateway import checkpoint
from explainers.inside import activations
from explainers.models.handle import ModelHandle

ALPHA = 0.05
MIN_RUNS = 2


def _layer_gradients(
    handle: ModelHandle, sequences: Sequence[Sequence[int]], layer: int, class_index: int, pooling: str
) -> np.ndarray:
    """(N, H): d logit[class] / d (residual stream at `layer`), summed over each text's pooled positions."""
    from explainers.inference.batching import plan_batches

    gateway = handle.gateway
    captured: list[torch.Tensor] = []

    def leaf(hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden.detach().requires_grad_(True)  # the gradient stops here: a leaf of our own
        captured.append(hidden)
        return hidden

    out = np.zeros((len(sequences), handle.model.config.hidden_size), dtype=np.float64)
    batches = plan_batches([len(s) for s in sequences], gateway.batch_tokens, gateway.call_overhead)
    with activations.editing(handle, {layer: leaf}), torch.enable_grad():
        for chunk in batches:
            captured.clear()
            ids, mask = gateway._assemble([sequences[i] for i in chunk])
            logits = handle.model(input_ids=ids.to(handle.device), attention_mask=mask.to(handle.device)).logits
            logits[:, class_index].sum().backward()  # rows are independent: each row's gradient is its own
            grads = captured[0].grad.float().cpu()
            for j, i in enumerate(chunk):
                where = activations.pooled_positions(pooling, len(sequences[i]))
                out[i] = grads[j, where].sum(dim=0).numpy()
            checkpoint(len(chunk))
    return out


def cav(concept: np.ndarray, random: np.ndarray, seed: int) -> np.ndarray:
    """The unit normal of a logistic regression separating `concept` (1) from `random` (0)."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([concept, random])
    y = np.r_[np.ones(len(concept)), np.zeros(len(random))]
    w = LogisticRegression(max_iter=2000, random_state=seed).fit(x, y).coef_[0]
    return w / max(float(np.linalg.norm(w)), 1e-12)


def splits(n_concept: int, n_random: int, runs: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per run: (concept sample, random set, second random set) as indices; m = min(n_concept,
    n_random // 2) texts each, the two random sets disjoint."""
    m = min(n_concept, n_random // 2)
    if m < 2:
        raise InputError(f"TCAV needs at least 2 concept texts and 4 random texts (got {n_concept} and {n_random}).")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(runs):
        drawn = rng.permutation(n_random)
        out.append((np.sort(rng.permutation(n_concept)[:m]), np.sort(drawn[:m]), np.sort(drawn[m : 2 * m])))
    return out


def score(gradients: np.ndarray, vector: np.ndarray) -> float:
    """The TCAV score: the share of texts whose class logit increases along `vector`."""
    return float(np.mean(gradients @ vector > 0))


@dataclass
class TCAVResult:
    layer: int
    label: str
    concept: str
    scores: np.ndarray  # one per run: concept vs a random set
    random_scores: np.ndarray  # one per run: random vs random
    p_value: float
    n_class_texts: int
    set_size: int
    pooling: str
    seed: int

    @property
    def mean(self) -> float:
        return float(self.scores.mean())

    @property
    def significant(self) -> bool:
        return bool(self.p_value < ALPHA)

    @property
    def verdict(self) -> str:
        if not self.significant:
            return f"not significant (p = {self.p_value:.2g} > {ALPHA}): no evidence the concept matters at this layer"
        way = "raises" if self.mean > float(self.random_scores.mean()) else "lowers"
        return (
            f"significant (p = {self.p_value:.2g}): moving toward '{self.concept}' {way} '{self.label}' "
            "more often than a random direction does"
        )

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "label": self.label,
            "concept": self.concept,
            "tcav_score": self.mean,
            "tcav_std": float(self.scores.std(ddof=1)),
            "random_score": float(self.random_scores.mean()),
            "random_std": float(self.random_scores.std(ddof=1)),
            "scores": self.scores.tolist(),
            "random_scores": self.random_scores.tolist(),
            "p_value": self.p_value,
            "significant": self.significant,
            "verdict": self.verdict,
            "runs": len(self.scores),
            "test": "two-sided Student t-test (scipy.stats.ttest_ind) of concept vs random-random scores",
            "n_class_texts": self.n_class_texts,
            "set_size": self.set_size,
            "pooling": self.pooling,
            "seed": self.seed,
        }


def tcav(
    handle: ModelHandle,
    concept: Sequence[str],
    random: Sequence[str],
    class_texts: Sequence[str],
    label: str | int,
    layer: int,
    runs: int = 15,
    seed: int = 0,
    pooling: str | None = None,
    concept_name: str = "concept",
) -> TCAVResult:
    """TCAV score of `concept` for `label` at `layer` over `runs` random splits, with its p-value."""
    from scipy.stats import ttest_ind

    if handle.task.scores_positions:
        raise InputError("TCAV here explains a classifier's label; for a language model use steering.")
    if runs < MIN_RUNS:
        raise InputError(f"TCAV needs at least {MIN_RUNS} runs for its t-test (15 or more is usual), not {runs}.")
    if not class_texts:
        raise InputError("TCAV needs texts of the class to explain.")
    overlap = set(concept) & set(random)
    if overlap:
        raise InputError(f"{len(overlap)} text(s) are both concept and random texts: remove them from one list.")
    activations.check_layer(handle, layer)
    pooling = pooling or activations.default_pooling(handle)
    first = handle.encode(class_texts[0])
    target = handle.resolve_target(first, label)
    plan = splits(len(concept), len(random), runs, seed)  # bad sizes fail before the model runs

    def ids(texts):
        return [handle.encode(t).ids for t in texts]

    acts = activations.read_pooled(handle, ids([*concept, *random]), [layer], pooling)[:, 0]
    concept_acts, random_acts = acts[: len(concept)], acts[len(concept) :]
    grads = _layer_gradients(handle, ids(class_texts), layer, target.class_index, pooling)
    scores, random_scores = [], []
    for run, (c, r, r2) in enumerate(plan):
        scores.append(score(grads, cav(concept_acts[c], random_acts[r], seed + run)))
        random_scores.append(score(grads, cav(random_acts[r2], random_acts[r], seed + run)))
        checkpoint()
    scores, random_scores = np.array(scores), np.array(random_scores)
    if np.ptp(scores) == 0 and np.ptp(random_scores) == 0:
        p = 1.0 if scores[0] == random_scores[0] else 0.0  # no spread: the t statistic is undefined
    else:
        with warnings.catch_warnings():  # near-identical scores: scipy warns, the p-value still holds
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(ttest_ind(scores, random_scores).pvalue)
    return TCAVResult(
        layer, target.label, concept_name, scores, random_scores, p, len(class_texts), len(plan[0][0]), pooling, seed
    )
