"""What would change the answer: edited texts, each verified by the model.

Every counterfactual here has been run through the model (`verified`), and is called a flip only
when the model's answer really changed. What "changed" means is one `Goal`:

- a classifier flips when its predicted label is no longer the original target, or, with a
  threshold, when p(target) falls below it;
- a causal LM has no cheap argmax over its vocabulary per candidate, so it "flips" when
  p(target continuation) falls below the threshold (default: half its original value).

Costs are counted in model calls = texts run through the model (one row of a batch each); every
search batches its candidates, and the plan of a search is known before it runs.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from explainers.errors import InputError
from explainers.models.handle import ModelHandle
from explainers.models.tasks import Target
from explainers.models.text import check_text, split_words

DEFAULT_BUDGET = 200  # model calls a minimal-flip search may spend by default
DEFAULT_BEAM = 5  # sets kept per size in the guided search
DEFAULT_WIDTH = 8  # top-ranked words each kept set is extended with
DEFAULT_MAX_SIZE = 4  # largest set of words removed
CAUSAL_THRESHOLD_SHARE = 0.5  # a causal LM "flips" when p(target) halves, unless told otherwise


# ---- editing text by words ---------------------------------------------------------------------
def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of `text` (the engine's word rule; independent of any tokenizer)."""
    return split_words(text)


def apply_edits(text: str, spans: Sequence[tuple[int, int]], edits: dict[int, str | None]) -> str:
    """`text` with word i replaced by edits[i], or removed when edits[i] is None.

    A removed word takes one of the two gaps around it with it: "a b c" minus b is "a c", minus a
    "b c", and "flat, but" minus "," is "flat but"."""
    gaps = [text[: spans[0][0]] if spans else text]
    words = []
    for i, (a, b) in enumerate(spans):
        words.append(text[a:b])
        gaps.append(text[b : spans[i + 1][0]] if i + 1 < len(spans) else text[b:])
    # walk right to left, so that merging gaps does not move the indices still to visit
    for i in sorted(edits, reverse=True):
        if edits[i] is not None:
            words[i] = edits[i]
            continue
        before, after = gaps[i], gaps[i + 1]
        if before.strip() or after.strip():  # not whitespace (words past a truncation): keep all of it
            merged = before + after
        elif i == 0 or i == len(words) - 1:  # the text's own start or end stays as it was
            merged = before if i == 0 else after
        else:  # "flat, although" minus "," keeps the space; "a b c" minus b keeps one
            merged = before if len(before) >= len(after) else after
        gaps[i : i + 2] = [merged]
        del words[i]
    return gaps[0] + "".join(w + g for w, g in zip(words, gaps[1:]))


# ---- what counts as a flip -----------------------------------------------------------------------
@dataclass(frozen=True)
class Goal:
    """The original prediction and what counts as changing it."""

    target: Target
    original_prob: float  # p(target) on the original text
    threshold: float | None  # p(target) below this is a flip; None: the argmax must change (classifier)
    labels: tuple[str, ...]  # classifier labels; () for a causal LM

    @property
    def index(self) -> int:
        """Column of p(target) in the rows that `probabilities` returns."""
        return self.target.class_index if self.target.class_index is not None else 1

    def flipped(self, row: np.ndarray) -> bool:
        if self.threshold is not None:
            return bool(row[self.index] < self.threshold)
        return int(np.argmax(row)) != self.index

    def label_of(self, row: np.ndarray) -> str:
        if self.labels:
            return self.labels[int(np.argmax(row))]
        return self.target.label if not self.flipped(row) else f"not {self.target.label.strip()!r}"

    def describe(self) -> str:
        if self.threshold is None:
            return f"the predicted label is no longer '{self.target.label}'"
        return f"p('{self.target.label.strip()}') falls below {self.threshold:.3g}"

    def to_dict(self) -> dict:
        return {
            "target": self.target.label,
            "original_prob": self.original_prob,
            "threshold": self.threshold,
            "flip_means": self.describe(),
        }


def make_goal(handle: ModelHandle, text: str, target: str | int | None = None, threshold: float | None = None) -> Goal:
    """The prediction on `text` (one model call) and the goal of changing it."""
    check_text(text)
    if threshold is not None and not 0.0 < float(threshold) <= 1.0:
        raise InputError(f"The threshold is a probability between 0 and 1, not {threshold}.")
    enc = handle.encode(text)
    tgt = handle.resolve_target(enc, target)
    p = float(handle.target_probability(enc, tgt))
    if not handle.labels and threshold is None:  # no classes to flip: the target falling is the flip
        threshold = CAUSAL_THRESHOLD_SHARE * p
    return Goal(tgt, p, None if threshold is None else float(threshold), tuple(handle.labels))


def probabilities(handle: ModelHandle, texts: Sequence[str], goal: Goal) -> np.ndarray:
    """(N, C) rows for `texts` in batched calls: class probabilities, or [1 - p, p] of a continuation."""
    if not texts:
        return np.zeros((0, max(len(goal.labels), 2)))
    return handle.predict_proba(list(texts), goal.target)  # the task picks its class view


# ---- the record ----------------------------------------------------------------------------------
@dataclass
class Edit:
    index: int  # word index in the original text
    word: str  # the original word
    replacement: str | None = None  # None: removed

    def describe(self) -> str:
        if not self.word:
            return f"insert '{self.replacement}'"
        return f"remove '{self.word}'" if self.replacement is None else f"'{self.word}' → '{self.replacement}'"


@dataclass
class Counterfactual:
    """An edited text and what the model says about it (always verified: it was run through the model)."""

    kind: str  # "removal", "substitution", "list", "llm", "edit"
    text: str
    edits: list[Edit]
    label: str  # what the model now predicts (a classifier's label)
    target_prob: float  # p(original target) on the edited text
    change: float  # target_prob - p(original target) on the original text
    flipped: bool
    probabilities: dict[str, float] = field(default_factory=dict)
    source: str = ""  # what proposed it: "leave_one_out", "embedding", "list", "smollm2", ...
    verified: bool = True

    @property
    def size(self) -> int:
        return len(self.edits)

    def describe(self) -> str:
        return ", ".join(e.describe() for e in self.edits) or "rewritten"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size"] = self.size
        d["description"] = self.describe()
        return d


def _record(kind: str, text: str, edits: list[Edit], row: np.ndarray, goal: Goal, source: str) -> Counterfactual:
    names = goal.labels or (f"not {goal.target.label.strip()!r}", goal.target.label)
    p = float(row[goal.index])
    return Counterfactual(
        kind=kind,
        text=text,
        edits=edits,
        label=goal.label_of(row),
        target_prob=p,
        change=p - goal.original_prob,
        flipped=goal.flipped(row),
        probabilities={str(n): float(v) for n, v in zip(names, row)},
        source=source,
    )


# ---- minimal flips -------------------------------------------------------------------------------
@dataclass
class SearchResult:
    goal: Goal
    flips: list[Counterfactual]  # the smallest flips found (all of one size), most decisive first
    closest: list[Counterfactual]  # when nothing flipped: the edits that moved p(target) most
    model_calls: int
    planned_calls: int
    seconds: float
    exhausted: bool  # the budget ran out before the search finished
    method: str  # "guided" or "brute force"
    word_scores: list[float] = field(default_factory=list)  # the guide: p(x) - p(x without word i)

    @property
    def size(self) -> int | None:
        return self.flips[0].size if self.flips else None

    def to_dict(self) -> dict:
        return {
            "goal": self.goal.to_dict(),
            "method": self.method,
            "size": self.size,
            "flips": [c.to_dict() for c in self.flips],
            "closest": [c.to_dict() for c in self.closest],
            "model_calls": self.model_calls,
            "planned_calls": self.planned_calls,
            "seconds": self.seconds,
            "exhausted": self.exhausted,
            "word_scores": self.word_scores,
        }


def plan_calls(
    n_words: int,
    budget: int = DEFAULT_BUDGET,
    beam: int = DEFAULT_BEAM,
    width: int = DEFAULT_WIDTH,
    max_size: int = DEFAULT_MAX_SIZE,
) -> int:
    """Model calls the guided search makes at most, known before it runs: the original, every single
    word removed, then per size up to beam × width sets, all capped by the budget."""
    calls = 1 + n_words
    for size in range(2, min(max_size, n_words) + 1):
        calls += min(math.comb(n_words, size), beam * width)
    return min(calls, max(int(budget), 1 + n_words))


def brute_force_calls(n_words: int, max_size: int = 2) -> int:
    return 1 + sum(math.comb(n_words, k) for k in range(1, min(max_size, n_words) + 1))


def minimal_flips(
    handle: ModelHandle,
    text: str,
    target: str | int | None = None,
    threshold: float | None = None,
    budget: int = DEFAULT_BUDGET,
    beam: int = DEFAULT_BEAM,
    width: int = DEFAULT_WIDTH,
    max_size: int = DEFAULT_MAX_SIZE,
    guide: Sequence[float] | None = None,
    progress: Callable[[float, str], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> SearchResult:
    """The smallest sets of removed words that flip the prediction, guided by an attribution.

    Every single-word removal is tried (one batched call; this is also word-level leave-one-out,
    the default guide), so a flip of one word is never missed. Larger sets extend the `beam` sets
    that lowered p(target) most with the `width` words the guide ranks highest, one batched call per
    size, until a size has a flip, the budget is spent, or `stop()` says so. `guide` may be any
    word-level attribution of the target (e.g. an Explanation's word_scores)."""
    started = time.perf_counter()
    goal = make_goal(handle, text, target, threshold)
    spans = word_spans(text)
    n = len(spans)
    if n == 0:
        raise InputError("The text has no words to remove.")
    budget = max(int(budget), 1 + n)  # the single-word pass is the floor: it is the guide
    planned = plan_calls(n, budget, beam, width, max_size)
    words = [text[a:b] for a, b in spans]
    report = progress or (lambda fraction, message: None)

    def removal(subset: tuple[int, ...], row) -> Counterfactual:
        edited = apply_edits(text, spans, {i: None for i in subset})
        return _record("removal", edited, [Edit(i, words[i]) for i in subset], row, goal, "leave_one_out")

    singles = [(i,) for i in range(n)]
    rows = probabilities(handle, [apply_edits(text, spans, {i: None}) for i in range(n)], goal)
    calls = 1 + n
    report(calls / planned, f"tried every single word ({calls} calls)")
    drops = goal.original_prob - rows[:, goal.index]
    scores = np.asarray(guide, dtype=float) if guide is not None else drops
    if len(scores) != n:
        raise InputError(f"The guide has {len(scores)} word scores; the text has {n} words.")
    tried = {s: r for s, r in zip(singles, rows)}
    found = [s for s in singles if goal.flipped(tried[s])]
    ranked = [int(i) for i in np.argsort(-scores, kind="stable")][:width]
    frontier = sorted(singles, key=lambda s: tried[s][goal.index])[:beam]
    exhausted = False
    size = 1
    while not found and size < min(max_size, n):
        if stop and stop():
            break
        size += 1
        candidates = list(dict.fromkeys(tuple(sorted(s + (w,))) for s in frontier for w in ranked if w not in s))
        candidates = [c for c in candidates if c not in tried]
        room = budget - calls
        if len(candidates) > room:
            candidates, exhausted = candidates[:room], True
        if not candidates:
            break
        new_rows = probabilities(handle, [apply_edits(text, spans, {i: None for i in c}) for c in candidates], goal)
        calls += len(candidates)
        tried.update(zip(candidates, new_rows))
        found = [c for c in candidates if goal.flipped(tried[c])]
        frontier = sorted(candidates, key=lambda c: tried[c][goal.index])[:beam]
        report(min(calls / planned, 1.0), f"tried {len(candidates)} sets of {size} words ({calls} calls)")
        if exhausted:
            break
    flips = sorted((removal(s, tried[s]) for s in found), key=lambda c: c.target_prob)
    closest = [] if flips else [removal(s, tried[s]) for s in sorted(tried, key=lambda s: tried[s][goal.index])[:3]]
    return SearchResult(
        goal,
        flips,
        closest,
        calls,
        planned,
        time.perf_counter() - started,
        exhausted,
        "guided",
        [float(x) for x in drops],
    )


def brute_force_flips(
    handle: ModelHandle, text: str, target: str | int | None = None, threshold: float | None = None, max_size: int = 2
) -> SearchResult:
    """Reference search: every set of up to `max_size` words removed, in one batched call; returns
    every flip of the smallest size that has one."""
    started = time.perf_counter()
    goal = make_goal(handle, text, target, threshold)
    spans = word_spans(text)
    n = len(spans)
    words = [text[a:b] for a, b in spans]
    subsets = [c for k in range(1, min(max_size, n) + 1) for c in itertools.combinations(range(n), k)]
    rows = probabilities(handle, [apply_edits(text, spans, {i: None for i in c}) for c in subsets], goal)
    found = [(c, r) for c, r in zip(subsets, rows) if goal.flipped(r)]
    smallest = min((len(c) for c, _ in found), default=None)
    flips = sorted(
        (
            _record(
                "removal",
                apply_edits(text, spans, {i: None for i in c}),
                [Edit(i, words[i]) for i in c],
                r,
                goal,
                "brute_force",
            )
            for c, r in found
            if len(c) == smallest
        ),
        key=lambda cf: cf.target_prob,
    )
    calls = 1 + len(subsets)
    return SearchResult(goal, flips, [], calls, calls, time.perf_counter() - started, False, "brute force")


# ---- live edit: the edited text against the original ----------------------------------------------
@dataclass
class EditDiff:
    original: object  # Explanation of the original text
    edited: object  # Explanation of the edited text, for the original's target
    frame: object  # explainers.metrics.compare.align_words(original, edited)
    flipped: bool
    label_before: str
    label_after: str

    @property
    def change(self) -> float:
        return self.edited.target_prob - self.original.target_prob

    def to_dict(self) -> dict:
        frame = self.frame.astype(object).where(self.frame.notna(), None)
        return {
            "original": self.original.to_dict(),
            "edited": self.edited.to_dict(),
            "label_before": self.label_before,
            "label_after": self.label_after,
            "flipped": self.flipped,
            "change": self.change,
            "words": frame.to_dict(orient="records"),
        }


def edit_diff(
    handle: ModelHandle,
    original: str,
    edited: str,
    method: str = "leave_one_out",
    target: str | int | None = None,
    seed: int = 0,
) -> EditDiff:
    """The prediction for `edited` and each word's score change against `original`, both explained
    for the original's target (so the scores are on one question). Leave-one-out by default: one
    batched call of n + 1 texts per side, cheap enough to run as the user types."""
    from explainers.methods import explain
    from explainers.metrics.compare import align_words

    exp_a = explain(handle, original, method, target=target, seed=seed)
    exp_b = explain(handle, edited, method, target=exp_a.target.label, seed=seed)

    def top(exp) -> str:
        return max(exp.probabilities.items(), key=lambda kv: kv[1])[0] if exp.probabilities else exp.target.label

    before, after = top(exp_a), top(exp_b)
    return EditDiff(exp_a, exp_b, align_words(exp_a, exp_b), before != after, before, after)


# ---- word substitutions from the model's own embedding space ---------------------------------------
_ALPHA = re.compile(r"^[^\W\d_]{2,}$", re.UNICODE)


def embedding_neighbours(handle: ModelHandle, word: str, k: int = 8) -> list[tuple[str, float]]:
    """The `k` whole-word tokens nearest to `word` by cosine similarity of the model's input embeddings.

    Only words that are one token (with or without a leading space) have an embedding of their own;
    other words get no neighbours. Candidates are alphabetic, not special, and not the word itself."""
    ids = _word_token_id(handle, word)
    if ids is None:
        return []
    import torch

    weight = handle.model.get_input_embeddings().weight.detach().float()
    unit = torch.nn.functional.normalize(weight, dim=-1)
    sims = unit @ unit[ids]
    order = torch.argsort(sims, descending=True).tolist()
    special = set(handle.tokenizer.all_special_ids)
    seen, out = {word.lower()}, []
    for j in order:
        if j in special or j == ids:
            continue
        piece = handle.tokenizer.convert_ids_to_tokens(j)
        if piece.startswith("##"):  # WordPiece continuation: not a word of its own
            continue
        candidate = handle.tokenizer.decode([j]).strip()
        if not _ALPHA.match(candidate) or candidate.lower() in seen:
            continue
        seen.add(candidate.lower())
        out.append((candidate, float(sims[j])))
        if len(out) == k:
            break
    return out


def _word_token_id(handle: ModelHandle, word: str) -> int | None:
    for form in (word, " " + word, word.lower(), " " + word.lower()):
        ids = handle.tokenizer(form, add_special_tokens=False)["input_ids"]
        if len(ids) == 1:
            return int(ids[0])
    return None


@functools.lru_cache(maxsize=4)
def _masked_lm(source: str):
    from transformers import AutoModelForMaskedLM

    try:
        model, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True)
    except (OSError, ValueError, KeyError, RuntimeError):
        return None
    if info.get("missing_keys"):  # the head would be freshly initialised: this checkpoint has no MLM
        return None
    return model.eval()


def masked_lm(handle: ModelHandle):
    """The masked-language-model head stored with a classifier's checkpoint (a local folder), or None.
    Only real heads count: a head transformers would initialise at random is no proposer."""
    source = str(getattr(handle.model.config, "_name_or_path", "") or "")
    if not handle.labels or not source or not Path(source).is_dir() or not handle.tokenizer.mask_token:
        return None
    return _masked_lm(source)


def mlm_proposals(handle: ModelHandle, mlm, text: str, indices: Sequence[int], k: int = 8) -> dict[int, list[str]]:
    """For each word index, the `k` whole words the masked LM puts in its place (one batched pass)."""
    import torch

    spans = word_spans(text)
    tok = handle.tokenizer
    masked = [apply_edits(text, spans, {i: tok.mask_token}) for i in indices]
    batch = tok(masked, return_tensors="pt", padding=True, truncation=True, max_length=handle.max_tokens)
    with torch.inference_mode():
        logits = mlm(**batch).logits
    out = {}
    special = set(tok.all_special_ids)
    for row, i in enumerate(indices):
        where = (batch["input_ids"][row] == tok.mask_token_id).nonzero()
        if not len(where):  # truncated away
            out[i] = []
            continue
        order = torch.argsort(logits[row, int(where[0])], descending=True).tolist()
        original, words = text[spans[i][0] : spans[i][1]].lower(), []
        for j in order:
            piece = tok.convert_ids_to_tokens(j)
            candidate = tok.decode([j]).strip()
            if (
                j in special
                or piece.startswith("##")
                or not _ALPHA.match(candidate)
                or candidate.lower() == original
                or candidate.lower() in (w.lower() for w in words)
            ):
                continue
            words.append(candidate)
            if len(words) == k:
                break
        out[i] = words
    return out


def substitution_calls(n_words: int, words: int = 4, per_word: int = 8) -> int:
    return 1 + n_words + min(words, n_words) * per_word


def substitutions(
    handle: ModelHandle,
    text: str,
    target: str | int | None = None,
    threshold: float | None = None,
    words: int = 4,
    per_word: int = 8,
    keep: int = 10,
    proposer: str = "auto",
) -> tuple[list[Counterfactual], int]:
    """Replace each of the `words` most important words (by leave-one-out) with `per_word` proposals:
    the checkpoint's masked-LM head when it has one (`proposer` "auto" or "mlm"), else the nearest
    neighbours in the model's input-embedding space ("embedding"). Every candidate is run through
    the model in one batched call. Returns the `keep` candidates that flip or lower p(target) most,
    and the model calls spent (the masked LM's own pass is not a call of the explained model)."""
    if proposer not in ("auto", "mlm", "embedding"):
        raise InputError(f"Unknown proposer '{proposer}': use auto, mlm or embedding.")
    goal = make_goal(handle, text, target, threshold)
    spans = word_spans(text)
    originals = [text[a:b] for a, b in spans]
    rows = probabilities(handle, [apply_edits(text, spans, {i: None}) for i in range(len(spans))], goal)
    drops = goal.original_prob - rows[:, goal.index]
    calls = 1 + len(spans)
    # only words with letters: a comma has no useful neighbours
    ranked = [int(i) for i in np.argsort(-drops, kind="stable") if any(ch.isalpha() for ch in originals[i])][:words]
    mlm = masked_lm(handle) if proposer != "embedding" else None
    if proposer == "mlm" and mlm is None:
        raise InputError("This model's checkpoint has no masked-language-model head: use embedding neighbours.")
    if mlm is not None:
        source, proposals = "masked_lm", mlm_proposals(handle, mlm, text, ranked, per_word)
    else:
        source = "embedding"
        proposals = {i: [w for w, _ in embedding_neighbours(handle, originals[i], per_word)] for i in ranked}
    candidates = [(i, _match_case(originals[i], r)) for i in ranked for r in proposals[i]]
    texts = [apply_edits(text, spans, {i: r}) for i, r in candidates]
    rows = probabilities(handle, texts, goal)
    calls += len(texts)
    found = [
        _record("substitution", t, [Edit(i, originals[i], r)], row, goal, source)
        for (i, r), t, row in zip(candidates, texts, rows)
    ]
    found.sort(key=lambda c: (not c.flipped, c.target_prob))
    return found[:keep], calls


def _match_case(original: str, replacement: str) -> str:
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement.lower() if original.islower() else replacement


# ---- substitution lists: fairness and robustness probes ---------------------------------------------
_PAIR = re.compile(r"^\s*(.+?)\s*(?:->|=>|→)\s*(.*?)\s*$")


def parse_substitutions(spec: str) -> list[tuple[str, str]]:
    """'he -> she, his -> her' (commas or new lines between pairs; '->', '=>' or '→') as pairs.
    An empty right side removes the word ('very -> ')."""
    pairs = []
    for chunk in re.split(r"[,\n;]", spec or ""):
        if not chunk.strip():
            continue
        m = _PAIR.match(chunk)
        if not m or not m.group(1).strip():
            raise InputError(f"Cannot read the substitution '{chunk.strip()}': write it as 'word -> replacement'.")
        pairs.append((m.group(1), m.group(2)))
    if not pairs:
        raise InputError("The substitution list is empty: write pairs such as 'he -> she, his -> her'.")
    return pairs


def apply_substitutions(text: str, pairs: Sequence[tuple[str, str]]) -> str:
    """All pairs applied at once (so 'he -> she, she -> he' swaps), whole words only, ignoring case
    and keeping the case of what was replaced."""
    table = {src.lower(): dst for src, dst in pairs}
    alternation = "|".join(re.escape(src) for src in sorted(table, key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)
    out = pattern.sub(
        lambda m: _match_case(m.group(0), table[m.group(0).lower()]) if table[m.group(0).lower()] else "", text
    )
    return re.sub(r"[ \t]{2,}", " ", out).strip() if out != text else out


@dataclass
class ProbeRow:
    text: str
    edited: str
    label_before: str
    label_after: str
    p_before: float  # p(label_before) on the text
    p_after: float  # p(label_before) on the edited text
    flipped: bool

    @property
    def change(self) -> float:
        return self.p_after - self.p_before


@dataclass
class ProbeResult:
    pairs: list[tuple[str, str]]
    rows: list[ProbeRow]  # texts the list changed
    n_texts: int  # texts given
    model_calls: int

    @property
    def n_changed(self) -> int:
        return len(self.rows)

    @property
    def flip_rate(self) -> float | None:
        return sum(r.flipped for r in self.rows) / len(self.rows) if self.rows else None

    @property
    def mean_change(self) -> float | None:
        return float(np.mean([r.change for r in self.rows])) if self.rows else None

    def to_dict(self) -> dict:
        return {
            "pairs": [list(p) for p in self.pairs],
            "n_texts": self.n_texts,
            "n_changed": self.n_changed,
            "flip_rate": self.flip_rate,
            "mean_change": self.mean_change,
            "model_calls": self.model_calls,
            "rows": [asdict(r) | {"change": r.change} for r in self.rows],
        }


def probe(handle: ModelHandle, texts: Sequence[str], pairs: Sequence[tuple[str, str]] | str) -> ProbeResult:
    """Apply a substitution list to each text; for the texts it changes, compare the model's answers
    (LIT-style paired metrics): flip rate and mean change of p(original label). A classifier scores
    all originals and edits in one batched call; a causal LM per text (each has its own next token)."""
    if isinstance(pairs, str):
        pairs = parse_substitutions(pairs)
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    edited = [apply_substitutions(t, pairs) for t in texts]
    changed = [(t, e) for t, e in zip(texts, edited) if e != t and e.strip()]
    rows: list[ProbeRow] = []
    if handle.labels:
        probs = handle.predict_proba([t for t, _ in changed] + [e for _, e in changed]) if changed else None
        for k, (t, e) in enumerate(changed):
            before, after = probs[k], probs[len(changed) + k]
            c = int(np.argmax(before))
            rows.append(
                ProbeRow(
                    t,
                    e,
                    handle.labels[c],
                    handle.labels[int(np.argmax(after))],
                    float(before[c]),
                    float(after[c]),
                    int(np.argmax(after)) != c,
                )
            )
    else:
        for t, e in changed:
            goal = make_goal(handle, t)
            p_after = float(probabilities(handle, [e], goal)[0, 1])
            rows.append(
                ProbeRow(
                    t,
                    e,
                    goal.target.label,
                    goal.target.label if p_after >= goal.threshold else f"not {goal.target.label.strip()!r}",
                    goal.original_prob,
                    p_after,
                    p_after < goal.threshold,
                )
            )
    calls = 2 * len(changed)
    return ProbeResult(list(pairs), rows, len(texts), calls)


# ---- counterfactuals drafted by a language model ----------------------------------------------------
@dataclass
class DraftResult:
    goal: Goal
    drafts: list[Counterfactual]  # every distinct draft, verified; flips first
    tried: int
    held: int  # drafts the model confirms as flips
    generator: str
    seconds: float

    def to_dict(self) -> dict:
        return {
            "goal": self.goal.to_dict(),
            "generator": self.generator,
            "tried": self.tried,
            "held": self.held,
            "seconds": self.seconds,
            "drafts": [d.to_dict() for d in self.drafts],
        }


def draft_counterfactuals(
    handle: ModelHandle,
    text: str,
    generator,
    target: str | int | None = None,
    threshold: float | None = None,
    n: int = 3,
) -> DraftResult:
    """Ask a language model (`generator`, see explainers.whatif.llm) for minimal rewrites that would change
    the answer, then run each through the model: only verified flips count as held."""
    from explainers.whatif.llm import counterfactual_prompts, parse_rewrites

    started = time.perf_counter()
    goal = make_goal(handle, text, target, threshold)
    others = [label for label in goal.labels if label != goal.target.label]
    replies = generator.generate(counterfactual_prompts(text, goal.target.label, others, n))
    drafts = list(dict.fromkeys(d for reply in replies for d in parse_rewrites(reply, text)))
    rows = probabilities(handle, drafts, goal)
    spans = word_spans(text)
    found = [_record("llm", d, _word_edits(text, spans, d), row, goal, generator.name) for d, row in zip(drafts, rows)]
    found.sort(key=lambda c: (not c.flipped, c.target_prob))
    return DraftResult(
        goal, found, len(drafts), sum(c.flipped for c in found), generator.name, time.perf_counter() - started
    )


def _word_edits(text: str, spans, edited: str) -> list[Edit]:
    """The word-level edits that turn `text` into `edited` (difflib), for display."""
    import difflib

    before = [text[a:b] for a, b in spans]
    after = [edited[a:b] for a, b in word_spans(edited)]
    edits = []
    matcher = difflib.SequenceMatcher(None, [w.lower() for w in before], [w.lower() for w in after], autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            continue
        for k in range(max(a1 - a0, b1 - b0)):
            i, j = a0 + k, b0 + k
            if i < a1:
                edits.append(Edit(i, before[i], after[j] if j < b1 else None))
            else:
                edits.append(Edit(a1, "", after[j]))  # inserted: no original word
    return edits
