"""Plain-language text about explanations: what one says, and which of several to trust.

Plain text, no markup: whoever shows it escapes it for its medium.
"""

from __future__ import annotations

import math

import numpy as np

from explainers.explanation import Explanation
from explainers.metrics.faithfulness import RATIONALE_FRACTION, Report, rank_explanations, ranking_metrics

WEAK_COMPREHENSIVENESS = 0.05  # removing the top tokens moves the prediction by less than this
LOW_AGREEMENT = 0.3  # mean pairwise Spearman rho below this: the methods tell different stories
GOOD_TAU = 0.5


def percent(p: float) -> str:
    return f"{100 * p:.1f} %" if 0 < p < 0.01 else f"{100 * p:.0f} %"


def shown(label: str) -> str:
    """A label or token as prose shows it: a causal LM's ' Paris' is Paris; pure whitespace stays visible."""
    return label.strip() or repr(label)


def number(value: float) -> str:
    """Three decimals, or scientific notation for the tiny values small models produce."""
    if math.isnan(value):
        return "n/a"
    return f"{value:.1e}" if 0 < abs(value) < 0.001 else f"{value:.3f}"


def _quoted(words: list[tuple[str, float]]) -> str:
    unique = dict.fromkeys(shown(w) for w, _ in words)  # a word that occurs twice is named once
    return ", ".join(f"'{w}'" for w in unique)


def summarize(exp: Explanation) -> str:
    """A few sentences: the prediction, the words that drive it, and this method's caveats."""
    props = exp.properties
    title = exp.title
    sentences = [_prediction_sentence(exp)]

    if not np.any(exp.scores("word")):
        sentences.append(f"{title} gives every word a score of zero: it found nothing to attribute.")
    elif exp.signed:
        towards, against = exp.top_words(3, 1), exp.top_words(3, -1)
        sentences.append(
            f"Words pushing towards it most: {_quoted(towards)}." if towards else "No word pushes towards it."
        )
        sentences.append(f"Against: {_quoted(against)}." if against else "No word pushes against it.")
    else:
        lead = (
            "Words the prediction position attends to most"
            if props.get("needs_attention")
            else "Words with the most weight"
        )
        sentences.append(f"{lead}: {_quoted(exp.top_words(3, 1))} (unsigned: how much, not which way).")

    notes = [title] + [_diagnostic_note(d) for d in exp.diagnostics]
    if props.get("random") and exp.seed is not None:
        notes.append(f"random, seed {exp.seed}")
    sentences.append(f"({'; '.join(notes)}.)")

    if props.get("caveat"):
        sentences.append(props["caveat"])
    if props.get("experimental"):
        sentences.append(f"Caution: {props['experimental']}")
    if exp.truncated:
        sentences.append(
            f"The text was cut to the model's limit of {len(exp.tokens)} tokens: "
            "words after that were not seen and are not explained."
        )
    return " ".join(sentences)


def _prediction_sentence(exp: Explanation) -> str:
    if exp.target.contrast is not None:  # the score is a difference, not a probability
        other = shown(exp.target.contrast.label)
        return (
            f"This explanation is for '{shown(exp.target.label)}' rather than '{other}': scores explain the "
            f"difference between the two (here {exp.target_prob:+.3g})."
        )
    target = f"'{shown(exp.target.label)}' ({percent(exp.target_prob)})"
    if not exp.probabilities:
        return f"The explained target is {target}."
    top, top_p = max(exp.probabilities.items(), key=lambda kv: kv[1])
    if exp.target.class_index is not None:
        said = f"The model predicts '{shown(top)}' ({percent(top_p)})"
    else:
        said = f"The model's most likely next token is '{shown(top)}' ({percent(top_p)})"
    return f"{said}." if top == exp.target.label else f"{said}; this explanation is for {target}."


def _diagnostic_note(d: dict) -> str:
    """One of a method's own diagnostics (IG's convergence delta, LIME's R²), judged by its threshold."""
    bound = f"{'at most' if d['good'] == 'below' else 'at least'} {d['threshold']:g}"
    if d["ok"]:
        return f"{d['title']} {d['value']:.3g}: fine ({bound})"
    return f"{d['title']} {d['value']:.3g}: poor ({bound} is good), so treat the scores with caution; {d['advice']}"


# ---- which explanation to trust ----------------------------------------------------------------
def mean_agreement(matrix: np.ndarray) -> float:
    """Mean Spearman rho over the distinct pairs (NaN pairs ignored); NaN when there is none."""
    matrix = np.asarray(matrix, dtype=float)
    pairs = matrix[np.triu_indices(len(matrix), k=1)]
    pairs = pairs[~np.isnan(pairs)]
    return float(pairs.mean()) if len(pairs) else float("nan")


def faithfulness_verdict(
    reports: list[Report], agreement: tuple[list[str], np.ndarray] | np.ndarray | None = None
) -> str:
    """Which explanation to trust for this input, and how much, in a short paragraph.

    `agreement` is the result of faithfulness.agreement (names, matrix), or just the matrix."""
    if not reports:
        return "No faithfulness checks have run yet: explain the text with at least one method."
    ranking = rank_explanations(reports)
    by_method = {r.method: r for r in reports}
    best_name = ranking[0][0]
    best = by_method[best_name]
    best_title = best.title or best_name
    comp = best.values.get("comprehensiveness", float("nan"))
    tau = best.values.get("kendall_tau_loo", float("nan"))
    share = f"{RATIONALE_FRACTION:.0%}"

    if len(reports) == 1:
        sentences = [
            f"Only {best_title} was checked, so there is nothing to compare it with: "
            f"removing its top {share} of tokens changes the target probability by {number(comp)}."
        ]
    else:
        others = [r.values.get("comprehensiveness", float("nan")) for r in reports if r is not best]
        others = [v for v in others if not math.isnan(v)]
        spread = (
            "n/a"
            if not others
            else number(min(others))
            if min(others) == max(others)
            else f"{number(min(others))} to {number(max(others))}"
        )
        tie = [by_method[n].title or n for n, rank in ranking[1:] if math.isclose(rank, ranking[0][1])]
        tied = f" (tied with {', '.join(tie)})" if tie else ""
        sentences = [
            f"{best_title} is the most faithful explanation here{tied}: it ranks best on average over the "
            f"{len(ranking_metrics())} faithfulness checks that do not compare with another method. "
            f"Removing its top {share} of tokens changes the target probability by {number(comp)}, "
            f"against {spread} for the other methods."
        ]
    if not math.isnan(tau):
        how = "agrees well" if tau >= GOOD_TAU else "partly agrees" if tau >= 0.2 else "hardly agrees"
        sentences.append(f"Its token ranking {how} with deleting each token on its own (Kendall τ = {tau:.2f}).")

    trust = "high" if comp >= 0.2 and not math.isnan(tau) and tau >= GOOD_TAU else "moderate"
    if math.isnan(comp) or comp < WEAK_COMPREHENSIVENESS:
        trust = "low"
        sentences.append(
            f"Warning: even the best explanation is weak. Its top tokens barely move the prediction "
            f"(comprehensiveness below {WEAK_COMPREHENSIVENESS}), so the model may rely on many tokens at once, "
            "or none of these methods captures what it does."
        )

    if agreement is not None:
        matrix = agreement[1] if isinstance(agreement, tuple) else agreement
        rho = mean_agreement(matrix)
        if not math.isnan(rho) and rho < LOW_AGREEMENT:
            trust = "low" if trust == "low" else "moderate"
            sentences.append(
                f"The methods also disagree with each other (mean Spearman ρ = {rho:.2f}): they tell "
                "different stories about this input, so read any single heatmap with care."
            )
        elif not math.isnan(rho):
            sentences.append(f"The methods broadly agree with each other (mean Spearman ρ = {rho:.2f}).")

    sentences.append(f"Trust: {trust}.")
    return " ".join(sentences)
