"""The settings <-> the URL: a copied link reopens the same view.

The settings (text, model, methods, seed, target, method parameters) live in plain session-state keys;
widgets use their own "w_" keys (see widgets.py).
"""

from __future__ import annotations

import json

import streamlit as st

from dashboard.examples import EXAMPLES
from dashboard.models import model_allowed
from dashboard.widgets import current_text
from explainers.builtin import default_model
from explainers.errors import WhyboxError
from explainers.faithfulness import MODES
from explainers.methods import DEFAULT_METHODS, METHODS


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
    ss.params = _params_from(query.get("params", ""), ss.methods)
    ss.mode = query.get("mode", "delete") if query.get("mode") in MODES else "delete"
    ss.level = query.get("level", "word") if query.get("level") in ("word", "token") else "word"
    ss.marks = [int(i) for i in query.get("marks", "").split(",") if i.strip().isdigit()]
    ss.marks_for = ss.text  # marks belong to one text
    ss.shared_scale = query.get("scale") == "shared"
    # A link that carries a text reopens its view: explain it without waiting for the button.
    ss.autorun = "text" in query


def _params_from(text: str, methods: list[str]) -> dict:
    """Method parameters from a link: only known methods and valid values, each kept only when it
    differs from its default (an invalid one is dropped: the link still opens)."""
    try:
        asked = json.loads(text) if text else {}
    except ValueError:
        return {}
    params = {}
    for method, values in asked.items() if isinstance(asked, dict) else ():
        if method not in METHODS or not isinstance(values, dict):
            continue
        known = {p.name: p for p in METHODS[method].params}
        for name, value in values.items():
            try:
                checked = known[name].validate(value)
            except (KeyError, WhyboxError):
                continue
            if checked != known[name].default:
                params.setdefault(method, {})[name] = checked
    return params


def sync_url() -> None:
    """Mirror the settings in the URL, so that a copied link reopens the same view."""
    ss = st.session_state
    wanted = {"model": ss.model, "text": current_text(), "methods": ",".join(ss.methods), "seed": str(ss.seed)}
    if ss.target:
        wanted["target"] = ss.target
    # everything else that changes a number or the view, when it differs from the default
    params = {m: p for m, p in ss.params.items() if p and m in ss.methods}
    if params:
        wanted["params"] = json.dumps(params, sort_keys=True, separators=(",", ":"))
    mode, level = ss.get("w_mode") or ss.get("mode", "delete"), ss.get("w_level") or ss.get("level", "word")
    if mode != "delete":  # the widget's value is new in this run; its setting follows when the page draws
        wanted["mode"] = mode
    if level != "word":
        wanted["level"] = level
    if ss.get("w_shared_scale", ss.get("shared_scale")):
        wanted["scale"] = "shared"
    if ss.get("marks") and ss.get("marks_for") == wanted["text"]:
        wanted["marks"] = ",".join(map(str, ss.marks))
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)
