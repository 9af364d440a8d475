"""User-facing errors: the message is shown as-is in the page and on the CLI (never a traceback)."""


class WhyboxError(Exception):
    """An error caused by the user's input or environment, with a message that says what to do."""


class ModelLoadError(WhyboxError):
    """The model could not be found, downloaded or used (missing folder, wrong type, offline)."""


class InputError(WhyboxError):
    """The text, target or parameters given cannot be explained."""
