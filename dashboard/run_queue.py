"""Every model-running action of every page takes its turn in the server's one run queue
(explainers/admission.py, WHYBOX_MAX_CONCURRENT_RUNS): explains, what-if searches, language-model drafts,
model cards, faithfulness checks, comparisons, layer reads, generation, attention, reports, and an audit's
chunks (a slot per chunk, so explains waiting behind an audit are not starved).

Cached results skip the queue: the results caches (dashboard/results.py) enter it only to compute."""

from __future__ import annotations

import contextlib

import streamlit as st

from explainers.serving import admission


def session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def queue_note(area):
    """Draws the queue's "Busy: N ahead of you" in `area` while a run waits (each redraw is also where
    Streamlit's Stop takes effect)."""
    return lambda waiting: area.info(waiting.message(), icon=":material/hourglass_top:")


@contextlib.contextmanager
def queued(what: str | None = None):
    """Run the block once the queue admits it: "Busy: N ahead of you" while it waits, then a spinner saying
    `what` (none when the page draws its own). Nested in work already admitted (an action that explains
    first) it runs under that slot. A full queue raises BusyError, a WhyboxError, which the page shows as
    it shows any other."""
    note = st.empty()
    try:
        with admission.shared_queue().admitted(session_id(), queue_note(note)):
            note.empty()
            with st.spinner(what) if what else contextlib.nullcontext():
                yield
    finally:
        note.empty()
