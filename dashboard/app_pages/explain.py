"""Explain: the prediction at once, then each chosen method's card as soon as it is ready."""

import streamlit as st

from components.charts import probability_chart, word_bars
from components.heatmap import render_heatmap, shared_scale
from components.method_rows import method_rows
from dashboard import downloads, framing, models, results, sae_panel, shared_text, views, widgets
from dashboard.generation import generate_and_explain
from dashboard.widgets import plain
from explainers.errors import WhyboxError
from explainers.methods.remedies import remedies
from explainers.whatif.summary import shown, summarize

st.title("Why did the model say that?")
st.caption(
    "Type a text, pick methods in the sidebar, and press Explain. Each method answers the same question "
    "differently; the Faithfulness page checks which answers the model agrees with."
)

views.model()
shared_text.text_box("explain")
if generate_and_explain(views.model(), widgets.current_text()):  # issue 11: generated tokens
    st.stop()
explain_column, stop_column = st.columns([1, 7], gap="small")
pressed = explain_column.button("Explain", type="primary", icon=":material/lightbulb:")
pressed = pressed or st.session_state.pop("remedy_run", False)  # a card's "Re-run with ..." button
stop_area = stop_column.empty()
req, run_id = views.plan(
    pressed,
    "Press **Explain** to run the methods chosen in the sidebar (their estimated time is listed there).",
    stop_area,
)
handle = models.get_model(req.model)

area = views.results_area(req)  # dimmed when the text changed since
with area:
    predicted = results.prediction(handle, req)
    left, right = st.columns([2, 3])
    with left:
        st.subheader("Prediction")
        target = predicted["target"]
        st.metric(
            handle.task.target_title,
            handle.task.display(target.plain),  # the contrast on its own line below: a metric cuts long values
            f"{handle.task.score_name(target)} = {predicted['target_prob']:.3g}",
            delta_color="off",
            delta_arrow="off",
        )
        if target.contrast is not None:
            st.markdown(f"rather than **{plain(handle.task.display(target.contrast))}**")
        for note in views.prediction_notes(predicted):  # a prompt classifier's label mass and calibration
            st.caption(plain(note))
        for warning in views.prediction_warnings(predicted, handle) + views.reading_warnings(handle, req.text):
            st.warning(plain(warning), icon=":material/warning:")
    with right:
        st.plotly_chart(
            probability_chart(predicted["probabilities"], predicted["target"].label, predicted["contrast_label"]),
            key="probabilities",
        )


def apply_remedy(remedy) -> None:
    """Set the parameter (the sidebar's box follows) and run again."""
    ss = st.session_state
    ss.params.setdefault(remedy.method, {})[remedy.param] = remedy.value
    ss[f"w_p_{remedy.method}_{remedy.param}"] = remedy.value
    ss.remedy_run = True


def card(exp, level: str, scale: float | None = None, by_class: bool = False, final: bool = True) -> None:
    """One method's card. `final=False`: a first draw that is replaced later in the same run (the shared
    scale needs every card), so it holds no keyed widget: Streamlit refuses a key registered twice in one run."""
    st.subheader(exp.title)
    st.caption(views.method_caption(exp))
    for remedy in remedies(exp) if final else ():  # a poor diagnostic's own suggestions, one click each
        st.button(
            remedy.label,
            key=f"remedy_{exp.method}_{remedy.param}_{remedy.value}",
            icon=":material/refresh:",
            on_click=apply_remedy,
            args=(remedy,),
            help=f"The {remedy.diagnostic} is poor. This sets {remedy.param} in the sidebar and explains again.",
        )
    weak = views.weak_signal(exp)
    if weak:
        st.warning(plain(weak), icon=":material/blur_on:")
    render_heatmap(exp, level, scale, by_class)
    st.markdown(plain(summarize(exp)))
    if not final:
        st.caption("Redrawn on the shared colour scale when every card is ready…")
        return
    downloads.image_popover(exp, level, scale)
    if exp.native_unit == "word":  # a word-level method: its own view is the word bars
        st.plotly_chart(word_bars(exp), key=f"bars_{exp.method}")


def colour_by_class() -> bool:
    """The colour-by-class option, where the task's targets are a fixed set of labels."""
    if handle.task.free_text_target:
        return False
    return st.toggle(
        "Colour by class",
        key=widgets.bound("w_colour_by_class", "colour_by_class"),
        help="Off: red pushes towards the explained label, blue away from it (the meaning of a colour follows "
        "the label). On: each label keeps one colour, as in LIME's own view, so two texts explained for "
        "different labels read alike.",
    )


def cards(run_id: int | None) -> list:
    """The method cards, each drawn in its place as soon as it is ready. Not a fragment: a fragment
    whose slots are refilled while a stopped run restarts left the browser waiting for a run that had
    ended; a word/token switch reruns the page from finished results instead (a fraction of a second)."""
    level = st.segmented_control(
        framing.DISPLAY_LABEL,
        ["word", "token"],
        key=widgets.bound("w_level", "level"),
        required=True,
        format_func=lambda x: "Word" if x == "word" else "Subword token",
        help=f"Display only, nothing is recomputed: a word's colour adds up the scores of its subword tokens. "
        f"What the methods hide and score is set in the sidebar ({framing.UNIT_LABEL.lower()}).",
    )
    shared = st.toggle(
        "One colour scale for all cards",
        key=widgets.bound("w_shared_scale", "shared_scale"),
        help="Off: each card is scaled to its own largest score, so a weak method looks as strong as a strong one. "
        "On: equal colours mean equal scores across the signed methods (scores in probability units).",
    )
    compact = st.toggle(
        "Compact: one row per method",
        key="w_compact",
        help="Every method as one row over the same words, the value of each on hover, instead of a card per "
        "method: many methods in one screen.",
    )
    by_class = colour_by_class() and not compact
    target_label = predicted["target"].label.strip() or repr(predicted["target"].label)
    if by_class:
        st.markdown(
            f"Colours are fixed per {handle.task.target_noun}, as in LIME's own view: each {handle.task.target_noun} "
            f"keeps its colour whichever is explained (**{plain(target_label)}** here); unsigned methods stay violet."
        )
    elif predicted["target"].contrast is not None:  # a contrast: blue is not "away", it is towards the other one
        other = plain(shown(predicted["target"].contrast.label))
        st.markdown(
            f"Colours compare **{plain(target_label)}** with **{other}**: :red[red] pushes towards "
            f"{plain(target_label)} rather than {other}, :blue[blue] towards {other} rather than {plain(target_label)}."
        )
    else:
        st.markdown(
            f"Colours are relative to **{plain(target_label)}**, the explained {handle.task.target_noun}: "
            f":red[red] pushes towards it, :blue[blue] away from it."
        )
    progress_area = st.container()
    slots = {}
    if compact:  # one line per method while it runs; the rows are drawn when all are ready
        lines = st.container(border=True)
        for method in req.methods:
            slots[method] = lines.empty()
            slots[method].caption(f"{views.method_title(method)}: waiting…")
    else:
        for row in range(0, len(req.methods), 2):
            for column, method in zip(st.columns(2), req.methods[row : row + 2]):
                slots[method] = column.empty()
                slots[method].container(border=True).caption(f"{views.method_title(method)}: waiting…")

    def draw(method: str, outcome) -> None:
        if compact and not isinstance(outcome, WhyboxError):
            slots[method].markdown(
                f"**{plain(outcome.title)}**: {plain(views.method_caption(outcome))}"
                if outcome is not None
                else f"{views.method_title(method)}: stopped before it finished. Press Explain to run it."
            )
            return
        with slots[method].container(border=True):
            if outcome is None:
                st.caption(f"{views.method_title(method)}: stopped before it finished. Press Explain to run it.")
            elif isinstance(outcome, WhyboxError):
                views.show_error(views.method_title(method), outcome)
            else:
                card(outcome, level, by_class=by_class, final=not shared)  # shared: drawn again below

    exps = views.explanations(req, run_id, draw=draw, progress_area=progress_area)
    if compact:
        scale = shared_scale([e for e in exps if e.signed], level) if shared else None
        st.plotly_chart(method_rows(exps, level, scale), key="method_rows")
        return exps
    if shared and exps:  # the scale needs every card: redraw them on it
        scale = shared_scale([e for e in exps if e.signed], level)
        for exp in exps:
            with slots[exp.method].container(border=True):
                card(exp, level, scale if exp.signed else None, by_class)
    return exps


with area:
    exps = cards(run_id)
    stop_area.empty()  # finished: nothing left to stop
    sae_panel.explain_section(handle, req.text)  # the features of the SAE chosen on the Features page
    st.divider()
    downloads.offer(handle, req, exps)
