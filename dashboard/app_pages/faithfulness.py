"""Faithfulness: which of the explanations does the model itself agree with, and do they match yours?"""

import pandas as pd
import streamlit as st
from explainers.metrics.faithfulness import (
    CURVE_METRICS,
    MODES,
    PLAUSIBILITY,
    RANKING_RULE,
    agreement,
    mode_dependence,
    plausibility,
)
from explainers.whatif.summary import faithfulness_verdict

from components.charts import agreement_heatmap, curves_chart
from components.metrics_view import render_metrics
from dashboard import downloads, models, results, views, widgets
from dashboard.widgets import plain

st.title("Faithfulness: which explanation should I trust?")
st.caption(
    "An explanation is faithful when the tokens it ranks highest are the ones the model really needs: "
    "removing them should change the prediction most, keeping only them should change it least. "
    "These checks run the model again on edited copies of your text."
)

views.model()
widgets.text_expander("faithfulness")
left, right = st.columns([1, 2], vertical_alignment="bottom")
pressed = left.button("Explain and check", type="primary", icon=":material/fact_check:")
mode = right.segmented_control(
    "Removed tokens are", list(MODES), key=widgets.bound("w_mode", "mode"), required=True, format_func=str.capitalize
)
st.caption(
    f"**{mode.capitalize()}**: {MODES[mode]}. Deleting or masking makes inputs the model never saw in "
    "training, so part of any probability change is the oddness of the input itself."
)
stop_area = st.empty()
req, run_id = views.plan(pressed, "Press **Explain and check** to run the chosen methods and test them.", stop_area)
exps = views.explanations(req, run_id)
stop_area.empty()  # finished: nothing left to stop
handle = models.get_model(req.model)

with st.spinner("Running the checks in both modes (one batched pass per method and mode)…"):
    by_mode = {m: results.reports(handle, req, exps, m) for m in MODES}
reports = by_mode[mode]
titles = [e.title for e in exps]
names, matrix = agreement(exps)

st.subheader("Verdict")
st.info(plain(faithfulness_verdict(reports, (names, matrix))), icon=":material/gavel:")
if len(exps) > 1:
    st.caption(plain(mode_dependence(by_mode)))
st.caption(plain(RANKING_RULE))

st.subheader("Metrics")
st.caption(f"Explaining '{plain(exps[0].target.label.strip())}' (p = {exps[0].target_prob:.3f} on the full text).")
render_metrics(reports)

st.subheader("Curves")
tabs = st.tabs([metric.curve_title for metric in CURVE_METRICS])
for tab, metric in zip(tabs, CURVE_METRICS):
    tab.plotly_chart(curves_chart(reports, metric.name), key=f"curve_{metric.name}")

if len(exps) > 1:
    st.subheader("Do the methods agree?")
    st.caption(
        "Spearman rank correlation of the token scores of each pair of methods: 1 = same ranking, "
        "0 = unrelated, −1 = opposite. Agreement is not faithfulness: methods can agree and all be wrong."
    )
    st.plotly_chart(agreement_heatmap(titles, matrix), key="agreement")

st.subheader("Plausibility: do they match what you think matters?")
st.caption(
    "Mark the words that you think justify the prediction. Each method's top tokens (as many as you "
    "mark) are compared with your marks. This measures agreement with people, not with the model."
)
words = exps[0].words
marks_key = f"w_marks_{hash((req.model, req.text))}"
if marks_key not in st.session_state and st.session_state.get("marks_for") == req.text:  # from a link
    st.session_state[marks_key] = [i for i in st.session_state.get("marks", []) if i < len(words)]
marked = st.pills(
    "Words that matter",
    list(range(len(words))),
    selection_mode="multi",
    key=marks_key,
    format_func=lambda i: f"{words[i]} ·{i + 1}",
)
st.session_state.marks, st.session_state.marks_for = list(marked or []), req.text
if marked:
    rows = {
        title: {PLAUSIBILITY[k].title: v for k, v in plausibility(exp, marked).items()}
        for title, exp in zip(titles, exps)
    }
    st.dataframe(
        pd.DataFrame.from_dict(rows, orient="index").rename_axis("Method"),
        column_config={
            m.title: st.column_config.ProgressColumn(
                m.title, help=m.meaning, min_value=0.0, max_value=1.0, format="%.2f"
            )
            for m in PLAUSIBILITY.values()
        },
    )

st.divider()
downloads.offer(handle, req, exps, mode, reports, (names, matrix))
