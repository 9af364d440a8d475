"""How many threads torch may use: no more than the cores that are idle.

An OpenMP team waits for its slowest thread at the end of every operation. When another process
holds a core, the thread sharing that core stalls the whole team, and the others spin while they
wait: on 2 cores with a load average of 9.6, three explanations (IG, LIME, occlusion on `sentiment`)
took 31 s in the CLI's main thread with torch's default 2 threads, against 8-12 s with 1 thread (and
9 s in a worker thread, whose OpenMP team torch does not size). So whybox sizes the team at start:
the usable cores minus those other processes keep busy (the load average), at least one.
`WHYBOX_THREADS=N` sets it outright.
"""

from __future__ import annotations

import os

THREADS_ENV = "WHYBOX_THREADS"


def idle_cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, cores - busy)


def choose_threads() -> int:
    """WHYBOX_THREADS when set (a whole number >= 1), else the idle cores."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    return idle_cores()


def apply_thread_policy() -> int:
    """Set torch's intra-op threads by `choose_threads` (call once at start); returns the number."""
    import torch

    threads = choose_threads()
    torch.set_num_threads(threads)
    return threads
