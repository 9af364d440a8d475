"""The shared sidebar: model, methods with their cost, parameters, seed and target."""

from __future__ import annotations

import streamlit as st
from explainers.models.handle import ModelHandle
from explainers.serving.limits import SCALABLE, token_row_budget

from dashboard import framing, models, widgets
from dashboard.widgets import plain
from explainers.errors import WhyboxError
from explainers.methods import METHODS, PRESETS, Param, budgeted_params

CUSTOM = "__custom__"
SLOW_SECONDS = 20  # estimated seconds above which the sidebar suggests the quick preset


def sidebar() -> None:
    handle = model_picker()
    if handle is None:
        return
    model_card(handle)
    method_picker(handle)
    target_picker(handle)
    framing.framing_picker(handle)  # issue 11: rather than…, unit, chat template
    if st.session_state.methods:
        cost_summary(handle)  # after every setting that changes the cost (the unit, the chat template)


# ---- model ----------------------------------------------------------------------------------------
def model_picker() -> ModelHandle | None:
    ss = st.session_state
    catalog = models.builtin_catalog()
    options = list(catalog) + ([CUSTOM] if models.custom_models_allowed() else [])
    shown = lambda name: name if name in catalog else CUSTOM  # noqa: E731
    if "w_model" not in ss:
        ss.w_model = shown(ss.model)
    error = None
    # A new built-in pick is loaded before the box is drawn, so that a failure can put it back.
    if ss.w_model not in (CUSTOM, ss.model):
        error = models.switch_model(ss.w_model)
        if error:
            ss.w_model = shown(ss.model)
    st.selectbox(
        "Model",
        options,
        key="w_model",
        format_func=lambda n: f"{n}: {catalog[n].description}" if n in catalog else "Your own model (folder or hub id)",
        help="Built-in models are prepared on first use. Your own: any Hugging Face sequence-classification "
        "or causal-LM checkpoint, from a local folder or the hub.",
    )
    if ss.w_model == CUSTOM:
        if "w_custom" not in ss:
            ss.w_custom = "" if ss.model in catalog else ss.model
        with st.form("custom_model", border=False):
            st.text_input("Model folder or hub id", key="w_custom", placeholder="/path/to/model or org/name")
            if st.form_submit_button("Load model"):
                error = models.switch_model(ss.w_custom.strip())
    if error:
        st.error(f"{plain(error)}\n\nStill using **{plain(ss.model)}**.")
    try:
        return models.get_model(ss.model)
    except WhyboxError as exc:
        st.error(f"Could not load **{plain(ss.model)}**: {plain(str(exc))}\n\nPick another model above.")
        return None


def model_card(handle: ModelHandle) -> None:
    info = handle.describe()
    device = _device_name(handle)
    task = plain(handle.task.describe())
    st.caption(
        f"Loaded **{plain(handle.name)}** ({info['architecture']}, {info['parameters'] / 1e6:.1f} M parameters, "
        f"up to {handle.max_tokens} tokens) on **{device}** ({handle.device}).  \n{task}"
    )


# ---- methods --------------------------------------------------------------------------------------
def method_picker(handle: ModelHandle) -> None:
    ss = st.session_state
    widgets.bind("w_methods", "methods")
    ss.methods = st.multiselect(
        "Methods",
        list(METHODS),
        key="w_methods",
        format_func=lambda m: METHODS[m].title,
        help="Attribution methods to run. Their estimated cost is listed below, before you run them.",
    )
    ss.seed = int(
        st.number_input(
            "Seed",
            min_value=0,
            max_value=2**31 - 1,
            step=1,
            key=_bound("w_seed", "seed"),
            help="Random methods (LIME, SHAP sampling) give the same result for the same seed.",
        )
    )
    if not ss.methods:
        st.warning("Pick at least one method.")
        return
    st.segmented_control(
        "Preset",
        list(PRESETS),
        default="default",
        key="w_preset",
        required=True,
        format_func=str.capitalize,
        on_change=_apply_preset,
        help=" ".join(PRESETS.values()),
    )
    with st.expander("Method parameters"):
        for name in ss.methods:
            method = METHODS[name]
            if method.params:
                st.markdown(f"**{method.title}**")
                values = {p.name: param_input(name, p) for p in method.params}
                ss.params[name] = {k: v for k, v in values.items() if v != _param(name, k).default}


def _apply_preset() -> None:
    """Set every chosen method's steps and samples to the preset's values (the widgets follow)."""
    ss = st.session_state
    for name in ss.methods:
        for p in METHODS[name].params:
            value = p.preset(ss.w_preset)
            ss[f"w_p_{name}_{p.name}"] = value
            ss.params.setdefault(name, {})
            if value == p.default:
                ss.params[name].pop(p.name, None)
            else:
                ss.params[name][p.name] = value


def _bound(widget_key: str, setting: str) -> str:
    widgets.bind(widget_key, setting)
    return widget_key


def _param(method: str, name: str) -> Param:
    return next(p for p in METHODS[method].params if p.name == name)


def param_input(method: str, p: Param):
    ss = st.session_state
    key = f"w_p_{method}_{p.name}"
    if key not in ss:
        ss[key] = ss.params.get(method, {}).get(p.name, p.default)
    if p.kind == "choice":
        return st.selectbox(p.name, p.choices, key=key, help=p.help)
    cast = int if p.kind == "int" else float
    return st.number_input(
        p.name,
        min_value=cast(p.low),
        max_value=cast(p.high),
        value=None if p.default is None else "min",  # None: chosen by the input's length (empty = auto)
        step=cast(1 if cast is int else 0.05),
        key=key,
        help=p.help,
        placeholder="auto (by length)" if p.default is None else None,
    )


def cost_summary(handle: ModelHandle) -> None:
    """Each method's estimated time for the current text, before anything runs: its rows through the
    model times the rate measured on this model and device."""
    ss = st.session_state
    try:
        n_tokens = handle.encode(widgets.current_text(), chat=framing.settings()["chat"]).n_tokens
    except WhyboxError:
        return
    lines, total, scaled = [], 0.0, False
    for name in ss.methods:
        method = METHODS[name]
        try:
            cost, seconds, counted = framing.estimate(handle, name, ss.params.get(name, {}))  # at the chosen unit
            asked, used = budgeted_params(handle, name, n_tokens, ss.params.get(name, {}))  # the budget's scaling
        except WhyboxError as exc:
            st.error(f"{method.title}: {plain(str(exc))}")
            continue
        total += seconds
        lowered = _lowered(asked, used)
        scaled |= bool(lowered)
        if lowered and not counted:  # per token: the passes of the scaled run
            cost = method.cost(n_tokens, used)
        counted = f"; {counted} as features" if counted else ""
        lines.append(f"- {method.title}: {lowered}{duration(seconds)} ({cost.describe()}{counted})")
    budget = (
        f"\n\nScaled down to this server's budget of {token_row_budget(handle.device.type):,} token-rows per "
        "explanation: shorten the text for the full run."
        if scaled
        else ""
    )
    st.caption(
        f"Estimated time for {n_tokens} tokens on this {_device_name(handle)}:\n"
        + "\n".join(lines)
        + f"\n\nAll together: {duration(total)}. Measured on this model; refined by every run."
        + budget
    )
    if total > SLOW_SECONDS:
        st.warning(
            f"This will take {duration(total)}: pick the Quick preset, fewer methods, or a shorter text for a demo."
        )


def _lowered(asked: dict, used: dict) -> str:
    """'300 of 1,000 samples on this length, ' when the budget lowers a method's samples or steps, else ''."""
    for name in SCALABLE:
        if name in asked and used[name] != asked[name]:
            return f"{used[name]:,} of {asked[name]:,} {name.removeprefix('n_')} on this length, "
    return ""


def duration(seconds: float) -> str:
    """An estimate's seconds as people say them (an audit's can be hours)."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min" if seconds < 90 * 60 else f"about {seconds / 3600:.1f} h"


def _device_name(handle: ModelHandle) -> str:
    return {"cuda": "GPU", "mps": "Apple GPU"}.get(handle.device.type, "CPU")


# ---- target -----------------------------------------------------------------------------------------
def target_picker(handle: ModelHandle) -> None:
    ss = st.session_state
    task = handle.task
    if not task.free_text_target:
        options = [""] + handle.labels
        if ss.target not in options:  # e.g. a label of the previous model
            ss.target = ""
            ss.pop("w_target_label", None)
        ss.target = st.selectbox(
            "Explain the label",
            options,
            key=_bound("w_target_label", "target"),
            format_func=lambda label: label or "the predicted label",
            help=task.target_help,
        )
    else:
        ss.target = st.text_input(
            "Target continuation",
            key=_bound("w_target_text", "target"),
            placeholder="empty = the model's most likely next token",
            help=task.target_help,
        )
