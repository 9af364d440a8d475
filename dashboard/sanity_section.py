"""The Faithfulness page's model-randomisation sanity check (explainers/metrics/sanity.py): run when asked
(it costs every chosen method once per layer group), drawn after each step, stoppable within a batch; what
finished is kept for the request it was run for."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from components.sanity_view import sanity_chart
from dashboard import views
from dashboard.results import Request
from dashboard.widgets import plain
from explainers.checks.sanity import INSENSITIVE, RANDOMISATION, READING, SANITY_MEASURES, SanityResult, sanity_check
from explainers.errors import CancelledError, WhyboxError
from explainers.inference.gateway import watching
from explainers.metrics.similarity import SIMILARITIES
from explainers.models.handle import ModelHandle
from explainers.serving import admission


def show(handle: ModelHandle, req: Request) -> None:
    ss = st.session_state
    st.subheader("Sanity check: do the maps depend on the model?")
    st.caption(f"{plain(READING)} {plain(RANDOMISATION)}")
    done: dict = ss.setdefault("sanity_results", {})
    left, right = st.columns([1, 2], vertical_alignment="bottom")
    pressed = left.button(
        "Run the sanity check",
        icon=":material/shuffle:",
        help=f"Explains the text again with every chosen method on {handle.n_layers + 2} ever more randomised "
        "copies of the model (head, each block, embeddings).",
    )
    measure = right.segmented_control(
        "Similarity to the original map",
        list(SANITY_MEASURES),
        default=SANITY_MEASURES[0],
        key="w_sanity_measure",
        required=True,
        format_func=lambda m: SIMILARITIES[m].title,
    )
    chart = st.empty()
    if pressed:
        done.pop(req, None)
        _run(handle, req, measure, chart, done)
    result: SanityResult | None = done.get(req)
    if result is None:
        if not pressed:
            st.caption("Press **Run the sanity check** to randomise the model layer by layer.")
        return
    chart.plotly_chart(sanity_chart(result, measure), key="sanity_chart")
    st.caption(f"{plain(SIMILARITIES[measure].meaning)}. Dashed line: {INSENSITIVE}.")
    if not result.complete:
        st.warning(
            f"Stopped after {len(result.layers)} of {len(result.planned)} steps: press the button to run it again.",
            icon=":material/pause_circle:",
        )
    flagged = [t for m, t in zip(result.methods, result.titles) if m in result.insensitive(measure)]
    if flagged:
        st.error(
            f"{plain(', '.join(flagged))}: the map stays {SIMILARITIES[measure].title} ≥ {INSENSITIVE} with every "
            "randomised layer, so it is not explaining what this model learned.",
            icon=":material/report:",
        )
    table = pd.DataFrame(
        {t: result.values[m][measure] for m, t in zip(result.methods, result.titles)}, index=result.layers
    ).T
    st.dataframe(
        table.rename_axis("Method"), column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table}
    )


def _run(handle: ModelHandle, req: Request, measure: str, chart, done: dict) -> None:
    """Run the check in the server's admission queue, drawing the chart after each step and a progress line
    after each batch (where a Stop, or any change of the page, takes effect)."""
    stop = st.empty()  # gone once the run is over
    stop.button("Stop", icon=":material/stop_circle:", key="w_sanity_stop")
    bar = st.progress(0.0, text="Copying the model…")
    steps = handle.n_layers + 2
    began = time.perf_counter()
    rows = [0]

    def on_rows(n: int) -> None:
        rows[0] += n
        step = len(done[req].layers) if req in done else 0
        bar.progress(
            min(step / steps, 1.0), text=f"step {step + 1}: {rows[0]:,} rows · {time.perf_counter() - began:.0f} s"
        )

    def on_step(result: SanityResult) -> None:
        done[req] = result
        chart.plotly_chart(sanity_chart(result, measure), key=f"sanity_live_{len(result.layers)}")

    params = {m: req.method_params(m) for m in req.methods}
    try:
        with admission.shared_queue().admitted(views._session_id()) as ticket:
            with watching(on_rows=on_rows, should_stop=lambda: ticket.cancelled, batch_seconds=0.5):
                sanity_check(
                    handle, req.text, list(req.methods), target=req.target or None, contrast=req.contrast or None,
                    seed=req.seed, params=params, chat=req.chat, on_step=on_step,
                )  # fmt: skip
    except CancelledError:
        pass  # replaced by a newer request of this session; what finished is kept
    except WhyboxError as exc:
        views.show_error("The sanity check", exc)
    bar.empty()
    stop.empty()
