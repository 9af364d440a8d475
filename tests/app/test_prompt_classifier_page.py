"""The Explain page on a prompt classifier: the picker offers 'smollm2 as a sentiment classifier', and the
label mass and calibration shown are the engine's (on the tiny GPT-2 as a prompted built-in)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from dashboard.widgets import plain
from explainers.models import builtin
from explainers.models.loading import load_model
from tests.support import ROOT

APP = ROOT / "dashboard" / "app.py"
TEXT = "dull , lifeless and far too long ."
TEMPLATE = "Review: {text}\nThe film is"


def test_explain_page_shows_the_label_mass(monkeypatch, tiny_gpt2_dir):
    tiny = builtin.BuiltinModel(
        "tiny-prompted",
        "prompt_classifier",
        "tiny GPT-2 as a classifier",
        "test",
        str(tiny_gpt2_dir),
        (TEMPLATE, "the,of"),
    )
    monkeypatch.setitem(builtin.BUILTIN_MODELS, tiny.name, tiny)
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", tiny.name)
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    assert not at.exception
    options = at.sidebar.selectbox(key="w_model").options
    assert any(o.startswith("smollm2-sentiment: smollm2 as a sentiment classifier") for o in options)
    at.text_area(key="w_text").input(TEXT).run()
    at.sidebar.multiselect(key="w_methods").set_value(["occlusion"]).run()
    next(b for b in at.button if b.label == "Explain").click().run()
    assert not at.exception and not at.error, at.exception or at.error
    handle = load_model(tiny.name, device="cpu")
    facts = handle.predict(handle.encode(TEXT)).facts
    assert any(c.value.startswith(plain(f"Label mass {facts['label_mass']:.3g}:")) for c in at.caption)
    assert any("log p(A) − log p(B)" in str(m.delta) for m in at.metric)
    assert any("holds only" in w.value or "hold only" in w.value for w in at.warning)  # a tiny random model fits badly
