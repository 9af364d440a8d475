"""Load the dashboard's first model while the server starts.

Most of a cold start is importing torch and transformers and reading weights. `whybox run` starts
that in a background thread before Streamlit boots, and the first page picks the model up with
`take_preloaded`. This module imports neither torch nor transformers itself: the thread does.
"""

from __future__ import annotations

import concurrent.futures
import threading

from explainers.models import builtin

_preloads: dict[str, concurrent.futures.Future] = {}


def preload_model(name_or_path: str) -> None:
    """Start loading a model (default settings) in a background thread. A built-in that is not
    built yet is left alone: its first build shows its progress in the page."""
    if name_or_path in _preloads or (builtin.is_builtin(name_or_path) and not builtin.is_built(name_or_path)):
        return
    future: concurrent.futures.Future = concurrent.futures.Future()

    def load() -> None:
        try:
            from explainers.models.loading import load_model

            handle = load_model(name_or_path)
            handle.gateway.seconds_per_row_token()  # the rate the sidebar's first estimates need, timed now
            future.set_result(handle)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever takes the model
            future.set_exception(exc)

    _preloads[name_or_path] = future
    threading.Thread(target=load, name=f"preload {name_or_path}", daemon=True).start()


def pending() -> bool:
    """True while a preloaded model waits to be taken (it may still be loading)."""
    return bool(_preloads)


def take_preloaded(name_or_path: str):
    """The preloaded ModelHandle (waiting for it if it is still loading), handed out once; None when
    it was not preloaded or failed (the caller's own load_model then reports why)."""
    future = _preloads.pop(name_or_path, None)
    if future is None:
        return None
    try:
        return future.result()
    except Exception:  # noqa: BLE001
        return None
