"""Present: the text, the prediction, the chosen explanations and the verdict, large and uncluttered,
for a projector. Shows what the Explain page has finished; it runs nothing but the faithfulness checks."""

from html import escape

import streamlit as st
from explainers.metrics.faithfulness import agreement
from explainers.whatif.summary import faithfulness_verdict

from components.heatmap import heatmap_html, legend_html
from dashboard import models, results
from dashboard.widgets import plain

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
probability = f"{100 * first.target_prob:.0f} %" if first.target_prob >= 0.01 else f"{first.target_prob:.2g}"
st.html(
    f"<div style='font-size:2.4rem;font-weight:700;line-height:1.3'>{escape(handle.task.display(first.target))}"
    f" <span style='color:#71717a;font-weight:400'>· {probability}</span></div>"
)
chosen = st.pills(
    "Explanations",
    [e.method for e in exps],
    selection_mode="multi",
    default=[exps[0].method],
    key="w_present",
    format_func=lambda m: next(e.title for e in exps if e.method == m),
)
for exp in (e for e in exps if e.method in (chosen or [])):
    st.markdown(f"### {plain(exp.title)}")
    st.html(legend_html(exp) + heatmap_html(exp, "word", font_size="2rem"))
if len(exps) > 1:
    with st.spinner("Checking faithfulness…"):
        reports = results.reports(handle, req, exps, "delete")
    st.html(
        "<div style='font-size:1.4rem;line-height:1.5;margin-top:1.5rem'>"
        f"{escape(faithfulness_verdict(reports, agreement(exps)))}</div>"
    )
