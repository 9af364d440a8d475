"""Faithfulness of a generation explanation: the metric objects of `faithfulness.py`, per generated token
and for the continuation as a whole.

Each generated token t_j has its own explanation (row j of the matrix) over its own inputs (the prompt
and the tokens generated before it). Its comprehensiveness removes the top-scored of those inputs and
reads how much p(t_j) falls; its sufficiency keeps only them. The continuation as a whole is explained
by the column sums over the prompt (log p(continuation) = Σ_j log p(t_j), so for additive methods the
sums explain it); its rationale is taken among the prompt's tokens and its score is the log-probability
of the whole continuation, teacher-forced (a product of many probabilities is too small to subtract).

The metric objects are the same as for a single prediction: they ask a job for `without_top(f)`,
`only_top(f)`, `p(row)` and `base`. Here one job per generated token (and one for the continuation)
shares one set of perturbed rows, de-duplicated, scored in ONE batched teacher-forced pass
(`gateway.token_logprobs`) that reads every generated token of a row at once.

Inputs a method gives no score (integrated gradients holds the generated tokens fixed) are never part
of a rationale and are never removed: the metric judges what the explanation speaks about. In delete
mode a row left with no prompt starts from the fill token (as an emptied text does for a classifier).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from explainers import strict_json
from explainers.errors import InputError
from explainers.metrics.faithfulness import AOPC_NORMALISER, METRICS, MODES, RATIONALE_RULE, RationaleDrop, _top_k
from explainers.models.handle import ModelHandle

DEFAULT_METRICS = ("comprehensiveness", "sufficiency")
SCALES = {
    "token": "probability of the generated token, p(t_j | before it)",
    "continuation": "log-probability of the whole continuation, Σ_j log p(t_j) (nats)",
}
RULE = (
    "Each generated token is judged on its own explanation (its row) among its own inputs; the continuation "
    "as a whole on the column sums over the prompt, with the continuation's log-probability as its score. "
    "Inputs the method does not score are never removed."
)


def generation_metrics() -> list[str]:
    """The metrics that apply to generated text: those that remove or keep a rationale."""
    return [name for name, m in METRICS.items() if isinstance(m, RationaleDrop)]


class Rows:
    """Perturbed copies of prompt + continuation, keyed by the positions removed, for one scoring pass.
    Every row reads each generated token still in it."""

    def __init__(self, handle: ModelHandle, full: list[int], n_prompt: int, mode: str):
        if mode not in MODES:
            raise InputError(f"Unknown perturbation mode '{mode}': use {' or '.join(MODES)}.")
        self.full, self.n_prompt, self.mode = list(full), n_prompt, mode
        self.fill = handle.baseline_token_id()
        self.index: dict[frozenset[int], int] = {}
        self.logp: np.ndarray | None = None  # (rows, generated tokens)

    def without(self, positions) -> int:
        return self.index.setdefault(frozenset(positions), len(self.index))

    def build(self, removed: frozenset[int]) -> tuple[list[int], list[tuple[int, int]], list[int]]:
        """The row's ids, its (position, token) reads, and which generated token each read is."""
        if self.mode == "mask":
            ids = [self.fill if i in removed else t for i, t in enumerate(self.full)]
            at = list(range(len(self.full)))
        else:
            kept = [i for i in range(len(self.full)) if i not in removed]
            if kept[0] >= self.n_prompt:  # nothing left before the first generated token: it needs a context
                ids, at = [self.fill], {i: k + 1 for k, i in enumerate(kept)}
            else:
                ids, at = [], {i: k for k, i in enumerate(kept)}
            ids += [self.full[i] for i in kept]
        reads, which = [], []
        for j in range(len(self.full) - self.n_prompt):
            position = self.n_prompt + j
            if position not in removed:
                reads.append((at[position] - 1, self.full[position]))
                which.append(j)
        return ids, reads, which

    def score(self, handle: ModelHandle) -> None:
        built = [self.build(removed) for removed in self.index]
        logp = handle.gateway.token_logprobs([b[0] for b in built], [b[1] for b in built])
        self.logp = np.full((len(built), len(self.full) - self.n_prompt), np.nan)
        for r, (_, _, which) in enumerate(built):
            self.logp[r, which] = logp[r, : len(which)]


class View:
    """One explanation within the generation (a generated token's row, or the continuation's column
    sums): the interface the metric objects read (`without_top`, `only_top`, `p`, `base`)."""

    def __init__(self, rows: Rows, scores: np.ndarray, candidates: list[int], read):
        self.rows, self.read = rows, read
        self.candidates = candidates
        self.ranked = sorted(candidates, key=lambda i: (-scores[i], i))  # signed: most in favour first
        self.n = len(self.ranked)
        self.full = rows.without([])

    def without_top(self, fraction: float) -> int:
        return self.rows.without(self.ranked[: _top_k(self.n, fraction)])

    def only_top(self, fraction: float) -> int:
        top = set(self.ranked[: _top_k(self.n, fraction)])
        return self.rows.without([i for i in self.candidates if i not in top])

    def p(self, row: int) -> float:
        return self.read(self.rows.logp[row])

    @property
    def base(self) -> float:
        return self.p(self.full)


@dataclass
class GenerationReport:
    """Per generated token and for the continuation: each metric's value, the base score it starts from."""

    mode: str
    metrics: list[str]
    token_base: list[float]  # p(t_j) on the unperturbed row
    token_values: dict[str, list[float]]  # metric -> one value per generated token
    continuation_base: float  # log p(continuation | prompt)
    continuation_values: dict[str, float]
    forward_rows: int = 0
    scales: dict = field(default_factory=lambda: dict(SCALES))
    rule: str = RULE
    rationale: str = RATIONALE_RULE
    normaliser: str = AOPC_NORMALISER

    def to_dict(self) -> dict:
        return strict_json.clean(asdict(self))


def plan(handle: ModelHandle, gen, mode: str = "delete", metrics=DEFAULT_METRICS):
    """The shared rows, one view per generated token then the continuation's, and each view's planned
    (metric, rows): everything before the one scoring pass."""
    known = generation_metrics()
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise InputError(f"{', '.join(unknown)} cannot judge generated text; use {', '.join(known)}.")
    chosen = [METRICS[name] for name in metrics]
    n, matrix = gen.n_prompt, gen.scores
    content = [i for i, s in enumerate(gen.special) if not s]
    rows = Rows(handle, gen.token_ids, n, mode)
    views = []
    for j in range(len(gen.generated_ids)):
        candidates = [i for i in content if i < n + j and np.isfinite(matrix[j, i])]
        views.append(View(rows, matrix[j], candidates, lambda logp, j=j: float(np.exp(logp[j]))))
    column_sums = np.nansum(matrix[:, :n], axis=0)
    prompt = [i for i in content if i < n and np.isfinite(matrix[:, i]).any()]
    views.append(View(rows, column_sums, prompt, lambda logp: float(np.sum(logp))))  # the continuation
    return rows, views, [[(metric, metric.plan(view)) for metric in chosen] for view in views]


def evaluate_generation(handle: ModelHandle, gen, mode: str = "delete", metrics=DEFAULT_METRICS) -> GenerationReport:
    """The metrics asked for of a GenerationExplanation, per generated token and for the continuation,
    from one batched pass over every perturbed row they need, de-duplicated."""
    rows, views, planned = plan(handle, gen, mode, metrics)
    rows.score(handle)
    values = [{metric.name: metric.value(view, p) for metric, p in each} for view, each in zip(views, planned)]
    return GenerationReport(
        mode=mode,
        metrics=list(metrics),
        token_base=[v.base for v in views[:-1]],
        token_values={name: [v[name] for v in values[:-1]] for name in metrics},
        continuation_base=views[-1].base,
        continuation_values=values[-1],
        forward_rows=len(rows.index),
    )
