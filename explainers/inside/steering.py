"""Steering with reliability statistics: add α × a concept direction to the residual stream at a layer
and measure what it does to a target over a set of held-out prompts.

The vector is added at every position (for a language model: the prompt's and each generated token's),
through `activations.adding`, which fails if the addition never ran. The target metric is a log-odds:
log p(A) − log p(B) with a contrast B, else log p(A) − log(1 − p(A)) (A a label of a classifier or a
continuation of a language model). Per prompt, the steerability is the least-squares slope of the
metric against α; across prompts: the mean slope with a 95 % t interval and the share of prompts moved
the wrong way (slope < 0; Tan et al. 2024 find up to half for some concepts). The off-target cost is
the change of a language model's mean log-likelihood per token of neutral texts, and a prompting
baseline (the concept asked for in words, before the prompt) stands beside it, because a prompt often
beats steering (AxBench, Wu et al. 2025).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from explainers.errors import InputError
from explainers.inside import activations
from explainers.models.handle import ModelHandle
from explainers.models.tasks import Target

POSITIONS = "every position (the prompt's and each generated token's)"
DEGENERATE_NATS = 1.0  # neutral text losing more log-likelihood per token than this: the output degenerates
COLLAPSED = 0.05  # the prompts' scores spread less than this share of their unsteered spread: collapsed
EPS = 1e-12


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): the mean with its 95 % t interval (NaN bounds for fewer than 2 values)."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    m = float(values.mean())
    if len(values) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return m, m - half, m + half


def slopes(alphas: Sequence[float], values: np.ndarray) -> np.ndarray:
    """(P,) least-squares slope of each row of `values` (P, len(alphas)) against α."""
    x = np.asarray(alphas, dtype=float)
    x = x - x.mean()
    return (values - values.mean(axis=1, keepdims=True)) @ x / float(x @ x)


def log_odds(handle: ModelHandle, sequences: Sequence[Sequence[int]], target: Target) -> np.ndarray:
    """(N,) the target's log-odds for each row: log p(A) − log p(B) with a contrast, else log p/(1 − p)."""
    p = np.clip(handle.score_ids(sequences, target.plain).astype(float), EPS, 1 - EPS)
    if target.contrast is None:
        return np.log(p) - np.log1p(-p)
    q = np.clip(handle.score_ids(sequences, target.contrast).astype(float), EPS, 1 - EPS)
    return np.log(p) - np.log(q)


def mean_loglik(handle: ModelHandle, sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """(N,) a language model's mean log p(token | the tokens before it) per text."""
    reads = [[(i - 1, int(s[i])) for i in range(1, len(s))] for s in sequences]
    return np.nanmean(handle.gateway.token_logprobs(sequences, reads), axis=1)


@dataclass
class Baseline:
    instruction: str
    effects: np.ndarray  # per prompt: metric with the instruction − without

    def to_dict(self) -> dict:
        m, lo, hi = mean_interval(self.effects)
        return {
            "instruction": self.instruction,
            "mean_effect": m,
            "effect_low": lo,
            "effect_high": hi,
            "wrong_way_share": float(np.mean(self.effects < 0)),
            "effects": self.effects.tolist(),
        }


@dataclass
class SteeringReport:
    layer: int
    alphas: list[float]
    target: str
    metric: str
    prompts: list[str]
    values: np.ndarray  # (P, len(alphas)) the metric per prompt and α
    off_target: np.ndarray | None  # (len(alphas),) mean Δ log-likelihood per token of neutral texts
    baseline: Baseline | None
    generations: list[tuple[float, str]]
    vector_norm: float
    notes: list[str] = field(default_factory=list)

    @property
    def slopes(self) -> np.ndarray:
        return slopes(self.alphas, self.values)

    @property
    def zero(self) -> int:
        return self.alphas.index(0.0)

    def effects(self, j: int) -> np.ndarray:
        """(P,) the change of the metric at alphas[j] against α = 0."""
        return self.values[:, j] - self.values[:, self.zero]

    @property
    def wrong_way_share(self) -> float:
        return float(np.mean(self.slopes < 0))

    @property
    def degenerate_alphas(self) -> list[float]:
        """Strengths where the output degenerates: neutral text loses more than DEGENERATE_NATS per token,
        or the prompts' scores collapse together (spread below COLLAPSED of the unsteered one: the output
        no longer depends on the text), or a score is not finite."""
        spread = self.values.std(axis=0)
        out = []
        for j, a in enumerate(self.alphas):
            lost = self.off_target is not None and not self.off_target[j] > -DEGENERATE_NATS
            collapsed = spread[j] < COLLAPSED * spread[self.zero]
            if lost or collapsed or not np.isfinite(self.values[:, j]).all():
                out.append(a)
        return out

    def to_dict(self) -> dict:
        m, lo, hi = mean_interval(self.slopes)
        effects = []
        for j, a in enumerate(self.alphas):
            em, el, eh = mean_interval(self.effects(j))
            effects.append({"alpha": a, "mean_effect": em, "effect_low": el, "effect_high": eh})
        return {
            "layer": self.layer,
            "positions": POSITIONS,
            "alphas": self.alphas,
            "target": self.target,
            "metric": self.metric,
            "vector_norm": self.vector_norm,
            "slope": m,
            "slope_low": lo,
            "slope_high": hi,
            "slope_interval": "95 % t interval over prompts",
            "wrong_way_share": self.wrong_way_share,
            "per_prompt_slopes": self.slopes.tolist(),
            "effects": effects,
            "values": self.values.tolist(),
            "prompts": self.prompts,
            "off_target_loglik_change": None if self.off_target is None else self.off_target.tolist(),
            "degenerate_alphas": self.degenerate_alphas,
            "prompt_baseline": None if self.baseline is None else self.baseline.to_dict(),
            "generations": [{"alpha": a, "text": t} for a, t in self.generations],
            "notes": self.notes,
        }


def check_alphas(alphas: Sequence[float]) -> list[float]:
    out = sorted({float(a) for a in alphas} | {0.0})
    if len(out) < 2 or not all(np.isfinite(out)):
        raise InputError("Give at least one finite strength α other than 0 (e.g. -4 -2 2 4).")
    return out


def steer(
    handle: ModelHandle,
    vector: np.ndarray,
    layer: int,
    prompts: Sequence[str],
    target: str,
    contrast: str | None = None,
    alphas: Sequence[float] = (-4, -2, 0, 2, 4),
    neutral: Sequence[str] = (),
    instruction: str | None = None,
    generate: int = 0,
) -> SteeringReport:
    """Steer with α × `vector` at `layer` over `prompts`; see the module doc for what is measured."""
    from explainers.generation.tokens import generate_greedy

    alphas = check_alphas(alphas)
    activations.check_layer(handle, layer)
    if len(prompts) < 2:
        raise InputError("Steering statistics need at least 2 held-out prompts (20 or more to trust them).")
    vector_t = torch.as_tensor(np.asarray(vector), dtype=torch.float32)
    if vector_t.shape != (handle.model.config.hidden_size,):
        raise InputError(
            f"The direction has shape {tuple(vector_t.shape)}, the model's width is {handle.model.config.hidden_size}."
        )
    encoded = [handle.encode(p) for p in prompts]
    resolved = handle.resolve_target(encoded[0], target, contrast=contrast or None)
    sequences = [e.ids for e in encoded]
    lm = handle.task.generates
    neutral_ids = [handle.encode(t).ids for t in neutral] if lm else []
    neutral_ids = [s for s in neutral_ids if len(s) > 1]
    values = np.zeros((len(prompts), len(alphas)))
    loglik = np.zeros((len(neutral_ids), len(alphas)))
    generations = []
    for j, alpha in enumerate(alphas):
        with activations.adding(handle, {layer: alpha * vector_t}):
            values[:, j] = log_odds(handle, sequences, resolved)
            if neutral_ids:
                loglik[:, j] = mean_loglik(handle, neutral_ids)
            if generate and lm:
                new = generate_greedy(handle, encoded[0], generate)
                generations.append((alpha, handle.tokenizer.decode(new)))
    zero = alphas.index(0.0)
    off_target = (loglik - loglik[:, [zero]]).mean(axis=0) if neutral_ids else None
    baseline = None
    if instruction and lm:
        instructed = [handle.encode(f"{instruction.strip()}\n{p}").ids for p in prompts]
        baseline = Baseline(instruction.strip(), log_odds(handle, instructed, resolved) - values[:, zero])
    notes = []
    if np.allclose(values, values[:, [zero]]):
        notes.append("No α changed the target at all: is the direction zero at this layer?")
    report = SteeringReport(
        layer,
        alphas,
        handle.task.display(resolved),
        "log p(A) − log p(B)" if resolved.contrast else "log-odds log p/(1 − p)",
        list(prompts),
        values,
        off_target,
        baseline,
        generations,
        float(np.linalg.norm(vector)),
        notes,
    )
    if report.degenerate_alphas:
        notes.append(
            f"At α = {', '.join(f'{a:g}' for a in report.degenerate_alphas)} the output degenerates (neutral text "
            f"loses more than {DEGENERATE_NATS:g} nat per token, or every prompt gets the same score): trust smaller "
            "strengths."
        )
    if len(prompts) < 20:
        notes.append(f"Only {len(prompts)} prompts: the slope's interval is wide; use 20 or more.")
    return report
