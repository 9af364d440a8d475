"""Linear probes per layer: can a logistic regression tell set A from set B from the layer's vectors?

Accuracy is cross-validated (stratified folds; a pair's two texts always in the same fold, so a probe is
never tested on the twin of a text it trained on), with a 95 % Wilson interval over the held-out
predictions. The control task is the same probe on shuffled labels (same folds, the mean of a few
shuffles): what a probe this size reaches by chance. Selectivity = accuracy − control (Hewitt &
Liang 2019): a probe that is accurate but not selective says more about the probe than about the
layer. A probe shows that the information is there (decodable), never that the model uses it:
steering and TCAV ask that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from explainers.errors import InputError
from explainers.inside.concepts import ConceptActivations

SMALL_SET = 20  # below this many texts the interval is too wide to mean much: said with the figures
Z95 = 1.959963984540054


def wilson(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def make_probe(c: float = 1.0):
    """The probe: standardised features, then an L2 logistic regression (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))


def folds_for(y: np.ndarray, groups: np.ndarray, folds: int, seed: int):
    """Stratified, grouped folds (a pair never split), shuffled by `seed`."""
    from sklearn.model_selection import StratifiedGroupKFold

    k = min(folds, int(np.bincount(y).min()))
    if k < 2:
        raise InputError("Each set needs at least 2 texts for cross-validation.")
    return StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)


CONTROL_SHUFFLES = 5  # one shuffle can agree with the true labels by chance (60 % of 80 texts is common)


def shuffled_labels(y: np.ndarray, seed: int) -> list[np.ndarray]:
    """The control task's labels: CONTROL_SHUFFLES seeded permutations of `y`."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(y) for _ in range(CONTROL_SHUFFLES)]


@dataclass
class LayerProbe:
    layer: int
    accuracy: float
    interval: tuple[float, float]
    control: float
    control_interval: tuple[float, float]
    n: int

    @property
    def selectivity(self) -> float:
        return self.accuracy - self.control

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "accuracy": self.accuracy,
            "accuracy_low": self.interval[0],
            "accuracy_high": self.interval[1],
            "control": self.control,
            "control_low": self.control_interval[0],
            "control_high": self.control_interval[1],
            "selectivity": self.selectivity,
            "n": self.n,
        }


@dataclass
class ProbeReport:
    layers: list[LayerProbe]
    pooling: str
    folds: int
    seed: int
    chance: float  # the majority-class share
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> LayerProbe:
        return max(self.layers, key=lambda p: (p.selectivity, -p.layer))

    def to_dict(self) -> dict:
        return {
            "pooling": self.pooling,
            "folds": self.folds,
            "seed": self.seed,
            "chance": self.chance,
            "interval": "95 % Wilson interval over the held-out predictions",
            "control": f"the same probe and folds on shuffled labels, mean of {CONTROL_SHUFFLES} shuffles",
            "notes": self.notes,
            "layers": [p.to_dict() for p in self.layers],
        }


def cv_accuracy(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, seed: int, c: float = 1.0):
    """(correct predictions, n) of the probe, cross-validated."""
    from sklearn.model_selection import cross_val_predict

    cv = folds_for(y, groups, folds, seed)
    predicted = cross_val_predict(make_probe(c), x, y, groups=groups, cv=cv)
    return int((predicted == y).sum()), len(y)


def probe_layers(acts: ConceptActivations, folds: int = 5, seed: int = 0, c: float = 1.0, on_layer=None) -> ProbeReport:
    """A probe and its control at every layer read; `on_layer(probe)` as each layer is done."""
    from explainers.inference.gateway import checkpoint

    out = []
    used_folds = folds
    for layer in acts.layers:
        x, y, groups = acts.xy(layer)
        used_folds = folds_for(y, groups, folds, seed).n_splits
        right, n = cv_accuracy(x, y, groups, folds, seed, c)
        control = float(np.mean([cv_accuracy(x, s, groups, folds, seed, c)[0] / n for s in shuffled_labels(y, seed)]))
        band = wilson(round(control * n), n)  # what one probe of this size reaches by chance
        out.append(LayerProbe(layer, right / n, wilson(right, n), control, band, n))
        checkpoint()  # a stop between layers
        if on_layer is not None:
            on_layer(out[-1])
    y = acts.xy(acts.layers[0])[1]
    chance = float(max(y.mean(), 1 - y.mean()))
    notes = []
    if len(y) < SMALL_SET:
        low, high = out[0].interval
        notes.append(
            f"Only {len(y)} texts: a 95 % interval is about ±{(high - low) / 2:.0%} wide, too wide to tell layers "
            f"apart; use at least {SMALL_SET} (better 100+)."
        )
    return ProbeReport(out, acts.pooling, used_folds, seed, chance, notes)
