"""The text box every page shares, with example sentences that fit the loaded model's task."""

from __future__ import annotations

import streamlit as st

from dashboard import examples, models
from dashboard.widgets import current_text, plain
from explainers.errors import WhyboxError


def text_expander(page: str):
    """The text box folded away, for pages whose subject is not the text itself."""
    text = current_text().strip()
    short = text if len(text) <= 80 else text[:80] + "…"
    with st.expander(f"Text: {plain(short)}" if text else "Text", expanded=not text):
        return text_box(page)


def current_task():
    """The loaded model's task (None while no model loads): which examples fit."""
    try:
        return models.get_model(st.session_state.model).task
    except WhyboxError:
        return None


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

    st.selectbox(
        "Start from an example",
        list(examples.for_task(current_task())),
        index=None,
        key="w_example",
        on_change=use_example,
        placeholder="Pick an example sentence…",
    )
    ss.text = st.text_area(label, key="w_text", height=110)
    return ss.text
