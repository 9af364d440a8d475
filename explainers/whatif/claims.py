"""The claim checker: each sentence of a narrative checked against whybox's own numbers.

A narrative (drafted by a language model, or a template) is split into sentences, and each sentence
into clauses (at ';', 'while', 'whereas', 'but'). Four kinds of claim are recognised:

- **word direction**: a word said to push towards / against a label (or "it", the explained target)
  must be among that method's top `top_k` words with that sign. "Towards the other label" of a
  two-label classifier counts as against the target. An unsigned method (attention) cannot support a
  direction claim at all.
- **word importance** ("matters most", "most weight", "key word"): among the top `top_k` words by |score|.
- **prediction and probability**: a label said to be predicted must be the predicted one; a
  probability next to a label must match that label's probability within the rounding of the number
  as written (87 % → ±0.5 points; 0.874 → ±0.0005), or ±5 points when hedged ("about 90 %").
- **counterfactual**: "removing 'x' (and 'y')" / "replacing 'x' with 'z'" must match a verified
  counterfactual's edits exactly; a claimed flip, or a named new label, must be what the model said.

A sentence is *supported* when it holds at least one claim and every claim holds, *unsupported*
when any claim fails, and *not checkable* when it makes no claim the checker can test (caveats,
methodology). Quoted text is data: it is never read for cue words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SUPPORTED, UNSUPPORTED, UNCHECKABLE = "supported", "unsupported", "not checkable"
TOP_K = 5  # a word "pushes towards" a label when it is among the method's 5 strongest with that sign
HEDGED_TOLERANCE = 0.05  # "about 90 %" may be 85-95 %

_QUOTED = re.compile(r"(?<!\w)'([^']+?)'(?!\w)|\"([^\"]+)\"|“([^”]+)”|‘([^’]+)’")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[\"'“‘(]\w|[A-Z0-9])|\n+")
_CLAUSE = re.compile(r";|\s(?:while|whereas|but|although)\s", re.IGNORECASE)
_AGAINST = re.compile(
    r"\b(against|away from|lower\w*|decreas\w*|reduc\w*|weaken\w*|oppos\w*|counter\w*|"
    r"suppress\w*|hurts?|drags? down|negatively|negative (?:contribution|influence|effect|weight))\b",
    re.IGNORECASE,
)
_TOWARDS = re.compile(
    r"\b(push\w*|pull\w*|driv\w*|drove|support\w*|favou?r\w*|increas\w*|rais\w*|boost\w*|"
    r"towards?|because|due to|thanks to|based on|rel(?:y|ies|ying) on|driven by|strengthen\w*|positively|"
    r"positive (?:contribution|influence|effect|weight))\b",
    re.IGNORECASE,
)
_IMPORTANCE = re.compile(
    r"\b(most weight|most important|matter\w* most|most influential|key words?|"
    r"attends? to|most attention|strongest|largest scores?)\b",
    re.IGNORECASE,
)
_PREDICTS = re.compile(
    r"\b(predict\w*|classif\w*|label(?:s|led|ed)\b|decid\w*|decision|verdict|says?|"
    r"most likely|answer\w*|confiden\w*|thinks?)",
    re.IGNORECASE,
)
_PREDICTS_NAMED = re.compile(r"\bpredict(?:s|ed)?\b|\bclassif\w* (?:\w+ )?as\b|\bmost likely\b", re.IGNORECASE)
_EXPLAINS_TARGET = re.compile(
    r"\bexplanation (?:is )?for\b|\bexplain\w* (?:the )?(?:label|target|token)\b", re.IGNORECASE
)
_NEGATION = re.compile(r"\b(not|never|no longer)\b|n't\b", re.IGNORECASE)
_REMOVAL = re.compile(
    r"\b(remov\w*|delet\w*|drop(?:ping|ped)? (?:the )?words?|without|leav\w* out|tak\w* out)\b", re.IGNORECASE
)
_REPLACE = re.compile(r"\b(replac\w*|swap\w*|substitut\w*|chang\w* \S+ (?:to|into)|exchang\w*)\b", re.IGNORECASE)
_REPLACEMENT_SEP = re.compile(r"\b(?:with|by|to|into|for)\b|->|→", re.IGNORECASE)
_FLIP = re.compile(
    r"\b(flip\w*|chang\w* (?:the|its) (?:prediction|label|answer)|turn\w*|become\w*|would be "
    r"(?:labell?ed|classified|predicted))\b",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"(?<![\w.])(\d{1,3}(?:\.(\d+))?)\s*(?:%|percent\b)", re.IGNORECASE)
_DECIMAL = re.compile(
    r"(?:\bp\s*(?:\([^)]*\))?\s*=\s*|\bprobability (?:of )?(?:\S+ )?(?:is |of )?)"
    r"(0?\.(\d+)|1\.0*|[01])(?!\d)(?!\.\d)",
    re.IGNORECASE,
)
_HEDGE = re.compile(r"\b(about|around|roughly|approximately|nearly|almost|some|circa|~)\s*$", re.IGNORECASE)
_STOPWORDS = frozenset(
    "the a an and or but of to in on at for with is are was were be been it its this that these those as by "
    "from not no than then so very too also just i you he she we they them his her their our my your me us "
    "do does did have has had will would can could should may might must there here what which who whom how "
    "all any some more most much many such only own same other into over under again once".split()
)


@dataclass
class Claim:
    kind: str  # "direction", "importance", "prediction", "probability", "target", "counterfactual"
    text: str  # what was claimed, in words
    holds: bool
    reason: str


@dataclass
class Verdict:
    sentence: str
    verdict: str  # SUPPORTED, UNSUPPORTED or UNCHECKABLE
    claims: list[Claim] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.claims]

    def to_dict(self) -> dict:
        return {
            "sentence": self.sentence,
            "verdict": self.verdict,
            "claims": [{"kind": c.kind, "claim": c.text, "holds": c.holds, "reason": c.reason} for c in self.claims],
        }


class Facts:
    """The numbers a narrative is checked against: explanations of one prediction (the first is the
    one narrated, used when a sentence names no method) and verified counterfactuals."""

    def __init__(self, explanations: Sequence, counterfactuals: Sequence = (), top_k: int = TOP_K):
        if not explanations:
            raise ValueError("the claim checker needs at least one explanation")
        self.explanations = list(explanations)
        self.primary = self.explanations[0]
        self.counterfactuals = [c for c in counterfactuals if getattr(c, "verified", False)]
        self.top_k = top_k
        self.probabilities = {_norm(k): float(v) for k, v in self.primary.probabilities.items()}
        self.shown_labels = {_norm(k): k for k in self.primary.probabilities}
        self.predicted = max(self.probabilities, key=self.probabilities.get) if self.probabilities else None
        self.target = _norm(self.primary.target.label)
        self.labels = list(self.probabilities) or [self.target]
        self.text_words = {_norm(w) for e in self.explanations for w in e.words}

    def explanation_for(self, clause: str):
        for exp in self.explanations:
            names = {exp.method.replace("_", " "), exp.title}
            if any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", clause, re.IGNORECASE) for n in names):
                return exp
        return self.primary


def _norm(word: str) -> str:
    return str(word).strip().strip("\"'“”‘’").lower()


def split_sentences(narrative: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(narrative or "") if s and s.strip()]


def check_narrative(narrative: str, facts: Facts) -> list[Verdict]:
    """One verdict per sentence of `narrative`."""
    return [check_sentence(s, facts) for s in split_sentences(narrative)]


def check_sentence(sentence: str, facts: Facts) -> Verdict:
    claims: list[Claim] = []
    for clause in (c for c in _CLAUSE.split(sentence) if c and c.strip()):
        claims.extend(_clause_claims(clause, facts))
    if not claims:
        return Verdict(sentence, UNCHECKABLE)
    return Verdict(sentence, SUPPORTED if all(c.holds for c in claims) else UNSUPPORTED, claims)


def summary(verdicts: Sequence[Verdict]) -> dict[str, int]:
    return {v: sum(x.verdict == v for x in verdicts) for v in (SUPPORTED, UNSUPPORTED, UNCHECKABLE)}


# ---- one clause --------------------------------------------------------------------------------------
@dataclass
class _Mention:
    value: str  # normalised
    start: int
    end: int
    quoted: bool


def _clause_claims(clause: str, facts: Facts) -> list[Claim]:
    quoted = [
        _Mention(_norm(next(g for g in m.groups() if g is not None)), m.start(), m.end(), True)
        for m in _QUOTED.finditer(clause)
    ]
    bare = _QUOTED.sub(lambda m: " " * (m.end() - m.start()), clause)  # cue words never come from quotes
    labels = [m for m in quoted if m.value in facts.labels]
    for label in facts.labels:
        for m in re.finditer(rf"(?<!\w){re.escape(label)}(?!\w)", bare, re.IGNORECASE):
            after = bare[m.end() : m.end() + 14].lower()
            if not re.match(r"\s*(contribut|influence|effect|impact|weight|score|ly)", after):
                labels.append(_Mention(label, m.start(), m.end(), False))
    labels.sort(key=lambda m: m.start)
    words = [m for m in quoted if m.value not in facts.labels]
    if not words:
        words = [
            _Mention(_norm(m.group(0)), m.start(), m.end(), False)
            for m in re.finditer(r"[^\W\d_][\w'’-]*", bare)
            if _norm(m.group(0)) in facts.text_words
            and _norm(m.group(0)) not in _STOPWORDS
            and _norm(m.group(0)) not in facts.labels
            and len(m.group(0)) > 2
        ]

    edit_cue = _REMOVAL.search(bare) or _REPLACE.search(bare)
    if edit_cue:
        # unquoted words only count when they follow the cue closely ("removing boring"), so that
        # prose about removing words in general ("perturbation methods remove words") claims nothing
        named = [w for w in words if w.quoted or 0 <= w.start - edit_cue.end() <= 25]
        return [_counterfactual_claim(clause, bare, named, labels, facts)] if named else []
    claims = _prediction_claims(bare, quoted, labels, facts)
    exp = facts.explanation_for(bare)
    if _AGAINST.search(bare) or _TOWARDS.search(bare):
        claims.extend(_direction_claims(bare, words, labels, exp, facts))
    elif _IMPORTANCE.search(bare) and words:
        claims.extend(_importance_claims(words, exp, facts))
    return claims


def _names_non_label(bare: str, quoted: list[_Mention], labels: list[_Mention]) -> str | None:
    """The quoted item right after a prediction cue ("predicts 'beautifully'") when it is not a label."""
    cue = _PREDICTS_NAMED.search(bare)
    if not cue:
        return None
    after = [m for m in quoted if m.start >= cue.end() and m.start - cue.end() <= 12]
    if after and not any(label.start == after[0].start for label in labels):
        return after[0].value
    return None


def _prediction_claims(bare: str, quoted: list[_Mention], labels: list[_Mention], facts: Facts) -> list[Claim]:
    claims = []
    if labels and _EXPLAINS_TARGET.search(bare):
        label = labels[0].value
        claims.append(
            Claim(
                "target",
                f"the explanation is for '{label}'",
                label == facts.target,
                f"the explained target is '{facts.target}'",
            )
        )
    elif _PREDICTS.search(bare) and _names_non_label(bare, quoted, labels):
        named = _names_non_label(bare, quoted, labels)
        claims.append(
            Claim(
                "prediction",
                f"the model predicts '{named}'",
                False,
                f"'{named}' is not something this model predicts: it predicts '{facts.predicted}'",
            )
        )
    elif labels and _PREDICTS.search(bare):
        label, negated = labels[0].value, bool(_NEGATION.search(bare[: labels[0].start]))
        ok = (label != facts.predicted) if negated else (label == facts.predicted)
        claims.append(
            Claim(
                "prediction",
                f"the model {'does not predict' if negated else 'predicts'} '{label}'",
                ok,
                f"the model predicts '{facts.predicted}' ({facts.probabilities[facts.predicted]:.3f})",
            )
        )
    for value, tolerance, position in _probabilities(bare):
        before = [m for m in labels if m.start < position]
        label = (before[-1] if before else labels[0]).value if labels else facts.predicted
        if label is None or label not in facts.probabilities:
            continue
        actual = facts.probabilities[label]
        claims.append(
            Claim(
                "probability",
                f"p('{label}') = {value:.4g}",
                abs(actual - value) <= tolerance + 1e-9,
                f"p('{label}') is {actual:.4f} (tolerance ±{tolerance:.4g})",
            )
        )
    return claims


def _probabilities(bare: str) -> list[tuple[float, float, int]]:
    """(value, tolerance, position) of each probability written in the clause."""
    found = []
    for m in _PERCENT.finditer(bare):
        decimals = len(m.group(2) or "")
        tolerance = 0.5 * 10.0**-decimals / 100
        if _HEDGE.search(bare[: m.start()]):
            tolerance = max(tolerance, HEDGED_TOLERANCE)
        found.append((float(m.group(1)) / 100, tolerance, m.start()))
    for m in _DECIMAL.finditer(bare):
        decimals = len(m.group(2) or "")
        found.append((float(m.group(1)), 0.5 * 10.0 ** -max(decimals, 0), m.start(1)))
    return found


def _relative_sign(bare: str, labels: list[_Mention], facts: Facts) -> tuple[int | None, str]:
    """+1: the clause says towards the explained target; -1: against it; None: cannot tell."""
    direction = -1 if _AGAINST.search(bare) else 1
    if not labels or labels[-1].value == facts.target:
        return direction, f"'{facts.target}'"
    others = [label for label in facts.labels if label != facts.target]
    if len(facts.labels) == 2 and labels[-1].value in others:
        return -direction, f"'{labels[-1].value}' (the other label)"
    return None, f"'{labels[-1].value}'"


def _direction_claims(bare: str, words: list[_Mention], labels, exp, facts: Facts) -> list[Claim]:
    sign, towards = _relative_sign(bare, labels, facts)
    if sign is None:
        return []  # a third label of a multi-class model: the target's attributions cannot say
    said = "towards" if sign > 0 else "against"
    if not exp.signed:
        return [
            Claim(
                "direction",
                f"{', '.join(repr(w.value) for w in words) or 'words'} push {said} {towards}",
                False,
                f"{exp.title} is unsigned: it says how much, not which way",
            )
        ]
    top = [_norm(w) for w, _ in exp.top_words(facts.top_k, sign)]
    if re.match(r"\s*no words?\b", bare, re.IGNORECASE):
        return [
            Claim(
                "direction",
                f"no word pushes {said} {towards}",
                not top,
                f"{exp.title}'s words {said} the target: {top or 'none'}",
            )
        ]
    claims = []
    for w in words:
        claims.append(
            Claim(
                "direction",
                f"'{w.value}' pushes {said} {towards}",
                w.value in top,
                f"{exp.title}'s top {facts.top_k} words {said} '{facts.target}': {', '.join(top) or 'none'}",
            )
        )
    return claims


def _importance_claims(words: list[_Mention], exp, facts: Facts) -> list[Claim]:
    scores = np.abs(exp.scores("word"))
    top = [_norm(exp.words[i]) for i in np.argsort(-scores, kind="stable")[: facts.top_k] if scores[i] > 0]
    return [
        Claim(
            "importance",
            f"'{w.value}' matters most",
            w.value in top,
            f"{exp.title}'s top {facts.top_k} words by size: {', '.join(top)}",
        )
        for w in words
    ]


def _counterfactual_claim(clause: str, bare: str, words: list[_Mention], labels, facts: Facts) -> Claim:
    replacing = bool(_REPLACE.search(bare))
    originals, replacements = list(words), []
    if replacing:
        cut = next((m.start() for m in _REPLACEMENT_SEP.finditer(bare) if words and m.start() > words[0].end), None)
        if cut is not None:
            originals = [w for w in words if w.start < cut]
            # the replacement may be any word, not only one of the text: take every quoted item after the cut
            replacements = [
                _norm(next(g for g in m.groups() if g is not None))
                for m in _QUOTED.finditer(clause)
                if m.start() > cut and _norm(next(g for g in m.groups() if g is not None)) not in facts.labels
            ]
    claimed = {w.value for w in originals}
    flip_claimed = bool(_FLIP.search(bare)) and not _NEGATION.search(bare)
    no_flip_claimed = bool(_FLIP.search(bare)) and bool(_NEGATION.search(bare))
    new_label = (
        labels[-1].value
        if labels and (flip_claimed or len(facts.labels) == 2 and labels[-1].value != facts.target)
        else None
    )
    text = (
        f"{'replacing' if replacing else 'removing'} {sorted(claimed)}"
        + (f" with {replacements}" if replacements else "")
        + (" flips the prediction" if flip_claimed else " does not flip it" if no_flip_claimed else "")
        + (f" to '{new_label}'" if new_label and flip_claimed else "")
    )
    for cf in facts.counterfactuals:
        edited = {_norm(e.word) for e in cf.edits if e.word}
        if edited != claimed:
            continue
        if replacements and sorted(_norm(e.replacement or "") for e in cf.edits) != sorted(replacements):
            continue
        if replacing != any(e.replacement is not None for e in cf.edits):
            continue
        if flip_claimed and not cf.flipped or no_flip_claimed and cf.flipped:
            return Claim(
                "counterfactual",
                text,
                False,
                f"verified: '{cf.text}' gives '{cf.label}' (p = {cf.target_prob:.3f}), "
                f"{'a flip' if cf.flipped else 'not a flip'}",
            )
        if new_label and flip_claimed and _norm(cf.label) != new_label:
            return Claim("counterfactual", text, False, f"verified: '{cf.text}' gives '{cf.label}', not '{new_label}'")
        for value, tolerance, _ in _probabilities(bare):
            p = cf.target_prob
            if abs(p - value) > tolerance + 1e-9 and abs((1 - p) - value) > tolerance + 1e-9:
                return Claim("counterfactual", text, False, f"verified: p(target) becomes {p:.3f}, not {value:.3g}")
        return Claim(
            "counterfactual", text, True, f"verified: '{cf.text}' gives '{cf.label}' (p(target) = {cf.target_prob:.3f})"
        )
    return Claim("counterfactual", text, False, "no verified counterfactual makes exactly this edit")


# ---- model-card prose ----------------------------------------------------------------------------------
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:,\d{3})*(?:\.(\d+))?)\s*(%|percent\b)?", re.IGNORECASE)
_NEVER = re.compile(
    r"\b(never|no|none|not|n't|nothing|without)\b.{0,40}\b(chang\w*|flip\w*|affect\w*|mov\w*|alter\w*)\b|"
    r"\b(chang\w*|flip\w*|affect\w*|alter\w*)\b.{0,20}\b(no|none)\b",
    re.IGNORECASE,
)
_FAITHFUL = re.compile(r"\b(most faithful|most reliable|best (?:explanation )?method|most trustworthy)\b", re.I)
_PROBE_CUES = {  # a probe of the card, by the words prose would use for it
    "gender terms": re.compile(r"\b(gender\w*|he\b|she\b|pronouns?|wom[ae]n|m[ae]n)\b", re.IGNORECASE),
    "negation": re.compile(r"\bnegat\w*", re.IGNORECASE),
    "intensifiers removed": re.compile(r"\bintensifier\w*", re.IGNORECASE),
}


def numbers_in(text: str) -> list[float]:
    """The numbers written in `text`, a percentage as its share ("12.5 %" -> 0.125)."""
    return [float(m.group(1).replace(",", "")) / (100 if m.group(3) else 1) for m in _NUMBER.finditer(str(text))]


class CardFacts:
    """What a model card's drafted prose is checked against: the figures the card shows (every number in a
    drafted sentence must be one of them, as written or as a percentage), the probes' flip rates, the audit's
    most faithful method and its words per label, and the model's labels."""

    def __init__(
        self,
        figures: Sequence[float],
        labels: Sequence[str] = (),
        probe_flip_rates: dict[str, float | None] | None = None,
        most_faithful: str | None = None,
        methods: Sequence[str] = (),
        words_by_label: dict[str, Sequence[str]] | None = None,
    ):
        self.figures = [float(f) for f in figures if f is not None and np.isfinite(f)]
        self.labels = [_norm(label) for label in labels]
        self.probe_flip_rates = dict(probe_flip_rates or {})
        self.most_faithful = most_faithful
        self.methods = list(methods)
        self.words_by_label = {_norm(k): {_norm(w) for w in v} for k, v in (words_by_label or {}).items()}


def check_card_prose(text: str, facts: CardFacts) -> list[Verdict]:
    """One verdict per sentence of drafted model-card prose."""
    return [check_card_sentence(s, facts) for s in split_sentences(text)]


def check_card_sentence(sentence: str, facts: CardFacts) -> Verdict:
    claims = _card_number_claims(sentence, facts) + _card_probe_claims(sentence, facts)
    claims += _card_method_claims(sentence, facts) + _card_word_claims(sentence, facts)
    if not claims:
        return Verdict(sentence, UNCHECKABLE)
    return Verdict(sentence, SUPPORTED if all(c.holds for c in claims) else UNSUPPORTED, claims)


def _card_number_claims(sentence: str, facts: CardFacts) -> list[Claim]:
    bare = _QUOTED.sub(" ", sentence)  # quoted text is data, not a figure
    claims = []
    for m in _NUMBER.finditer(bare):
        written = float(m.group(1).replace(",", ""))
        tolerance = 0.5 * 10 ** -len(m.group(2) or "") + 1e-9  # the rounding of the number as written
        scale = 100.0 if m.group(3) else 1.0  # "12.5 %" is the share 0.125
        holds = any(abs(written - scale * f) <= tolerance for f in facts.figures)
        claims.append(
            Claim(
                "figure",
                m.group(0).strip(),
                holds,
                "one of the card's figures" if holds else f"{m.group(0).strip()} is not a figure whybox measured",
            )
        )
    return claims


def _card_probe_claims(sentence: str, facts: CardFacts) -> list[Claim]:
    if not _NEVER.search(sentence):
        return []
    claims = []
    for probe, cue in _PROBE_CUES.items():
        if cue.search(_QUOTED.sub(" ", sentence)):
            rate = facts.probe_flip_rates.get(probe)
            holds = rate == 0
            reason = (
                "the probe flipped no label"
                if holds
                else "whybox did not run this probe"
                if rate is None
                else f"the probe's flip rate is {100 * rate:.1f} %, not zero"
            )
            claims.append(Claim("probe", f"{probe} change no prediction", holds, reason))
    return claims


def _card_method_claims(sentence: str, facts: CardFacts) -> list[Claim]:
    if not _FAITHFUL.search(sentence):
        return []
    named = [m for m in facts.methods if re.search(rf"(?<!\w){re.escape(m.replace('_', ' '))}(?!\w)", sentence, re.I)]
    if not named:
        return []
    holds = facts.most_faithful is not None and named == [facts.most_faithful]
    reason = (
        "the audit's winner"
        if holds
        else "no audit ranked the methods"
        if facts.most_faithful is None
        else f"the audit's most faithful method is {facts.most_faithful}"
    )
    return [Claim("method", f"{', '.join(named)} is the most faithful", holds, reason)]


def _card_word_claims(sentence: str, facts: CardFacts) -> list[Claim]:
    if not (_TOWARDS.search(_QUOTED.sub(" ", sentence)) or _AGAINST.search(_QUOTED.sub(" ", sentence))):
        return []
    quoted = [_norm(next(g for g in m.groups() if g)) for m in _QUOTED.finditer(sentence)]
    labels = [q for q in quoted if q in facts.labels]
    words = [q for q in quoted if q not in facts.labels]
    if not words or len(labels) != 1:  # a word's direction is checkable only towards one named label
        return []
    label = labels[0]
    known = facts.words_by_label.get(label)
    claims = []
    for word in words:
        holds = bool(known) and word in known
        reason = (
            f"among the audit's words for '{label}'"
            if holds
            else "no audit gave words per label"
            if not known
            else f"not among the audit's words for '{label}'"
        )
        claims.append(Claim("direction", f"'{word}' drives '{label}'", holds, reason))
    return claims
