"""Parameter defaults that depend on the input's length.

A parameter whose registry default is None means "chosen by length": its value is picked here from the
number of features the method perturbs (tokens, or words for a word-level method such as LIME). A value
the user sets always wins. Without a length (e.g. a cost listing), the fallback is used.

Why, measured on the built-in models (benchmarks/lime_kernel.py prints the table):
- Occlusion: a window of 3 on a 5-token prompt covers most of the prompt from every position, so every
  token gets nearly the same mean drop. A window of 1 on short inputs scores each token on its own.
- LIME: its R² hardly moves with more samples on the example sentences; its kernel width does (LIME's
  distance is 100 × the cosine distance between kept-word masks, so a removed word moves a short text
  much further than a long one). A narrower kernel weighs the samples near the text, where the model is
  closer to linear.
"""

from __future__ import annotations

from collections.abc import Callable

SHORT_TOKENS = 12  # occlusion: up to this many tokens, hide one token at a time


def _occlusion_window(n_tokens: int) -> int:
    return 1 if n_tokens <= SHORT_TOKENS else 3


LIME_SHORT_WORDS = 25  # LIME: up to this many words, the narrow kernel


def _lime_kernel_width(n_words: int) -> float:
    # Measured (benchmarks/lime_kernel.py, sentiment, 300 samples, 8-20 words): R² at width 5 was 0.54, 0.88,
    # 0.83, 0.82 on the four examples against 0.31, 0.80, 0.60, 0.43 at LIME's 25, and the weights agreed
    # better with leave-one-out (Spearman 0.88-0.97 against 0.43-0.94). Longer texts keep LIME's 25: a
    # narrow kernel leaves few effective samples per word there (not measured).
    return 5.0 if n_words <= LIME_SHORT_WORDS else 25.0


# (method, parameter) -> (rule from the number of features, fallback when the length is unknown)
RULES: dict[tuple[str, str], tuple[Callable[[int], object], object]] = {
    ("occlusion", "window"): (_occlusion_window, 3),
    ("lime", "kernel_width"): (_lime_kernel_width, 25.0),
}


def params_for_length(method: str, n_features: int | None) -> dict:
    """The length-dependent parameters of `method` for an input of `n_features` features (None: unknown)."""
    return {
        name: (fallback if n_features is None else rule(n_features))
        for (owner, name), (rule, fallback) in RULES.items()
        if owner == method
    }


def describe(method: str, name: str) -> str:
    """How the default of a length-dependent parameter is chosen, for help texts ('' when it is fixed)."""
    if (method, name) not in RULES:
        return ""
    rule = RULES[(method, name)][0]
    short, long = rule(1), rule(10_000)
    return f"Default: chosen by the input's length ({short:g} for short inputs, {long:g} for long ones)."
