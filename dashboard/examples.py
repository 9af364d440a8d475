"""Example texts for the text box, per kind of task, each with the edit that the Compare page offers next to it.

A movie review means nothing to a language model and a prompt nothing to a sentiment classifier: the text
box offers the examples of the loaded model's task, and a model switch replaces an untouched example of
the previous task with one of the new task (`follow_model`). Text the user typed is never replaced.
"""

from __future__ import annotations

from explainers.models.tasks import CausalLMTask, ClassificationTask, Task

CLASSIFICATION = {
    "A gripping, funny and beautifully acted film. I loved every minute of it.": (
        "A gripping, funny and beautifully acted film. I hated every minute of it."
    ),
    "The plot is thin and the jokes fall flat, although the soundtrack is lovely.": (
        "The plot is thin and the jokes fall flat, and the soundtrack is awful."
    ),
    "Not bad at all: I expected a disaster and got one of the best movies of the year.": (
        "Bad: I expected a disaster and got one of the worst movies of the year."
    ),
    "Dull, lifeless and far too long.": "Lively, moving and not a minute too long.",
}
CONTINUATION = {
    "The capital of France is": "The capital of Italy is",
    "The doctor said that": "The nurse said that",
    "After the rain, the streets were": "After the drought, the streets were",
}
# A task class -> its examples; a new kind of task adds its own line (subclasses inherit their parent's).
BY_TASK: dict[type[Task], dict[str, str]] = {ClassificationTask: CLASSIFICATION, CausalLMTask: CONTINUATION}
EXAMPLES = {**CLASSIFICATION, **CONTINUATION}  # all of them: the Guide's lessons, the Compare pairs


def for_task(task: Task | None) -> dict[str, str]:
    """The examples that fit this task (all of them for a task without its own)."""
    for cls in type(task).__mro__:
        if cls in BY_TASK:
            return BY_TASK[cls]
    return EXAMPLES


def default_text(task: Task | None) -> str:
    return next(iter(for_task(task)))


def is_example(text: str, task: Task | None) -> bool:
    """`text` is one of this task's examples (or its Compare edit) as given, not touched by the user."""
    text = text.strip()
    return any(text in pair for pair in for_task(task).items())


def follow_model(text: str, old_task: Task | None, new_task: Task | None) -> str | None:
    """The text to show after switching from a model of `old_task` to one of `new_task`: the new task's
    first example when `text` is empty or an untouched example that does not fit the new task, else None
    (keep the text)."""
    if for_task(new_task) is for_task(old_task) or is_example(text, new_task):
        return None
    if not text.strip() or is_example(text, old_task):
        return default_text(new_task)
    return None
