"""The entry point: explain one prediction with one method, at any unit, within the work budget."""

from __future__ import annotations

import contextlib
import time

import torch

from explainers.errors import InputError, InternalError, WhyboxError
from explainers.explanation import Explanation
from explainers.methods.context import Context
from explainers.methods.registry import Scores, get_method, n_features
from explainers.models.handle import ModelHandle
from explainers.serving.limits import check_seed, fit_to_budget, token_row_budget


# ---- entry point ------------------------------------------------------------------------------
def explain(
    handle: ModelHandle,
    text: str,
    method: str,
    target: str | int | None = None,
    seed: int | None = 0,
    contrast: str | int | None = None,
    chat: bool = False,
    unit: str = "token",
    separator: str | None = None,
    within: list[int] | None = None,
    **params,
) -> Explanation:
    """Explain one prediction with one method (with a contrast: why the target rather than it), per
    `unit` (token, word, sentence, or pieces between `separator`; `within`: only the units inside these
    token positions, see units.segment).

    Raises InputError (or ModelLoadError) with a clear message when the input is at fault, and
    InternalError, logged with its traceback, when whybox itself is."""
    spec = get_method(method)
    refused = handle.refuses(spec)  # e.g. gradients of a model behind an API
    if refused:
        raise InputError(refused)
    spec.validate(params)  # a bad parameter is reported before the text is encoded
    seed = check_seed(seed)
    enc = handle.encode(text, chat=chat)
    params = spec.validate(params, n_features(spec, enc))
    params, scaled_down = fit_to_budget(spec, params, enc.n_tokens, token_row_budget(handle.device.type))
    units = None
    if unit != "token" or separator or within is not None:  # granularity: see units.py
        from explainers.methods.units import explain_units, segment

        units = segment(enc, unit, separator, within)
    started = time.perf_counter()
    try:
        # one forward pass gives the probabilities, the target and (for attention methods) the weights
        prediction = handle.predict(enc, attentions=spec.needs_attention)
        probabilities = handle.distribution(enc, prediction=prediction)
        tgt = handle.resolve_target(enc, target, prediction, contrast)
        target_prob = handle.target_probability(enc, tgt, prediction)
        seed = seed if spec.random else None

        def attempt() -> Scores:
            ctx = Context(handle, enc, tgt, params, seed, prediction, target_prob)
            with handle.gateway.exclusive() if spec.hooks_model else contextlib.nullcontext():
                return spec.run(ctx) if units is None else explain_units(spec, ctx, units)

        scores = handle.gateway.with_backoff(attempt)
    except WhyboxError:
        raise
    except torch.OutOfMemoryError:
        raise InputError(
            f"{spec.title} ran out of memory on {handle.device} even one row at a time: "
            "shorten the text or use a cheaper method."
        ) from None
    except Exception as exc:  # a bug of ours, whatever its type: never blamed on the input
        raise InternalError.from_exception(exc, f"explaining with {spec.title} on {handle.architecture}") from exc
    if prediction.facts:  # what the task adds: a prompt classifier's label probabilities and label mass
        scores.extras["prediction"] = prediction.facts
    if scaled_down:  # said on the page and in the CLI
        scores.extras["scaled_down"] = scaled_down
    # target_prob may be a probability, a teacher-forced product or a contrast: the JSON says which
    scores.extras["target_scale"] = handle.task.target_scale(tgt, target_prob)
    seconds = time.perf_counter() - started
    handle.gateway.record_rate(method, seconds, spec.estimate(enc.n_tokens, params).rows * enc.n_tokens)
    if "baseline" in params:  # the token that actually stood for 'absent', for the JSON and the page
        scores.extras["baseline_token"] = handle.tokenizer.convert_ids_to_tokens(
            handle.baseline_token_id(params["baseline"])
        )
    return Explanation.build(
        method=method,
        model=handle.name,
        enc=enc,
        token_scores=scores.token_scores,
        word_scores=scores.word_scores,
        target=tgt,
        target_prob=target_prob,
        probabilities=probabilities,
        params=params,
        seed=seed,
        seconds=seconds,
        extras=scores.extras,
        properties=spec.properties(),
    )
