"""What is being explained (a Request) and its cached results: explanations, attention weights and
faithfulness reports, each computed once per setting."""

from __future__ import annotations

import json
from dataclasses import dataclass

import streamlit as st
import torch

from dashboard.widgets import current_text
from explainers.explanation import Explanation
from explainers.faithfulness import Report, evaluate_many
from explainers.memo import ByteLRU, release_free_memory
from explainers.methods import explain
from explainers.model import ModelHandle


@dataclass(frozen=True)
class Request:
    """Everything an explanation depends on: the cache key of the results."""

    model: str
    text: str
    methods: tuple[str, ...]
    params: str  # JSON {method: {param: value}}, hashable
    seed: int
    target: str

    def method_params(self, method: str) -> dict:
        return json.loads(self.params).get(method, {})


def current_request() -> Request:
    ss = st.session_state
    params = {m: ss.params.get(m, {}) for m in ss.methods}
    return Request(
        ss.model, current_text(), tuple(ss.methods), json.dumps(params, sort_keys=True), int(ss.seed), ss.target.strip()
    )


# Bounded by bytes as well as entries (explainers/memo.py): a 1 MB text is copied into each of its
# explanations, and a long text's attention weights run to hundreds of MB.
MB = 1 << 20
EXPLANATIONS = ByteLRU(max_bytes=128 * MB, max_entries=2000, copy=True)
ATTENTIONS = ByteLRU(max_bytes=384 * MB, max_entries=4)  # read only by callers: handed out uncopied
REPORTS = ByteLRU(max_bytes=32 * MB, max_entries=500, copy=True)


def explain_one(handle: ModelHandle, req: Request, method: str) -> Explanation:
    """One method's explanation, cached per (model, text, method, params, seed, target)."""
    params = json.dumps(req.method_params(method), sort_keys=True)
    key = (req.model, req.text, method, params, req.seed, req.target)
    data = EXPLANATIONS.get_or_compute(
        key,
        lambda: explain(
            handle, req.text, method, target=req.target or None, seed=req.seed, **json.loads(params)
        ).to_dict(),
    )
    release_free_memory()  # a server's memory follows its caches, not every text it has seen
    return Explanation.from_dict(data)


def attentions(handle: ModelHandle, text: str) -> list[torch.Tensor]:
    """Attention weights per layer, each (1, heads, T, T), cached per (model, text)."""
    return list(ATTENTIONS.get_or_compute((handle.name, text), lambda: tuple(handle.attentions(handle.encode(text)))))


def reports(handle: ModelHandle, req: Request, explanations: list[Explanation], mode: str) -> list[Report]:
    """Faithfulness reports of a request's explanations, cached per request and mode."""
    done = Request(req.model, req.text, tuple(e.method for e in explanations), req.params, req.seed, req.target)
    data = REPORTS.get_or_compute(
        (done, mode), lambda: [r.to_dict() for r in evaluate_many(handle, explanations, mode)]
    )
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
    }
