"""LIME: a local linear surrogate fitted to the model's answers on word-deleted samples, with its R²."""

from __future__ import annotations

import numpy as np

from explainers.explanation import tokens_from_words
from explainers.methods.context import Context
from explainers.methods.length_defaults import describe as length_rule
from explainers.methods.registry import (
    SURROGATE_R2,
    Cost,
    Method,
    Param,
    Scores,
    _samples,
    register,
)
from explainers.methods.units import Units


# ---- surrogate -----------------------------------------------------------------------------------
def _lime(ctx: Context) -> Scores:
    from lime.lime_text import LimeTextExplainer

    handle, enc = ctx.handle, ctx.enc
    label, class_names = handle.task.lime_view(ctx.target)
    mask_string = (
        "" if ctx.params["removal"] == "delete" else (handle.tokenizer.mask_token or handle.tokenizer.unk_token or "")
    )
    explainer = LimeTextExplainer(
        class_names=class_names,
        # LIME's features are exactly the words we show (feature k = word k): also when one token
        # covers several words (they are one word here) or the tokenizer drops a character (no word).
        split_expression=lambda s: [s[a:b] for a, b in enc.word_spans],
        bow=False,
        mask_string=mask_string,
        kernel_width=ctx.params["kernel_width"],
        random_state=ctx.seed or 0,
    )
    # A truncated text only up to the last word the model reads: LIME copies its text into every sample
    # (a 1 MB text times 1000 samples), and words past the truncation would slide into view when
    # earlier words are deleted. An untruncated text keeps what follows its words (a template's question).
    read = enc.text[: enc.word_spans[-1][1]] if enc.word_spans and enc.truncated else enc.text
    exp = explainer.explain_instance(
        read,
        lambda texts: handle.predict_proba(list(texts), ctx.target),
        labels=(label,),
        num_features=max(1, len(enc.words)),
        num_samples=ctx.params["n_samples"],
    )
    word_scores = np.zeros(len(enc.words))
    for position, weight in exp.local_exp[label]:
        word_scores[position] = weight
    return Scores(
        tokens_from_words(word_scores, enc.word_of_token),
        word_scores=word_scores,
        extras={"surrogate_r2": float(exp.score), "intercept": float(exp.intercept[label])},
    )


# ---- the same methods over units (sentences, separator pieces): see units.py -------------------------
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


register(
    Method(
        "lime",
        "LIME",
        "surrogate",
        "Deletes random subsets of words, fits a local linear model to the model's answers, and "
        "reports its word weights (with the fit's R²).",
        _lime,
        lambda n, p: Cost(p["n_samples"]),
        (
            _samples(1000, quick=300, thorough=3000),
            Param(
                "removal",
                "delete",
                "choice",
                "Remove sampled-out words, or replace them with the mask token.",
                choices=("delete", "mask"),
            ),
            Param(
                "kernel_width",
                None,
                "float",
                "Width of LIME's proximity kernel (distance = 100 × cosine distance of the kept-word masks): "
                "narrower weighs samples close to the text more. " + length_rule("lime", "kernel_width"),
                1.0,
                200.0,
            ),
        ),
        random=True,
        native_unit="word",
        diagnostics=(SURROGATE_R2,),
        scores_note="LIME scores words; a word's weight is divided evenly over its subword tokens for the token view "
        "(other methods score tokens and add them up into words).",
        unit_features=unit_lime,
    )
)
