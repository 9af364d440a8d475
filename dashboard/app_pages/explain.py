"""Explain: the prediction, then each chosen method's heatmap side by side."""

import streamlit as st

from components.charts import probability_chart, word_bars
from components.heatmap import render_heatmap
from dashboard import models, views, widgets
from dashboard.generation import generate_and_explain
from dashboard.widgets import plain
from explainers.narrative import summarize

st.title("Why did the model say that?")
st.caption(
    "Type a text, pick methods in the sidebar, and press Explain. Each method answers the same question "
    "differently; the Faithfulness page checks which answers the model agrees with."
)

views.model()
widgets.text_box("explain")
if generate_and_explain(views.model(), widgets.current_text()):  # issue 11: generated tokens
    st.stop()
pressed = st.button("Explain", type="primary", icon=":material/lightbulb:")
req, exps = views.explanations(
    pressed, "Press **Explain** to run the methods chosen in the sidebar (their estimated cost is listed there)."
)
handle = models.get_model(req.model)

first = exps[0]
left, right = st.columns([2, 3])
with left:
    st.subheader("Prediction")
    st.metric(
        handle.task.target_title,
        handle.task.display(first.target),
        f"p = {first.target_prob:.3g}",
        delta_color="off",
        delta_arrow="off",
    )
    st.caption("Red words push the model towards this answer, blue words against it.")
with right:
    st.plotly_chart(probability_chart(first.probabilities, target=first.target.label), key="probabilities")


@st.fragment
def heatmaps(exps) -> None:
    """The method cards. A fragment: switching words/tokens redraws these cards, not the whole page."""
    level = st.segmented_control(
        "Scores per",
        ["word", "token"],
        default="word",
        key="w_level",
        required=True,
        format_func=lambda x: "Word" if x == "word" else "Subword token",
        help="Words add up the scores of their subword tokens.",
    )
    for row in range(0, len(exps), 2):
        for column, exp in zip(st.columns(2), exps[row : row + 2]):
            with column.container(border=True):
                st.subheader(exp.title)
                st.caption(views.method_caption(exp))
                render_heatmap(exp, level, None)
                st.markdown(plain(summarize(exp)))
                if exp.native_unit == "word":  # a word-level method: its own view is the word bars
                    st.plotly_chart(word_bars(exp), key=f"bars_{exp.method}")


heatmaps(exps)
st.divider()
views.downloads(handle, req, exps)
