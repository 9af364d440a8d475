"""Is a model folder whole? Checks run before any weights are read, so a damaged folder gives a clear
message (and a built-in is rebuilt) instead of a SafetensorError traceback.

- Every folder: each ``*.safetensors`` file must have a readable header and exactly the length the
  header announces (a truncated, emptied or half-copied file fails), and there must be safetensors
  weights at all (whybox never unpickles ``*.bin`` / ``*.pt`` files: unpickling can run code).
- Folders whybox built: ``whybox_checksums.json`` (written at build time) lists every file's size and
  SHA-256; a file that differs fails. The hashes are checked once per process per file version
  (path, size, mtime), so a second load costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from pathlib import Path

CHECKSUMS = "whybox_checksums.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")

_verified: set[tuple[str, int, int]] = set()
_verified_lock = threading.Lock()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(folder: Path) -> None:
    """Record size and SHA-256 of every file in `folder` (called by the build, before the folder is
    moved into place)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS)
    table = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_of(p)} for p in files}
    (folder / CHECKSUMS).write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file cannot be whole (None when its header and length agree)."""
    size = path.stat().st_size
    if size == 0:
        return f"{path.name} is empty (0 bytes)"
    if size < 8:
        return f"{path.name} is truncated ({size} bytes)"
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > size - 8:
            return f"{path.name} is truncated ({size:,} bytes, shorter than its own header)"
        try:
            header = json.loads(f.read(header_len))
        except (ValueError, UnicodeDecodeError):
            return f"{path.name} is damaged (its header is not readable)"
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)]
    expected = 8 + header_len + max(ends, default=0)
    if size != expected:
        what = "truncated" if size < expected else "padded"
        return f"{path.name} is {what} ({size:,} bytes where its header announces {expected:,})"
    return None


def checksum_problems(folder: Path) -> list[str]:
    """Files that differ from whybox_checksums.json (none when the folder has no such file)."""
    table_path = folder / CHECKSUMS
    if not table_path.is_file():
        return []
    try:
        table = json.loads(table_path.read_text())
    except ValueError:
        return [f"{CHECKSUMS} is damaged"]
    problems = []
    for name, want in table.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        stat = path.stat()
        if stat.st_size != want["bytes"]:
            problems.append(f"{name} has {stat.st_size:,} bytes where {want['bytes']:,} were written")
            continue
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        with _verified_lock:
            if key in _verified:
                continue
        if sha256_of(path) != want["sha256"]:
            problems.append(f"{name} differs from what was written (checksum mismatch)")
        else:
            with _verified_lock:
                _verified.add(key)
    return problems


def folder_problems(folder: Path) -> list[str]:
    """Everything wrong with a local model folder's weight files (empty list: fine to load)."""
    folder = Path(folder)
    weights = sorted(folder.glob("*.safetensors"))
    problems = [p for p in (safetensors_problem(w) for w in weights) if p]
    return problems + checksum_problems(folder)


def pickle_only(folder: Path) -> list[str]:
    """Names of pickle weight files when the folder has no safetensors weights (else [])."""
    folder = Path(folder)
    if any(folder.glob("*.safetensors")):
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
