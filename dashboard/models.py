"""Which models this server may load, and loading them once per process."""

from __future__ import annotations

import os
import re
from pathlib import Path

import streamlit as st
from explainers.models.builtin import default_model
from explainers.models.handle import ModelHandle
from explainers.models.loading import load_model
from explainers.serving.preload import take_preloaded

from dashboard.cold_start import settle_heap
from explainers.errors import ModelLoadError, WhyboxError

ALLOW_CUSTOM_ENV = "WHYBOX_ALLOW_CUSTOM_MODELS"
ALLOWED_MODELS_ENV = "WHYBOX_ALLOWED_MODELS"  # the operator's list: names, hub ids or folders (and what is below)


def builtin_catalog() -> dict:
    """Built-in models: name -> BuiltinModel(name, task, description, source)."""
    from explainers.models.builtin import BUILTIN_MODELS

    return BUILTIN_MODELS


def custom_models_allowed() -> bool:
    return os.environ.get(ALLOW_CUSTOM_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def operator_allowed(name: str) -> bool:
    """A built-in, the default model, or one named in WHYBOX_ALLOWED_MODELS (a folder there allows
    the folders below it too). These load from a link without asking."""
    if name in builtin_catalog() or name == default_model():
        return True
    entries = [e.strip() for e in re.split(r"[,\n]", os.environ.get(ALLOWED_MODELS_ENV, "")) if e.strip()]
    if name in entries:
        return True
    path = Path(name).expanduser()
    if not path.is_absolute() and not name.startswith("."):
        return False  # a hub id: only by its exact name
    resolved = path.resolve()
    for entry in entries:
        folder = Path(entry).expanduser()
        if folder.is_absolute() and (resolved == folder.resolve() or folder.resolve() in resolved.parents):
            return True
    return False


def model_allowed(name: str) -> bool:
    """May this server load `name` at all (the sidebar's own-model box, a confirmed link)?"""
    return operator_allowed(name) or custom_models_allowed()


@st.cache_resource(show_spinner="Loading the model (once per server)…", max_entries=8)
def _load(name: str) -> ModelHandle:
    handle = take_preloaded(name) or load_model(name)
    settle_heap()  # reruns no longer walk the model and the imports (dashboard/cold_start.py)
    return handle


def get_model(name: str) -> ModelHandle:
    """The model, loaded once per process; a built-in's first build shows its progress."""
    if not model_allowed(name):
        raise ModelLoadError("This server only serves its built-in models (WHYBOX_ALLOW_CUSTOM_MODELS is off).")
    if name in builtin_catalog():
        from explainers.models.builtin import builtin_path

        slot = st.empty()
        try:
            builtin_path(
                name,
                progress=lambda fraction, message: slot.progress(
                    min(max(float(fraction), 0.0), 1.0), text=f"Preparing {name} (first use only): {message}"
                ),
            )
        except (OSError, RuntimeError, ValueError, ImportError) as exc:
            raise ModelLoadError(f"Could not prepare the built-in model '{name}': {exc}") from exc
        finally:
            slot.empty()
    return _load(name)


def _task_of(name: str):
    try:
        return get_model(name).task
    except WhyboxError:
        return None


def switch_model(name: str) -> str | None:
    """Load another model; on failure keep the current one and return the error message."""
    try:
        get_model(name)
    except WhyboxError as exc:
        return str(exc)
    if name != st.session_state.model:
        from dashboard.widgets import follow_model

        follow_model(_task_of(st.session_state.model), get_model(name).task)
        st.session_state.model = name
        st.session_state.target = ""  # a label or continuation of the previous model
        for key in ("w_target_label", "w_target_text"):
            st.session_state.pop(key, None)
    return None
