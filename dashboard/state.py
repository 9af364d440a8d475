"""Session state, the URL, and the cached loaders that every page shares.

The settings (text, model, methods, seed, target, method parameters) live in plain session-state keys.
Widgets use their own "w_" keys, re-seeded from those settings whenever a page shows them again:
Streamlit forgets a widget's state when the page that holds it is not shown.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import streamlit as st
import torch

from explainers.builtin import default_model
from explainers.errors import ModelLoadError, WhyboxError
from explainers.explanation import Explanation
from explainers.faithfulness import Report, evaluate_many
from explainers.methods import DEFAULT_METHODS, METHODS, explain
from explainers.model import ModelHandle, load_model
from explainers.preload import take_preloaded

ALLOW_CUSTOM_ENV = "WHYBOX_ALLOW_CUSTOM_MODELS"
# Example texts, each with the edit that the Compare page offers next to it.
EXAMPLES = {
    "A gripping, funny and beautifully acted film. I loved every minute of it.":
        "A gripping, funny and beautifully acted film. I hated every minute of it.",
    "The plot is thin and the jokes fall flat, although the soundtrack is lovely.":
        "The plot is thin and the jokes fall flat, and the soundtrack is awful.",
    "Not bad at all: I expected a disaster and got one of the best movies of the year.":
        "Bad: I expected a disaster and got one of the worst movies of the year.",
    "Dull, lifeless and far too long.": "Lively, moving and not a minute too long.",
    "The capital of France is": "The capital of Italy is",
}


def builtin_catalog() -> dict:
    """Built-in models: name -> BuiltinModel(name, task, description, source)."""
    from explainers.builtin import BUILTIN_MODELS

    return BUILTIN_MODELS


def custom_models_allowed() -> bool:
    return os.environ.get(ALLOW_CUSTOM_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def model_allowed(name: str) -> bool:
    return name in builtin_catalog() or name == default_model() or custom_models_allowed()


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: str) -> str:
    """User text (words, labels, engine prose quoting them) made safe for st.markdown: no markup,
    no LaTeX, no links."""
    return _MARKDOWN.sub(r"\\\1", text)


# ---- settings <-> URL ---------------------------------------------------------------------------
def init() -> None:
    """On a session's first run, take the settings from the URL (a shared link), else the defaults."""
    ss = st.session_state
    if "model" in ss:
        return
    query = st.query_params
    model = query.get("model", "")
    ss.model = model if model and model_allowed(model) else default_model()
    ss.text = query.get("text", next(iter(EXAMPLES)))
    ss.methods = [m for m in query.get("methods", "").split(",") if m in METHODS] or list(DEFAULT_METHODS)
    try:
        ss.seed = int(query.get("seed", 0))
    except ValueError:
        ss.seed = 0
    ss.target = query.get("target", "")
    ss.params = {}
    # A link that carries a text reopens its view: explain it without waiting for the button.
    ss.autorun = "text" in query


def sync_url() -> None:
    """Mirror the settings in the URL, so that a copied link reopens the same view."""
    ss = st.session_state
    wanted = {"model": ss.model, "text": current_text(), "methods": ",".join(ss.methods), "seed": str(ss.seed)}
    if ss.target:
        wanted["target"] = ss.target
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


def bind(widget_key: str, setting: str) -> None:
    """Seed a widget from its setting when the widget is (re)created."""
    if widget_key not in st.session_state:
        st.session_state[widget_key] = st.session_state[setting]


def current_text() -> str:
    """The text as typed so far, also before this run has drawn the text box."""
    return st.session_state.get("w_text", st.session_state.text)


def text_expander(page: str):
    """The text box folded away, for pages whose subject is not the text itself."""
    text = current_text().strip()
    short = text if len(text) <= 80 else text[:80] + "…"
    with st.expander(f"Text: {plain(short)}" if text else "Text", expanded=not text):
        return text_box(page)


def text_box(page: str, label: str = "Text to explain") -> str:
    """The shared text box, with example sentences to start from. `page` names the calling page."""
    ss = st.session_state
    if ss.get("text_page") != page or "w_text" not in ss:
        # Streamlit forgets a widget that a run did not draw, and gives a widget on another page
        # another identity: either way the box would start empty.
        ss.w_text, ss.text_page = ss.text, page

    def use_example():
        if ss.w_example:
            ss.w_text, ss.w_example = ss.w_example, None

    st.selectbox("Start from an example", list(EXAMPLES), index=None, key="w_example", on_change=use_example,
                 placeholder="Pick an example sentence…")
    ss.text = st.text_area(label, key="w_text", height=110)
    return ss.text


# ---- models -------------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the model (once per server)…", max_entries=8)
def _load(name: str) -> ModelHandle:
    return take_preloaded(name) or load_model(name)


def get_model(name: str) -> ModelHandle:
    """The model, loaded once per process; a built-in's first build shows its progress."""
    if not model_allowed(name):
        raise ModelLoadError("This server only serves its built-in models (WHYBOX_ALLOW_CUSTOM_MODELS is off).")
    if name in builtin_catalog():
        from explainers.builtin import builtin_path

        slot = st.empty()
        try:
            builtin_path(name, progress=lambda fraction, message: slot.progress(
                min(max(float(fraction), 0.0), 1.0), text=f"Preparing {name} (first use only): {message}"))
        except (OSError, RuntimeError, ValueError, ImportError) as exc:
            raise ModelLoadError(f"Could not prepare the built-in model '{name}': {exc}") from exc
        finally:
            slot.empty()
    return _load(name)


def switch_model(name: str) -> str | None:
    """Load another model; on failure keep the current one and return the error message."""
    try:
        get_model(name)
    except WhyboxError as exc:
        return str(exc)
    if name != st.session_state.model:
        st.session_state.model = name
        st.session_state.target = ""  # a label or continuation of the previous model
        for key in ("w_target_label", "w_target_text"):
            st.session_state.pop(key, None)
    return None


# ---- what to explain ------------------------------------------------------------------------------
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
    return Request(ss.model, current_text(), tuple(ss.methods), json.dumps(params, sort_keys=True), int(ss.seed),
                   ss.target.strip())


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
    return [Report(**d) for d in _reports(done, mode, handle, explanations)]


def settings_of(req: Request) -> dict:
    """The settings written into downloads."""
    return {"model": req.model, "text": req.text, "methods": list(req.methods), "params": json.loads(req.params),
            "seed": req.seed, "target": req.target or "predicted"}
