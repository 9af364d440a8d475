"""Compare, plain vs contrastive (issue 11): one text, one method, "why A?" beside "why A rather than B?".

The two explain different quantities (p(A), and p(A) − p(B) or log p(A) − log p(B)), so each heatmap keeps
its own colour scale; what they share is the ranking of words, and the page says how far it agrees.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import streamlit as st
from explainers.metrics.faithfulness import spearman
from explainers.whatif.summary import summarize

from components.heatmap import render_heatmap
from dashboard import results, views, widgets
from dashboard.widgets import plain
from explainers.errors import InputError, WhyboxError

KIND = "contrast"
TITLE = "One text: plain vs rather than…"


def word_agreement(plain_exp, contrastive) -> float:
    """Spearman correlation of the two explanations' word scores (same text, same words)."""
    return spearman(np.asarray(plain_exp.word_scores), np.asarray(contrastive.word_scores))


def plain_vs_contrast(method: str) -> None:
    """The Compare page's third kind: draws its own inputs and results."""
    ss = st.session_state
    handle = views.model()
    if not handle.task.contrast_formula:
        st.info("This model's task has no contrastive targets.")
        return
    text = widgets.text_box("compare", "Text")
    if "w_cmp_contrast" not in ss:
        ss.w_cmp_contrast = ss.get("cmp_contrast") or ss.get("contrast", "")  # a link's, else the sidebar's
    if handle.task.free_text_target:
        contrast = st.text_input("…rather than", key="w_cmp_contrast", placeholder="a continuation, e.g. Lyon")
    else:
        options = list(handle.labels)
        if ss.w_cmp_contrast not in options:
            ss.w_cmp_contrast = options[-1]
        contrast = st.selectbox("…rather than", options, key="w_cmp_contrast")
    st.caption(
        f"The target is the sidebar's ({plain(ss.target) or 'the prediction'}). Left: why the target; right: why "
        f"the target rather than this, scored as {handle.task.contrast_formula}."
    )
    pressed = st.button("Compare", type="primary", icon=":material/compare_arrows:")
    params = json.dumps({method: ss.params.get(method, {})}, sort_keys=True)
    plain_req = results.Request(ss.model, text, (method,), params, int(ss.seed), ss.target.strip())
    request = (KIND, plain_req, contrast.strip())
    shown = views.request_to_show("compared_contrast", request, pressed, lambda r: views.check_text(handle, r[1].text))
    if shown is None:
        st.info("Press **Compare** to explain the target plainly and against the contrast.")
        return
    _, plain_req, contrast = shown
    try:
        if not contrast:
            raise InputError("Type what the target should be explained against (…rather than).")
        with st.spinner("Explaining the target…"):
            plain_exp = results.explain_one(handle, plain_req, method)
        # both sides explain the same A: the plain side's resolved target
        versus = replace(plain_req, target=plain_exp.target.label, contrast=contrast)
        with st.spinner("Explaining the target rather than the contrast…"):
            contrastive = results.explain_one(handle, versus, method)
    except WhyboxError as exc:
        views.show_error("Plain vs rather than", exc)
        return
    for column, exp in zip(st.columns(2), (plain_exp, contrastive)):
        with column.container(border=True):
            st.subheader(f"Why {plain(handle.task.display(exp.target))}?")
            score = handle.task.score_name(exp.target)
            st.caption(f"{score} = {exp.target_prob:.3g} · each side on its own colour scale")
            render_heatmap(exp, "word")
            st.markdown(plain(summarize(exp)))
    rho = word_agreement(plain_exp, contrastive)
    st.metric("Word-ranking agreement (Spearman ρ)", "undefined" if np.isnan(rho) else f"{rho:+.2f}")
    st.caption(
        "1: the same words explain the target with or without the contrast; near 0 or below: the contrast "
        "brings out other words (those that tell the target from the alternative)."
    )
