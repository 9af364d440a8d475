"""The settings <-> the URL: a copied link reopens the same view.

The settings (text, model, methods, seed, target, method parameters) live in plain session-state keys;
widgets use their own "w_" keys (see widgets.py).

A link is written by anyone, so it is trusted with nothing expensive: a model it names loads only when
the operator allows it (built-ins, the default, WHYBOX_ALLOWED_MODELS) or the person who opened the
link confirms it; it explains at once only when the estimated cost is small, else it shows the
estimate and waits for the Explain button.
"""

from __future__ import annotations

import json

import streamlit as st
from explainers.metrics.faithfulness import MODES
from explainers.models.builtin import default_model

from dashboard import contrast_compare, framing, models
from dashboard.examples import EXAMPLES
from dashboard.widgets import current_text, plain
from explainers.errors import WhyboxError
from explainers.methods import DEFAULT_METHODS, METHODS

# Rows x tokens a link may start by itself (the sidebar warns above the same figure): on a CPU about
# a few seconds for a small model. Above it the page shows the estimate and waits for the button.
AUTORUN_TOKEN_ROWS = 100_000


def init() -> None:
    """On a session's first run, take the settings from the URL (a shared link), else the defaults."""
    ss = st.session_state
    if "model" in ss:
        return
    query = st.query_params
    model = query.get("model", "").strip()
    ss.model = default_model()
    if model and model != ss.model:
        if models.operator_allowed(model):
            ss.model = model
        elif models.custom_models_allowed():
            ss.link_model = model  # asked for, loaded only once the person confirms (confirm_link_model)
        else:
            ss.link_model_refused = model
    ss.text = query.get("text", next(iter(EXAMPLES)))
    ss.methods = [m for m in query.get("methods", "").split(",") if m in METHODS] or list(DEFAULT_METHODS)
    try:
        ss.seed = int(query.get("seed", 0))
    except ValueError:
        ss.seed = 0
    ss.target = query.get("target", "")
    ss.params = _params_from(query.get("params", ""), ss.methods)
    ss.mode = query.get("mode", "delete") if query.get("mode") in MODES else "delete"
    ss.level = query.get("level", "word") if query.get("level") in ("word", "token") else "word"
    ss.marks = [int(i) for i in query.get("marks", "").split(",") if i.strip().isdigit()]
    ss.marks_for = ss.text  # marks belong to one text
    ss.shared_scale = query.get("scale") == "shared"
    ss.colour_by_class = query.get("colour") == "class"
    framing.from_query(query)  # contrast, unit, separator, chat (issue 11)
    for parameter, setting in COMPARE.items():  # Compare's inputs; its page seeds its widgets from them
        if query.get(parameter):
            ss[setting] = query[parameter]
    # A link that carries a text reopens its view, and a first visit shows the example explained: both
    # run without waiting for the button (when cheap enough: take_autorun).
    ss.autorun = "text" in query or not query.to_dict()


# Compare's inputs: URL parameter -> setting (its widget's key is "w_" + the setting).
COMPARE = {
    "cmp": "cmp_kind",
    "cmp_method": "cmp_method",
    "cmp_a": "cmp_a",
    "cmp_b": "cmp_b",
    "cmp_model": "cmp_model",
    "cmp_contrast": "cmp_contrast",
    "cmp_target_b": "cmp_target_b",  # side B's picker seeds itself, once B's model is loaded
}


def seed_compare(kinds: list[str], methods: list[str], models_offered: list[str]) -> None:
    """Seed Compare's widgets from its settings (a link, or the page's last visit) when the page draws them anew,
    each only with a value the widget offers. A second model that is not offered goes into the "your own model"
    box when custom models are allowed: it loads only when the visitor presses Compare."""
    ss = st.session_state
    offered = {
        "cmp_kind": kinds,
        "cmp_method": methods,
        "cmp_model": models_offered,
    }
    ss.setdefault("cmp_kind", "texts")
    if "cmp_model" not in ss:  # the first model that is not side A's
        ss.cmp_model = next((n for n in models_offered if n not in (ss.model, "__custom__")), models_offered[0])
    for setting in COMPARE.values():
        widget = "w_" + setting
        if widget in ss or setting not in ss or setting == "cmp_target_b":
            continue
        value = ss[setting]
        if setting == "cmp_model" and value not in models_offered:
            if "__custom__" not in models_offered:
                continue
            value = "__custom__"
            ss.setdefault("w_cmp_custom", ss.cmp_model)
        if setting not in offered or value in offered[setting]:
            ss[widget] = value


def _params_from(text: str, methods: list[str]) -> dict:
    """Method parameters from a link: only known methods and valid values, each kept only when it
    differs from its default (an invalid one is dropped: the link still opens)."""
    try:
        asked = json.loads(text) if text else {}
    except ValueError:
        return {}
    params = {}
    for method, values in asked.items() if isinstance(asked, dict) else ():
        if method not in METHODS or not isinstance(values, dict):
            continue
        known = {p.name: p for p in METHODS[method].params}
        for name, value in values.items():
            try:
                checked = known[name].validate(value)
            except (KeyError, WhyboxError):
                continue
            if checked != known[name].default:
                params.setdefault(method, {})[name] = checked
    return params


def confirm_link_model() -> None:
    """Ask before loading a model that a link names and the operator did not allow."""
    ss = st.session_state
    refused = ss.pop("link_model_refused", None)
    if refused:
        st.warning(
            f"This link asks for the model **{plain(refused)}**, which this server does not serve "
            f"(only its built-in models and those its operator allowed): showing **{plain(ss.model)}** instead."
        )
    asked = ss.get("link_model")
    if not asked:
        return
    box = st.container(border=True)
    box.warning(
        f"This link asks to load the model **{plain(asked)}** on this server. Load it only if you trust "
        f"the link: a model folder or hub id can be large and slow to load. Load it?",
        icon=":material/help:",
    )
    load, keep = box.columns(2)
    if load.button("Load it", key="link_model_load", width="stretch"):
        del ss.link_model
        error = models.switch_model(asked)
        if error:
            ss.pop("autorun_held", None)
            st.error(f"{plain(error)}\n\nStill using **{plain(ss.model)}**.")
            return
        for key in ("w_model", "w_custom"):  # the sidebar shows the newly loaded model
            ss.pop(key, None)
    elif keep.button("No, keep the current model", key="link_model_keep", width="stretch"):
        del ss.link_model
        ss.pop("autorun_held", None)
    else:
        ss.autorun_held = ss.pop("autorun", False) or ss.get("autorun_held", False)
        return
    st.rerun()


def take_autorun(handle, req) -> bool:
    """True once, when a link asked to explain at once and it is cheap enough to do so unasked.
    Otherwise the estimate is shown and the page waits for the button."""
    ss = st.session_state
    if ss.get("link_model"):
        return False  # wait for the answer to "load this model?"
    wanted = ss.pop("autorun", False) or ss.pop("autorun_held", False)
    if not wanted:
        return False
    try:
        n_tokens = handle.encode(req.text).n_tokens
        costs = {m: METHODS[m].estimate(n_tokens, req.method_params(m)) for m in req.methods}
    except WhyboxError:
        return True  # the run itself says what is wrong with the text or the settings
    token_rows = sum(cost.rows for cost in costs.values()) * n_tokens
    if token_rows <= AUTORUN_TOKEN_ROWS:
        return True
    listed = ", ".join(f"{METHODS[m].title} {cost.describe()}" for m, cost in costs.items())
    st.info(
        f"This link's text is {n_tokens} tokens long; its methods would take about "
        f"{sum(c.rows for c in costs.values()):,} model passes ({listed}). That is too much to start "
        "without asking: press **Explain** to run them, or pick cheaper methods first.",
        icon=":material/hourglass_top:",
    )
    return False


def sync_url() -> None:
    """Mirror the settings in the URL, so that a copied link reopens the same view."""
    ss = st.session_state
    wanted = {"model": ss.model, "text": current_text(), "methods": ",".join(ss.methods), "seed": str(ss.seed)}
    if ss.target:
        wanted["target"] = ss.target
    # everything else that changes a number or the view, when it differs from the default
    params = {m: p for m, p in ss.params.items() if p and m in ss.methods}
    if params:
        wanted["params"] = json.dumps(params, sort_keys=True, separators=(",", ":"))
    mode, level = ss.get("w_mode") or ss.get("mode", "delete"), ss.get("w_level") or ss.get("level", "word")
    if mode != "delete":  # the widget's value is new in this run; its setting follows when the page draws
        wanted["mode"] = mode
    if level != "word":
        wanted["level"] = level
    if ss.get("w_shared_scale", ss.get("shared_scale")):
        wanted["scale"] = "shared"
    if ss.get("w_colour_by_class", ss.get("colour_by_class")):
        wanted["colour"] = "class"
    if ss.get("marks") and ss.get("marks_for") == wanted["text"]:
        wanted["marks"] = ",".join(map(str, ss.marks))
    wanted |= framing.to_query()
    wanted |= _compare_link()
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


def _compare_link() -> dict:
    """Compare's inputs for the URL, once the page has been used: the kind, the method, and the two texts or the
    second model (a model of one's own by its folder or hub id). The settings follow the widgets here: Streamlit
    forgets a widget off its page."""
    ss = st.session_state
    for setting in ("cmp_kind", "cmp_method", "cmp_a", "cmp_b", "cmp_contrast"):
        if "w_" + setting in ss:
            ss[setting] = ss["w_" + setting]
    for widget in ("w_cmp_target_b_text", "w_cmp_target_b_label"):  # side B's picker, by B's task
        if widget in ss:
            ss.cmp_target_b = ss[widget]
    if "w_cmp_model" in ss:
        custom = ss.w_cmp_model == "__custom__"
        ss.cmp_model = ss.get("w_cmp_custom", "").strip() if custom else ss.w_cmp_model
    kind = ss.get("cmp_kind")
    if not kind:
        return {}
    link = {"cmp": kind} | ({"cmp_method": ss.cmp_method} if ss.get("cmp_method") else {})
    if kind == "texts":
        return link | {k: ss[k] for k in ("cmp_a", "cmp_b") if ss.get(k)}
    if kind == "models" and ss.get("cmp_model"):
        target_b = {"cmp_target_b": ss.cmp_target_b} if ss.get("cmp_target_b") else {}
        return link | {"cmp_model": ss.cmp_model} | target_b
    if kind == contrast_compare.KIND and ss.get("cmp_contrast"):
        return link | {"cmp_contrast": ss.cmp_contrast}
    return link
