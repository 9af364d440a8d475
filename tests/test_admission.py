"""The admission queue (explainers/admission.py): a bounded number of runs at a time, one per session,
a capped queue, "N ahead of you" while waiting. Threads wait on events and on the queue's own condition,
never on a fixed sleep."""

from __future__ import annotations

import threading

import pytest
import torch
from explainers.serving import admission
from explainers.serving.admission import AdmissionQueue, BusyError, Waiting

from explainers.errors import CancelledError, InputError
from tests.test_app import APP, TIMEOUT, shown

WAIT = 30  # seconds before a test that hangs fails (never reached when it passes)


def wait_until(queue: AdmissionQueue, predicate) -> None:
    """Block on the queue's condition (notified on every change) until `predicate()` holds."""
    with queue._cond:
        assert queue._cond.wait_for(predicate, timeout=WAIT)


def test_runs_beyond_the_slots_wait_in_order_and_are_told_how_many_are_ahead():
    queue = AdmissionQueue(slots=2, max_waiting=10)
    a, b = queue.enter("a"), queue.enter("b")
    c, d, e = queue.enter("c"), queue.enter("d"), queue.enter("e")
    assert (a.state, b.state, c.state) == ("running", "running", "waiting")
    assert queue.counts() == (2, 3)
    # c is first in line, e has c and d before it
    assert [queue.waiting_for(t) for t in (c, d, e)] == [Waiting(0, 2), Waiting(1, 2), Waiting(2, 2)]
    assert queue.waiting_for(e).message().startswith("Busy: 2 ahead of you (2 runs in progress)")
    assert queue.waiting_for(c).message().startswith("Busy: you are next")
    queue.release(a)
    assert (a.state, c.state) == ("done", "running")
    assert [queue.waiting_for(t).ahead for t in (d, e)] == [0, 1]
    queue.release(d)  # d leaves the queue before its turn (its Stop)
    assert queue.waiting_for(e).ahead == 0 and queue.counts() == (2, 1)


def test_a_second_request_of_a_session_replaces_its_waiting_one():
    queue = AdmissionQueue(slots=1, max_waiting=10)
    queue.enter("other")
    first = queue.enter("me")
    second = queue.enter("me")
    assert first.cancelled and second.state == "waiting"
    assert queue.counts() == (1, 1)  # one place per session
    with pytest.raises(CancelledError):
        queue.wait(first)


def test_a_second_request_stops_the_running_one_which_keeps_its_slot_until_it_stops():
    queue = AdmissionQueue(slots=1, max_waiting=10)
    first = queue.enter("me")
    assert first.state == "running"
    second = queue.enter("me")
    assert first.cancelled  # what the gateway's should_stop reads: the run stops at its next batch
    assert second.state == "waiting" and queue.counts() == (1, 1)  # not two runs at once
    queue.release(first)
    assert second.state == "running" and first.cancelled


def test_a_full_queue_refuses_with_a_clear_message_but_a_session_may_replace_its_own():
    queue = AdmissionQueue(slots=1, max_waiting=1)
    queue.enter("a")
    queue.enter("b")
    with pytest.raises(BusyError, match="1 runs in progress and 1 waiting"):
        queue.enter("c")
    replaced = queue.enter("b")  # b's earlier place is given up first, so b fits
    assert replaced.state == "waiting" and queue.counts() == (1, 1)


def test_a_waiting_thread_hears_n_ahead_then_runs_when_its_turn_comes():
    queue = AdmissionQueue(slots=1, max_waiting=10)
    holder = queue.enter("holder")
    queue.enter("before me")
    heard: list[Waiting] = []
    told, next_in_line, ran = threading.Event(), threading.Event(), threading.Event()

    def on_wait(status: Waiting) -> None:
        heard.append(status)
        told.set()
        if status.ahead == 0:
            next_in_line.set()

    def session() -> None:
        with queue.admitted("me", on_wait):
            ran.set()

    worker = threading.Thread(target=session)
    worker.start()
    assert told.wait(WAIT)
    assert heard[0] == Waiting(ahead=1, running=1) and not ran.is_set()
    queue.release(holder)  # "before me" runs; "me" is next
    assert next_in_line.wait(WAIT)
    assert heard[-1] == Waiting(ahead=0, running=1) and not ran.is_set()
    queue.release(queue._running[0])
    assert ran.wait(WAIT)
    worker.join(WAIT)
    assert queue.counts() == (0, 0)  # the block's end freed its slot


def test_stop_while_queued_leaves_the_queue():
    queue = AdmissionQueue(slots=1, max_waiting=10)
    queue.enter("holder")

    class Stop(Exception):  # what Streamlit raises in a redraw when its Stop button is pressed
        pass

    def on_wait(status: Waiting) -> None:
        raise Stop

    with pytest.raises(Stop):
        with queue.admitted("me", on_wait):
            pytest.fail("a stopped run must not start")
    assert queue.counts() == (1, 0)


def test_a_replaced_waiting_thread_is_cancelled():
    queue = AdmissionQueue(slots=1, max_waiting=10)
    queue.enter("holder")
    outcome: list[BaseException] = []

    def session() -> None:
        try:
            with queue.admitted("me"):
                pass
        except CancelledError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=session)
    worker.start()
    wait_until(queue, lambda: queue._waiting)
    newer = queue.enter("me")
    worker.join(WAIT)
    assert len(outcome) == 1 and newer.state == "waiting"


def test_admission_sets_the_runs_torch_threads_in_its_own_thread(monkeypatch):
    monkeypatch.setenv("WHYBOX_THREADS", "4")
    queue = AdmissionQueue(slots=2, max_waiting=10)
    other = queue.enter("other")  # one run in progress already: two share the four threads
    seen = {}

    def session() -> None:
        with queue.admitted("me") as ticket:
            seen["ticket"], seen["torch"] = ticket.threads, torch.get_num_threads()

    before = torch.get_num_threads()
    worker = threading.Thread(target=session)
    worker.start()
    worker.join(WAIT)
    assert seen == {"ticket": 2, "torch": 2}  # 4 // 2 runs
    assert torch.get_num_threads() == before  # this thread's team is untouched
    queue.release(other)


def test_slots_and_cap_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(admission.SLOTS_ENV, "3")
    monkeypatch.setenv(admission.WAITING_ENV, "5")
    queue = AdmissionQueue.from_env()
    assert (queue.slots, queue.max_waiting) == (3, 5)
    monkeypatch.delenv(admission.SLOTS_ENV)
    import os

    assert AdmissionQueue.from_env().slots == len(os.sched_getaffinity(0))
    monkeypatch.setenv(admission.SLOTS_ENV, "none")
    with pytest.raises(InputError, match="WHYBOX_MAX_CONCURRENT_RUNS must be a whole number"):
        AdmissionQueue.from_env()


# ---- the Explain page in the queue (AppTest, tiny model) --------------------------------------------------
@pytest.fixture
def page(tiny_bert_dir, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    monkeypatch.delenv("WHYBOX_ALLOW_CUSTOM_MODELS", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    at.sidebar.multiselect(key="w_methods").set_value(["saliency", "occlusion"]).run()
    at.text_area(key="w_text").input("a text no other test explains , so that nothing comes from a cache").run()
    assert not at.exception
    return at


def explain(at) -> None:
    next(b for b in at.button if b.label == "Explain").click().run()
    assert not at.exception, at.exception


def test_the_page_says_how_many_are_ahead_then_runs_when_its_turn_comes(page, monkeypatch):
    from dashboard import views

    queue = AdmissionQueue(slots=1, max_waiting=10)
    monkeypatch.setattr(admission, "shared_queue", lambda: queue)
    holder, other = queue.enter("another session"), queue.enter("a third session")
    drawn: list[str] = []
    told_next = threading.Event()
    draw_note = views._queue_note

    def recording_note(area):
        note = draw_note(area)

        def draw(waiting: Waiting) -> None:
            drawn.append(waiting.message())
            note(waiting)
            if waiting.ahead == 0:
                told_next.set()

        return draw

    monkeypatch.setattr(views, "_queue_note", recording_note)

    def the_others_finish() -> None:  # once the page waits behind both: they finish, one after the other
        wait_until(queue, lambda: len(queue._waiting) == 2)
        queue.release(holder)
        assert told_next.wait(WAIT)
        queue.release(other)

    others = threading.Thread(target=the_others_finish)
    others.start()
    explain(page)
    others.join(WAIT)
    assert drawn[0].startswith("Busy: 1 ahead of you (1 run in progress)")
    assert any(m.startswith("Busy: you are next") for m in drawn)
    assert [s.value for s in page.subheader if s.value in ("Saliency", "Occlusion")] == ["Saliency", "Occlusion"]
    assert not any("Busy" in i.value for i in page.info)  # the note is gone once the run started
    assert queue.counts() == (0, 0)


def test_the_page_says_the_server_is_busy_when_the_queue_is_full(page, monkeypatch):
    queue = AdmissionQueue(slots=1, max_waiting=0)
    monkeypatch.setattr(admission, "shared_queue", lambda: queue)
    queue.enter("another session")
    page.text_area(key="w_text").input("another text , not explained before , while the server is full").run()
    explain(page)
    errors = shown(" ".join(e.value for e in page.error))
    assert errors.count("The server is busy: 1 runs in progress and 0 waiting") == 2  # one per method card
    assert queue.counts() == (1, 0)
