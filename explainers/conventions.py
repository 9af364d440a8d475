"""The conventions a reader needs to interpret whybox's numbers, gathered from where each is decided
(the metrics, the methods, the tasks), for the Guide page, the README and the JSON output."""

from __future__ import annotations

from explainers.methods import BASELINE_RULE, METHODS, SEED_RULE
from explainers.metrics.faithfulness import AOPC_NORMALISER, LEAVE_ONE_OUT_RULE, RANKING_RULE, RATIONALE_RULE
from explainers.models.tasks import CausalLMTask


def conventions() -> dict[str, str]:
    """Title -> one paragraph, in reading order."""
    notes = {
        "Signs": "Scores keep their sign: positive pushes towards the explained target, negative away from it. "
        "A word's score is the sum of its subword tokens' scores. Special tokens are never scored.",
        "Rationale": RATIONALE_RULE,
        "AOPC": AOPC_NORMALISER,
        "Leave-one-out": LEAVE_ONE_OUT_RULE,
        "Ranking": RANKING_RULE,
        "Baseline": BASELINE_RULE,
        "Continuations": CausalLMTask.target_help,
        "Seeds": SEED_RULE,
    }
    for method in METHODS.values():
        if method.scores_note:
            notes[method.title] = method.scores_note
    return notes
