"""The whybox error family: every error a user can meet is one of these.

InputError and ModelLoadError are the user's to fix: the message says what to do and is shown as-is
(never a traceback). InternalError is ours: a bug, logged with its traceback under a short id that the
page and the CLI show, so that a report can be matched with the log.
"""

from __future__ import annotations

import logging
import uuid

log = logging.getLogger("whybox")


class WhyboxError(Exception):
    """An error with a message written for the person using whybox."""


class ModelLoadError(WhyboxError):
    """The model could not be found, downloaded or used (missing folder, wrong type, offline)."""


class InputError(WhyboxError):
    """The text, target or parameters given cannot be explained."""


class CancelledError(WhyboxError):
    """The user stopped the work (a Stop button, a changed text, Ctrl-C)."""


class InternalError(WhyboxError):
    """A failure in whybox itself, not in the input. Logged with its traceback when made."""

    def __init__(self, message: str, error_id: str):
        super().__init__(message)
        self.error_id = error_id

    @classmethod
    def from_exception(cls, exc: BaseException, doing: str) -> InternalError:
        """Log `exc` with its traceback and return the error to show: 'Internal error <id> while <doing>'."""
        error_id = uuid.uuid4().hex[:8]
        log.error("internal error %s while %s: %s: %s", error_id, doing, type(exc).__name__, exc, exc_info=exc)
        return cls(
            f"Internal error {error_id} while {doing}: this is a bug in whybox, not a problem with your "
            f"input. The details are in the server log under {error_id}.",
            error_id,
        )
