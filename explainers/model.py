"""ModelHandle: one loaded model, its tokenizer, and the forward paths every method needs.

Architecture differences (where the embedding layer and the transformer blocks live, which attention
implementation runs, how a causal LM's target is scored) live here and only here.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from .errors import InputError, ModelLoadError

TASKS = ("classification", "causal_lm")
DEFAULT_MAX_TOKENS = 512
# Rows x tokens pushed through the model at once. Large enough to keep the cores busy, small enough
# that IG's 50 interpolation steps of a 512-token text fit; halved automatically on GPU OOM.
DEFAULT_TOKEN_BUDGET = {"cpu": 4096, "mps": 16384, "cuda": 65536}
# What one extra model call costs, in padded tokens' worth of compute: small on CPU (a call's fixed
# cost is a few ms, like ~30 tokens of MiniLM), large on GPUs, where small batches leave it idle.
CALL_OVERHEAD_TOKENS = {"cpu": 32, "mps": 2048, "cuda": 8192}
# A word is a run of letters/digits (with inner apostrophes: "don't") or one punctuation mark.
WORD_RE = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Target:
    """What is explained: a class of a classifier, or a continuation of a causal LM's prompt."""

    label: str
    class_index: int | None = None
    token_ids: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {"label": self.label, "class_index": self.class_index, "token_ids": list(self.token_ids)}

    @classmethod
    def from_dict(cls, d: dict) -> "Target":
        return cls(d["label"], d.get("class_index"), tuple(d.get("token_ids", ())))


@dataclass
class Prediction:
    """One forward pass over a whole text: the prediction every explanation starts from."""

    probs: np.ndarray  # classification: class probabilities (C,); causal LM: next-token probabilities (V,)
    attentions: list[torch.Tensor] | None = None  # per layer (1, heads, T, T), when asked for


@dataclass
class Encoded:
    """A tokenized text with its word structure. Special tokens are kept (the model needs them) but
    flagged: they never receive a word and are never part of a rationale."""

    text: str
    ids: list[int]
    tokens: list[str]
    special: list[bool]
    word_of_token: list[int | None]
    words: list[str]
    word_spans: list[tuple[int, int]]
    truncated: bool = False

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def content_positions(self) -> list[int]:
        return [i for i, s in enumerate(self.special) if not s]


def pick_device(device: str = "auto") -> torch.device:
    if device != "auto":
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ModelLoadError(f"Unknown device '{device}': use auto, cpu, cuda, cuda:N or mps.") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(f"Device '{device}' asked for, but no CUDA GPU is available here.")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError("Device 'mps' asked for, but Apple MPS is not available here.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(dtype: str) -> torch.dtype:
    # float32 by default: attributions are gradients and differences of probabilities, which
    # half precision visibly distorts.
    table = {"auto": torch.float32, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in table:
        raise ModelLoadError(f"Unknown dtype '{dtype}': use one of {', '.join(table)}.")
    return table[dtype]


def plan_batches(lengths: Sequence[int], token_budget: int, call_overhead: int) -> list[list[int]]:
    """Split rows of these lengths into batches (lists of row indices) that fit `token_budget`
    padded tokens each and cost the least: padded tokens computed plus `call_overhead` per batch.

    Rows are sorted by length, so a batch is a run of neighbouring lengths; the best runs are found
    by dynamic programming over the distinct lengths (at most max_tokens of them)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    widths = sorted(set(lengths))
    below = np.searchsorted([lengths[i] for i in order], widths + [math.inf])  # rows shorter than each width
    rows_in = lambda first, last: int(below[last + 1] - below[first])  # rows of widths[first..last]  # noqa: E731

    def cost(first: int, last: int) -> int:
        rows, width = rows_in(first, last), widths[last]
        return math.ceil(rows / max(1, token_budget // width)) * call_overhead + rows * width

    best = [0] * (len(widths) + 1)  # best[j]: cheapest plan for the rows of the j shortest widths
    cut = [0] * (len(widths) + 1)  # ... whose last run starts at widths[cut[j]]
    for j in range(1, len(widths) + 1):
        best[j], cut[j] = min((best[i] + cost(i, j - 1), i) for i in range(j))
    runs, j = [], len(widths)
    while j > 0:
        runs.append((cut[j], j - 1))
        j = cut[j]
    batches = []
    for first, last in reversed(runs):
        run = order[below[first] : below[last + 1]]
        per_call = max(1, token_budget // widths[last])
        batches += [run[k : k + per_call] for k in range(0, len(run), per_call)]
    return batches


def check_text(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError("The text is empty: type a sentence to explain.")
    return text


def split_words(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of a text (see WORD_RE)."""
    return [m.span() for m in WORD_RE.finditer(text)]


def group_words(text: str, offsets, special) -> tuple[list[int | None], list[tuple[int, int]]]:
    """Map each token to a word of the text; returns (word index per token, word char spans).

    A token that spans several words (BERT's [UNK] for "😍🔥") merges them into one word, so every
    word shown has tokens and every token's score lands in exactly one word. Words past a
    truncation are dropped."""
    spans = split_words(text)
    char_word = np.full(len(text), -1, dtype=np.int64)
    for w, (a, b) in enumerate(spans):
        char_word[a:b] = w
    merged_into = list(range(len(spans)))
    token_words: list[list[int]] = []
    for is_special, (a, b) in zip(special, offsets):
        words = sorted({int(w) for w in char_word[a:b] if w >= 0}) if not is_special else []
        if not words and not is_special:
            # a token made only of whitespace joins the word that follows it (or the last one)
            after = [int(w) for w in char_word[b:] if w >= 0][:1] or [int(w) for w in char_word[:a] if w >= 0][-1:]
            words = after
        for w in range(words[0] + 1, words[-1] + 1) if len(words) > 1 else ():
            merged_into[w] = merged_into[words[0]]
        token_words.append(words)
    group_of = [merged_into[w] for w in range(len(spans))]
    used = sorted({group_of[ws[0]] for ws in token_words if ws})
    index = {g: k for k, g in enumerate(used)}
    members = {g: [w for w in range(len(spans)) if group_of[w] == g] for g in used}
    word_spans = [(spans[members[g][0]][0], spans[members[g][-1]][1]) for g in used]
    return [index[group_of[ws[0]]] if ws else None for ws in token_words], word_spans


class ModelHandle:
    """A loaded model + tokenizer + task + device + label names + a lock.

    Methods that hook into the model (Captum layer hooks, switching attention implementation) hold
    `lock`, so that several dashboard users sharing one handle never interfere.
    """

    def __init__(self, name: str, model, tokenizer, task: str, device: torch.device, max_tokens: int):
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.task = task
        self.device = device
        self.max_tokens = max_tokens
        self.lock = threading.RLock()
        self.token_budget = DEFAULT_TOKEN_BUDGET.get(device.type, 4096)
        self._keeps_logit_positions = task == "causal_lm" and "logits_to_keep" in inspect.signature(model.forward).parameters
        config = model.config
        self.labels: list[str] = (
            [str(config.id2label.get(i, f"LABEL_{i}")) for i in range(config.num_labels)]
            if task == "classification"
            else []
        )

    # ---- description -------------------------------------------------------------------------
    @property
    def config(self):
        return self.model.config

    @property
    def architecture(self) -> str:
        return type(self.model).__name__

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def n_heads(self) -> int:
        text_config = self.config.get_text_config()
        return int(getattr(text_config, "num_attention_heads", 0) or getattr(text_config, "n_head", 0))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "architecture": self.architecture,
            "task": self.task,
            "device": str(self.device),
            "dtype": str(self.model.dtype).replace("torch.", ""),
            "labels": self.labels,
            "layers": self.n_layers,
            "heads": self.n_heads,
            "max_tokens": self.max_tokens,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }

    # ---- architecture ------------------------------------------------------------------------
    @property
    def embedding_layer(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()

    @property
    def blocks(self) -> torch.nn.ModuleList:
        """The transformer blocks: the first ModuleList as long as the model has hidden layers."""
        cached = getattr(self, "_blocks", None)
        if cached is not None:
            return cached
        n = getattr(self.config.get_text_config(), "num_hidden_layers", None)
        lists = [m for _, m in self.model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
        matching = [m for m in lists if n is None or len(m) == n]
        if not matching:
            raise InputError(f"Could not find the transformer blocks of {self.architecture}.")
        self._blocks = matching[0]
        return self._blocks

    def block(self, layer: int) -> torch.nn.Module:
        n = len(self.blocks)
        if not -n <= layer < n:
            raise InputError(f"Layer {layer} does not exist: {self.architecture} has layers 0..{n - 1}.")
        return self.blocks[layer]

    @property
    def special_ids(self) -> set[int]:
        return set(self.tokenizer.all_special_ids)

    def baseline_token_id(self, kind: str = "auto") -> int:
        """The token that stands for 'nothing here': mask, else pad, else unk, else eos."""
        tok = self.tokenizer
        choices = {"mask": tok.mask_token_id, "pad": tok.pad_token_id, "unk": tok.unk_token_id, "eos": tok.eos_token_id}
        if kind == "auto":
            for value in choices.values():
                if value is not None:
                    return int(value)
            raise InputError("This tokenizer has no mask, pad, unk or eos token to use as a baseline.")
        if kind not in choices:
            raise InputError(f"Unknown baseline '{kind}': use auto, {', '.join(choices)}.")
        if choices[kind] is None:
            raise InputError(f"This tokenizer has no {kind} token; choose another baseline.")
        return int(choices[kind])

    def prediction_position(self, enc: Encoded) -> int:
        """Where the model reads its answer: the [CLS]-like first token of encoders, else the last."""
        cls_id = self.tokenizer.cls_token_id
        if self.task == "classification" and cls_id is not None and enc.ids and enc.ids[0] == cls_id:
            return 0
        return enc.n_tokens - 1

    # ---- text -> tokens ----------------------------------------------------------------------
    def encode(self, text: str) -> Encoded:
        check_text(text)
        tok = self.tokenizer
        full_length = len(tok(text, add_special_tokens=True, truncation=False)["input_ids"])
        out = tok(
            text,
            add_special_tokens=True,
            truncation=True,
            max_length=self.max_tokens,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        ids = list(out["input_ids"])
        if not [i for i, s in enumerate(out["special_tokens_mask"]) if not s]:
            raise InputError("The text has no tokens this model can read (only spaces or control characters?).")
        special = [bool(s) for s in out["special_tokens_mask"]]
        offsets = [tuple(o) for o in out["offset_mapping"]]

        raw_tokens = tok.convert_ids_to_tokens(ids)
        # Tokens without characters (not in the text) are treated like special tokens.
        special = [s or not (b > a) for s, (a, b) in zip(special, offsets)]
        tokens = [raw_tokens[i] if special[i] else text[a:b] for i, (a, b) in enumerate(offsets)]
        word_of_token, word_spans = group_words(text, offsets, special)
        return Encoded(
            text=text,
            ids=ids,
            tokens=tokens,
            special=special,
            word_of_token=word_of_token,
            words=[text[a:b] for a, b in word_spans],
            word_spans=word_spans,
            truncated=full_length > len(ids),
        )

    # ---- targets -----------------------------------------------------------------------------
    def resolve_target(self, enc: Encoded, target: str | int | None = None,
                       prediction: Prediction | None = None) -> Target:
        """The predicted class / next token unless the user names a label or a continuation."""
        if target is None or target == "":
            k = int(np.argmax((prediction or self.predict(enc)).probs))
            if self.task == "classification":
                return Target(self.labels[k], class_index=k)
            return Target(self.tokenizer.decode([k]), token_ids=(k,))
        if self.task == "classification":
            if isinstance(target, int) or (isinstance(target, str) and target.strip().lstrip("-").isdigit()):
                k = int(target)
                if not 0 <= k < len(self.labels):
                    raise InputError(f"Target {k} is out of range: labels are {self._label_list()}.")
                return Target(self.labels[k], class_index=k)
            lowered = [l.lower() for l in self.labels]
            if str(target).strip().lower() not in lowered:
                raise InputError(f"Unknown label '{target}': this model's labels are {self._label_list()}.")
            k = lowered.index(str(target).strip().lower())
            return Target(self.labels[k], class_index=k)

        target = str(target)
        # "The capital of France is" + "Paris" means " Paris": the continuation follows a space.
        if not enc.text[-1:].isspace() and not target[:1].isspace():
            target = " " + target
        token_ids = tuple(self.tokenizer(target, add_special_tokens=False)["input_ids"])
        if not token_ids:
            raise InputError("The target continuation has no tokens.")
        return Target(target, token_ids=token_ids)

    def target_probability(self, enc: Encoded, target: Target, prediction: Prediction | None = None) -> float:
        """p(target | text): read off the prediction, except a multi-token continuation (one more pass)."""
        if self.task == "causal_lm" and len(target.token_ids) > 1:
            return float(self.score_ids([enc.ids], target)[0])
        index = target.class_index if self.task == "classification" else target.token_ids[0]
        return float((prediction or self.predict(enc)).probs[index])

    def _label_list(self) -> str:
        return ", ".join(f"{i}={l}" for i, l in enumerate(self.labels))

    # ---- forward paths -----------------------------------------------------------------------
    def rows_per_batch(self, seq_len: int) -> int:
        return max(1, self.token_budget // max(1, seq_len))

    @contextlib.contextmanager
    def oom_fallback(self) -> Iterator[None]:
        """Run a block; on out-of-GPU-memory, halve the batch budget and let the caller retry."""
        try:
            yield
        except torch.OutOfMemoryError:
            if self.token_budget <= 1:
                raise
            self.token_budget //= 2
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            raise RetryWithSmallerBatches from None

    def _logits(self, pred: torch.Tensor | None, **inputs) -> torch.Tensor:
        """A classifier's logits (B, C); a causal LM's only at positions `pred` (B, k), as (B, k, V).

        transformers' `logits_to_keep` (per-row positions) skips the vocabulary projection of every
        other position, a large share of a small LM's work; heads without it project them all."""
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

    def _target_scores(self, logits: torch.Tensor, target: Target | None):
        """(B,) probability of the target, or (B, C) class probabilities when target is None.
        A causal LM's logits are those at the continuation's positions, (B, k, V)."""
        if self.task == "classification":
            probs = torch.softmax(logits.float(), dim=-1)
            return probs if target is None else probs[:, target.class_index]
        # causal LM: p(continuation | prompt) = prod_j p(t_j | prompt, t_<j)
        logp = torch.log_softmax(logits.float(), dim=-1)
        ids = torch.tensor(target.token_ids, device=logits.device)
        return logp[:, torch.arange(len(ids)), ids].sum(-1).exp()

    def _assemble(self, sequences: Sequence[Sequence[int]], target: Target | None):
        """Right-padded batch; causal-LM rows get the target continuation appended (teacher forcing)."""
        tail = list(target.token_ids[:-1]) if (self.task == "causal_lm" and target) else []
        rows = [list(s) + tail for s in sequences]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        pred = None
        if self.task == "causal_lm":
            k = len(target.token_ids) if target else 1
            starts = torch.tensor([len(s) - 1 for s in sequences])
            pred = starts[:, None] + torch.arange(k)[None, :]
        return ids, mask, pred

    def score_ids(self, sequences: Sequence[Sequence[int]], target: Target | None) -> np.ndarray:
        """Target probability for each token-id sequence (any lengths), in batches, without grad.

        With target=None (classification) returns all class probabilities, shape (N, C)."""
        if not sequences:
            return np.zeros((0,), dtype=np.float32)
        if any(len(s) == 0 for s in sequences):
            raise InputError("Cannot score an empty token sequence.")
        while True:
            try:
                with self.oom_fallback():
                    return self._score_ids_batched(sequences, target)
            except RetryWithSmallerBatches:
                continue

    def _score_ids_batched(self, sequences, target) -> np.ndarray:
        out: list[np.ndarray | None] = [None] * len(sequences)
        extra = len(target.token_ids) - 1 if (self.task == "causal_lm" and target) else 0
        overhead = CALL_OVERHEAD_TOKENS.get(self.device.type, 32)
        batches = plan_batches([len(s) + extra for s in sequences], self.token_budget, overhead)
        with torch.inference_mode():
            for chunk in batches:
                ids, mask, pred = self._assemble([sequences[i] for i in chunk], target)
                logits = self._logits(None if pred is None else pred.to(self.device),
                                      input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
                scores = self._target_scores(logits, target)
                for j, i in enumerate(chunk):
                    out[i] = scores[j].float().cpu().numpy()
        return np.stack(out)

    def score_embeds(self, embeds: torch.Tensor, target: Target, tail_embeds: torch.Tensor | None = None):
        """Target probability from word embeddings (B, T, H) of one unpadded text: the
        differentiable path for gradient methods. The model adds its own position embeddings.

        For a causal LM, `tail_embeds` (k-1, H) are the target continuation's embeddings, appended
        for teacher forcing; callers embed them once, outside Captum's layer hooks."""
        batch, length = embeds.shape[:2]
        pred = None
        if self.task == "causal_lm":
            if tail_embeds is not None and len(tail_embeds):
                embeds = torch.cat([embeds, tail_embeds[None].expand(batch, -1, -1).to(embeds.dtype)], dim=1)
            pred = (length - 1 + torch.arange(len(target.token_ids), device=embeds.device))[None].expand(batch, -1)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        return self._target_scores(self._logits(pred, inputs_embeds=embeds, attention_mask=mask), target)

    def embed_ids(self, ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Word embeddings (1, T, H) of one id sequence, on the model's device."""
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.device)
        return self.embedding_layer(ids[None]).detach()

    def predict(self, enc: Encoded, attentions: bool = False) -> Prediction:
        """One forward pass over the text. With attentions=True the eager attention implementation
        runs for this call only (SDPA/flash attention return no weights), and the weights come back
        per layer, each (1, heads, T, T), float32 on CPU."""
        ids = torch.tensor([enc.ids], device=self.device)
        with self.lock:
            previous = self.config._attn_implementation
            switch = attentions and previous != "eager"
            try:
                if switch:
                    self.model.set_attn_implementation("eager")
                only_last = {"logits_to_keep": 1} if self._keeps_logit_positions else {}  # the next token's
                with torch.inference_mode():
                    out = self.model(input_ids=ids, output_attentions=attentions, **only_last)
            except (ValueError, NotImplementedError) as exc:
                if not attentions:
                    raise
                raise InputError(f"{self.architecture} cannot return attention weights: {exc}") from exc
            finally:
                if switch:
                    self.model.set_attn_implementation(previous)
        weights = None
        if attentions:
            if not out.attentions or out.attentions[0] is None:
                raise InputError(f"{self.architecture} returned no attention weights.")
            weights = [a.float().cpu() for a in out.attentions]
        logits = out.logits[0] if self.task == "classification" else out.logits[0, -1]  # classes / next token
        probs = torch.softmax(logits.float(), dim=-1)
        return Prediction(probs.cpu().numpy(), weights)

    def distribution(self, enc: Encoded, top_k: int = 5, prediction: Prediction | None = None) -> dict[str, float]:
        """What the model predicts for this text: class probabilities, or the top next tokens."""
        probs = (prediction or self.predict(enc)).probs
        if self.task == "classification":
            return {label: float(p) for label, p in zip(self.labels, probs)}
        top = np.argsort(-probs, kind="stable")[:top_k]
        return {self.tokenizer.decode([int(i)]): float(probs[i]) for i in top}

    def predict_proba(self, texts: Sequence[str], target: Target | None = None) -> np.ndarray:
        """Black-box view for LIME and friends: (N, C) class probabilities; for a causal LM,
        (N, 2) = [1 - p(target), p(target)]. All texts go through the model in batches."""
        # one call: the Rust tokenizer encodes the whole list in parallel
        encoded = self.tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=self.max_tokens)
        sequences = [tuple(ids) or (self.baseline_token_id(),) for ids in encoded["input_ids"]]
        # LIME draws many identical samples on short texts: score each distinct one once
        unique = list(dict.fromkeys(sequences))
        where = {seq: i for i, seq in enumerate(unique)}
        rows = [where[seq] for seq in sequences]
        if self.task == "classification":
            return self.score_ids(unique, None)[rows]
        p = self.score_ids(unique, target)[rows]
        return np.stack([1 - p, p], axis=1)

    def attentions(self, enc: Encoded) -> list[torch.Tensor]:
        """Attention weights per layer, each (1, heads, T, T), float32 on CPU."""
        return self.predict(enc, attentions=True).attentions


class RetryWithSmallerBatches(Exception):
    """Raised inside ModelHandle.oom_fallback after the batch budget was halved."""


# ---- loading ---------------------------------------------------------------------------------
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def _task_from_config(config) -> str | None:
    for arch in getattr(config, "architectures", None) or []:
        if arch.endswith("ForSequenceClassification"):
            return "classification"
        if arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel"):
            return "causal_lm"
    return None


def _check_text_model(config, task: str | None) -> str:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    model_type = getattr(config, "model_type", "?")
    archs = ", ".join(getattr(config, "architectures", None) or []) or "none listed"
    text_types = set(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES) | set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    if model_type not in text_types:
        raise ModelLoadError(
            f"This is a '{model_type}' model (architectures: {archs}), not a text classifier or causal "
            "language model that whybox can explain."
        )
    detected = _task_from_config(config)
    task = task or detected
    if task is None:
        raise ModelLoadError(
            f"This checkpoint has no classification or language-model head (architectures: {archs}). "
            "Use a ...ForSequenceClassification or ...ForCausalLM checkpoint, or pass task explicitly."
        )
    if task not in TASKS:
        raise ModelLoadError(f"Unknown task '{task}': use one of {', '.join(TASKS)}.")
    mapping = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES if task == "classification" else MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if model_type not in mapping:
        raise ModelLoadError(f"'{model_type}' models have no {task} head in transformers.")
    return task


def resolve_model_source(name_or_path: str) -> str:
    """A built-in name -> its (built, cached) folder; a folder -> itself; else a hub id."""
    name_or_path = (name_or_path or "").strip()
    if not name_or_path:
        raise ModelLoadError("No model given: pick a built-in model, a local folder or a hub id.")
    if "/" not in name_or_path and os.sep not in name_or_path:  # built-in names are bare words
        from . import builtin

        if builtin.is_builtin(name_or_path):
            return str(builtin.builtin_path(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"'{name_or_path}' is a folder but has no config.json: not a Hugging Face model folder.")
        return str(path)
    if path.exists():
        raise ModelLoadError(f"'{name_or_path}' is a file, not a model folder.")
    looks_local = name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path.strip("/").replace("/", "", 1)
    if looks_local or not _HUB_ID.match(name_or_path):
        raise ModelLoadError(f"No model folder at '{name_or_path}', and it is not a Hugging Face hub id.")
    return name_or_path


def load_model(
    name_or_path: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    task: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> ModelHandle:
    """Load any Hugging Face sequence-classification or causal-LM model, built-in, local or hub."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)

    torch_device = pick_device(device)
    torch_dtype = pick_dtype(dtype)
    source = resolve_model_source(name_or_path)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        where = "folder" if Path(source).is_dir() else "Hugging Face hub id"
        hint = "" if Path(source).is_dir() else " Check the id, and that this machine can reach huggingface.co."
        raise ModelLoadError(f"Could not load the {where} '{name_or_path}': {_first_line(exc)}.{hint}") from exc
    task = _check_text_model(config, task)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"'{name_or_path}' has no usable tokenizer: {_first_line(exc)}") from exc
    if not getattr(tokenizer, "is_fast", True):
        raise ModelLoadError(f"'{name_or_path}' has only a slow tokenizer; whybox needs token offsets (a fast tokenizer).")
    if tokenizer.pad_token is None:
        # Causal LMs often ship without a pad token; batching needs one (its positions are masked).
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    auto = AutoModelForSequenceClassification if task == "classification" else AutoModelForCausalLM
    try:
        model = auto.from_pretrained(source, dtype=torch_dtype, trust_remote_code=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"Could not load the weights of '{name_or_path}': {_first_line(exc)}") from exc
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(torch_device).eval()
    model.requires_grad_(False)  # we differentiate w.r.t. inputs only: no weight gradients to store

    limits = [max_tokens, getattr(config.get_text_config(), "max_position_embeddings", None), tokenizer.model_max_length]
    limit = min(int(x) for x in limits if x and int(x) < 10**7)
    return ModelHandle(name_or_path, model, tokenizer, task, torch_device, limit)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
