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


@st.cache_data(show_spinner=False, max_entries=2000)
def _explain(model: str, text: str, method: str, params: str, seed: int, target: str, _handle: ModelHandle) -> dict:
    return explain(_handle, text, method, target=target or None, seed=seed, **json.loads(params)).to_dict()


def explain_one(handle: ModelHandle, req: Request, method: str) -> Explanation:
    """One method's explanation, cached per (model, text, method, params, seed, target)."""
    params = json.dumps(req.method_params(method), sort_keys=True)
    return Explanation.from_dict(_explain(req.model, req.text, method, params, req.seed, req.target, handle))


# A resource, not data: a long text's weights run to hundreds of MB, which cache_data would copy
# on every rerun. Callers only read them.
@st.cache_resource(show_spinner=False, max_entries=4)
def _attentions(model: str, text: str, _handle: ModelHandle) -> tuple[torch.Tensor, ...]:
    return tuple(_handle.attentions(_handle.encode(text)))


def attentions(handle: ModelHandle, text: str) -> list[torch.Tensor]:
    """Attention weights per layer, each (1, heads, T, T), cached per (model, text)."""
    return list(_attentions(handle.name, text, handle))


@st.cache_data(show_spinner=False, max_entries=500)
def _reports(req: Request, mode: str, _handle: ModelHandle, _explanations: list[Explanation]) -> list[dict]:
    return [r.to_dict() for r in evaluate_many(_handle, _explanations, mode)]


def reports(handle: ModelHandle, req: Request, explanations: list[Explanation], mode: str) -> list[Report]:
    """Faithfulness reports of a request's explanations, cached per request and mode."""
    done = Request(req.model, req.text, tuple(e.method for e in explanations), req.params, req.seed, req.target)
    return [Report.from_dict(d) for d in _reports(done, mode, handle, explanations)]


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
