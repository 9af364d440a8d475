"""Packing across texts: the forward-only rows of many texts scored together, in full length-aware batches.

Methods and metrics ask the model for rows through `handle.score_ids`: occlusion's windows, LIME's
samples (via `predict_proba`), leave-one-out, every faithfulness metric's perturbations. One text
rarely fills a batch (occlusion asks ~20 rows, a faithfulness job ~50), so a data set explained text by
text pays for many small, half-empty model calls. `pack` runs a list of *steps* (one method on one text,
one evaluation of one explanation) so that their rows meet in one pass:

1. each step runs against a replaying view of the handle; the first time it asks for rows that are not
   scored yet, the view notes them and interrupts the step (`RowsNeeded`);
2. once every step has run up to its request, all the noted rows, de-duplicated across steps and texts,
   go through the gateway in one `score_ids` call per target, which plans batches by length over them all;
3. the interrupted steps run again, answered from the scored rows, and finish (or ask for more: repeat).

A step's own work before its request (LIME's sampling, a metric's planning) runs twice; the model rows
once. Steps are deterministic (seeded), so the second run asks for the same rows, and the results equal
text-by-text ones up to the float noise of different batch padding. Gradient rows (IG's interpolation
steps) run inside their step as before: they need a backward pass per text. Stopping works as for any
model work: the pass runs in the caller's thread, inside its `gateway.watching` block.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explainers.errors import CancelledError, WhyboxError
from explainers.models.handle import ModelHandle
from explainers.models.tasks import Target


class RowsNeeded(BaseException):  # noqa: N818 - a signal, like GeneratorExit, not an error
    """Interrupts a step that asked for rows not scored yet. A BaseException, so that it passes through
    the `except Exception` that turns a method's unexpected errors into InternalError."""


@dataclass
class _Rows:
    """Rows asked for and rows scored, per target, for one `pack` call."""

    handle: ModelHandle
    scored: dict[Target | None, dict[tuple[int, ...], np.ndarray]] = field(default_factory=dict)
    wanted: dict[Target | None, dict[tuple[int, ...], None]] = field(default_factory=dict)
    predictions: dict = field(default_factory=dict)
    asked: int = 0  # rows the current step asked for and did not have

    def score_ids(self, sequences: Sequence[Sequence[int]], target: Target | None) -> np.ndarray:
        if not sequences or any(len(s) == 0 for s in sequences):  # the gateway's own answer or message
            return self.handle.gateway.score_ids(sequences, target)
        known = self.scored.get(target, {})
        rows = [tuple(s) for s in sequences]
        missing = [row for row in rows if row not in known]
        if missing:
            self.wanted.setdefault(target, {}).update(dict.fromkeys(missing))
            self.asked += len(missing)
            raise RowsNeeded
        return np.stack([known[row] for row in rows])

    def predict(self, enc, attentions: bool = False):
        """The full-text pass, once per text for all the steps on it (and their replays)."""
        key = (tuple(enc.ids), attentions)
        if key not in self.predictions:
            self.predictions[key] = self.handle.gateway.predict(enc.ids, attentions=attentions)
        return self.predictions[key]

    def view(self) -> ModelHandle:
        """The handle as steps see it: the same model, tokenizer, task and gateway, with its rows answered
        here (`predict_proba` and every method call `self.score_ids`)."""
        view = copy.copy(self.handle)
        view.score_ids = self.score_ids
        view.predict = self.predict
        return view

    def score_wanted(self) -> int:
        """Score every row asked for, one gateway call per target; returns the rows scored."""
        total = 0
        for target, rows in self.wanted.items():
            sequences = list(rows)
            scores = self.handle.gateway.score_ids(sequences, target)
            self.scored.setdefault(target, {}).update(zip(sequences, scores))
            total += len(sequences)
        self.wanted = {}
        return total


_PENDING = object()


@dataclass
class Packed:
    """What `pack` returns: each step's result (or the WhyboxError it raised), and its seconds: its own
    work plus its share of the packed passes, by the rows it asked for."""

    results: list[Any]
    seconds: list[float]
    passes: int  # packed model passes run
    rows: int  # model rows scored in them


def pack(handle: ModelHandle, steps: Sequence[Callable[[ModelHandle], Any]]) -> Packed:
    """Run `steps` (each called with a handle view) with their forward rows scored together.

    A step that raises a WhyboxError gets it as its result (the others go on); CancelledError stops all."""
    rows = _Rows(handle)
    view = rows.view()
    results: list[Any] = [_PENDING] * len(steps)
    own = [0.0] * len(steps)
    asked = [0] * len(steps)
    passes = scored = 0
    pass_seconds = 0.0
    while True:
        for i, step in enumerate(steps):
            if results[i] is not _PENDING:
                continue
            rows.asked = 0
            started = time.perf_counter()
            try:
                results[i] = step(view)
            except RowsNeeded:
                pass
            except CancelledError:
                raise
            except WhyboxError as exc:
                results[i] = exc
            own[i] += time.perf_counter() - started
            asked[i] += rows.asked
        if not rows.wanted:
            break
        started = time.perf_counter()
        scored += rows.score_wanted()
        pass_seconds += time.perf_counter() - started
        passes += 1
    share = pass_seconds / max(sum(asked), 1)
    return Packed(results, [o + share * a for o, a in zip(own, asked)], passes, scored)
