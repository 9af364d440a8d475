"""The inference gateway: the one place where whybox runs a model.

Every path that runs the model (token ids, embeddings, predictions, attention weights, Captum's layer
hooks) comes through here. The gateway holds the handle's re-entrant lock for each forward pass, so
that a method that hooks the model (`exclusive()`) never sees another thread's rows and a switch to
eager attention never changes a neighbour's numbers; it plans batches by length and token budget; and
it backs off on out-of-memory (halving the budget and retrying), written once for every caller.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch

from explainers.errors import CancelledError, InputError
from explainers.inference.batching import CALL_OVERHEAD_TOKENS, DEFAULT_TOKEN_BUDGET, plan_batches
from explainers.inference.precision import autocast
from explainers.inference.prefix_cache import cached_logits
from explainers.models.tasks import Target, Task

T = TypeVar("T")


@dataclass
class Watch:
    """Who waits for the model's work in this context: told of every batch done, asked whether to stop."""

    on_rows: Callable[[int], None] | None = None  # rows just scored (forward or backward)
    should_stop: Callable[[], bool] | None = None
    batch_seconds: float | None = None  # keep each batch about this short, so that a stop is quick


_WATCH: ContextVar[Watch | None] = ContextVar("whybox_watch", default=None)


@contextlib.contextmanager
def watching(
    on_rows: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_seconds: float | None = None,
):
    """Report progress and allow stopping at the next batch, for all model work in this block (this
    thread): `on_rows(n)` after each batch; `should_stop()` true -> CancelledError. A callback may
    also raise to stop (Streamlit's rerun interrupt does). With `batch_seconds`, batches are cut to
    about that long (by the measured rate), so that a stop never waits for a long batch."""
    token = _WATCH.set(Watch(on_rows, should_stop, batch_seconds))
    try:
        yield
    finally:
        _WATCH.reset(token)


def checkpoint(rows: int = 0) -> None:
    """A safe point between batches: stop here if asked, else report the rows just done."""
    watch = _WATCH.get()
    if watch is None:
        return
    if watch.should_stop is not None and watch.should_stop():
        raise CancelledError("Stopped before it finished.")
    if rows and watch.on_rows is not None:
        watch.on_rows(rows)


@dataclass
class Prediction:
    """One forward pass over a whole text: the prediction every explanation starts from."""

    probs: np.ndarray  # classification: class probabilities (C,); causal LM: next-token probabilities (V,)
    attentions: list[torch.Tensor] | None = None  # per layer (1, heads, T, T), when asked for
    facts: dict = field(default_factory=dict)  # what the task adds (a prompt classifier's label mass)


_NEXT_TOKEN = Target("next token", token_ids=(0,))  # a one-token continuation, to time a causal LM
MEMO_ENTRIES = 256  # small results (leave-one-out arrays), so entries bound the bytes too


class InferenceGateway:
    def __init__(self, model, tokenizer, task: Task, device: torch.device):
        self.model = model
        self.tokenizer = tokenizer
        self.task = task
        self.device = device
        self.lock = threading.RLock()
        self.token_budget = DEFAULT_TOKEN_BUDGET.get(device.type, 4096)
        self.call_overhead = CALL_OVERHEAD_TOKENS.get(device.type, 32)
        self._memo: OrderedDict = OrderedDict()
        self.prefix_cache = True  # causal LM rows run a shared beginning once (prefix_cache.py); off: plain rows
        self.precision = "float32"  # of forward-only rows: "bf16" autocasts them (see precision.py)
        self._seconds_per_row_token: dict[str, float] = {}  # per method, refined as runs finish
        self._keeps_logit_positions = (
            task.scores_positions and "logits_to_keep" in inspect.signature(model.forward).parameters
        )

    # ---- concurrency and memory ------------------------------------------------------------------
    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """The model to this thread alone, for work that hooks into it (Captum layer methods, DeepLift)."""
        with self.lock:
            yield

    def with_backoff(self, work: Callable[[], T]) -> T:
        """Run `work`; on out-of-memory, halve the token budget and run it again (it re-reads the budget)."""
        while True:
            try:
                return work()
            except torch.OutOfMemoryError:
                if self.token_budget <= 1:
                    raise
                self.token_budget //= 2
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    def recall(self, key):
        """A result remembered for this model under `key` (see `remember`), or None."""
        with self.lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        return None

    def remember(self, key, value):
        """Keep a small result that several callers need (leave-one-out per text, target and mode),
        so that it is computed once; the oldest entries go first."""
        with self.lock:
            self._memo[key] = value
            self._memo.move_to_end(key)
            while len(self._memo) > MEMO_ENTRIES:
                self._memo.popitem(last=False)
        return value

    # ---- how long things take ---------------------------------------------------------------------
    def seconds_per_row_token(self, method: str | None = None) -> float:
        """Seconds one row of one token costs, as measured for `method` (else a plain forward pass,
        timed once on first use): what turns a cost in rows into seconds for people."""
        if method in self._seconds_per_row_token:
            return self._seconds_per_row_token[method]
        if "forward" not in self._seconds_per_row_token:
            self._calibrate()
        return self._seconds_per_row_token["forward"]

    def record_rate(self, method: str, seconds: float, row_tokens: int) -> None:
        """Refine a method's rate from a finished run (an average that leans to the latest runs)."""
        if row_tokens <= 0 or seconds <= 0:
            return
        rate = seconds / row_tokens
        known = self._seconds_per_row_token.get(method)
        self._seconds_per_row_token[method] = rate if known is None else 0.5 * known + 0.5 * rate

    def _calibrate(self, rows: int = 16, tokens: int = 32) -> None:
        sequence = [self.tokenizer.pad_token_id or 0] * tokens
        target = _NEXT_TOKEN if self.task.scores_positions else None
        # Outside any watch: a watch's batch size needs this very rate (and its stop is not for us).
        unwatched = _WATCH.set(None)
        shares, self.prefix_cache = self.prefix_cache, False  # identical rows would time the cache, not a row
        try:
            self._score_ids_batched([sequence] * rows, target)  # warm-up: the first call pays for allocations
            started = time.perf_counter()
            self._score_ids_batched([sequence] * rows, target)
        finally:
            _WATCH.reset(unwatched)
            self.prefix_cache = shares
        self._seconds_per_row_token["forward"] = (time.perf_counter() - started) / (rows * tokens)

    @property
    def batch_tokens(self) -> int:
        """Padded tokens per batch: the memory budget, cut shorter while someone waits to stop."""
        watch = _WATCH.get()
        if watch is None or not watch.batch_seconds:
            return self.token_budget
        quick = int(watch.batch_seconds / self.seconds_per_row_token())
        return max(1, min(self.token_budget, quick))

    def rows_per_batch(self, seq_len: int) -> int:
        return max(1, self.batch_tokens // max(1, seq_len))

    # ---- forward paths ---------------------------------------------------------------------------
    def _logits(self, pred: torch.Tensor | None, **inputs) -> torch.Tensor:
        """A classifier's logits (B, C); a causal LM's only at positions `pred` (B, k), as (B, k, V).

        transformers' `logits_to_keep` (per-row positions) skips the vocabulary projection of every
        other position, a large share of a small LM's work; heads without it project them all."""
        with self.lock:
            if pred is None:
                return self.model(**inputs).logits
            if self._keeps_logit_positions:
                logits = self.model(**inputs, logits_to_keep=pred).logits
                if logits.shape[:2] == pred.shape:
                    return logits
                self._keeps_logit_positions = False  # a head that reads logits_to_keep differently
            logits = self.model(**inputs).logits
        rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
        return logits[rows, pred]

    def _assemble(self, rows: Sequence[Sequence[int]]):
        """Right-padded batch of token rows and its attention mask."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        return ids, mask

    def score_ids(self, sequences: Sequence[Sequence[int]], target: Target | None) -> np.ndarray:
        """Target probability for each token-id sequence (any lengths), in batches, without grad.

        With target=None (classification) returns all class probabilities, shape (N, C)."""
        if not sequences:
            return np.zeros((0,), dtype=np.float32)
        if any(len(s) == 0 for s in sequences):
            raise InputError("Cannot score an empty token sequence.")
        parts = self.task.row_targets(target)
        if parts != [target]:  # a contrast (or label words) whose targets need rows of their own
            return self.task.contrast_score([self.score_ids(sequences, part) for part in parts], target)
        return self.with_backoff(lambda: self._score_ids_batched(sequences, target))

    def _score_ids_batched(self, sequences, target) -> np.ndarray:
        out: list[np.ndarray | None] = [None] * len(sequences)
        with torch.inference_mode(), autocast(self):
            for chunk, logits in self._row_logits(sequences, self.task.appended(target), target):
                scores = self.task.target_scores(logits, target)
                for j, i in enumerate(chunk):
                    out[i] = scores[j].float().cpu().numpy()
                checkpoint(len(chunk))
        return np.stack(out)

    def _row_logits(self, sequences, tail: list[int], target: Target | None, positions: torch.Tensor | None = None):
        """(row indices, logits) batch by batch for `sequences` each followed by `tail`: a classifier's (B, C);
        a causal LM's (B, k, V) at `positions` (N, k), by default the task's scored positions. A causal LM's
        rows that share their beginning run it once (prefix_cache.py) unless `prefix_cache` is off."""
        if positions is None and self.task.scores_positions:
            positions = self.task.scored_positions([len(s) for s in sequences], target)
        if positions is not None and self.prefix_cache:
            cached = cached_logits(self, [list(s) + tail for s in sequences], positions)
            if cached is not None:
                yield from cached
                return
        batches = plan_batches([len(s) + len(tail) for s in sequences], self.batch_tokens, self.call_overhead)
        for chunk in batches:
            ids, mask = self._assemble([list(sequences[i]) + tail for i in chunk])
            pred = None if positions is None else positions[chunk].to(self.device)
            yield chunk, self._logits(pred, input_ids=ids.to(self.device), attention_mask=mask.to(self.device))

    def logits_at(self, positions: torch.Tensor, **inputs) -> torch.Tensor:
        """A causal LM's logits (B, k, V) at `positions` (B, k) only, for inputs given as ids or embeddings,
        differentiable when the inputs are: the generation explainer reads every generated token of a
        teacher-forced row from this one forward."""
        return self._logits(positions.to(self.device), **inputs)

    def token_logprobs(self, sequences: Sequence[Sequence[int]], reads: Sequence[Sequence[tuple[int, int]]]):
        """log p(token | the row before it) for several (position, token id) reads per row, without grad:
        `position` is the logit index that predicts `token`. One teacher-forced forward per row, in
        batches. Returns (N, k), k = the most reads of a row; NaN where a row has fewer."""
        if any(len(s) == 0 for s in sequences):
            raise InputError("Cannot score an empty token sequence.")
        return self.with_backoff(lambda: self._token_logprobs_batched(sequences, reads))

    def _token_logprobs_batched(self, sequences, reads) -> np.ndarray:
        k = max((len(r) for r in reads), default=0)
        out = np.full((len(sequences), k), np.nan)
        if k == 0:
            return out
        # rows with fewer reads repeat their first read (ignored): the head wants (N, k)
        where = torch.tensor([[p for p, _ in r] + [r[0][0]] * (k - len(r)) for r in reads])
        tokens = torch.tensor([[t for _, t in r] + [r[0][1]] * (k - len(r)) for r in reads])
        with torch.inference_mode(), autocast(self):
            for chunk, logits in self._row_logits(sequences, [], None, where):
                logp = torch.log_softmax(logits.float(), dim=-1)
                picked = logp.gather(-1, tokens[chunk].to(logp.device)[..., None])[..., 0].cpu().numpy()
                for j, i in enumerate(chunk):
                    out[i, : len(reads[i])] = picked[j, : len(reads[i])]
                checkpoint(len(chunk))
        return out

    def score_embeds(self, embeds: torch.Tensor, target: Target, tail_embeds: torch.Tensor | None = None):
        """Target probability from word embeddings (B, T, H) of one unpadded text: the
        differentiable path for gradient methods. The model adds its own position embeddings.

        `tail_embeds` (k-1, H) are the task's appended tokens (a causal LM's teacher-forced
        continuation), embedded once by the caller, outside Captum's layer hooks."""
        parts = self.task.row_targets(target)
        if parts != [target]:  # a contrast (or label words): each other part's tail is embedded here
            scores = []
            for part in parts:
                appended = self.task.appended(part)
                tail = tail_embeds if part == target.plain else self.embed_ids(appended)[0] if appended else None
                scores.append(self.score_embeds(embeds, part, tail))
            return self.task.contrast_score(scores, target)
        batch, length = embeds.shape[:2]
        if tail_embeds is not None and len(tail_embeds):
            embeds = torch.cat([embeds, tail_embeds[None].expand(batch, -1, -1).to(embeds.dtype)], dim=1)
        pred = self.task.scored_positions([length] * batch, target)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        checkpoint()
        logits = self._logits(
            None if pred is None else pred.to(embeds.device), inputs_embeds=embeds, attention_mask=mask
        )
        scores = self.task.target_scores(logits, target)
        checkpoint(batch)
        return scores

    def embed_ids(self, ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Word embeddings (1, T, H) of one id sequence, on the model's device."""
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.device)
        with self.lock:
            return self.model.get_input_embeddings()(ids[None]).detach()

    def predict(self, ids: Sequence[int], attentions: bool = False) -> Prediction:
        """One forward pass over one text. With attentions=True the eager attention implementation
        runs for this call only (SDPA/flash attention return no weights), and the weights come back
        per layer, each (1, heads, T, T), float32 on CPU. The lock keeps the switch invisible to
        other threads."""
        ids = torch.tensor([list(ids)], device=self.device)
        architecture = type(self.model).__name__
        with self.lock:
            previous = self.model.config._attn_implementation
            switch = attentions and previous != "eager"
            try:
                if switch:
                    self.model.set_attn_implementation("eager")
                # a causal LM needs only the next token's logits
                only_last = {"logits_to_keep": 1} if self._keeps_logit_positions else {}
                with torch.inference_mode():
                    out = self.model(input_ids=ids, output_attentions=attentions, **only_last)
            except (ValueError, NotImplementedError) as exc:
                if not attentions:
                    raise
                raise InputError(f"{architecture} cannot return attention weights: {exc}") from exc
            finally:
                if switch:
                    self.model.set_attn_implementation(previous)
        weights = None
        if attentions:
            if not out.attentions or out.attentions[0] is None:
                raise InputError(f"{architecture} returned no attention weights.")
            weights = [a.float().cpu() for a in out.attentions]
        prediction = Prediction(self.task.probabilities(out.logits).cpu().numpy(), weights)
        return self.task.refine_prediction(prediction, ids[0].tolist(), self)
