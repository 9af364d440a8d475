"""The SAE the dashboard uses for this model (chosen on the Features page), loaded once per folder, and
the "Features" section the Explain page shows for the current text."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from components import sae_view
from dashboard.widgets import plain
from explainers.errors import WhyboxError
from explainers.inside import sae as sae_mod
from explainers.inside import sae_attribution, sae_features

CHOSEN = "sae_folder"  # session state: model name -> the SAE folder chosen on the Features page


@st.cache_resource(show_spinner=False, max_entries=8)
def load(folder: str, stamp: float):
    """An SAE folder with its cards (`stamp`: when they last changed, so that changes are read again)."""
    loaded = sae_mod.load(folder)
    return loaded, sae_features.read(folder, loaded.density)


def stamp(folder: str | Path) -> float:
    """When the SAE or its cards last changed (drafted labels rewrite the cards)."""
    path = Path(folder)
    return max(
        (path / name).stat().st_mtime
        for name in (sae_mod.CFG_FILE, sae_features.FEATURES_FILE)
        if (path / name).exists()
    )


def load_folder(folder: str | Path):
    return load(str(folder), stamp(folder))


def chosen(handle) -> str | None:
    return st.session_state.get(CHOSEN, {}).get(handle.name)


def choose(handle, folder: str) -> None:
    st.session_state.setdefault(CHOSEN, {})[handle.name] = folder


def label_of(folder: str, features, latent: int) -> str:
    """A person's label when they kept one, else the template label; '' when rejected or none."""
    person = sae_features.people_labels(folder).get(latent)
    if person:
        return "" if person["status"] == "rejected" else person["text"]
    card = features.cards.get(latent) if features else None
    return card["label"]["text"] if card else ""


@st.cache_data(show_spinner=False, max_entries=64)
def _attribution(model: str, folder: str, stamp: float, text: str, _handle, _sae):
    return sae_attribution.attribute(_handle, _sae, text)


def explain_section(handle, text: str) -> None:
    """Which features fire on `text` and what each gives to the prediction (nothing without a chosen SAE)."""
    folder = chosen(handle)
    if not folder or not (Path(folder) / sae_mod.CFG_FILE).is_file():
        return
    with st.expander("Features (sparse autoencoder)", icon=":material/scatter_plot:"):
        try:
            (loaded, features) = load_folder(folder)
            with st.spinner("Attributing to the SAE's features…"):
                attr = _attribution(handle.name, folder, stamp(folder), text, handle, loaded.sae)
        except WhyboxError as exc:
            st.error(plain(str(exc)), icon=":material/error:")
            return
        top = attr.top()
        st.caption(
            f"SAE at layer {attr.layer} ({plain(folder)}). Integrated gradients ({attr.steps} steps) from the SAE's "
            f"bias (no feature active) to this text: p = {attr.baseline_score:.3f} → {attr.score:.3f}. The features "
            f"shown and the rest add up to that change with the reconstruction error as its own term "
            f"({attr.error:+.4f}); numerical gap {attr.gap:+.1e}."
        )
        names = [f"#{i} {label_of(folder, features, i)}".strip() for i in top]
        shown = [float(attr.attributions[i]) for i in top]
        rest = float(attr.attributions.sum()) - sum(shown)  # so that the bars add up to the whole change
        st.plotly_chart(
            sae_view.attribution_figure(
                names + ["all other features", "reconstruction error"], shown + [rest, attr.error]
            ),
            key="sae_attribution",
        )
        for latent, name in zip(top[:5], names[:5]):
            acts = attr.activations[:, latent].tolist()
            st.markdown(
                f"**{plain(name)}**: attribution {attr.attributions[latent]:+.4f}", help="where it fires in this text"
            )
            st.html(sae_view.context_html(attr.tokens, acts))
