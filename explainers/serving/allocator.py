"""glibc's allocator, tuned for whybox: what keeps a long audit's or a server's memory flat, and its price.

A process that lives through thousands of texts of every length grows though what it holds does not, as
glibc keeps freed blocks of every shape. Each function here does nothing where libc is not glibc. Nothing
here imports torch: the CLI decides on a restart with huge pages (`with_huge_pages`) before heavy imports.
"""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Mapping

_trim = None  # glibc's malloc_trim, found on first use (False where there is none)


def release_free_memory() -> None:
    """Hand memory that glibc keeps after frees back to the system. Texts of every length make tensors
    of every shape, and glibc's per-thread arenas keep the freed blocks: a server's RSS crept up by
    ~0.2 MB a request (100 MB over 600) with its caches holding 4 MB; trimmed, it levels off. Costs
    microseconds; does nothing where libc is not glibc."""
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _trim = False
    if _trim:
        _trim(0)


M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
LARGE_BLOCK_BYTES = 256 << 10


def map_large_blocks() -> None:
    """Serve allocations of 256 KB and more (tensors) from their own mappings, handed back when freed.
    glibc raises this threshold as large blocks are freed (up to 32 MB), after which tensors come from
    the heap, where freed blocks of every shape pile up: over an audit, its free space grew ~2.5 MB a
    text and each chunk's peak with it (1.0 -> 1.27 GB over 192 texts); with the threshold fixed the
    heap's free space stays ~3 MB. The price is CPU: each new block is faulted in page by page (an audit of
    8 texts, IG + LIME + occlusion + metrics: 34.4 CPU s against 26.3 with glibc's own threshold), most of
    which huge pages win back (`with_huge_pages`). Process-wide."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES)
    except (OSError, AttributeError):
        pass


HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"


def with_huge_pages(env: Mapping[str, str]) -> dict[str, str] | None:
    """`env` with glibc asked to back its large mappings with transparent huge pages, or None where it already
    is or libc is not glibc. With blocks of 256 KB and more mapped afresh (map_large_blocks), most of their
    price is faulting them in 4 KB at a time: an audit of 16 texts took 23.4-24.6 CPU s against 18.9-19.1 with
    glibc's own settings, and 20.5-20.7 with huge pages, memory unchanged. glibc reads its tunables when a
    process starts, so this is for a process about to be started (or re-executed)."""
    if platform.libc_ver()[0] != "glibc":
        return None
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables:
        return None
    return {**env, "GLIBC_TUNABLES": f"{tunables}:{HUGE_PAGES_TUNABLE}" if tunables else HUGE_PAGES_TUNABLE}
