"""Page pieces shared by several pages: the loaded model, running the explanations, showing them,
and the downloads."""

from __future__ import annotations

import time
from contextlib import nullcontext

import streamlit as st

from components.report import html_report, json_bundle
from dashboard import state
from dashboard.state import plain
from explainers import faithfulness
from explainers.errors import WhyboxError
from explainers.explanation import Explanation
from explainers.methods import METHODS
from explainers.model import ModelHandle


def model() -> ModelHandle:
    """The loaded model; stops the page with the reason when there is none."""
    try:
        return state.get_model(st.session_state.model)
    except WhyboxError as exc:
        st.error(f"No model is loaded: {plain(str(exc))}\n\nPick another model in the sidebar.")
        st.stop()


def check_text(handle: ModelHandle, text: str) -> bool:
    """Say what is wrong with the text, if anything; True when it can be explained."""
    try:
        enc = handle.encode(text)
    except WhyboxError as exc:
        st.error(plain(str(exc)))
        return False
    if enc.truncated:
        st.warning(f"This text is longer than the model's limit of {handle.max_tokens} tokens: only the first "
                   f"{handle.max_tokens} tokens (up to “{plain(enc.words[-1])}”) are used. Shorten the text to "
                   "explain all of it.")
    return True


def explanations(pressed: bool, hint: str) -> tuple[state.Request, list[Explanation]]:
    """The explanations to show and the request they answer: a fresh run when the button was pressed
    (or a shared link was opened), else the last run's (instant: cached). Methods that failed are
    reported on the page. Stops the page when there is nothing to show (with `hint` when nothing
    has been asked for yet)."""
    result = _explanations(pressed)
    if result is None:
        if not pressed:
            st.info(hint)
        st.stop()
    req, exps, errors = result
    for name, message in errors.items():
        st.error(f"**{METHODS[name].title}** could not run: {plain(message)}")
    if not exps:
        st.stop()
    return req, exps


def _explanations(pressed: bool) -> tuple[state.Request, list[Explanation], dict[str, str]] | None:
    ss = st.session_state
    req = state.current_request()
    run = pressed or ss.pop("autorun", False)
    if run:
        handle = model()
        if not req.methods:
            st.error("Pick at least one method in the sidebar.")
            return None
        if not check_text(handle, req.text):
            return None
        ss.done = req
    elif ss.get("done") is None:
        return None
    elif ss.done != req:
        st.caption("These results are for earlier settings: press the button to update them.")
    shown = ss.done
    exps, errors = _compute(state.get_model(shown.model), shown, progress=run)
    return shown, exps, errors


def _compute(handle: ModelHandle, req: state.Request, progress: bool):
    exps, errors = [], {}
    started = time.perf_counter()
    status = st.status(f"Explaining with {len(req.methods)} methods…", expanded=True) if progress else nullcontext()
    with status:
        bar = st.progress(0.0) if progress else None
        for i, name in enumerate(req.methods):
            if bar:
                bar.progress(i / len(req.methods), text=f"{METHODS[name].title} ({i + 1} of {len(req.methods)})")
            try:
                exps.append(state.explain_one(handle, req, name))
            except WhyboxError as exc:
                errors[name] = str(exc)
        if progress:
            bar.progress(1.0, text="Done")
            status.update(label=f"Explained with {len(exps)} of {len(req.methods)} methods in "
                                f"{time.perf_counter() - started:.1f} s",
                          state="error" if errors else "complete", expanded=False)
    return exps, errors


def method_caption(exp: Explanation) -> str:
    method = METHODS[exp.method]
    bits = [f"{method.family} method" + (" (experimental, see below)" if method.experimental else ""),
            f"computed in {exp.seconds:.2f} s"]
    if exp.seed is not None:
        bits.append(f"seed {exp.seed}")
    if "convergence_delta" in exp.extras:
        bits.append(f"convergence delta {exp.extras['convergence_delta']:.3g}")
    if "surrogate_r2" in exp.extras:
        bits.append(f"surrogate R² {exp.extras['surrogate_r2']:.2f}")
    return " · ".join(bits)


def downloads(handle: ModelHandle, req: state.Request, exps: list[Explanation], mode: str = "delete", reports=None,
              agreement=None) -> None:
    """JSON bundle and self-contained HTML report; built only when clicked (metrics cost forward passes)."""
    settings = state.settings_of(req) | {"perturbation": mode}
    info = handle.describe()

    def the_reports():
        return reports if reports is not None else faithfulness.evaluate_many(handle, exps, mode)

    left, right = st.columns(2)
    left.download_button("Download JSON (explanations + metrics)", file_name="whybox.json", mime="application/json",
                         data=lambda: json_bundle(exps, the_reports(), settings, info), icon=":material/download:",
                         width="stretch")
    right.download_button("Download HTML report", file_name="whybox-report.html", mime="text/html",
                          data=lambda: html_report(model_info=info, explanations=exps, reports=the_reports(),
                                                   settings=settings,
                                                   agreement=agreement or faithfulness.agreement(exps)),
                          icon=":material/description:", width="stretch")
