"""The settings <-> the URL: a copied link reopens the same view.

The settings (text, model, methods, seed, target, method parameters) live in plain session-state keys;
widgets use their own "w_" keys (see widgets.py).
"""

from __future__ import annotations

import streamlit as st

from dashboard.examples import EXAMPLES
from dashboard.models import model_allowed
from dashboard.widgets import current_text
from explainers.builtin import default_model
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
