"""Features: a sparse autoencoder trained on this model's own layer, its quality, its feature cards and
their scored labels."""

from pathlib import Path

import pandas as pd
import streamlit as st

from components import sae_view
from dashboard import models, sae_panel, views
from dashboard.widgets import plain
from explainers.errors import CancelledError, WhyboxError
from explainers.inference.gateway import watching
from explainers.inside import sae as sae_mod
from explainers.inside import sae_features, sae_train

st.title("Features")
st.caption(
    "A sparse autoencoder (TopK, k = 32, 8× the model's width) rewrites one layer's activations as a few active "
    "features out of thousands. Build one on this model, check how much of the layer it keeps, then read what "
    "each feature fires on, with a label whose score says whether it predicts where the feature fires."
)

handle = views.model()
n_layers = handle.n_layers
layer = int(
    st.number_input(
        "Layer",
        min_value=0,
        max_value=n_layers,
        value=n_layers // 2,
        key=f"w_sae_layer_{handle.name}",
        help=f"0 is the embeddings, {n_layers} the last block's output. Mid-depth layers hold the most "
        "interpretable features.",
    )
)
default = str(sae_train.default_folder(handle, layer))
if models.custom_models_allowed():
    folder = st.text_input(
        "SAE folder",
        value=sae_panel.chosen(handle) or default,
        key=f"w_sae_folder_{handle.name}_{layer}",
        help="Where whybox keeps the SAE it builds; a folder in SAELens's format (cfg.json, "
        "sae_weights.safetensors) trained elsewhere loads too.",
    ).strip()
else:  # a public server: visitors neither read nor write folders of their choosing
    folder = default
    st.caption(f"SAE folder: {plain(default)} (this server keeps its SAEs there; WHYBOX_ALLOW_CUSTOM_MODELS is off)")
path = Path(folder).expanduser()


@st.cache_data(show_spinner=False)
def _corpus_tokens(model: str, _handle) -> tuple[int, int, str]:
    texts, source = sae_train.corpus()
    return len(texts), sum(len(r) for r in sae_train.token_rows(_handle, texts)), source


def build_section() -> None:
    n_texts, tokens, source = _corpus_tokens(handle.name, handle)
    seconds = sae_train.estimate_seconds(handle, layer, tokens)
    stopped = sae_train.is_stopped(path)
    st.info(
        f"No SAE in {plain(str(path))} yet. Building one reads layer {layer} on {n_texts:,} texts ({tokens:,} tokens) "
        f"from {plain(source)}, trains on 95 % of them and measures it on the rest: about "
        f"{seconds / 60:.0f} min here (an estimate from this model's measured speed)."
        + (" A stopped build of it is kept: **Build** continues it." if stopped else ""),
        icon=":material/build:",
    )
    go, stop_column = st.columns([1, 6])
    if not go.button("Continue build" if stopped else "Build", type="primary", icon=":material/model_training:"):
        st.stop()
    stop_column.button(
        "Stop", icon=":material/stop:", help="Stops within a model batch or a training chunk; Build resumes."
    )
    bar = st.progress(0.0, text="Reading the layer…")

    def progress(p: sae_train.Progress) -> None:  # each redraw is where a Stop (a rerun) takes effect
        if p.phase == "measuring":
            bar.progress(1.0, text="Measuring on held-out texts and making the feature cards…")
        else:
            bar.progress(
                min(1.0, p.tokens / p.total),
                text=f"{p.tokens:,} / {p.total:,} tokens · explained variance {p.explained_variance:.3f} on the last "
                f"chunk · dead {p.dead_fraction:.1%}",
            )

    def rows(_n: int) -> None:
        bar.progress(bar_value[0], text="Reading the layer…")

    bar_value = [0.0]
    try:
        with watching(on_rows=rows, batch_seconds=1.0):
            sae_train.build(handle, layer, sae_train.corpus()[0], path, on_progress=progress)
    except CancelledError:
        st.info("Stopped: **Build** continues from the last saved chunk.")
        st.stop()
    except WhyboxError as exc:
        views.show_error("Features", exc)
        st.stop()
    st.rerun()


if not (path / sae_mod.CFG_FILE).is_file():
    build_section()
    st.stop()
try:
    loaded, features = sae_panel.load_folder(path)
    if loaded.sae.layer is None:  # trained elsewhere without a layer in cfg.json: the one chosen above
        loaded.sae.cfg["hook_layer"] = layer
    sae_mod.check_fits(loaded.sae, handle)
except WhyboxError as exc:
    views.show_error("Features", exc)
    st.stop()
sae_panel.choose(handle, str(path))
sae = loaded.sae
st.success(
    f"SAE on layer {sae.layer}: {sae.d_sae:,} latents ({sae.architecture}"
    + (f", k = {sae.k}" if sae.k else "")
    + "). The Explain page now shows which of its features fire on your text.",
    icon=":material/check_circle:",
)
quality = loaded.quality
if quality:
    st.subheader("How much of the layer it keeps")
    st.dataframe(pd.DataFrame(sae_view.quality_rows(quality)), hide_index=True, use_container_width=True)
    st.caption(
        f"On {quality.get('heldout_texts', 0):,} held-out texts ({quality.get('tokens', 0):,} tokens) never used in "
        f"training; trained on {quality.get('training_tokens', 0):,} tokens in {quality.get('train_seconds', 0):.0f} s."
    )
else:
    st.caption("This SAE came without whybox's quality numbers (trained elsewhere).")
if features is None:
    st.info("No feature cards with this SAE (it was trained elsewhere): build one here to get them.")
    st.stop()

scores = features.label_scores
if scores.get("labels", {}).get("median_auc") is not None:
    lab, con = scores["labels"], scores["control"]
    left, mid, right = st.columns(3)
    left.metric("Median label score (AUC)", f"{lab['median_auc']:.2f}", help="detection of held-out activating texts")
    mid.metric("Labels scoring ≥ 0.8", f"{lab['share_at_least_0_8']:.0%}", help=f"of {lab['scored']:,} scored labels")
    right.metric(
        "Shuffled-label control",
        f"{con['median_auc']:.2f}" if con["median_auc"] is not None else "–",
        help="another latent's label on the same texts: ≈ 0.5 when a label says nothing",
    )
    st.caption(
        "Labels are template labels (the words a feature fires on most in half of the held-out texts), scored on the "
        "other half by the MiniLM sentence encoder: does the label pick the texts where the feature fires from "
        "those where it never does?"
    )

drafted = features.drafted_scores.get("labels", {})
if drafted.get("median_auc") is not None:
    control = features.drafted_scores["control"]["median_auc"]
    st.caption(
        f"Labels drafted by a language model: median AUC {drafted['median_auc']:.2f} over {drafted['scored']} scored, "
        f"{drafted['share_at_least_0_8']:.0%} ≥ 0.8 (shuffled control {'–' if control is None else f'{control:.2f}'})."
    )

st.subheader("Feature cards")
cards = features.cards
sort_by = st.segmented_control(
    "Sort by", ["density", "label effect", "label score"], default="density", key="w_sae_sort", required=True
)
word = st.text_input("Only features that fire on the word", key="w_sae_word", placeholder="e.g. funny").strip().lower()


def _effect_size(card: dict) -> float:
    effect = card["effect"]
    if "promotes" in effect:
        return max(abs(effect["promotes"][0][1]), abs(effect["suppresses"][0][1]))
    values = list(effect.values())
    return max(values) - min(values)


def _fires_on(card: dict) -> bool:
    return any(
        word in features.words[e["text"]][pos].lower() for e in card["top"] for pos, v in enumerate(e["acts"]) if v > 0
    )


keys = {
    "density": lambda c: -c["density"],
    "label effect": lambda c: -_effect_size(c),
    "label score": lambda c: -((c["label"].get("score") or {}).get("auc") or 0),
}
shown = sorted((c for c in cards.values() if not word or _fires_on(c)), key=keys[sort_by])
if not shown:
    st.info(f"No live feature fires on '{plain(word)}' in its top contexts.")
    st.stop()
labels = {c["latent"]: sae_panel.label_of(str(path), features, c["latent"]) for c in shown[:500]}
latent = st.selectbox(
    f"Feature ({len(shown):,} live of {sae.d_sae:,})",
    [c["latent"] for c in shown[:500]],
    format_func=lambda i: f"#{i} · {labels.get(i) or '(no label)'} · density {cards[i]['density']:.2%}",
    key="w_sae_latent",
)
if st.button(
    "Draft labels for the first 20 features with a language model",
    icon=":material/edit_note:",
    help="The configured endpoint (WHYBOX_LLM_URL) or the local smollm2 writes a label from each feature's top "
    "contexts; each is scored as the template labels are. Tens of seconds on a CPU.",
):
    from dashboard import models
    from explainers.whatif.llm import LocalGenerator, endpoint_from_env

    try:
        with st.spinner("Drafting and scoring labels…"):
            generator = endpoint_from_env() or LocalGenerator(models.get_model("smollm2"))
            sae_features.draft_labels(features, [c["latent"] for c in shown[:20]], generator)
            sae_features.save(features, path)
    except (WhyboxError, OSError) as exc:
        st.error(plain(f"Could not draft labels: {exc}"), icon=":material/error:")
card = cards[latent]
score = card["label"].get("score")
head, side = st.columns([3, 2])
with head:
    st.markdown(f"### #{latent}: {plain(labels[latent] or '(no label)')}")
    st.caption(
        f"Template label “{plain(card['label']['text'])}”"
        + (
            f": detection AUC {score['auc']:.2f} (balanced accuracy {score['balanced_accuracy']:.2f}; "
            f"shuffled-label control {card['label'].get('control_auc', float('nan')):.2f})"
            if score
            else ": not scored (too few held-out texts where it fires, or where it does not)"
        )
    )
    if card.get("drafted"):
        d = card["drafted"]
        d_score = d.get("score")
        st.caption(
            f"Drafted by {plain(d['source'])}: “{plain(d['text'])}”"
            + (f", detection AUC {d_score['auc']:.2f}" if d_score else ", not scored")
        )
    person = sae_features.people_labels(str(path)).get(latent)
    edited = st.text_input(
        "Your label", value=(person or {}).get("text", card["label"]["text"]), key=f"w_sae_label_{latent}"
    )
    accept, reject = st.columns(2)
    verdict = None
    if accept.button("Keep this label", icon=":material/check:", key=f"sae_keep_{latent}"):
        verdict = ("accepted" if edited.strip() == card["label"]["text"] else "edited", edited)
    if reject.button("Reject the label", icon=":material/close:", key=f"sae_reject_{latent}"):
        verdict = ("rejected", card["label"]["text"])
    if verdict:
        try:
            sae_features.set_label(str(path), latent, verdict[1], verdict[0])
            st.rerun()
        except (WhyboxError, OSError) as exc:
            st.error(plain(f"Could not keep the label: {exc}"), icon=":material/error:")
    if person:
        st.caption(f"Kept with the SAE: {person['status']}.")
with side:
    st.metric("Density", f"{card['density']:.3%}", help="share of held-out tokens where it fires")
    st.plotly_chart(sae_view.histogram_figure(card), key="sae_histogram")

st.markdown("**Top activating contexts** (held-out texts)")
for example in card["top"]:
    st.html(sae_view.context_html(features.tokens[example["text"]], example["acts"], card["max"]))
with st.expander("Examples across the activation range (10 quantiles, strongest first)"):
    for q in card["quantiles"]:
        tokens = features.tokens[q["text"]]
        acts = [0.0] * len(tokens)
        acts[q["position"]] = q["value"]
        st.html(sae_view.context_html(tokens, acts, card["max"]))
promoted, suppressed = sae_view.effect_rows(card, lambda t: handle.tokenizer.decode([t]))
st.markdown(f"**Effect** ({plain(features.effect_kind)})")
if suppressed:
    left, right = st.columns(2)
    left.dataframe(pd.DataFrame(promoted), hide_index=True, use_container_width=True)
    right.dataframe(pd.DataFrame(suppressed), hide_index=True, use_container_width=True)
else:
    st.dataframe(pd.DataFrame(promoted), hide_index=True, use_container_width=True)
if card["correlated"]:
    st.markdown("**Most correlated features** (activations over held-out tokens)")
    st.dataframe(
        pd.DataFrame(
            [
                {"feature": f"#{j} {sae_panel.label_of(str(path), features, j)}", "correlation": r}
                for j, r in card["correlated"]
            ]
        ),
        hide_index=True,
        use_container_width=True,
    )
