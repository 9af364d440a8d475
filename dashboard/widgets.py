"""Widgets shared by several pages, and escaping user text for Markdown.

Widgets use their own "w_" keys, re-seeded from the settings whenever a page shows them again:
Streamlit forgets a widget's state when the page that holds it is not shown.
"""

from __future__ import annotations

import re

import streamlit as st

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
