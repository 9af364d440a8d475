"""Limits that keep one request from tying up a process: valid seeds, and a work budget per explanation.

The budget is counted in token-rows (rows through the model x tokens per row, from each method's cost
estimate), the unit that time and memory follow. A method whose default settings would run past it on
a long text scales its samples or steps down to fit and says so; one that cannot fit even at its
smallest setting is refused with what to do instead.
"""

from __future__ import annotations

import os

from explainers.errors import InputError

SEED_MAX = 2**32 - 1  # numpy's and LIME's generators take 32-bit seeds
MAX_TOKEN_ROWS_ENV = "WHYBOX_MAX_TOKEN_ROWS"
# About a minute of work for a small model on a busy 2-core CPU (LIME's 1,000 samples fit up to ~300
# tokens); a GPU gets ten times as much. 0 in the environment switches the budget off.
CPU_TOKEN_ROWS = 300_000
ACCELERATOR_TOKEN_ROWS = 3_000_000
SCALABLE = ("n_samples", "n_steps")  # the parameters a budget may lower, in this order


def check_seed(seed) -> int | None:
    """A seed the random methods accept: an integer in 0 .. 2**32 - 1 (None: the method's default)."""
    if seed is None:
        return None
    try:
        value = int(str(seed).strip())
    except ValueError:
        raise InputError(f"The seed must be a whole number between 0 and {SEED_MAX}, not '{seed}'.") from None
    if not 0 <= value <= SEED_MAX:
        raise InputError(f"The seed must be a whole number between 0 and {SEED_MAX} (2**32 - 1), not {value}.")
    return value


def token_row_budget(device_type: str) -> int:
    """The budget for one explanation: WHYBOX_MAX_TOKEN_ROWS, else a default for the device (0 = none)."""
    raw = os.environ.get(MAX_TOKEN_ROWS_ENV, "").strip()
    if raw:
        try:
            return max(0, int(raw))
        except ValueError:
            raise InputError(f"{MAX_TOKEN_ROWS_ENV} must be a whole number (0 = no limit), not '{raw}'.") from None
    return CPU_TOKEN_ROWS if device_type == "cpu" else ACCELERATOR_TOKEN_ROWS


def fit_to_budget(method, params: dict, n_tokens: int, budget: int) -> tuple[dict, str]:
    """(params, note): `params` (validated) with samples/steps lowered so that the estimated work fits
    `budget` token-rows, and a sentence saying what was lowered ("" when nothing was)."""

    def work(p: dict) -> int:
        return method.cost(n_tokens, p).rows * n_tokens

    if not budget or work(params) <= budget:
        return params, ""
    spec = next((p for p in method.params if p.name in SCALABLE), None)
    if spec is not None:
        low, high = int(spec.low), int(params[spec.name])
        if work({**params, spec.name: low}) <= budget:
            while low < high:  # the largest value that fits (cost grows with it)
                mid = (low + high + 1) // 2
                low, high = (mid, high) if work({**params, spec.name: mid}) <= budget else (low, mid - 1)
            note = (
                f"{spec.name} lowered from {params[spec.name]} to {low} for this {n_tokens}-token text, so that the "
                f"work stays within this server's budget ({budget:,} token-rows); shorten the text for the full run."
            )
            return {**params, spec.name: low}, note
    raise InputError(
        f"{method.title} would need about {work(params):,} token-rows for this {n_tokens}-token text, more than "
        f"this server's budget of {budget:,} ({MAX_TOKEN_ROWS_ENV}): shorten the text or pick a cheaper method."
    )
