"""A server's first moments: content at once for the first visitor, and a heap that reruns do not pay for.

This module imports only streamlit (already loaded when a page runs), so that the app can draw the title
before it imports torch and the pages' modules, which take ~10 s on a busy 2-core machine while the
model preloads beside them (explainers/preload.py).
"""

from __future__ import annotations

import gc
import sys

import streamlit as st

TITLE = "whybox: why did the model say that?"
STARTING = "Starting up (once per server): importing the libraries, then loading the model…"
INTRO = (
    "whybox explains a text model's predictions: type a sentence, and attribution methods colour each word "
    "by how much it pushed the model towards its answer (:red[red]) or away from it (:blue[blue]); "
    "faithfulness checks then say which explanation the model itself agrees with."
)


def starting() -> bool:
    """True while this process has not yet imported the pages' modules or taken its preloaded model."""
    from explainers.serving import preload

    return "dashboard.views" not in sys.modules or preload.pending()


def intro_while_starting():
    """A placeholder at the top of the main area, holding the title and what whybox does on a process that
    is still starting (drawn at once); hand it to `models.model_ready`. Made on every run, filled or not, so that
    the page's elements keep their places from one run to the next (a placeholder that came and went would
    shift them, and the previous run's copies would linger beside the new ones until the run ended)."""
    slot = st.empty()
    if not starting():
        return slot, False
    with slot.container():
        st.title(TITLE)
        st.markdown(INTRO)
        # the imports before the first build or load report nothing and take a minute on a busy machine:
        # a bar with what is happening, at once, so that the page never looks stalled
        st.progress(0.0, text=STARTING)
    return slot, True


# Imported on first use by the methods, the metrics and the pages: imported before the heap is frozen, so
# that their ~90,000 objects are frozen with it (about 0.2 s off each rerun on a busy machine).
WARM_MODULES = (
    "captum.attr",
    "lime.lime_text",
    "scipy.stats",
    "sklearn.metrics",
    "plotly.graph_objects",
    "components.charts",
    "components.heatmap",
    "components.report",
)


def settle_heap() -> None:
    """Take what is alive now (imported modules, the loaded model) out of the cyclic garbage collector's
    view. Streamlit collects all generations after every script run (runner.postScriptGC): with torch and
    a model loaded that walks ~550,000 objects, 0.8-1 s per run on a busy 2-core machine, paid by every
    rerun, a Stop's included. Frozen objects are still freed by reference counting when dropped."""
    import importlib

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional extra: imported (or reported) where it is used
            pass
    gc.collect()
    gc.freeze()
