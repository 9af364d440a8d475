"""Attention: BertViz's head and model views and attention rollout, for the current text."""

from pathlib import Path

import streamlit as st
from explainers.models.loading import resolve_model_source

from components.bertviz_html import MissingAssetsError, attention_html, neuron_view_html
from components.charts import attention_heatmap, shown_attention
from dashboard import results, views, widgets
from dashboard.widgets import plain
from explainers.errors import WhyboxError
from explainers.methods import attention_rollout

HEAD_VIEW_TOKENS = 128  # BertViz draws one line per token pair: past these, the tab crawls
MODEL_VIEW_TOKENS = 64
NEURON_VIEW_TOKENS = 40

st.title("Attention")
st.warning(
    "**Attention is a view of the model, not an explanation.** It shows where each position reads "
    "information from, inside one layer. High attention does not mean a word caused the prediction: "
    "the values mixed in, the later layers and the residual stream all matter too. Use the Explain and "
    "Faithfulness pages to ask *why*.",
    icon=":material/visibility:",
)

handle = views.model()
text = widgets.text_expander("attention")
if not views.check_text(handle, text):
    st.stop()
enc = handle.encode(text)
try:
    with st.spinner("Reading the attention weights…"):
        weights = results.attentions(handle, text)
except WhyboxError as exc:
    st.error(plain(str(exc)))
    st.stop()
tokens = enc.tokens
n_layers, n_heads = len(weights), weights[0].shape[1]


def first_tokens(limit: int, view: str):
    """At most `limit` tokens, with a notice when the text is cut for this view."""
    if len(tokens) <= limit:
        return weights, tokens
    st.info(
        f"This text has {len(tokens)} tokens; the {view} shows the first {limit} only, so that your browser "
        f"stays responsive. The rollout tab uses all of them.",
        icon=":material/content_cut:",
    )
    return [w[:, :, :limit, :limit] for w in weights], tokens[:limit]


def show(html_of, height: int | str = "content") -> None:
    try:
        html = html_of()
    except MissingAssetsError as exc:
        st.error(f"BertViz cannot be drawn: {plain(str(exc))}")
        return
    st.iframe(html, height=height)  # "content": the frame grows with the drawing, no nested scroll bar


head_tab, model_tab, neuron_tab, rollout_tab = st.tabs(["Head view", "Model view", "Neuron view", "Attention rollout"])
with head_tab:
    st.caption(
        "Lines join each token (left) to the tokens it attends to (right); darker = more attention. "
        "Pick the layer in the drawing's own menu; click a coloured square to show or hide a head, "
        "double-click it to show that head alone. Hover a token to see only its lines."
    )
    shown_weights, shown_tokens = first_tokens(HEAD_VIEW_TOKENS, "head view")
    show(lambda: attention_html(shown_weights, shown_tokens, "head", layer=n_layers - 1))

with model_tab:
    st.caption(
        "Every head of every layer at a glance (rows = layers, columns = heads). Click a thumbnail to enlarge it."
    )
    left, right = st.columns(2)
    if n_layers > 1:
        first, last = left.select_slider(
            "Layers", options=range(n_layers), value=(0, n_layers - 1), key=f"w_att_layers_{handle.name}"
        )
    else:
        first = last = 0
    model_heads = right.multiselect(
        "Heads", range(n_heads), default=list(range(n_heads)), key=f"w_att_model_heads_{handle.name}"
    )
    shown_weights, shown_tokens = first_tokens(MODEL_VIEW_TOKENS, "model view")
    show(
        lambda: attention_html(
            shown_weights,
            shown_tokens,
            "model",
            heads=model_heads or None,
            include_layers=list(range(first, last + 1)),
            fit_width=True,
        )
    )

with neuron_tab:
    st.caption(
        "How one attention weight is made: the query of a token meets the key of another, element by element. "
        "Pick a layer and head in BertViz's own controls; hover a token to see its query and keys."
    )
    folder = Path(resolve_model_source(handle.name))
    if handle.config.model_type != "bert" or not (folder / "model.safetensors").is_file():
        st.info(
            f"BertViz's neuron view recomputes queries and keys with its own copy of the architecture, which "
            f"exists for BERT only: it cannot show {handle.architecture}. The head and model views work for "
            "every model.",
            icon=":material/info:",
        )
    elif len(tokens) > NEURON_VIEW_TOKENS:
        st.info(
            f"The neuron view draws every query and key: shorten the text to at most {NEURON_VIEW_TOKENS} tokens "
            f"(this one has {len(tokens)}).",
            icon=":material/content_cut:",
        )
    else:
        show(lambda: neuron_view_html(folder, "bert", text, layer=n_layers - 1, head=0, height=620), height=700)

with rollout_tab:
    st.caption(
        "Attention rollout (Abnar & Zuidema, 2020) multiplies the head-averaged attention of all layers, "
        "counting the residual connection, to estimate how much each input token (column) reaches each "
        "position (row). Still attention: a view of information flow, not of cause."
    )
    left, right = st.columns(2)
    hide_special = left.toggle("Leave out special tokens", value=True, key="w_att_hide_special")
    hide_first = right.toggle(
        "Leave out the first token",
        value=False,
        key="w_att_hide_first",
        help="Many models park attention on the first token when nothing else is relevant (an "
        '"attention sink"); leaving it out shows how the rest is shared.',
    )
    keep = [not (hide_special and special) and not (hide_first and i == 0) for i, special in enumerate(enc.special)]
    if sum(keep) < 2:
        st.info("Fewer than two tokens are left to show: turn one of the switches off.", icon=":material/info:")
    else:
        positions = [i for i, kept in enumerate(keep) if kept]
        if not all(keep):
            st.caption("Each row is rescaled to sum to 1 over the tokens shown; the model still read them all.")
        st.plotly_chart(
            attention_heatmap(
                shown_attention(attention_rollout(weights).numpy(), keep),
                [tokens[i] for i in positions],
                "Attention rollout, all layers",
                positions,
            ),
            key="rollout",
        )
