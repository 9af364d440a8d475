"""The Features page in Streamlit's AppTest on the tiny classifier: the build with its estimate, the quality
numbers, a card, a kept label, and the features section of the Explain page."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.support import ROOT

APP = ROOT / "dashboard" / "app.py"


@pytest.fixture
def page(tiny_bert_dir, tmp_path, monkeypatch):
    from explainers.inside import sae_train
    from explainers.models.builtin import sentiment_splits

    texts = [t for t, _ in sentiment_splits()[0][:300]]
    monkeypatch.setattr(sae_train, "corpus", lambda *a, **k: (texts, "test reviews"))
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    at.switch_page("app_pages/features.py").run()
    assert not at.exception
    return at


def test_build_then_cards_labels_and_explain(page, tmp_path):
    info = " ".join(i.value for i in page.info)
    assert "No SAE in" in info and "300 texts" in info and "min here" in info
    page.button[0].click().run()  # Build
    assert not page.exception, page.exception
    folder = next((tmp_path / "cache" / "saes").iterdir())
    quality = json.loads((folder / "quality.json").read_text())
    table = page.dataframe[0].value
    shown = dict(zip(table["number"], table["value"]))
    assert shown["Explained variance"] == f"{quality['explained_variance']:.3f}"
    assert shown["Predictions unchanged"] == f"{quality['predictions_unchanged']:.1%}"
    latent = page.selectbox[0].value
    cards = json.loads((folder / "features.json").read_text())["cards"]
    assert page.selectbox[0].options[0].startswith(f"#{latent} ")
    assert max(cards.values(), key=lambda c: c["density"])["latent"] == latent  # sorted by density
    page.text_input(key=f"w_sae_label_{latent}").input("my label").run()
    next(b for b in page.button if b.label == "Keep this label").click().run()
    kept = json.loads((folder / "labels.json").read_text())
    assert kept[str(latent)] == {"text": "my label", "status": "edited"}
    # the Explain page now has the features of this SAE
    page.switch_page("app_pages/explain.py").run()
    assert not page.exception
    expanders = [e for e in page.expander if "Features" in e.label]
    assert expanders, [e.label for e in page.expander]


def test_a_public_server_keeps_the_sae_folder_its_own(tiny_bert_dir, tmp_path, monkeypatch):
    """With custom models off, a visitor cannot point the Features page at (and build into) any folder."""
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WHYBOX_ALLOW_CUSTOM_MODELS", "0")
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    at.switch_page("app_pages/features.py").run()
    assert not at.exception
    assert not [t for t in at.text_input if t.label == "SAE folder"]
    assert any("SAE folder:" in c.value and "WHYBOX_ALLOW_CUSTOM_MODELS is off" in c.value for c in at.caption), [
        c.value for c in at.caption
    ]
    monkeypatch.setenv("WHYBOX_ALLOW_CUSTOM_MODELS", "1")
    at.run()
    assert [t for t in at.text_input if t.label == "SAE folder"]
