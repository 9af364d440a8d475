"""Present: the text, the prediction, the chosen explanations and the verdict, large and uncluttered,
for a projector. Shows what the Explain page has finished; it runs nothing but the faithfulness checks."""

from html import escape

import streamlit as st

from components.heatmap import heatmap_html, legend_html
from dashboard import models, results
from dashboard.widgets import plain
from explainers.metrics.faithfulness import MODES, agreement, mode_dependence
from explainers.metrics.leads import mode_dependent, winner
from explainers.whatif.summary import faithfulness_verdict

req = results.current_request()
exps = [e for e in (results.finished(req, m) for m in req.methods) if e is not None]
if not exps:
    st.title("Present")
    st.info(
        "Nothing to present yet: explain a text on the **Explain** page first. This page then shows it large, "
        "for a projector."
    )
    st.stop()

handle = models.get_model(req.model)
first = exps[0]
scale = first.extras.get("target_scale") or {}
if scale.get("probability", True):
    probability = f"{100 * first.target_prob:.0f} %" if first.target_prob >= 0.01 else f"{first.target_prob:.2g}"
else:  # a contrast or log-odds: a difference, never shown as a percentage
    probability = escape(f"{scale['formula']} = {first.target_prob:.3g}")
st.html(
    f"<div style='font-size:2.4rem;font-weight:700;line-height:1.3'>{escape(handle.task.display(first.target))}"
    f" <span style='color:#71717a;font-weight:400'>· {probability}</span></div>"
)
by_mode, best = {}, exps[0].method
if len(exps) > 1:  # the verdict in the Faithfulness page's mode, and whether the other mode crowns another method
    with st.spinner("Checking faithfulness…"):
        by_mode = {m: results.reports(handle, req, exps, m) for m in MODES}
    best = winner(by_mode[st.session_state.get("mode", "delete")])
chosen = st.pills(
    "Explanations",
    [e.method for e in exps],
    selection_mode="multi",
    default=[best],  # opens on the method the verdict names
    key="w_present",
    format_func=lambda m: next(e.title for e in exps if e.method == m),
)
for exp in (e for e in exps if e.method in (chosen or [])):
    st.markdown(f"### {plain(exp.title)}")
    st.html(legend_html(exp) + heatmap_html(exp, "word", font_size="2rem"))
if by_mode:
    reports = by_mode[st.session_state.get("mode", "delete")]
    fragile = f" {mode_dependence(by_mode)}" if mode_dependent(by_mode) else ""
    st.html(
        "<div style='font-size:1.4rem;line-height:1.5;margin-top:1.5rem'>"
        f"{escape(faithfulness_verdict(reports, agreement(exps)) + fragile)}</div>"
    )
