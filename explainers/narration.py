"""Explanations in words for three audiences, drafted by a language model or a template, always checked.

The template (built on explainers.whatif.summary.summarize) is the default and the fallback: it writes only
what the numbers say. A language model's draft is given the same numbers and asked for the same
facts in freer prose; every sentence then goes through the claim checker (explainers.whatif.claims), and
the verdicts travel with the text, so an unsupported sentence is marked, never silently shown.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from explainers.whatif.claims import (
    CardFacts,
    Facts,
    Verdict,
    check_card_prose,
    check_narrative,
    split_sentences,
    summary,
)
from explainers.whatif.summary import percent, shown, summarize

AUDIENCES = {
    "stakeholder": "One sentence for a stakeholder",
    "analyst": "A paragraph for an analyst",
    "teaching": "A teaching version that names the method's caveat",
}
# What each family of methods cannot tell you: the teaching version names it.
CAVEATS = {
    "gradient": "Gradient methods measure how the answer would move under tiny changes to the word embeddings, "
    "which is not the same as removing a word, and the result depends on the chosen baseline.",
    "perturbation": "Perturbation methods remove or hide words and watch the answer move, but a sentence with "
    "words missing is text the model never saw in training, so part of the change may be the "
    "oddness of the edit itself.",
    "surrogate": "LIME fits a simple linear model to the model's answers on random word deletions: it is only as "
    "good as that fit (its R²), and it changes with the random seed.",
    "attention": "Attention shows where the model looks, not why it decides: it has no sign, and high attention "
    "does not mean a word changes the answer.",
}


def caveat(exp) -> str:
    """The caveat of the explanation's method family (from the properties it carries)."""
    return CAVEATS.get(exp.properties.get("family", "perturbation"), CAVEATS["perturbation"])


@dataclass
class Narration:
    audience: str
    text: str
    source: str  # "template" or the generator's name
    verdicts: list[Verdict] = field(default_factory=list)
    seconds: float = 0.0
    fallback_reason: str = ""  # why the template was used in place of a requested draft

    @property
    def counts(self) -> dict[str, int]:
        return summary(self.verdicts)

    def to_dict(self) -> dict:
        return {
            "audience": self.audience,
            "text": self.text,
            "source": self.source,
            "seconds": self.seconds,
            "fallback_reason": self.fallback_reason,
            "counts": self.counts,
            "sentences": [v.to_dict() for v in self.verdicts],
        }


# ---- templates -------------------------------------------------------------------------------------
def _names(words: list[tuple[str, float]]) -> str:
    unique = list(dict.fromkeys(f"'{shown(w)}'" for w, _ in words))
    return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]


def _flip_sentence(counterfactuals: Sequence, target: str) -> str:
    flips = [c for c in counterfactuals if c.flipped and c.verified]
    if not flips:
        return ""
    best = min(flips, key=lambda c: (c.size, c.target_prob))
    if all(e.replacement is None for e in best.edits):
        what = "Removing " + _names([(e.word, 0.0) for e in best.edits])
    else:
        what = "Replacing " + ", ".join(
            f"'{e.word}' with '{e.replacement}'" if e.replacement is not None else f"removing '{e.word}'"
            for e in best.edits
        )
    if shown(best.label) == shown(target):  # a flip by threshold: the label itself did not change
        return (
            f"{what} lowers the probability of '{shown(target)}' to p = {best.target_prob:.3f} "
            "(checked with the model)."
        )
    return f"{what} flips the prediction to '{shown(best.label)}' (checked with the model)."


def template_narration(exp, audience: str, counterfactuals: Sequence = ()) -> str:
    """What the numbers say, in the audience's register: no claim the checker could not support."""
    top, top_p = (
        max(exp.probabilities.items(), key=lambda kv: kv[1])
        if exp.probabilities
        else (exp.target.label, exp.target_prob)
    )
    signed = exp.signed
    towards = exp.top_words(2 if audience == "stakeholder" else 3, 1)
    if audience == "stakeholder":
        verb = "predicts" if exp.target.class_index is not None else "expects next"
        because = f", mostly because of {_names(towards)}" if signed and towards and top == exp.target.label else ""
        return f"The model {verb} '{shown(top)}' ({percent(top_p)}){because}."
    sentences = [summarize(exp)]
    flip = _flip_sentence(counterfactuals, exp.target.label)
    if flip:
        sentences.append(flip)
    if audience == "teaching":
        sentences.append(f"A caveat about {exp.title}: {caveat(exp)}")
        if signed:
            sentences.append(
                "Read the colours as a direction: red words raise the probability of the explained "
                "label, blue words lower it."
            )
    return " ".join(sentences)


# ---- drafting with a language model ------------------------------------------------------------------
def narration_prompt(exp, audience: str, counterfactuals: Sequence = ()) -> str:
    """The numbers and the task, in a prompt a small instruct model can follow."""
    top, top_p = (
        max(exp.probabilities.items(), key=lambda kv: kv[1])
        if exp.probabilities
        else (exp.target.label, exp.target_prob)
    )
    lines = [
        f"Text: {exp.text}",
        f"The model predicts '{shown(top)}' with probability {percent(top_p)}.",
        f"Explanation method: {exp.title}.",
    ]
    if exp.signed:
        towards, against = exp.top_words(3, 1), exp.top_words(3, -1)
        lines.append(f"Words pushing towards '{shown(exp.target.label)}': {_names(towards) if towards else 'none'}.")
        lines.append(f"Words pushing against '{shown(exp.target.label)}': {_names(against) if against else 'none'}.")
    else:
        lines.append(f"Words with the most weight (no direction): {_names(exp.top_words(3, 1))}.")
    flip = _flip_sentence(counterfactuals, exp.target.label)
    if flip:
        lines.append(f"Verified counterfactual: {flip}")
    task = {
        "stakeholder": "Write ONE plain sentence for a manager saying what the model predicts and why.",
        "analyst": "Write a short paragraph (3 sentences) for a data analyst explaining this prediction.",
        "teaching": "Write a short paragraph for students explaining this prediction, and end with this "
        f"caveat about the method: {caveat(exp)}",
    }[audience]
    return (
        "Facts:\n" + "\n".join(lines) + f"\n\n{task} Use only the facts above; put words from the text in "
        "single quotes."
    )


def narrate(
    exp, audience: str = "analyst", generator=None, counterfactuals: Sequence = (), others: Sequence = ()
) -> Narration:
    """A checked narration of one explanation. `generator` None: the template. A generator that fails
    or returns nothing falls back to the template, and says so. `others`: more explanations of the
    same prediction that sentences may name."""
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}: choose from {', '.join(AUDIENCES)}")
    facts = Facts([exp, *others], counterfactuals)
    started = time.perf_counter()
    text, source, reason = "", "template", ""
    if generator is not None:
        try:
            text = generator.generate([narration_prompt(exp, audience, counterfactuals)])[0].strip()
            source = generator.name
            if not text:
                reason = f"{generator.name} returned nothing"
        except Exception as exc:  # noqa: BLE001 - any failure of a drafting model falls back to the template
            reason = f"{getattr(generator, 'name', 'the language model')} failed: {exc}"
    if not text:
        text, source = template_narration(exp, audience, counterfactuals), "template"
    return Narration(audience, text, source, check_narrative(text, facts), time.perf_counter() - started, reason)


# ---- model-card prose -----------------------------------------------------------------------------------
@dataclass
class ProseDraft:
    """One section's drafted prose, sentence by sentence with the checker's verdicts."""

    section: str
    verdicts: list[Verdict]
    source: str  # "template" or the generator's name
    fallback_reason: str = ""

    def to_dict(self) -> dict:
        return {
            "section": self.section,
            "source": self.source,
            "fallback_reason": self.fallback_reason,
            "counts": summary(self.verdicts),
            "sentences": [v.to_dict() for v in self.verdicts],
        }


def card_prose_prompt(section: str, fact_lines: Sequence[str], template: str) -> str:
    """The card's measured facts and the template's draft of one section, for a small instruct model."""
    return (
        "Facts about a text model, measured by whybox:\n"
        + "\n".join(f"- {line}" for line in fact_lines)
        + f"\n\nWrite the '{section}' section of this model's model card in two or three short sentences, "
        f"for someone deciding whether to use the model. A first draft: {template}\n"
        "Use only the facts above, copy any number exactly as written, and put words from texts in single quotes."
    )


_HEADING = re.compile(r"^\s*(?:#+\s*|\*\*)?[\w ,]{0,40}(?:\*\*)?:\s*$|^\s*#+\s.*$")


def clean_reply(reply: str, section: str) -> str:
    """A drafted reply as plain sentences: headings, the section's name and list markers dropped, a sentence
    cut off by the token limit dropped, and a sentence the model repeated kept once."""
    lines = []
    for line in reply.splitlines():
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line).strip().replace("**", "")
        if not line or _HEADING.match(line) or line.lower().rstrip(":") == section.lower():
            continue
        lines.append(re.sub(rf"^{re.escape(section)}\s*:\s*", "", line, flags=re.IGNORECASE))
    lines = [line if line.endswith((".", "!", "?")) else line + "." for line in lines[:-1]] + lines[-1:]
    sentences = split_sentences(" ".join(lines))
    if sentences and not sentences[-1].endswith((".", "!", "?")):
        sentences.pop()  # cut off mid-sentence: what it would have said is unknown
    return " ".join(dict.fromkeys(sentences))


def draft_card_prose(
    templates: dict[str, str], fact_lines: Sequence[str], facts: CardFacts, generator=None
) -> tuple[dict[str, ProseDraft], float]:
    """({section: checked prose}, seconds) for the prose sections of a model card. `templates` holds each
    section's template text, the default and the fallback (a section whose draft fails or is empty keeps
    it, and says why). All sections go to the generator in one batch."""
    started = time.perf_counter()
    replies: dict[str, str] = {}
    reason = ""
    if generator is not None and templates:
        try:
            prompts = [card_prose_prompt(s, fact_lines, t) for s, t in templates.items()]
            replies = dict(zip(templates, generator.generate(prompts)))
        except Exception as exc:  # noqa: BLE001 - any failure of a drafting model falls back to the template
            reason = f"{getattr(generator, 'name', 'the language model')} failed: {exc}"
    drafts = {}
    for section, template in templates.items():
        text = clean_reply(replies.get(section) or "", section)
        source, why = (generator.name, "") if text else ("template", reason)
        if generator is not None and not text and not why:
            why = f"{generator.name} returned nothing usable"
        drafts[section] = ProseDraft(section, check_card_prose(text or template, facts), source, why)
    return drafts, time.perf_counter() - started
