"""Page pieces shared by several pages: the loaded model, running the explanations, showing them,
and the downloads."""

from __future__ import annotations

import time

import streamlit as st

from dashboard import cold_start, links, models, results
from dashboard.run_queue import queue_note as _queue_note
from dashboard.run_queue import session_id as _session_id
from dashboard.widgets import plain
from explainers.errors import CancelledError, InternalError, WhyboxError
from explainers.explanation import Explanation
from explainers.inference.gateway import watching
from explainers.methods import METHODS, budgeted_params, estimated_seconds
from explainers.models.handle import ModelHandle
from explainers.serving import admission


def first_visit() -> None:
    """On a fresh machine the built-in model builds first (a minute or two on a CPU): instead of a blank
    page, the main area says what whybox does and shows the build's progress. Nothing when it is built."""
    from explainers.models.builtin import is_built, is_builtin

    name = st.session_state.model
    if not is_builtin(name) or is_built(name):
        return
    st.title(cold_start.TITLE)
    st.markdown(
        f"{cold_start.INTRO}\n\n"
        f"The built-in model **{plain(name)}** is being prepared for its first use on this machine. It is "
        "cached afterwards, and an example explanation appears as soon as it is ready."
    )
    try:
        models.get_model(name)  # its build's progress bar is drawn here
    except WhyboxError:
        return  # the sidebar says what went wrong
    st.rerun()  # ready: draw the page itself


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


def plan(pressed: bool, hint: str, stop_area=None) -> tuple[results.Request, int | None]:
    """The request whose explanations the page shows, and a run id when missing ones should be
    computed now (the button was pressed, or a shared link opened), else None. Stops the page with
    `hint` when nothing has been asked for yet, or with the reason when the input cannot run.

    A run gets a Stop button in `stop_area` (beside the page's own button, outside any fragment: a
    click there interrupts the running script at its next progress update)."""
    ss = st.session_state
    run = pressed or links.take_autorun(model(), results.current_request())

    def runnable(req: results.Request) -> bool:
        if not req.methods:
            st.error("Pick at least one method in the sidebar.")
            return False
        return check_text(model(), req.text)

    req = request_to_show("done", results.current_request(), run, runnable)
    if req is None:
        if not run:
            st.info(hint)
        st.stop()
    if not run:
        return req, None
    ss.run_id = ss.get("run_id", 0) + 1
    (stop_area if stop_area is not None else st).button(
        "Stop", icon=":material/stop_circle:", key="w_stop", help="Stop after the current batch; keep what finished."
    )
    return req, ss.run_id


def explanations(req: results.Request, run_id: int | None, draw=None, progress_area=None) -> list[Explanation]:
    """The request's explanations. With a run id not yet used, missing ones are computed, cheapest first,
    with progress and a Stop button; otherwise only finished ones are shown, so that a run that was
    stopped, or interrupted by a change of text or settings, is not resumed by a rerun.
    `draw(method, explanation_or_error)` is called as each is ready, so that a page can show cards as
    they arrive, and the progress is drawn in `progress_area` (a container; default: here). Stops the page
    when there is nothing to show."""
    ss = st.session_state
    run = run_id is not None and ss.get("ran_id") != run_id
    if run:
        ss.ran_id = run_id  # a rerun of the same run (a fragment, a widget) does not start it again
    handle = models.get_model(req.model)
    area = progress_area if progress_area is not None else st.container()
    exps, errors, missing = _stream(handle, req, run, draw or (lambda method, outcome: None), area)
    if draw is None:
        for name, error in errors.items():
            show_error(METHODS[name].title, error)
    for name in missing:
        (draw or (lambda method, outcome: None))(name, None)
    if missing:
        titles = ", ".join(METHODS[m].title for m in missing)
        area.warning(
            f"Stopped before {titles} finished (the Stop button, or the text or settings changed while it ran). "
            "Press the button to run the rest.",
            icon=":material/pause_circle:",
        )
    if not exps:
        st.stop()
    return exps


def method_title(method: str) -> str:
    return METHODS[method].title


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
        if hasattr(request, "text"):
            earlier = "an earlier text" if ss[key].text != request.text else "earlier settings"
        else:  # a page's own tuple of inputs (Trace, Layers, Compare): no text to tell apart
            earlier = "earlier inputs"
        st.warning(
            f"The results below (dimmed) are for {earlier}: press the button to explain what is shown now.",
            icon=":material/history:",
        )
    return ss[key]


# A stale result's container is dimmed: on a projector nobody should read the old answer under the new text.
_STALE_STYLE = "<style>.st-key-stale_results{opacity:0.3;filter:grayscale(1)}</style>"


def results_area(req: results.Request):
    """The container that holds a request's results: dimmed when the page's text or settings have changed since."""
    stale = req != results.current_request()
    if stale:
        st.html(_STALE_STYLE)
    return st.container(key="stale_results" if stale else "fresh_results")


def _stream(handle: ModelHandle, req: results.Request, run: bool, draw, area):
    """(explanations in the request's order, errors by method, methods left unfinished)."""
    done: dict[str, Explanation] = {}
    errors: dict[str, WhyboxError] = {}
    for name in req.methods:
        exp = results.finished(req, name)
        if exp is not None:
            done[name] = exp
            draw(name, exp)
    todo = [m for m in req.methods if m not in done]
    if todo and run:
        with area:
            _compute(handle, req, todo, done, errors, draw)
    missing = [m for m in req.methods if m not in done and m not in errors]
    return [done[m] for m in req.methods if m in done], errors, missing


STOP_WITHIN_SECONDS = 1.0  # a Stop (or a change of text) takes effect within about this long


class _BatchProgress:
    """Draws one method's progress after each batch (at most ten times a second)."""

    def __init__(self, bar, title: str, rows: int, position: tuple[int, int], seconds: float, after: float):
        self.bar, self.title, self.rows, self.position = bar, title, rows, position
        self.seconds, self.after = seconds, after  # estimates: this method, the methods after it
        self.began = self.drawn = time.perf_counter()
        self.counted = 0

    def __call__(self, n: int) -> None:
        self.counted += n
        now = time.perf_counter()
        if now - self.drawn < 0.1:
            return
        self.drawn = now
        share = min(self.counted / self.rows, 1.0)
        index, count = self.position
        left = (1 - share) * self.seconds + self.after
        self.bar.progress(
            min((index + share) / count, 1.0),
            text=f"{self.title}: {min(self.counted, self.rows):,} of {self.rows:,} rows · "
            f"{now - self.began:.1f} s · about {left:.0f} s left in all",
        )


def _compute(handle: ModelHandle, req: results.Request, todo: list[str], done: dict, errors: dict, draw) -> None:
    """Run the missing methods, cheapest first, showing each as it finishes, with a progress bar per batch
    and a Stop button. The run first takes its turn in the server's admission queue (explainers/admission.py:
    a bounded number at a time, one per session), saying how many runs are ahead while it waits. Stop (or any
    change of the page) interrupts at the next batch, or in the queue: Streamlit stops the run at the next
    progress update, and the rerun shows what had finished."""
    n_tokens = handle.encode(req.text).n_tokens
    seconds = {m: estimated_seconds(handle, m, n_tokens, req.method_params(m)) for m in todo}
    todo = sorted(todo, key=seconds.get)
    with st.status(f"Explaining with {len(todo)} method{'s' if len(todo) > 1 else ''}…", expanded=True) as status:
        waiting = st.empty()
        try:
            with admission.shared_queue().admitted(_session_id(), _queue_note(waiting)) as ticket:
                waiting.empty()
                started = time.perf_counter()
                _run_methods(handle, req, todo, seconds, n_tokens, done, errors, draw, ticket)
        except admission.BusyError as exc:
            waiting.empty()
            errors.update({name: exc for name in todo})
            for name in todo:
                draw(name, exc)
            status.update(label=str(exc), state="error", expanded=False)
            return
        except CancelledError:  # replaced by a newer request of this session: it shows the results
            waiting.empty()
            status.update(label="Replaced by a newer request", state="complete", expanded=False)
            return
        ran = [m for m in todo if m in done or m in errors]
        status.update(
            label=f"Explained with {len(ran) - len(errors)} of {len(todo)} methods in "
            f"{time.perf_counter() - started:.1f} s ({ticket.threads} torch thread{'s' if ticket.threads > 1 else ''})",
            state="error" if errors else "complete",
            expanded=False,
        )


def session_gone(session_id: str) -> bool:
    """True once the browser tab that asked for a run has gone (closed, or its connection lost): the run then
    stops at its next batch and frees its place in the queue instead of computing for nobody."""
    from streamlit import runtime

    return runtime.exists() and not runtime.get_instance().is_active_session(session_id)


def _stopped(ticket) -> bool:
    """The run should end at this batch: replaced by a newer request of its session, or its tab has gone."""
    return ticket.cancelled or session_gone(ticket.session)


def _run_methods(handle, req, todo, seconds, n_tokens, done, errors, draw, ticket) -> None:
    bar = st.progress(0.0)
    for i, name in enumerate(todo):
        title = METHODS[name].title
        bar.progress(i / len(todo), text=f"{title} (about {seconds[name]:.1f} s)")
        try:
            used = budgeted_params(handle, name, n_tokens, req.method_params(name))[1]  # as the run will scale it
            rows = max(1, METHODS[name].cost(n_tokens, used).forward_rows)
            after = sum(seconds[m] for m in todo[i + 1 :])
            on_rows = _BatchProgress(bar, title, rows, (i, len(todo)), seconds[name], after)
            with watching(on_rows=on_rows, should_stop=lambda: _stopped(ticket), batch_seconds=STOP_WITHIN_SECONDS / 2):
                done[name] = results.explain_one(handle, req, name)
            draw(name, done[name])
        except CancelledError:
            return  # replaced: the methods not done stay missing
        except WhyboxError as exc:
            errors[name] = exc
            draw(name, exc)


NEAR_TIE = 0.10  # top two probabilities closer than this: the model is nearly undecided
UNLIKELY_TARGET = 0.01  # an explained target this unlikely: its attributions are tiny by construction
WEAK_SCORE = 1e-3  # largest |score| below this (probability units): colours stretch noise to full strength


LOW_LABEL_MASS = 0.1  # a prompt classifier whose labels hold less than this of the answer fits poorly


def prediction_notes(predicted: dict) -> list[str]:
    """What a prompt classifier's prediction rests on: the label mass, and calibration if applied."""
    facts = predicted.get("facts") or {}
    if "label_mass" not in facts:
        return []
    notes = [
        f"Label mass {facts['label_mass']:.3g}: the share of the model's next-token probability on the label words "
        "(probabilities shown are renormalised over the labels)."
    ]
    if facts.get("calibrated"):
        raw = ", ".join(f"{label} {p:.3f}" for label, p in facts["uncalibrated_label_probabilities"].items())
        notes.append(
            f"Calibrated on the content-free input 'N/A' (uncalibrated: {raw}). The explained log-odds, and so every "
            "attribution, are the same with or without calibration."
        )
    return notes


def prediction_warnings(predicted: dict, handle: ModelHandle) -> list[str]:
    """What a viewer should know before trusting any colour: a near tie, or a target the model finds unlikely."""
    warnings = []
    probs = sorted(predicted["probabilities"].values(), reverse=True)
    if handle.labels and len(probs) > 1 and probs[0] - probs[1] < NEAR_TIE:
        warnings.append(
            f"The model is nearly undecided ({100 * probs[0]:.0f} % against {100 * probs[1]:.0f} %): small changes "
            "can flip it, and the explanations describe a coin toss as much as a decision."
        )
    mass = (predicted.get("facts") or {}).get("label_mass")
    if mass is not None and mass < LOW_LABEL_MASS:
        warnings.append(
            f"The labels hold only {100 * mass:.2g} % of the model's next-token probability: it would rather answer "
            "something else, so the prompt may not fit the model. The label probabilities are renormalised over the "
            "labels."
        )
    # a score that is no probability (log-odds, log p(A) − log p(B)) is not 'unlikely' when small
    if handle.task.score_name(predicted.get("target")) == "p" and predicted["target_prob"] < UNLIKELY_TARGET:
        warnings.append(
            f"The explained {handle.task.target_noun} is very unlikely (p = {predicted['target_prob']:.2g}): "
            "attributions to it are tiny, and the colours stretch them to full strength."
        )
    return warnings


UNKNOWN_SHARE = 0.2  # above this share of [UNK] tokens, much of the text is invisible to the model
PIECES_PER_WORD = 2.5  # above this, the tokenizer shreds the words: likely outside the model's language
SPLIT_WORDS = 0.3  # above this share of words cut into pieces, likely another language (English reviews: 0-0.25)


def reading_warnings(handle: ModelHandle, text: str) -> list[str]:
    """What the model cannot read in this text: unknown tokens, or words cut into many pieces (French or
    Japanese through an English tokenizer), said before anyone trusts a prediction on it."""
    try:
        enc = handle.encode(text)
    except WhyboxError:
        return []
    content = enc.content_positions
    if not content:
        return []
    warnings = []
    unk = handle.tokenizer.unk_token_id
    unknown = sum(1 for i in content if unk is not None and enc.ids[i] == unk)
    if unknown / len(content) > UNKNOWN_SHARE:
        warnings.append(
            f"{unknown} of {len(content)} tokens are unknown to this model ({handle.tokenizer.unk_token}): it "
            "cannot read those parts of the text, and explanations cannot see them either."
        )
    pieces = [sum(1 for w in enc.word_of_token if w == i) for i, word in enumerate(enc.words)]
    lettered = [n for n, word in zip(pieces, enc.words) if sum(c.isalpha() for c in word) >= 2]
    split = sum(n > 1 for n in lettered) / len(lettered) if len(lettered) >= 5 else 0.0
    if enc.words and len(content) / len(enc.words) > PIECES_PER_WORD:
        warnings.append(
            f"The tokenizer cuts this text into {len(content) / len(enc.words):.1f} pieces per word: it may be in a "
            "language or script the model was not trained on, and its prediction may mean little."
        )
    elif split > SPLIT_WORDS:  # French through an English vocabulary: few pieces per word, but most words cut
        warnings.append(
            f"{100 * split:.0f} % of the words are not in this model's vocabulary and are cut into pieces: the text "
            "may be in another language than the model's (or heavily misspelt), and its prediction may mean little."
        )
    return warnings


def weak_signal(exp: Explanation) -> str | None:
    """A warning when a signed method's scores are too small to mean much, shown on its card."""
    largest = float(max((abs(s) for s in exp.word_scores), default=0.0))
    if exp.signed and 0 < largest < WEAK_SCORE:
        return (
            f"Weak signal: the largest score is {largest:.1e} (probability units). Each card is scaled to its own "
            "largest score, so these colours may show noise: turn on one colour scale to compare."
        )
    return None


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
    if exp.signed:  # the magnitude that each card's own colour scale hides
        bits.append(
            f"scores sum to {sum(exp.word_scores):+.3g}, largest {max(map(abs, exp.word_scores), default=0):.3g}"
        )
    return " · ".join(bits)
