"""Every model-running action of every page goes through the server's one run queue (issue 20, point 7):
with the queue full, each action says the server is busy and runs nothing; an audit takes a slot per chunk,
so that an explain waiting behind it runs between two chunks; nested work keeps its slot."""

from __future__ import annotations

import contextlib
import threading

import pytest
from streamlit.testing.v1 import AppTest

from explainers.audit.data import read_data
from explainers.audit.engine import run_audit
from explainers.audit.work import AuditSettings
from explainers.serving import admission
from explainers.serving.admission import AdmissionQueue
from tests.app.test_app import APP, errors
from tests.engine.serving.test_admission import wait_until

BUSY = "The server is busy: 1 runs in progress and 0 waiting"


def test_work_nested_in_an_admitted_run_keeps_its_slot():
    queue = AdmissionQueue(slots=1, max_waiting=0)
    with queue.admitted("a") as outer:
        with queue.admitted("a") as inner:  # would cancel `outer` and wait for its own slot
            assert inner is outer and outer.state == "running"
        assert queue.counts() == (1, 0)
    assert queue.counts() == (0, 0) and outer.state == "done"


def test_an_audit_takes_a_slot_per_chunk_so_a_waiting_explain_runs_between_chunks(tiny_bert, tmp_path):
    queue = AdmissionQueue(slots=1, max_waiting=4)
    events: list[str] = []
    visitor_waits = threading.Event()

    def visitor() -> None:
        with queue.admitted("visitor"):
            events.append("visitor")

    @contextlib.contextmanager
    def admit():
        with queue.admitted("audit"):
            events.append("chunk")
            yield

    def first_rows(_n: int) -> None:  # inside chunk 1: the visitor asks for a run and waits behind it
        if not visitor_waits.is_set():
            visitor_waits.set()
            threading.Thread(target=visitor, daemon=True).start()
            wait_until(queue, lambda: queue.counts() == (1, 1))

    data = read_data("builtin:rt-heldout", limit=6)
    settings = AuditSettings(tiny_bert.name, ("occlusion",))
    result = run_audit(
        data,
        settings,
        tmp_path / "out",
        handle=tiny_bert,
        store_dir=tmp_path / "store",
        chunk_size=2,
        on_rows=first_rows,
        admit=admit,
    )
    assert result.status == "complete", result
    assert events == ["chunk", "visitor", "chunk", "chunk"]  # not after the whole audit
    assert queue.counts() == (0, 0)


# ---- the pages (AppTest, tiny models) ----------------------------------------------------------------------
def _open(model_dir, monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(model_dir))
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("WHYBOX_ALLOW_CUSTOM_MODELS", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.text_area(key="w_text").input(f"a text of its own for {tmp_path.name} , never explained before").run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def full_queue(monkeypatch) -> AdmissionQueue:
    """A server with one slot, taken by another session, and no room to wait."""
    queue = AdmissionQueue(slots=1, max_waiting=0)
    monkeypatch.setattr(admission, "shared_queue", lambda: queue)
    queue.enter("another session")
    return queue


def _press(at: AppTest, label: str) -> None:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception, at.exception


ACTIONS = [  # (model, page, button or None when the page computes on opening)
    ("bert", "app_pages/what_if.py", "Find minimal flips"),
    ("bert", "app_pages/what_if.py", "Find substitutions"),
    ("bert", "app_pages/what_if.py", "Run the probe"),
    ("bert", "app_pages/what_if.py", "Draft counterfactuals"),
    ("bert", "app_pages/what_if.py", "Explain in words"),
    ("bert", "app_pages/what_if.py", "Build the model card"),
    ("bert", "app_pages/compare.py", "Compare"),
    ("bert", "app_pages/faithfulness.py", "Explain and check"),
    ("bert", "app_pages/attention.py", None),
    ("bert", "app_pages/audit.py", "Start audit"),
    ("gpt2", "app_pages/layers.py", "Look inside"),
]


@pytest.mark.parametrize(("model", "page", "button"), ACTIONS, ids=[f"{p[10:-3]}-{b}" for _, p, b in ACTIONS])
def test_every_model_running_action_waits_its_turn_or_says_busy(
    model, page, button, full_queue, tiny_bert_dir, tiny_gpt2_dir, monkeypatch, tmp_path
):
    at = _open(tiny_bert_dir if model == "bert" else tiny_gpt2_dir, monkeypatch, tmp_path)
    at.switch_page(page).run()
    if page.endswith("audit.py"):
        at.number_input(key="w_audit_limit").set_value(10).run()
        at.multiselect(key="w_audit_methods").set_value(["occlusion"]).run()
    if button:
        _press(at, button)
    assert not at.exception, at.exception
    assert BUSY in errors(at)
    assert full_queue.counts() == (1, 0)  # nothing ran beside the other session, nothing left queued


def test_generation_waits_its_turn_or_says_busy(full_queue, tiny_gpt2_dir, monkeypatch, tmp_path):
    at = _open(tiny_gpt2_dir, monkeypatch, tmp_path)
    at.toggle(key="w_generate").set_value(True).run()
    at.number_input(key="w_generate_n").set_value(2).run()
    _press(at, "Generate and explain")
    assert BUSY in errors(at)


def test_the_reports_checks_wait_their_turn_or_say_busy(tiny_bert_dir, monkeypatch, tmp_path):
    queue = AdmissionQueue(slots=1, max_waiting=0)
    monkeypatch.setattr(admission, "shared_queue", lambda: queue)
    at = _open(tiny_bert_dir, monkeypatch, tmp_path)
    at.sidebar.multiselect(key="w_methods").set_value(["occlusion"]).run()
    _press(at, "Explain")  # the queue is free: the explanation is made
    assert not at.error
    queue.enter("another session")
    _press(at, "Prepare downloads (JSON and HTML report)")
    assert BUSY in " ".join(s.label for s in at.status if hasattr(s, "label")) + errors(at)
    assert queue.counts() == (1, 0)
