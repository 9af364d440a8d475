"""`--template`, `--labels`, `--calibrate`: a causal LM used as a classifier, on explain and evaluate."""

from __future__ import annotations


def add_prompt_arguments(p) -> None:
    p.add_argument(
        "--template",
        default=None,
        help="use a causal LM as a classifier: a prompt with a {text} slot, e.g. 'Review: {text}\\nSentiment:'",
    )
    p.add_argument(
        "--labels",
        default=None,
        help="with --template: label words, comma-separated; '|' adds surface forms (positive|good,negative|bad)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="with --template: contextual calibration on the content-free input 'N/A' (log-odds unchanged)",
    )


def prompt_spec(args):
    """The PromptSpec the arguments ask for, or None; a clear error for half of one."""
    from explainers.errors import InputError
    from explainers.models.prompt_classifier import PromptSpec

    template, labels = getattr(args, "template", None), getattr(args, "labels", None)
    if template is None and labels is None:
        if getattr(args, "calibrate", False):
            raise InputError("--calibrate needs --template and --labels.")
        return None
    if template is None or labels is None:
        raise InputError("--template and --labels go together: give both.")
    template = template.replace("\\n", "\n")  # as typed in a shell
    return PromptSpec.parse(template, labels, args.calibrate)
