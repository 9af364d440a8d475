"""Page pieces shared by several pages: the loaded model, running the explanations, showing them,
and the downloads."""

from __future__ import annotations

import time
from contextlib import nullcontext

import streamlit as st

from components.report import html_report, json_bundle
from dashboard import links, models, results
from dashboard.widgets import plain
from explainers import faithfulness
from explainers.errors import InternalError, WhyboxError
from explainers.explanation import Explanation
from explainers.methods import METHODS
from explainers.model import ModelHandle


def model() -> ModelHandle:
    """The loaded model; stops the page with the reason when there is none."""
    try:
        return models.get_model(st.session_state.model)
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
        st.warning(
            f"This text is longer than the model's limit of {handle.max_tokens} tokens: only the first "
            f"{handle.max_tokens} tokens (up to “{plain(enc.words[-1])}”) are used. Shorten the text to "
            "explain all of it."
        )
    return True


def explanations(pressed: bool, hint: str) -> tuple[results.Request, list[Explanation]]:
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
    for name, error in errors.items():
        show_error(METHODS[name].title, error)
    if not exps:
        st.stop()
    return req, exps


def show_error(subject: str, error: WhyboxError) -> None:
    """A failure of one part of the page: the input's fault (what to change), or ours (an internal
    error, with the id under which its traceback is logged)."""
    if isinstance(error, InternalError):
        st.error(f"**{plain(subject)}** failed: {plain(str(error))}", icon=":material/bug_report:")
    else:
        st.error(f"**{plain(subject)}** could not run: {plain(str(error))}")


def request_to_show(key: str, request, pressed: bool, check=lambda request: True):
    """The request whose results the page shows: `request` when the button was pressed (and `check`
    accepts it), else the one last run under `key`, with a note when the settings changed since.
    None when nothing has been run yet or the check failed."""
    ss = st.session_state
    if pressed:
        if not check(request):
            return None
        ss[key] = request
    elif ss.get(key) is None:
        return None
    elif ss[key] != request:
        st.caption("These results are for earlier settings: press the button to update them.")
    return ss[key]


def _explanations(pressed: bool) -> tuple[results.Request, list[Explanation], dict[str, WhyboxError]] | None:
    run = pressed or links.take_autorun(model(), results.current_request())

    def runnable(req: results.Request) -> bool:
        if not req.methods:
            st.error("Pick at least one method in the sidebar.")
            return False
        return check_text(model(), req.text)

    shown = request_to_show("done", results.current_request(), run, runnable)
    if shown is None:
        return None
    exps, errors = _compute(models.get_model(shown.model), shown, progress=run)
    return shown, exps, errors


def _compute(handle: ModelHandle, req: results.Request, progress: bool):
    exps, errors = [], {}
    started = time.perf_counter()
    status = st.status(f"Explaining with {len(req.methods)} methods…", expanded=True) if progress else nullcontext()
    with status:
        bar = st.progress(0.0) if progress else None
        for i, name in enumerate(req.methods):
            if bar:
                bar.progress(i / len(req.methods), text=f"{METHODS[name].title} ({i + 1} of {len(req.methods)})")
            try:
                exps.append(results.explain_one(handle, req, name))
            except WhyboxError as exc:
                errors[name] = exc
        if progress:
            bar.progress(1.0, text="Done")
            status.update(
                label=f"Explained with {len(exps)} of {len(req.methods)} methods in "
                f"{time.perf_counter() - started:.1f} s",
                state="error" if errors else "complete",
                expanded=False,
            )
    return exps, errors


def method_caption(exp: Explanation) -> str:
    props = exp.properties
    bits = [
        f"{props.get('family', '?')} method" + (" (experimental, see below)" if props.get("experimental") else ""),
        f"computed in {exp.seconds:.2f} s",
    ]
    if exp.seed is not None:
        bits.append(f"seed {exp.seed}")
    for d in exp.diagnostics:
        bits.append(f"{d['title']} {d['value']:.3g}" + ("" if d["ok"] else " (poor)"))
    if exp.extras.get("scaled_down"):
        bits.append(str(exp.extras["scaled_down"]))
    if "baseline_token" in exp.extras:
        bits.append(f"baseline token {exp.extras['baseline_token']!r}")
    return " · ".join(bits)


def downloads(
    handle: ModelHandle,
    req: results.Request,
    exps: list[Explanation],
    mode: str = "delete",
    reports=None,
    agreement=None,
) -> None:
    """JSON bundle and self-contained HTML report; built only when clicked (metrics cost forward passes)."""
    settings = results.settings_of(req) | {"perturbation": mode}
    info = handle.describe()

    def the_reports():
        return reports if reports is not None else faithfulness.evaluate_many(handle, exps, mode)

    left, right = st.columns(2)
    left.download_button(
        "Download JSON (explanations + metrics)",
        file_name="whybox.json",
        mime="application/json",
        data=lambda: json_bundle(exps, the_reports(), settings, info),
        icon=":material/download:",
        width="stretch",
    )
    right.download_button(
        "Download HTML report",
        file_name="whybox-report.html",
        mime="text/html",
        data=lambda: html_report(
            model_info=info,
            explanations=exps,
            reports=the_reports(),
            settings=settings,
            agreement=agreement or faithfulness.agreement(exps),
        ),
        icon=":material/description:",
        width="stretch",
    )
