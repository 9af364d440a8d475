"""Widgets shared by several pages, and escaping user text for Markdown.

Widgets use their own "w_" keys, re-seeded from the settings whenever a page shows them again:
Streamlit forgets a widget's state when the page that holds it is not shown.
"""

from __future__ import annotations

import re

import streamlit as st

from dashboard import examples

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: str) -> str:
    """User text (words, labels, engine prose quoting them) made safe for st.markdown: no markup,
    no LaTeX, no links."""
    return _MARKDOWN.sub(r"\\\1", text)


def bind(widget_key: str, setting: str) -> None:
    """Seed a widget from its setting when the widget is (re)created."""
    if widget_key not in st.session_state:
        st.session_state[widget_key] = st.session_state[setting]


def bound(widget_key: str, setting: str) -> str:
    """`bind`, returning the widget key; the setting follows the widget (for the link)."""
    bind(widget_key, setting)
    st.session_state[setting] = st.session_state[widget_key]
    return widget_key


def current_text() -> str:
    """The text as typed so far, also before this run has drawn the text box."""
    return st.session_state.get("w_text", st.session_state.text)


def text_expander(page: str):
    """The text box folded away, for pages whose subject is not the text itself."""
    text = current_text().strip()
    short = text if len(text) <= 80 else text[:80] + "…"
    with st.expander(f"Text: {plain(short)}" if text else "Text", expanded=not text):
        return text_box(page)


def current_task():
    """The loaded model's task (None while no model loads): which examples fit."""
    from dashboard import models  # models -> widgets: imported here, not at the top
    from explainers.errors import WhyboxError

    try:
        return models.get_model(st.session_state.model).task
    except WhyboxError:
        return None


def follow_model(old_task, new_task) -> None:
    """After a model switch: an example of the old model's task left untouched in a text box becomes an
    example of the new task (a movie review means nothing to a language model). Typed text stays."""
    ss = st.session_state
    current = current_text()
    new = examples.follow_model(current, old_task, new_task)
    if new is not None:
        ss.text = ss.w_text = new
    # Compare's two texts, as a pair, when neither was touched
    new_a = examples.follow_model(ss.get("w_cmp_a", ""), old_task, new_task)
    if "w_cmp_a" in ss and new_a and examples.follow_model(ss.get("w_cmp_b", ""), old_task, new_task):
        ss.w_cmp_a, ss.w_cmp_b = new_a, examples.for_task(new_task)[new_a]


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
