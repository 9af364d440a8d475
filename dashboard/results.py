"""What is being explained (a Request) and its cached results: explanations, attention weights and
faithfulness reports, each computed once per setting."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

import streamlit as st
import torch

from dashboard import framing
from dashboard.run_queue import queued
from dashboard.widgets import current_text
from explainers.explanation import Explanation
from explainers.inference.memo import ByteLRU
from explainers.methods import explain
from explainers.metrics.faithfulness import Report, evaluate_many
from explainers.models.handle import ModelHandle
from explainers.models.tasks import Target
from explainers.serving.allocator import release_free_memory


@dataclass(frozen=True)
class Request:
    """Everything an explanation depends on: the cache key of the results."""

    model: str
    text: str
    methods: tuple[str, ...]
    params: str  # JSON {method: {param: value}}, hashable
    seed: int
    target: str
    contrast: str = ""  # "why the target rather than this" (issue 11; dashboard/framing.py)
    unit: str = "token"
    separator: str = ""
    chat: bool = False

    def method_params(self, method: str) -> dict:
        return json.loads(self.params).get(method, {})

    def framing(self) -> dict:
        """The explain() arguments that frame the question: contrast, unit, separator, chat."""
        return {
            "contrast": self.contrast or None,
            "unit": self.unit,
            "separator": self.separator or None,
            "chat": self.chat,
        }


def current_request() -> Request:
    ss = st.session_state
    params = {m: ss.params.get(m, {}) for m in ss.methods}
    framed = framing.settings()
    return Request(
        ss.model,
        current_text(),
        tuple(ss.methods),
        json.dumps(params, sort_keys=True),
        int(ss.seed),
        ss.target.strip(),
        framed["contrast"].strip(),
        framed["unit"],
        framed["separator"],
        framed["chat"],
    )


class ExplanationStore:
    """Finished explanations of this server process, newest kept, bounded by entries and by bytes of
    JSON (a long text's explanation is larger). Filled as each method finishes, outside Streamlit's
    caches, so that progress can be drawn and a run stopped while a method computes."""

    def __init__(self, max_entries: int = 2000, max_bytes: int = 200_000_000):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[tuple, str] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Explanation | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return Explanation.from_json(self._items[key])

    def put(self, key: tuple, exp: Explanation) -> None:
        release_free_memory()  # a server's memory follows its caches, not every text it has seen
        data = exp.to_json()
        with self._lock:
            self._bytes += len(data) - len(self._items.pop(key, ""))
            self._items[key] = data
            while self._items and (len(self._items) > self.max_entries or self._bytes > self.max_bytes):
                self._bytes -= len(self._items.popitem(last=False)[1])


@st.cache_resource(show_spinner=False)
def _store() -> ExplanationStore:
    return ExplanationStore()


def _key(req: Request, method: str) -> tuple:
    params = json.dumps(req.method_params(method), sort_keys=True)
    return (req.model, req.text, method, params, req.seed, req.target, req.contrast, req.unit, req.separator, req.chat)


def finished(req: Request, method: str) -> Explanation | None:
    """The explanation if it was already computed (instant), else None; never runs the model."""
    return _store().get(_key(req, method))


def explain_one(handle: ModelHandle, req: Request, method: str) -> Explanation:
    """One method's explanation, computed once per (model, text, method, params, seed, target)."""
    exp = finished(req, method)
    if exp is None:
        target = req.target or None
        with queued():
            exp = explain(
                handle, req.text, method, target=target, seed=req.seed, **req.framing(), **req.method_params(method)
            )
        _store().put(_key(req, method), exp)
    return exp


# Bounded by bytes as well as entries (explainers/memo.py): a long text's attention weights run to
# hundreds of MB. Callers only read them: handed out uncopied.
ATTENTIONS = ByteLRU(max_bytes=384 << 20, max_entries=4)
REPORTS = ByteLRU(max_bytes=32 << 20, max_entries=500, copy=True)


def attentions(handle: ModelHandle, text: str) -> list[torch.Tensor]:
    """Attention weights per layer, each (1, heads, T, T), cached per (model, text)."""

    def compute():
        with queued():
            return tuple(handle.attentions(handle.encode(text)))

    return list(ATTENTIONS.get_or_compute((handle.name, text), compute))


def reports(handle: ModelHandle, req: Request, explanations: list[Explanation], mode: str) -> list[Report]:
    """Faithfulness reports of a request's explanations, cached per request and mode."""
    done = replace(req, methods=tuple(e.method for e in explanations))

    def compute():
        with queued():
            return [r.to_dict() for r in evaluate_many(handle, explanations, mode)]

    data = REPORTS.get_or_compute((done, mode), compute)
    return [Report.from_dict(d) for d in data]


def settings_of(req: Request) -> dict:
    """The settings written into downloads."""
    return {
        "model": req.model,
        "text": req.text,
        "methods": list(req.methods),
        "params": json.loads(req.params),
        "seed": req.seed,
        "target": req.target or "predicted",
        **{key: value for key, value in req.framing().items() if value not in (None, "token", False)},
    }


@st.cache_data(show_spinner=False, max_entries=500)
def _prediction(model: str, text: str, target: str, contrast: str, chat: bool, _handle: ModelHandle) -> dict:
    enc = _handle.encode(text, chat=chat)
    prediction = _handle.predict(enc)
    resolved = _handle.resolve_target(enc, target or None, prediction, contrast or None)
    probabilities = _handle.distribution(enc, prediction=prediction)
    contrast_label = None
    for side in (resolved.plain, resolved.contrast):  # both sides of the question, also outside the top 5
        if side is None:
            continue
        key = side.label if side.class_index is not None else _handle.tokenizer.decode(list(side.token_ids))
        if key not in probabilities and side.n_tokens == 1:
            probabilities[key] = _handle.target_probability(enc, side, prediction)
        contrast_label = key if side is resolved.contrast and key in probabilities else contrast_label
    return {
        "probabilities": probabilities,
        "target": resolved.to_dict(),
        "target_prob": _handle.target_probability(enc, resolved, prediction),
        "contrast_label": contrast_label,
        "facts": prediction.facts,  # a prompt classifier's label mass and calibration
    }


def prediction(handle: ModelHandle, req: Request) -> dict:
    """What the model predicts for the request's text, and its target: one forward pass, shown before
    any explanation is ready. {probabilities (with the target and its contrast), target (Target), target_prob,
    contrast_label (the contrast's key in probabilities, or None)}."""
    out = dict(_prediction(req.model, req.text, req.target, req.contrast, req.chat, handle))
    out["target"] = Target.from_dict(out["target"])
    return out
