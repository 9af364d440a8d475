"""Admission of explain runs on a shared server: the work a process accepts is bounded.

A server's sessions share its cores, so a run is admitted before it starts: at most `slots` runs at a
time (WHYBOX_MAX_CONCURRENT_RUNS, default one per core), at most one queued or running run per session
(a newer request from the same session cancels the earlier one: a waiting one leaves the queue, a
running one stops at its next batch), and at most `max_waiting` runs waiting (WHYBOX_MAX_QUEUED_RUNS);
beyond that a request is refused with a clear message rather than piled up. A waiting caller is told
how many runs are ahead of it, again whenever that changes and at least every `poll` seconds (so that a
page can redraw it, and Streamlit can interrupt the wait when its Stop button is pressed).

On admission the run's torch threads are chosen (explainers/threads.py: the idle cores, shared among
the runs in progress) and set in the run's own thread: torch sizes a thread's OpenMP team once, from
the value current when that thread first computes, so a set_num_threads in the run's thread sizes that
thread's team and leaves the teams of runs already going as they are.

The queue never imports streamlit: the dashboard uses one per process (`shared_queue()`), the CLI and tests
may make their own.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from explainers.errors import CancelledError, InputError, WhyboxError
from explainers.serving.threads import choose_threads

SLOTS_ENV = "WHYBOX_MAX_CONCURRENT_RUNS"
WAITING_ENV = "WHYBOX_MAX_QUEUED_RUNS"
DEFAULT_MAX_WAITING = 16
POLL_SECONDS = 0.25  # a waiting caller hears from the queue at least this often (a Stop takes effect)


class BusyError(WhyboxError):
    """The server's queue is full: try again shortly."""


@dataclass(eq=False)
class Ticket:
    """One session's place: waiting, running, cancelled (replaced, or the queue was left) or done."""

    session: str
    number: int
    state: str = "waiting"
    threads: int = 0  # torch threads chosen on admission

    @property
    def cancelled(self) -> bool:
        return self.state == "cancelled"


@dataclass(frozen=True)
class Waiting:
    """What a waiting caller is told: runs ahead of it in the queue, and runs in progress."""

    ahead: int
    running: int

    def message(self) -> str:
        runs = f"{self.running} run{'s' if self.running != 1 else ''} in progress"
        if self.ahead == 0:
            return f"Busy: you are next ({runs}). Your run starts when one finishes."
        return f"Busy: {self.ahead} ahead of you ({runs}). Your run starts when its turn comes."


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _whole(env: str, default: int) -> int:
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"{env} must be a whole number of at least 1, not '{raw}'.")
    return int(raw)


class AdmissionQueue:
    def __init__(self, slots: int, max_waiting: int = DEFAULT_MAX_WAITING):
        if slots < 1 or max_waiting < 0:
            raise ValueError("an admission queue needs at least one slot and a non-negative queue cap")
        self.slots, self.max_waiting = slots, max_waiting
        self._cond = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._running: list[Ticket] = []
        self._by_session: dict[str, Ticket] = {}
        self._numbers = itertools.count(1)

    @classmethod
    def from_env(cls) -> AdmissionQueue:
        """Slots from WHYBOX_MAX_CONCURRENT_RUNS (default: the cores), cap from WHYBOX_MAX_QUEUED_RUNS."""
        return cls(_whole(SLOTS_ENV, _cores()), _whole(WAITING_ENV, DEFAULT_MAX_WAITING))

    # ---- what the queue holds ------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """(running, waiting)."""
        with self._cond:
            return len(self._running), len(self._waiting)

    def waiting_for(self, ticket: Ticket) -> Waiting:
        with self._cond:
            return self._waiting_for(ticket)

    def _waiting_for(self, ticket: Ticket) -> Waiting:
        ahead = next((i for i, t in enumerate(self._waiting) if t is ticket), 0)
        return Waiting(ahead, len(self._running))

    # ---- a ticket's life -----------------------------------------------------------------------------
    def enter(self, session: str) -> Ticket:
        """Queue a run for `session`, cancelling its earlier one; BusyError when the queue is full."""
        with self._cond:
            earlier = self._by_session.pop(session, None)
            if earlier is not None:  # a waiting one leaves now; a running one keeps its slot until it stops
                earlier.state = "cancelled"
                if earlier in self._waiting:
                    self._waiting.remove(earlier)
            if len(self._running) >= self.slots and len(self._waiting) >= self.max_waiting:
                raise BusyError(
                    f"The server is busy: {len(self._running)} runs in progress and {len(self._waiting)} waiting, "
                    "the most it queues. Try again in a minute."
                )
            ticket = Ticket(session, next(self._numbers))
            self._waiting.append(ticket)
            self._by_session[session] = ticket
            self._admit()
            return ticket

    def wait(self, ticket: Ticket, on_wait: Callable[[Waiting], None] | None = None, poll: float = POLL_SECONDS):
        """Block until `ticket` runs. `on_wait(Waiting)` is called while it waits (outside the lock: it may
        raise to leave the queue, as Streamlit's Stop does); CancelledError when the ticket is replaced."""
        while True:
            with self._cond:
                if ticket.state == "waiting":
                    status = self._waiting_for(ticket)
                elif ticket.state == "running":
                    return
                else:
                    raise CancelledError("Replaced by a newer request from the same session.")
            if on_wait is not None:
                on_wait(status)
            with self._cond:
                if ticket.state == "waiting" and self._waiting_for(ticket) == status:
                    self._cond.wait(poll)

    def release(self, ticket: Ticket) -> None:
        """The run is over (finished, failed, stopped, or it left the queue): free its place."""
        with self._cond:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            if ticket in self._running:
                self._running.remove(ticket)
            if self._by_session.get(ticket.session) is ticket:
                del self._by_session[ticket.session]
            if ticket.state != "cancelled":
                ticket.state = "done"
            self._admit()

    @contextlib.contextmanager
    def admitted(self, session: str, on_wait: Callable[[Waiting], None] | None = None) -> Iterator[Ticket]:
        """Queue, wait for a slot, set this thread's torch threads, run the block, free the slot."""
        ticket = self.enter(session)
        try:
            self.wait(ticket, on_wait)
            ticket.threads = self._set_threads()
            yield ticket
        finally:
            self.release(ticket)

    # ---- inside the lock -----------------------------------------------------------------------------
    def _admit(self) -> None:
        while self._waiting and len(self._running) < self.slots:
            ticket = self._waiting.popleft()
            ticket.state = "running"
            self._running.append(ticket)
        self._cond.notify_all()

    def threads_per_run(self) -> int:
        """Torch threads for a run admitted now: the idle cores (or WHYBOX_THREADS) shared by the runs in
        progress, at least one."""
        with self._cond:
            running = max(1, len(self._running))
        return max(1, choose_threads() // running)

    def _set_threads(self) -> int:
        import torch

        threads = self.threads_per_run()
        torch.set_num_threads(threads)
        return threads


_SHARED: AdmissionQueue | None = None
_SHARED_LOCK = threading.Lock()


def shared_queue() -> AdmissionQueue:
    """The queue of this process, shared by all of a server's sessions (made on first use, so that a bad
    setting is reported where a run is asked for, not at import)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = AdmissionQueue.from_env()
        return _SHARED
