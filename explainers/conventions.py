"""The conventions a reader needs to interpret whybox's numbers, gathered from where each is decided
(the metrics, the methods, the tasks), for the Guide page, the README and the JSON output: written here
once. `python -m explainers.conventions` rewrites the README's list from it (a test checks it is current).
"""

from __future__ import annotations

import sys
from pathlib import Path

from explainers.inside.lens import LOGIT_LENS_NOTE
from explainers.methods import BASELINE_RULE, METHODS, SEED_RULE
from explainers.metrics.faithfulness import AOPC_NORMALISER, LEAVE_ONE_OUT_RULE, RANKING_RULE, RATIONALE_RULE
from explainers.models.tasks import CausalLMTask, ClassificationTask
from explainers.whatif.claims import TOP_K
from explainers.whatif.counterfactual import DEFAULT_BEAM, DEFAULT_BUDGET

README_START = "<!-- conventions: written by `python -m explainers.conventions` from explainers/conventions.py -->"
README_END = "<!-- end of conventions -->"

SCALES = (
    "An explanation's target score (`target_prob`; integrated gradients' `extras.p_baseline` and the metrics' "
    "p(x) follow it) is on one of four scales, named with A and B in each explanation's `extras.target_scale` "
    "and in the CLI's line (e.g. `log p(A) − log p(B) = 7.313 (A=' Paris', B=' Rome')`): p(A) for a class or a "
    "one-token continuation; the teacher-forced product of its tokens' probabilities for a longer continuation; "
    f"with a contrast, {ClassificationTask.contrast_formula} for a classifier and {CausalLMTask.contrast_formula} "
    "for a causal LM, a difference that is no probability (it may be negative, or above 1); and, explaining a "
    "generation, log p of each generated token given the prompt and the tokens before it."
)
GENERATION = (
    "Explaining a generation: integrated gradients attributes the prompt only (the generated tokens are held "
    "fixed, as in Captum's LLMGradientAttribution), while occlusion and leave-one-out also score the generated "
    "tokens before each one; a cell a method does not score is empty, not zero."
)
UNITS = (
    "With `--unit word` or `sentence` (or a separator), a perturbation method removes each unit as one feature "
    "and spreads the unit's score evenly over its tokens; other methods score tokens, and a unit's score is the "
    "sum of its tokens'. The units and their scores are in `extras.units` and `extras.unit_scores` (what the "
    "CLI prints for them)."
)
LENS = (
    f"{LOGIT_LENS_NOTE} It reads the last position only, and a target of several tokens is followed through its "
    "first token."
)
FLIPS = (
    "“Minimal” flips are the smallest among the removals a guided search tried: every single word, then larger "
    f"sets grown from the {DEFAULT_BEAM} that lowered p most, with the words an attribution ranks highest, within a "
    f"budget of model calls ({DEFAULT_BUDGET} by default). A smaller flip the search did not try may exist."
)
NARRATION = (
    "A narration's claim that a word pushes towards a label holds when the word is among the method's "
    f"{TOP_K} strongest words with that sign."
)


def conventions() -> dict[str, str]:
    """Title -> one paragraph, in reading order."""
    notes = {
        "Signs": "Scores keep their sign: positive pushes towards the explained target, negative away from it. "
        "A word's score is the sum of its subword tokens' scores. Special tokens are never scored.",
        "Scales": SCALES,
        "Rationale": RATIONALE_RULE,
        "AOPC": AOPC_NORMALISER,
        "Leave-one-out": LEAVE_ONE_OUT_RULE,
        "Ranking": RANKING_RULE,
        "Baseline": BASELINE_RULE,
        "Continuations": CausalLMTask.target_help,
        "Units": UNITS,
        "Generation": GENERATION,
        "Logit lens": LENS,
        "Minimal flips": FLIPS,
        "Narration": NARRATION,
        "Seeds": SEED_RULE,
        "Attention": "Attention is shown as a view of the model, never as “the” explanation.",
        "JSON and exit codes": "JSON is strict: an undefined number (τ on a one-word text) is null. Exit codes: 0 "
        "ok, 2 bad input (one line on stderr), 1 internal error (one line with an error id; the traceback is in "
        "whybox.log in the cache folder, or WHYBOX_LOG).",
    }
    for method in METHODS.values():
        if method.scores_note:
            notes[method.title] = method.scores_note
    return notes


def markdown() -> str:
    """The conventions as the Markdown list the README and the Guide show."""
    return "\n".join(f"- **{title}.** {text}" for title, text in conventions().items())


def readme_block() -> str:
    return f"{README_START}\n{markdown()}\n{README_END}"


def rewrite_readme(path: Path) -> bool:
    """Put the current conventions between the README's markers; True when the file changed."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    new = text[:start] + readme_block() + text[end:]
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    readme = Path(__file__).resolve().parent.parent / "README.md"
    print(f"{readme}: {'rewritten' if rewrite_readme(readme) else 'already current'}", file=sys.stderr)
