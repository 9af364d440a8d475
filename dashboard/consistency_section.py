"""The Faithfulness page's consistency-under-paraphrase check (explainers/metrics/consistency.py): run when
asked, drawn after each variant, stoppable; what finished is kept for the request it was run for."""

from __future__ import annotations

import streamlit as st

from components.consistency_view import consistency_chart, variants_frame
from dashboard import views
from dashboard.results import Request
from dashboard.widgets import plain
from explainers.checks.consistency import CONSISTENCY_MEASURES, SIMILARITY_THRESHOLD, ConsistencyResult, consistency
from explainers.errors import CancelledError, WhyboxError
from explainers.inference.gateway import watching
from explainers.metrics.similarity import SIMILARITIES
from explainers.models.handle import ModelHandle
from explainers.serving import admission


def show(handle: ModelHandle, req: Request) -> None:
    ss = st.session_state
    st.subheader("Consistency: do paraphrases get the same explanation?")
    st.caption(
        "Variants that keep the meaning and the prediction (a word swapped for a near neighbour, another name or "
        "number, the final punctuation, a contraction) should get the same explanation. Each is used only if its "
        "MiniLM sentence similarity reaches the threshold and the prediction is unchanged; words are aligned "
        "(exact, then by MiniLM). Beside each method: the same method on the same text with another seed, its "
        "own noise floor, so that sampling noise is not blamed on the paraphrase."
    )
    done: dict = ss.setdefault("consistency_results", {})
    left, middle, right = st.columns([1, 1, 2], vertical_alignment="bottom")
    pressed = left.button("Run the consistency check", icon=":material/difference:")
    threshold = middle.number_input(
        "Least similarity", 0.5, 1.0, SIMILARITY_THRESHOLD, 0.01, key="w_consistency_threshold"
    )
    measure = right.segmented_control(
        "Measure",
        list(CONSISTENCY_MEASURES),
        default=CONSISTENCY_MEASURES[0],
        key="w_consistency_measure",
        required=True,
        format_func=lambda m: SIMILARITIES[m].title,
    )
    chart = st.empty()
    key = (req, threshold)
    if pressed:
        done.pop(key, None)
        _run(handle, req, threshold, measure, chart, done, key)
    result: ConsistencyResult | None = done.get(key)
    if result is None:
        if not pressed:
            st.caption("Press **Run the consistency check** to explain the variants.")
        return
    if not result.used:
        st.warning("No variant kept both the meaning (by the threshold) and the prediction: nothing to compare.")
    else:
        chart.plotly_chart(consistency_chart(result, measure), key="consistency_chart")
        st.caption(plain(SIMILARITIES[measure].meaning))
    if not result.complete:
        st.warning(
            f"Stopped after {len(result.used)} of {result.planned} variants: press the button to run it again.",
            icon=":material/pause_circle:",
        )
    dropped = ", ".join(f"{n} {why}" for why, n in result.dropped().items()) or "none"
    st.caption(f"{len(result.used)} of {len(result.variants)} variants used; dropped: {plain(dropped)}.")
    st.dataframe(
        variants_frame(result),
        hide_index=True,
        column_config={
            "Similarity": st.column_config.NumberColumn(format="%.3f"),
            "Words changed": st.column_config.NumberColumn(format="percent"),
        },
    )


def _run(handle, req: Request, threshold: float, measure: str, chart, done: dict, key) -> None:
    stop = st.empty()  # gone once the run is over
    stop.button("Stop", icon=":material/stop_circle:", key="w_consistency_stop")
    bar = st.progress(0.0, text="Finding variants…")
    rows = [0]

    def on_rows(n: int) -> None:  # each batch: where a Stop, or any change of the page, takes effect
        rows[0] += n
        result = done.get(key)
        share = len(result.used) / result.planned if result is not None and result.planned else 0.0
        bar.progress(min(share, 1.0), text=f"{rows[0]:,} rows through the model")

    def on_variant(result: ConsistencyResult) -> None:
        done[key] = result
        count = len(result.values[result.methods[0]][result.measures[0]])
        chart.plotly_chart(consistency_chart(result, measure), key=f"consistency_live_{count}")

    params = {m: req.method_params(m) for m in req.methods}
    try:
        with admission.shared_queue().admitted(views._session_id()) as ticket:
            with watching(on_rows=on_rows, should_stop=lambda: ticket.cancelled, batch_seconds=0.5):
                done[key] = consistency(
                    handle, req.text, list(req.methods), target=req.target or None, seed=req.seed, params=params,
                    threshold=threshold, on_variant=on_variant,
                )  # fmt: skip
    except CancelledError:
        pass
    except WhyboxError as exc:
        views.show_error("The consistency check", exc)
    bar.empty()
    stop.empty()
