"""Finished audits on a shared server belong to the session that ran them, and uploaded files are deleted
when no longer needed.

An audit's folder holds the texts, labels and results of its data set, so a server lists to a visitor only
the audits that visitor's session ran or opened, unless the operator names a shared folder
(WHYBOX_SHARED_AUDITS): then every visitor sees every audit in it, and the page says so. An uploaded file
is needed only while its audit can still resume: the page deletes it once the audit is finished, and any
upload older than WHYBOX_UPLOAD_RETENTION_HOURS (default 24; 0 = as soon as it is not in use) is deleted
on the next visit to the page, whoever makes it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from explainers.errors import InputError

SHARED_ENV = "WHYBOX_SHARED_AUDITS"
RETENTION_ENV = "WHYBOX_UPLOAD_RETENTION_HOURS"
DEFAULT_RETENTION_HOURS = 24.0


def shared_folder() -> Path | None:
    """The operator's shared audit folder, or None: audits are then private to the session."""
    raw = os.environ.get(SHARED_ENV, "").strip()
    return Path(raw).expanduser() if raw else None


def retention_seconds() -> float:
    raw = os.environ.get(RETENTION_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION_HOURS * 3600
    try:
        hours = float(raw)
    except ValueError:
        hours = -1.0
    if not hours >= 0 or hours == float("inf"):
        raise InputError(f"{RETENTION_ENV} must be a number of hours, 0 or more, not '{raw}'.")
    return hours * 3600


def finished_audits(root: Path, only: Iterable[str | Path] | None) -> dict[str, Path]:
    """Finished audits under `root`, newest first, by a readable name; `only`: the folders a session may
    see (None: all, for a shared folder)."""
    allowed = None if only is None else {Path(p).resolve() for p in only}
    found = []
    for path in root.glob("*/summary.json") if root.is_dir() else []:
        if allowed is not None and path.parent.resolve() not in allowed:
            continue
        try:
            found.append((path.stat().st_mtime, path, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    out = {}
    for _, path, s in sorted(found, key=lambda f: f[0], reverse=True):
        try:
            source = Path(s["data"]["source"]).name
            name = f"{s['settings']['model']} · {source} · {s['texts']:,} texts · {', '.join(s['methods'])}"
        except (KeyError, TypeError):
            continue
        out[name] = path.parent
    return out


def prune_uploads(folder: Path, max_age: float, keep: Iterable[Path] = (), now: float | None = None) -> list[Path]:
    """Delete the uploads in `folder` (each in a folder of its own, under its own name) older than `max_age`
    seconds, except `keep` (in use now), and the folders they leave empty; returns the deleted files."""
    now = time.time() if now is None else now
    kept = {Path(p).resolve() for p in keep}
    gone = []
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        try:
            if path.is_file() and path.resolve() not in kept and now - path.stat().st_mtime > max_age:
                path.unlink()
                gone.append(path)
                if path.parent != folder and not any(path.parent.iterdir()):
                    path.parent.rmdir()
        except OSError:  # another session deleted it first
            continue
    return gone
