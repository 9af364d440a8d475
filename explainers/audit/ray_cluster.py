"""Joining a real Ray cluster, and keeping Ray's own chatter out of the user's terminal.

What goes wrong there is the user's setup, not a bug in whybox, so each failure is said in one line with
its fix (exit 2). A `ray://` address (Ray's client) cannot run whybox's engine: with the client installed
(grpcio), Ray 2.60's Data executor fails on the client's worker (`'Worker' object has no attribute
'core_worker'`), so whybox runs as a driver on a cluster node (`HEAD:6379` or `auto`). Ray 2.60's token
authentication refuses a process without the cluster's token (`RAY_AUTH_MODE`, `~/.ray/auth_token`).

While a run is on Ray, everything written to this process's stderr (Ray's C++ core worker and its Python
loggers: restart warnings, a lost worker's tracebacks) goes to whybox's log file instead, and whybox's own
messages (progress, errors) to the terminal through `terminal()`; a lost worker is said in one line, as Ray
Data retries its chunk on another actor."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from explainers.errors import InputError

RAY_PIN = "ray[data]==2.60.0"
CLIENT_FIX = (
    "run whybox on a node of the cluster (the head, or one started with `ray start --address HEAD:6379`) "
    "with --ray-address HEAD:6379, or auto"
)
TOKEN_FIX = (
    "Ray's token authentication refused this process. Every node and whybox need the cluster's token: copy "
    "the head's ~/.ray/auth_token to each machine (or point RAY_AUTH_TOKEN_PATH at it) and start every "
    "`ray start` and whybox with RAY_AUTH_MODE=token; or, on a trusted network only, start the whole cluster "
    "and whybox with RAY_AUTH_MODE=disabled (a token file left by an earlier local Ray run, such as "
    "`whybox audit --engine ray`, turns authentication on for the processes that find it)"
)
# what Ray writes when an actor's process dies and Ray Data retries its task elsewhere
LOST_WORKER = re.compile(
    r"worker (died|was killed|crashed)|actor died|ActorDiedError|ActorUnavailableError|"
    r"owner died|SYSTEM_ERROR|unexpectedly exited|Worker unexpectedly exits",
    re.IGNORECASE,
)
AUTH_FAILURE = re.compile(r"InvalidAuthToken|AuthenticationError|UNAUTHENTICATED|auth(entication)? token", re.I)
LOST_NOTE = "whybox: a Ray worker was lost and its chunk retried on another (Ray's messages: {log})"


def log_path() -> Path:
    """whybox's log file (WHYBOX_LOG, default whybox.log in the cache folder)."""
    from explainers.models.builtin import cache_dir

    return Path(os.environ.get("WHYBOX_LOG") or cache_dir() / "whybox.log")


def check_address(address: str | None) -> None:
    """Refuse Ray's client (`ray://`) before Ray fails deep inside, saying what works instead."""
    if address and address.strip().lower().startswith("ray://"):
        why = (
            "Ray's client is not installed (grpcio)"
            if importlib.util.find_spec("grpc") is None
            else "Ray Data, which runs the audit, does not work through Ray's client in Ray 2.60"
        )
        raise InputError(f"--ray-address {address}: {why}; {CLIENT_FIX}.")


def connect_failure(exc: BaseException, address: str | None) -> InputError | None:
    """The user's fix for a failure to join the cluster at `address`, or None when it is not one we know.
    Ray's C++ client says a refused token only on stderr (the exception says "Failed to connect"): what
    the relay saw counts too."""
    text = f"{type(exc).__name__}: {exc}" + (" InvalidAuthToken" if _RELAY and _RELAY.sync().refused else "")
    where = f"the Ray cluster at {address}" if address else "Ray"
    if AUTH_FAILURE.search(text):
        return InputError(f"{where} refused whybox ({type(exc).__name__}). {TOKEN_FIX}.")
    if isinstance(exc, ConnectionError | TimeoutError) or "Failed to connect" in text or "Could not" in text:
        first = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
        return InputError(
            f"Could not join {where}: {first[:300]}. Check that the head is running (ray status) and the "
            "address: HEAD:6379 (the head's --port), or auto on a cluster node."
        )
    return None


_TERMINAL = None  # the terminal while fd 2 goes to the log
_RELAY: _Relay | None = None


def terminal():
    """Where whybox's own messages go: the terminal, also while Ray's output goes to the log."""
    return _TERMINAL or sys.stderr


class _Relay:
    """Copies what is written to fd 2 into the log file and says once that a worker was lost: Ray writes
    a burst of messages about one loss, so a loss within QUIET seconds of the last is the same event."""

    QUIET = 30.0

    def __init__(self, read_fd: int, log, terminal):
        self.read_fd, self.log, self.terminal = read_fd, log, terminal
        self.lost_events = 0
        self.refused = False  # Ray said the cluster refused this process's token
        self._synced = threading.Condition()
        self._marks = 0
        self.thread = threading.Thread(target=self._run, name="whybox-ray-stderr", daemon=True)
        self.thread.start()

    MARK = "\x00whybox-relay-mark\n"

    def sync(self, timeout: float = 5.0) -> _Relay:
        """Wait until the relay has read everything written to fd 2 before now (a mark sent after it)."""
        with self._synced:
            seen = self._marks
        os.write(2, self.MARK.encode())
        with self._synced:
            self._synced.wait_for(lambda: self._marks > seen, timeout)
        return self

    def _run(self) -> None:  # to the pipe's end: the log and the terminal are closed here, after the last line
        last = -float("inf")
        with self.log, self.terminal, os.fdopen(self.read_fd, "r", errors="replace") as pipe:
            for line in pipe:
                if line.endswith(self.MARK):  # after whatever part of a line was written before it
                    if line != self.MARK:
                        self.log.write(line[: -len(self.MARK)] + "\n")
                    with self._synced:
                        self._marks += 1
                        self._synced.notify_all()
                    continue
                self.log.write(line)
                self.log.flush()
                if AUTH_FAILURE.search(line):
                    self.refused = True
                if LOST_WORKER.search(line):
                    now = time.monotonic()
                    if now - last > self.QUIET:
                        self.lost_events += 1
                        self.terminal.write("\n" + LOST_NOTE.format(log=self.log.name) + "\n")  # off the bar
                        self.terminal.flush()
                    last = now


@contextlib.contextmanager
def ray_output_to_log() -> Iterator[None]:
    """Send what this process writes to stdout and stderr while Ray runs to whybox's log: Ray's C++ core
    worker writes to fd 2, its Python loggers to sys.stderr, and its driver prints the cluster's error
    messages ("(raylet) A worker died…") to sys.stdout. whybox's own messages (progress, the lost-worker
    line) reach the terminal through terminal()."""
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = open(path, "a", encoding="utf-8")  # noqa: SIM115 (the relay closes it after the last line)
    except OSError:
        yield  # nowhere to put it: Ray's messages stay in the terminal
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[2]), "w", buffering=1)
    read_fd, write_fd = os.pipe()
    for fd in saved:
        os.dup2(write_fd, fd)
    os.close(write_fd)
    relay = _Relay(read_fd, log, terminal)
    global _TERMINAL, _RELAY
    _TERMINAL, _RELAY = terminal, relay
    streams = sys.stdout, sys.stderr  # may be other objects than fds 1 and 2 (a test's capture, a notebook)
    sys.stdout, sys.stderr = (open(fd, "w", closefd=False, buffering=1) for fd in (1, 2))  # noqa: SIM115
    try:
        yield
    finally:
        _TERMINAL, _RELAY = None, None
        sys.stdout.flush()
        sys.stderr.flush()
        relay.sync(timeout=30)  # all written so far is in the log, and said, before the terminal is ours again
        sys.stdout, sys.stderr = streams
        for fd, copy in saved.items():  # once the pipe's last writer closes, the relay reads to its end
            os.dup2(copy, fd)
            os.close(copy)
        relay.thread.join(timeout=5)  # a Ray process that inherited fd 2 may hold the pipe open a while longer
