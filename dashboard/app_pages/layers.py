"""Layers: what the model would answer from each layer (logit lens; a classifier's head per layer)."""

import streamlit as st
from explainers.inside.lens import logit_lens

from components.layers_view import lens_report_html, render_lens
from dashboard import views, widgets
from dashboard.widgets import plain
from explainers.errors import WhyboxError

st.title("Inside the layers")
st.caption(
    "Each layer's representation read out through the model's own final layers: for a language model the "
    "tokens it would predict after each layer (the logit lens), for a classifier the label its head would "
    "give. The answer usually forms in the later layers."
)

handle = views.model()
text = widgets.text_expander("layers")
target = st.session_state.get("target", "")
contrast = st.text_input(
    "Follow a second answer too (optional)",
    key="w_layers_contrast",
    placeholder="e.g. ' Rome' or another label",
    help="Its probability and rank are drawn next to the target's (the target is set in the sidebar).",
)
pressed = st.button("Look inside", type="primary", icon=":material/layers:")


@st.cache_data(show_spinner=False, max_entries=200)
def _lens(model: str, text: str, target: str, contrast: str, _handle):
    return logit_lens(_handle, text, target=target or None, contrast=contrast or None)


request = (handle.name, text, target, contrast.strip())
shown = views.request_to_show("layers_done", request, pressed, lambda r: views.check_text(handle, r[1]))
if shown is None:
    st.info("Press **Look inside** to read the prediction from every layer (one forward pass per layer, batched).")
    st.stop()
try:
    with st.spinner("Reading every layer…"):
        lens = _lens(*shown, handle)
except WhyboxError as exc:
    views.show_error("Layers", exc)
    st.stop()
st.markdown(
    f"Following **{plain(repr(lens.target) if lens.predicts_tokens else lens.target)}**"
    + (f" and **{plain(repr(lens.contrast) if lens.predicts_tokens else lens.contrast)}**" if lens.contrast else "")
    + f" across {len(lens.layers)} layers."
)
render_lens(lens)
left, right = st.columns(2)
left.download_button(
    "Download JSON",
    data=lens.to_json(indent=2),
    file_name="whybox-layers.json",
    mime="application/json",
    icon=":material/download:",
)
right.download_button(
    "Download HTML",
    data=lambda: lens_report_html(lens),
    file_name="whybox-layers.html",
    mime="text/html",
    icon=":material/description:",
)
