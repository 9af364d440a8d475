"""Compare: one method on two texts, or on one text under two models, and the difference."""

import json

import streamlit as st
from explainers.metrics.compare import align_words
from explainers.whatif.summary import summarize

from components.charts import comparison_chart, probability_chart
from components.heatmap import render_heatmap, shared_scale
from dashboard import contrast_compare, examples, links, models, results, views, widgets
from dashboard.widgets import plain
from explainers.errors import WhyboxError
from explainers.methods import METHODS

ss = st.session_state


def side_b_target(handle_a, model_b: str) -> str:
    """Side B's own target picker, from B's task ('' = automatic: A's target when B can explain it, else
    B's prediction), with a warning when the two models do different tasks."""
    if not model_b:
        return ""
    if ss.get("w_cmp_go"):  # the button is drawn below, but its press is known from the start of the run
        ss.setdefault("cmp_pressed_for", set()).add(model_b)
    if not models.operator_allowed(model_b) and model_b not in ss.get("cmp_pressed_for", ()):
        # A model of one's own (perhaps from a link) loads only when Compare is pressed, never on sight.
        st.caption("Side B's target can be picked once its model is loaded: press Compare.")
        return ss.get("cmp_target_b", "")
    try:
        handle_b = models.get_model(model_b)
    except WhyboxError:
        return ""  # said when Compare is pressed, with the rest of side B's errors
    if ss.get("cmp_target_b_for") != model_b:  # a label or continuation of another model
        if "cmp_target_b_for" in ss:  # a switch, not a link's first visit: the old target means nothing here
            ss.pop("cmp_target_b", None)
        ss.cmp_target_b_for = model_b
        for key in ("w_cmp_target_b_label", "w_cmp_target_b_text"):
            ss.pop(key, None)
    task_b = handle_b.task
    key = "w_cmp_target_b_text" if task_b.free_text_target else "w_cmp_target_b_label"
    asked = ss.get("cmp_target_b")  # from a link, or this page's last visit
    if key not in ss and asked and (task_b.free_text_target or asked in handle_b.labels):
        ss[key] = asked
    same_task = type(task_b) is type(handle_a.task)
    if not same_task:
        st.warning(
            f"Side B is a {task_b.title.lower()}, side A a {handle_a.task.title.lower()}: they answer different "
            f"questions. Each side is drawn on its own, never on one axis; pick side B's "
            f"{task_b.target_noun} below.",
            icon=":material/warning:",
        )
    automatic = f"same as side A's {handle_a.task.target_noun}" if same_task else "B's own prediction"
    label = f"Side B: {task_b.target_title.lower()}"
    if task_b.free_text_target:
        ss.cmp_target_b = st.text_input(
            label,
            key=key,
            placeholder=f"empty = {automatic}" if same_task else "empty = B's most likely next token",
            help=task_b.target_help,
        )
    else:
        ss.cmp_target_b = st.selectbox(
            label,
            [""] + list(handle_b.labels),
            key=key,
            format_func=lambda choice: choice or automatic,
            help=task_b.target_help,
        )
    return ss.cmp_target_b


st.title("Compare")
st.caption("Change one thing and see how the explanation moves: edit the text, or ask another model.")

handle = views.model()
catalog = models.builtin_catalog()
options = list(catalog) + (["__custom__"] if models.custom_models_allowed() else [])
kinds = ["texts", "models", contrast_compare.KIND]
links.seed_compare(kinds, ss.methods or list(METHODS), options)  # from a link, or the last visit
kind = st.segmented_control(
    "Compare",
    kinds,
    key="w_cmp_kind",
    required=True,
    format_func=lambda k: {"texts": "Two texts, one model", contrast_compare.KIND: contrast_compare.TITLE}.get(
        k, "One text, two models"
    ),
)
method = st.selectbox(
    "Method",
    ss.methods or list(METHODS),
    key="w_cmp_method",
    format_func=lambda m: METHODS[m].title,
    help="The methods chosen in the sidebar. Both sides use the same method and parameters.",
)
if kind == contrast_compare.KIND:  # issue 11: plain vs contrastive, its own inputs and view
    contrast_compare.plain_vs_contrast(method)
    st.stop()

if kind == "texts":
    left, right = st.columns(2)
    if "w_cmp_a" not in ss:
        ss.w_cmp_a = widgets.current_text()
    if "w_cmp_b" not in ss:
        ss.w_cmp_b = examples.EXAMPLES.get(ss.w_cmp_a, ss.w_cmp_a)
    text_a = left.text_area("Text A", key="w_cmp_a", height=100)
    text_b = right.text_area("Text B (edit it)", key="w_cmp_b", height=100)
    sides = [(ss.model, text_a), (ss.model, text_b)]
else:
    text = widgets.text_box("compare", "Text")
    other = st.selectbox(
        "Second model",
        options,
        key="w_cmp_model",
        format_func=lambda n: f"{n}: {catalog[n].description}" if n in catalog else "Your own model",
    )
    if other == "__custom__":
        other = st.text_input("Second model: folder or hub id", key="w_cmp_custom").strip()
    sides = [(ss.model, text), (other, text)]
    target_b = side_b_target(handle, other)

pressed = st.button("Compare", type="primary", icon=":material/compare_arrows:", key="w_cmp_go")
target_b = target_b if kind == "models" else ""
request = (
    kind,
    method,
    tuple(sides),
    json.dumps(ss.params.get(method, {}), sort_keys=True),
    int(ss.seed),
    ss.target,
    target_b,
)
shown = views.request_to_show("compared", request, pressed)
if shown is None:
    st.info("Press **Compare** to explain both sides.")
    st.stop()
kind, method, sides, params, seed, target, target_b = shown

exps = []
for (model_name, text), name in zip(sides, ("A", "B")):
    try:
        side_handle = models.get_model(model_name)
        if not views.check_text(side_handle, text):
            st.stop()
        # B explains the target its picker names; left automatic, A's target, so that both sides answer
        # the same question, when B can.
        if exps:
            task = side_handle.task
            same_kind = type(task) is type(models.get_model(sides[0][0]).task)
            target = target_b or (
                exps[0].target.label
                if same_kind and (task.free_text_target or exps[0].target.label in side_handle.labels)
                else ""
            )
        req = results.Request(model_name, text, (method,), json.dumps({method: json.loads(params)}), seed, target)
        with st.spinner(f"Explaining side {name}…"):
            exps.append(results.explain_one(side_handle, req, method))
    except WhyboxError as exc:
        views.show_error(f"Side {name} ({model_name or 'no model'})", exc)
        st.stop()

same_task = type(models.get_model(sides[0][0]).task) is type(models.get_model(sides[1][0]).task)
comparable = same_task and exps[0].target.label == exps[1].target.label
scale = shared_scale(exps) if comparable else None
for column, exp, name in zip(st.columns(2), exps, ("A", "B")):
    with column.container(border=True):
        st.subheader(f"{name}: {plain(exp.model)}" if kind == "models" else f"Text {name}")
        st.plotly_chart(probability_chart(exp.probabilities, target=exp.target.label), key=f"cmp_probs_{name}")
        render_heatmap(exp, "word", scale)
        st.markdown(plain(summarize(exp)))

st.subheader("What changed")
if not same_task:
    st.warning(
        "The two models do different tasks (one names labels, the other continues text): their scores answer "
        "different questions, so they are not drawn on one axis. Compare each side on its own.",
        icon=":material/warning:",
    )
    st.stop()
if scale is None:
    st.caption("The two sides explain different labels, so their scores are not on one scale.")
else:
    st.caption("Both heatmaps share one colour scale. Difference = score in B − score in A, word by word.")
frame = align_words(*exps)
st.plotly_chart(comparison_chart(frame), key="cmp_diff")
with st.expander("Word by word"):
    columns = {
        "word_a": "Word in A",
        "word_b": "Word in B",
        "score_a": "Score A",
        "score_b": "Score B",
        "difference": "B − A",
        "status": "Change",
    }
    st.dataframe(
        frame[list(columns)].rename(columns=columns),
        hide_index=True,
        column_config={
            name: st.column_config.NumberColumn(name, format="%+.3f") for name in ("Score A", "Score B", "B − A")
        },
    )
