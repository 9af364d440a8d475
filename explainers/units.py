"""Granularity: explaining tokens, words, sentences, or pieces between a separator of your choice.

For perturbation methods the unit is the feature: a sentence is hidden, removed or sampled as a whole,
so a sentence-level explanation of a long prompt needs far fewer rows than a token-level one. Gradient
and attention methods score tokens natively; their unit scores are the sums of their tokens' scores.
An explanation keeps token scores (a unit's score is spread evenly over its tokens for unit-level
perturbations, as LIME's word weights are) and carries the unit scores in its extras.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

from explainers.errors import InputError
from explainers.models.text import Encoded

UNITS = ("token", "word", "sentence")
# a sentence ends at . ! ? (with closing quotes or brackets) or a line break
SENTENCE_RE = re.compile(r"[^\n.!?]*(?:[.!?]+[\"'”’)\]]*|\n|$)")


@dataclass
class Units:
    """Token positions per unit (special tokens belong to none) and each unit's text."""

    name: str
    texts: list[str]
    positions: list[list[int]]

    def __len__(self) -> int:
        return len(self.positions)

    def spread(self, unit_scores: np.ndarray, n_tokens: int) -> np.ndarray:
        """Each unit's score divided evenly over its tokens."""
        scores = np.zeros(n_tokens)
        for value, where in zip(unit_scores, self.positions):
            scores[where] = value / len(where)
        return scores

    def gather(self, token_scores: np.ndarray) -> np.ndarray:
        """Each unit's score: the sum of its tokens' scores."""
        return np.array([float(np.sum(np.asarray(token_scores)[where])) for where in self.positions])


def _char_pieces(text: str, separator: str | None) -> list[tuple[int, int]]:
    if separator:
        pieces, start = [], 0
        for part in text.split(separator):
            pieces.append((start, start + len(part)))
            start += len(part) + len(separator)
        return pieces
    return [m.span() for m in SENTENCE_RE.finditer(text) if m.group().strip()]


def segment(enc: Encoded, unit: str = "token", separator: str | None = None, within=None) -> Units:
    """The units of an encoded text. `separator` (any string, e.g. a line break) cuts the text into
    pieces instead of sentences. `within` (token positions) keeps only the units inside them: the rest of
    the text stays as it is and is not scored (explaining the words of the important sentences only)."""
    if within is not None:
        units, inside = segment(enc, unit, separator), set(within)
        keep = [k for k, where in enumerate(units.positions) if set(where) <= inside]
        return Units(units.name, [units.texts[k] for k in keep], [units.positions[k] for k in keep])
    content = enc.content_positions
    if separator:
        unit = "piece"
    elif unit not in UNITS:
        raise InputError(f"Unknown unit '{unit}': use {', '.join(UNITS)} (or give a separator).")
    if unit == "token":
        return Units(unit, [enc.tokens[i] for i in content], [[i] for i in content])
    if unit == "word":
        groups = [[i for i in content if enc.word_of_token[i] == w] for w in range(len(enc.words))]
        keep = [(text, g) for text, g in zip(enc.words, groups) if g]
        return Units(unit, [t for t, _ in keep], [g for _, g in keep])
    pieces = _char_pieces(enc.text, separator)
    piece_of_word = []
    for a, _ in enc.word_spans:
        inside = [k for k, (s, e) in enumerate(pieces) if s <= a < e]
        piece_of_word.append(inside[0] if inside else len(pieces) - 1)
    groups: dict[int, list[int]] = {}
    for i in content:
        w = enc.word_of_token[i]
        if w is not None:
            groups.setdefault(piece_of_word[w], []).append(i)
    order = sorted(groups)
    return Units(unit, [enc.text[slice(*pieces[k])].strip() for k in order], [groups[k] for k in order])


# ---- perturbation methods over units (each named by its method's registry entry: `unit_features`) ---
def _hide(ids: list[int], positions, fill: list[int]) -> list[int]:
    out = list(ids)
    for i in positions:
        out[i] = fill[i]
    return out


def unit_occlusion(ctx, units: Units) -> np.ndarray:
    window, stride = ctx.params["window"], ctx.params["stride"]
    n = len(units)
    window = min(window, n)
    starts = [k * stride for k in range(math.ceil((n - window) / stride) + 1)]
    fill = ctx.baseline_ids[0].tolist()
    rows = [
        _hide(ctx.enc.ids, [i for u in range(s, min(s + window, n)) for i in units.positions[u]], fill) for s in starts
    ]
    drops = ctx.target_prob - ctx.handle.score_ids(rows, ctx.target)
    total, count = np.zeros(n), np.zeros(n)
    for s, drop in zip(starts, drops):
        total[s : s + window] += drop
        count[s : s + window] += 1
    return total / np.maximum(count, 1)


def unit_leave_one_out(ctx, units: Units) -> np.ndarray:
    fill = ctx.handle.baseline_token_id()
    rows = []
    for where in units.positions:
        if ctx.params["removal"] == "delete":
            rows.append([t for i, t in enumerate(ctx.enc.ids) if i not in set(where)] or [fill])
        else:
            rows.append(_hide(ctx.enc.ids, where, [fill] * ctx.enc.n_tokens))
    return ctx.target_prob - ctx.handle.score_ids(rows, ctx.target)


def _sampled(captum_class):
    def run(ctx, units: Units) -> np.ndarray:
        mask = torch.full((ctx.enc.n_tokens,), len(units), dtype=torch.long, device=ctx.device)  # specials: one
        for u, where in enumerate(units.positions):
            mask[where] = u
        with ctx.seeded(), torch.no_grad():
            attributions = captum_class(ctx.forward).attribute(
                ctx.embeds,
                baselines=ctx.baseline_embeds,
                feature_mask=mask[None, :, None].expand_as(ctx.embeds).contiguous(),
                n_samples=ctx.params["n_samples"],
                perturbations_per_eval=ctx.rows_per_batch,
            )
        per_token = attributions[0, :, 0].detach().double().cpu().numpy()
        return np.array([per_token[where[0]] for where in units.positions])

    return run


def unit_lime(ctx, units: Units) -> np.ndarray:
    from lime.lime_text import LimeTextExplainer

    # LIME cuts the text itself: hand it the units' character spans (via their first and last words)
    enc, handle = ctx.enc, ctx.handle
    spans = []
    for where in units.positions:
        words = [enc.word_of_token[i] for i in where if enc.word_of_token[i] is not None]
        spans.append((enc.word_spans[min(words)][0], enc.word_spans[max(words)][1]))
    label, class_names = handle.task.lime_view(ctx.target)
    mask_string = "" if ctx.params["removal"] == "delete" else (handle.tokenizer.mask_token or "")
    explainer = LimeTextExplainer(
        class_names=class_names,
        split_expression=lambda s: [s[a:b] for a, b in spans],
        bow=False,
        mask_string=mask_string,
        random_state=ctx.seed or 0,
    )
    exp = explainer.explain_instance(
        enc.text,
        lambda texts: handle.predict_proba(list(texts), ctx.target),
        labels=(label,),
        num_features=max(1, len(units)),
        num_samples=ctx.params["n_samples"],
    )
    scores = np.zeros(len(units))
    for position, weight in exp.local_exp[label]:
        scores[position] = weight
    return scores


def unit_shapley_sampling(ctx, units: Units) -> np.ndarray:
    from captum.attr import ShapleyValueSampling

    return _sampled(ShapleyValueSampling)(ctx, units)


def unit_kernel_shap(ctx, units: Units) -> np.ndarray:
    from captum.attr import KernelShap

    return _sampled(KernelShap)(ctx, units)


def features_are_units(spec, units: Units) -> bool:
    """True when `spec` perturbs the units themselves (it pays per unit); False when it scores tokens."""
    return spec.unit_features is not None and units.name != "token"


def explain_units(spec, ctx, units: Units):
    """Run `spec` on the context at this granularity: returns Scores with the unit scores in extras."""
    from explainers.methods import Scores

    if features_are_units(spec, units):
        unit_scores = spec.unit_features(ctx, units)
        scores = Scores(units.spread(unit_scores, ctx.enc.n_tokens))
    else:
        scores = spec.run(ctx)
        unit_scores = units.gather(scores.token_scores)
    scores.extras.update(unit=units.name, units=units.texts, unit_scores=[float(x) for x in unit_scores])
    return scores


def unit_cost(spec, enc: Encoded, units: Units, params: dict | None = None):
    """The cost of `spec` at this granularity: perturbation methods pay per unit, the rest per token."""
    return spec.estimate(len(units) if features_are_units(spec, units) else enc.n_tokens, params)


def features(spec, enc: Encoded, units: Units) -> str:
    """What the cost counts: "12 sentences" for a perturbation method at sentence level, else tokens."""
    per = units.name if features_are_units(spec, units) else "token"
    count = len(units) if per != "token" else enc.n_tokens
    return f"{count} {per}{'s' if count != 1 else ''}"


def describe_unit_cost(spec, enc: Encoded, units: Units, params: dict | None = None) -> str:
    return f"{unit_cost(spec, enc, units, params).describe()} ({features(spec, enc, units)} as features)"
