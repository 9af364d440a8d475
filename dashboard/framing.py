"""How the question is framed (issue 11), in the sidebar: "rather than…" (a contrastive target), the unit
explained (token, word, sentence, or pieces between a separator), and the chat template.

The settings live in plain session-state keys (contrast, unit, separator, chat), reach the Request
(results.py) and the link (links.py: `from_query` / `to_query`); the widgets use "w_" keys.
"""

from __future__ import annotations

import streamlit as st
from explainers.methods.units import UNITS, features, segment, unit_cost
from explainers.models.handle import ModelHandle

from dashboard import widgets
from explainers.methods import METHODS, estimated_seconds

SEPARATOR = "separator"  # the unit choice that cuts the text at a string of the user's
UNIT_CHOICES = (*UNITS, SEPARATOR)
DEFAULTS = {"contrast": "", "unit": "token", "separator": "", "chat": False}
# A text box cannot hold a line break: these escapes stand for the characters
ESCAPES = {"\\n": "\n", "\\t": "\t"}


def unescape(typed: str) -> str:
    for escape, char in ESCAPES.items():
        typed = typed.replace(escape, char)
    return typed


def escape(separator: str) -> str:
    for escape_, char in ESCAPES.items():
        separator = separator.replace(char, escape_)
    return separator


def has_chat_template(handle: ModelHandle) -> bool:
    return bool(getattr(handle.tokenizer, "chat_template", None))


def settings() -> dict:
    """The framing settings of this session, for the Request: {contrast, unit, separator, chat}."""
    ss = st.session_state
    return {key: ss.get(key, default) for key, default in DEFAULTS.items()}


# ---- the link ----------------------------------------------------------------------------------------
def from_query(query) -> None:
    """Take the framing from a link (an unknown unit falls back to tokens: the link still opens)."""
    ss = st.session_state
    ss.contrast = query.get("contrast", "")
    ss.unit = query.get("unit") if query.get("unit") in UNITS else "token"
    ss.separator = query.get("sep", "")
    ss.chat = query.get("chat") == "1"


def to_query() -> dict:
    """The framing for the link, each key only when it differs from its default."""
    s = settings()
    wanted = {"contrast": s["contrast"], "unit": s["unit"] if s["unit"] != "token" else "", "sep": s["separator"]}
    wanted["chat"] = "1" if s["chat"] else ""
    return {key: value for key, value in wanted.items() if value}


# ---- the sidebar ---------------------------------------------------------------------------------------
def framing_picker(handle: ModelHandle) -> None:
    """The contrast (when the task has contrastive targets), the unit, and the chat template (when the
    tokenizer has one)."""
    ss = st.session_state
    for key, default in DEFAULTS.items():
        ss.setdefault(key, default)
    task = handle.task
    if task.contrast_formula:
        if task.free_text_target:
            ss.contrast = st.text_input(
                "…rather than",
                key=widgets.bound("w_contrast_text", "contrast"),
                placeholder="empty = no contrast",
                help=f"Why the target rather than this continuation: the score becomes {task.contrast_formula}.",
            )
        else:
            options = ["", *handle.labels]
            if ss.contrast not in options:  # e.g. a label of the previous model
                ss.contrast = ""
                ss.pop("w_contrast_label", None)
            ss.contrast = st.selectbox(
                "…rather than",
                options,
                key=widgets.bound("w_contrast_label", "contrast"),
                format_func=lambda label: label or "no contrast",
                help=f"Why the target rather than this label: the score becomes {task.contrast_formula}.",
            )
    if "w_unit" not in ss:
        ss.w_unit = SEPARATOR if ss.separator else ss.unit
    unit = st.segmented_control(
        "Explain each",
        UNIT_CHOICES,
        key="w_unit",
        required=True,
        help="The unit scored. For perturbation methods (occlusion, leave-one-out, LIME, SHAP) the unit is the "
        "feature hidden or sampled, so sentences cost far fewer passes than tokens; the other methods score "
        "tokens and add them up.",
    )
    if unit == SEPARATOR:
        if "w_separator" not in ss:
            ss.w_separator = escape(ss.separator) or "\\n"
        typed = st.text_input("Separator", key="w_separator", help="Cut the text at this string; \\n is a line break.")
        ss.unit, ss.separator = "token", unescape(typed)
    else:
        ss.unit, ss.separator = unit, ""
    if has_chat_template(handle):
        ss.chat = st.toggle(
            "Wrap in the chat template",
            key=widgets.bound("w_chat", "chat"),
            help="Explain the text as the user's turn of this model's chat template, as an instruct model is "
            "really prompted. The template's tokens are kept and never scored.",
        )
    else:
        ss.chat = False


def estimate(handle: ModelHandle, method: str, params: dict) -> tuple:
    """(cost, seconds, features) of one method on the current text at the chosen unit: perturbation
    methods pay per unit, the rest per token (units.unit_cost). `features` says what is counted ("" for tokens)."""
    s = settings()
    spec = METHODS[method]
    enc = handle.encode(widgets.current_text(), chat=s["chat"])
    units = segment(enc, s["unit"], s["separator"] or None)
    cost = unit_cost(spec, enc, units, params)
    token_cost = spec.estimate(enc.n_tokens, params)
    # the rate is per row-token: rows at this unit, each as long as the text
    seconds = estimated_seconds(handle, method, enc.n_tokens, params) * cost.rows / max(token_cost.rows, 1)
    return cost, seconds, features(spec, enc, units) if units.name != "token" else ""
