"""A server's first moments (dashboard/cold_start.py): the intro is drawn before the heavy imports and
cleared once the model is ready; the heap that reruns' garbage collections walk is settled on load."""

from __future__ import annotations

import gc
import subprocess
import sys

from streamlit.testing.v1 import AppTest

from dashboard import cold_start
from explainers.serving import preload
from tests.app.test_app import APP, TIMEOUT
from tests.support import ROOT


def test_the_intro_and_what_draws_it_import_neither_torch_nor_the_pages():
    code = (
        "import sys; import dashboard.cold_start, explainers.serving.preload, explainers.models.builtin; "
        "print(sorted(m for m in ('torch', 'transformers', 'captum', 'dashboard.views') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_starting_server_shows_the_intro_then_the_page_without_it(tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    drawn = []
    intro = cold_start.intro_while_starting

    def recording():
        slot, shown = intro()
        drawn.append(shown)
        return slot, shown

    monkeypatch.setattr(cold_start, "starting", lambda: True)  # as in a new server process
    monkeypatch.setattr(cold_start, "intro_while_starting", recording)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert drawn == [True]  # the intro was drawn in this run
    titles = [t.value for t in at.title]
    assert titles == ["Why did the model say that?"]  # cleared once the model was ready: only the page's own


def test_starting_follows_the_preload():
    monkeypatch_free = dict(preload._preloads)
    try:
        preload._preloads.clear()
        assert not preload.pending()
        preload._preloads["m"] = object()
        assert preload.pending() and cold_start.starting()
    finally:
        preload._preloads.clear()
        preload._preloads.update(monkeypatch_free)


def test_settling_the_heap_freezes_what_is_alive():
    kept = [object() for _ in range(1000)]
    before = gc.get_freeze_count()
    try:
        cold_start.settle_heap()
        assert gc.get_freeze_count() >= before + len(kept)
        assert gc.collect() >= 0  # a full collection still runs (over what came after)
    finally:
        gc.unfreeze()


def test_the_intro_shows_a_progress_bar_saying_what_happens_at_once(monkeypatch):
    """On a busy machine the imports before the first load take a minute: the page says so from its first run."""

    def page():
        from dashboard import cold_start

        cold_start.intro_while_starting()

    monkeypatch.setattr(cold_start, "starting", lambda: True)  # as in a new server process
    at = AppTest.from_function(page, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    bars = at.get("progress")
    assert len(bars) == 1 and cold_start.STARTING in bars[0].proto.text
