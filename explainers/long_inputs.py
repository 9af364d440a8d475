"""Long prompts, sentences first (issue 11): explain the sentences, then the words of the most important
sentences only. For perturbation methods the unit is the feature, so a 500-token prompt of 20 sentences
costs about 20 rows, then a few rows per word of the chosen sentences, instead of one row per token."""

from __future__ import annotations

from dataclasses import dataclass

from explainers import strict_json
from explainers.errors import InputError
from explainers.explanation import Explanation
from explainers.methods import explain
from explainers.methods.units import segment
from explainers.models.handle import ModelHandle


@dataclass
class SentencesFirst:
    """The sentence-level explanation, the word-level one within the chosen sentences, and which they are."""

    sentences: Explanation
    words: Explanation
    chosen: list[int]  # indices of the top sentences, most important first

    @property
    def chosen_texts(self) -> list[str]:
        return [self.sentences.extras["units"][k] for k in self.chosen]

    def to_dict(self) -> dict:
        return strict_json.clean(
            {
                "kind": "sentences_first",
                "chosen": self.chosen,
                "chosen_texts": self.chosen_texts,
                "sentences": self.sentences.to_dict(),
                "words": self.words.to_dict(),
            }
        )


def sentences_first(
    handle: ModelHandle, text: str, method: str, top: int = 2, separator: str | None = None, **kwargs
) -> SentencesFirst:
    """Explain `text` per sentence (or per piece between `separator`), then the words of the `top` sentences
    with the highest signed scores (most in favour of the target). `kwargs` go to `explain` for both runs
    (target, contrast, chat, seed, method parameters)."""
    if top < 1:
        raise InputError(f"Pick at least one sentence to explain word by word, not {top}.")
    first = explain(handle, text, method, unit="sentence", separator=separator, **kwargs)
    scores = first.extras["unit_scores"]
    chosen = sorted(range(len(scores)), key=lambda k: (-scores[k], k))[:top]
    units = segment(first.encoded, "sentence", separator)
    within = sorted(i for k in chosen for i in units.positions[k])
    words = explain(handle, text, method, unit="word", within=within, **kwargs)
    return SentencesFirst(first, words, chosen)
