"""The method registry: what a method is (`Method`, its `Param`s, its `Cost` in rows, its
`Diagnostic`s), the registry itself, the parameters several methods share, presets, and estimates
of rows and seconds before running. Each method registers itself beside its function, in its family's module."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

import numpy as np

from explainers.errors import InputError
from explainers.methods.length_defaults import params_for_length
from explainers.models.handle import ModelHandle
from explainers.serving.limits import fit_to_budget, token_row_budget

if TYPE_CHECKING:  # a Method's function takes a Context; the registry only names its type
    from explainers.methods.context import Context

FAMILIES = {
    "gradient": "Gradient-based: differentiates the target probability with respect to the input embeddings.",
    "perturbation": "Perturbation-based: changes the input and watches the target probability move.",
    "surrogate": "Surrogate: fits a simple model to the black-box model's answers around this input.",
    "attention": "Attention: reads the model's attention weights. A view of the model, not an explanation.",
}


# ---- registry ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    kind: str  # "int" | "float" | "choice"
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    quick: Any = None  # the value of the quick preset (demos, classes), when it differs from the default
    thorough: Any = None  # ... and of the thorough one

    def preset(self, name: str) -> Any:
        """This parameter's value in preset `name` (one of PRESETS)."""
        value = {"quick": self.quick, "thorough": self.thorough}.get(name)
        return self.default if value is None else value

    def validate(self, value: Any) -> Any:
        if value is None:
            return self.default
        if self.kind == "choice":
            if value not in self.choices and str(value) in [str(c) for c in self.choices]:
                value = self.choices[[str(c) for c in self.choices].index(str(value))]
            if value not in self.choices:
                raise InputError(f"{self.name} must be one of {', '.join(map(str, self.choices))}, not '{value}'.")
            return value
        cast = int if self.kind == "int" else float
        try:
            number = cast(value)
        except (TypeError, ValueError):
            raise InputError(
                f"{self.name} must be a{'n integer' if cast is int else ' number'}, not '{value}'."
            ) from None
        if not math.isfinite(number):
            raise InputError(f"{self.name} must be a finite number, not '{value}'.")
        if cast is int and float(value) != number:
            raise InputError(f"{self.name} must be an integer, not '{value}'.")
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise InputError(f"{self.name} must be between {self.low:g} and {self.high:g}, not {number}.")
        return number

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v not in (None, ())}


@dataclass(frozen=True)
class Cost:
    """Rows pushed through the model (one row = one sequence): what the UI shows before running."""

    forward_rows: int
    backward_rows: int = 0

    @property
    def rows(self) -> int:
        return self.forward_rows + 2 * self.backward_rows  # a backward costs about two forwards

    def describe(self) -> str:
        back = f" + {self.backward_rows:,} backward" if self.backward_rows else ""
        plural = "" if max(self.forward_rows, self.backward_rows) == 1 else "es"
        return f"{self.forward_rows:,} forward{back} pass{plural}"


@dataclass
class Scores:
    token_scores: np.ndarray
    word_scores: np.ndarray | None = None
    extras: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Diagnostic:
    """A number a method reports about its own result, with what it means and when it is poor."""

    name: str  # key in Scores.extras
    title: str
    meaning: str
    threshold: float
    good: str  # "below" or "above" the threshold
    advice: str  # what to do when it is poor
    # One-click re-runs offered when it is poor: (parameter, "times" or "set", amount); see remedies.py
    remedies: tuple[tuple[str, str, float], ...] = ()

    def to_dict(self) -> dict:
        """As an Explanation carries it: JSON-shaped, so that it survives a JSON round trip unchanged."""
        return {**vars(self), "remedies": [list(r) for r in self.remedies]}


CONVERGENCE_DELTA = Diagnostic(
    "convergence_delta",
    "convergence delta",
    "How far the scores' sum is from p(input) − p(baseline), in probability units (completeness).",
    0.01,
    "below",
    "more steps may help",
    (("n_steps", "times", 2),),
)
SURROGATE_R2 = Diagnostic(
    "surrogate_r2",
    "surrogate R²",
    "How much of the model's behaviour around this text LIME's linear fit explains (1 = all).",
    0.5,
    "above",
    "another kernel width, or more samples for a steadier fit, may help (benchmarks/lime_kernel.py)",
    # R² moves with the kernel width, not monotonically (measured): offer the other of the two defaults.
    (("kernel_width", "set", 5.0), ("kernel_width", "set", 25.0), ("n_samples", "times", 3)),
)


@dataclass(frozen=True)
class Method:
    """One attribution method: its function and everything the rest of whybox needs to know about it.
    Renderers read these properties from the Explanation, never the method's name."""

    name: str
    title: str
    family: str
    summary: str
    run: Callable[[Context], Scores]
    cost: Callable[[int, dict], Cost]
    params: tuple[Param, ...] = ()
    needs_gradients: bool = False
    needs_attention: bool = False  # reads attention weights: the prediction pass runs eager attention
    hooks_model: bool = False  # installs hooks on the model's modules: runs with the model to itself
    needs_embeddings: bool = False  # feeds the model embeddings, not token ids (no model behind an API can take them)
    native_unit: str = "token"  # the unit the method scores natively: "token" or "word"
    random: bool = False
    signed: bool = True
    diagnostics: tuple[Diagnostic, ...] = ()
    experimental: str = ""  # why results may mislead, when they may
    caveat: str = ""  # what a reader must keep in mind, always
    scores_note: str = ""  # how the per-token and per-word scores are made, when not obvious
    # beyond one prediction's tokens (issue 11): the function that does it, None when the method cannot
    unit_features: Callable | None = None  # perturbs whole units: a sentence-level run pays per sentence
    per_output_token: Callable | None = None  # explains every generated token in one go (generation/tokens.py)
    per_output_token_cost: Callable[[int, int, dict], Cost] | None = None  # (inputs, generated tokens, params)

    def validate(self, params: dict, n_features: int | None = None) -> dict:
        """Checked parameters, the unset ones at their defaults; a default of None is chosen by the input's
        length (`n_features`, in the method's native unit: see length_defaults.py)."""
        known = {p.name: p for p in self.params}
        unknown = set(params) - set(known)
        if unknown:
            names = ", ".join(known) or "none"
            raise InputError(f"{self.name} has no parameter {', '.join(sorted(unknown))} (its parameters: {names}).")
        checked = {name: p.validate(params.get(name)) for name, p in known.items()}
        by_length = params_for_length(self.name, n_features)
        return {name: by_length[name] if v is None and name in by_length else v for name, v in checked.items()}

    def estimate(self, n_tokens: int, params: dict | None = None) -> Cost:
        return self.cost(n_tokens, self.validate(params or {}, n_tokens))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "family": self.family,
            "summary": self.summary,
            "needs_gradients": self.needs_gradients,
            "needs_attention": self.needs_attention,
            "needs_embeddings": self.needs_embeddings,
            "native_unit": self.native_unit,
            "random": self.random,
            "signed": self.signed,
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "experimental": self.experimental,
            "caveat": self.caveat,
            "scores_note": self.scores_note,
            "unit_features": self.unit_features is not None,
            "per_output_token": self.per_output_token is not None,
            "params": [p.to_dict() for p in self.params],
            "cost_20_tokens": vars(self.estimate(20)),
        }

    def properties(self) -> dict:
        """What an Explanation carries about its method (its diagnostics' values are in its extras)."""
        return {
            "title": self.title,
            "family": self.family,
            "family_summary": FAMILIES[self.family],
            "signed": self.signed,
            "native_unit": self.native_unit,
            "needs_attention": self.needs_attention,
            "random": self.random,
            "experimental": self.experimental,
            "caveat": self.caveat,
            "scores_note": self.scores_note,
            "diagnostics": [d.to_dict() for d in self.diagnostics],
        }


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method; the registry lists families in FAMILIES' order (methods in the order registered),
    whichever family module is imported first."""
    METHODS[method.name] = method
    ordered = sorted(METHODS.values(), key=lambda m: list(FAMILIES).index(m.family))  # a stable sort
    METHODS.clear()
    METHODS.update((m.name, m) for m in ordered)
    return method


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise InputError(f"Unknown method '{name}'. Available: {', '.join(METHODS)}.")
    return METHODS[name]


# ---- parameters shared by several methods --------------------------------------------------------
BASELINE_RULE = (
    "Gradient and perturbation methods compare the input with a baseline in which every content token "
    "is replaced by one token that stands for 'absent': the mask token, else pad, else unk, else eos "
    "(the `baseline` parameter picks another). The token actually used is in each explanation's "
    "extras as baseline_token. Causal LMs rarely have a mask token: for SmolLM2 the baseline is "
    "<|im_end|>, its pad token."
)
SEED_RULE = (
    "Random methods (LIME, Kernel SHAP, Shapley sampling, gradient SHAP) take a seed: the same input and "
    "seed give the same output, on any batch size or device memory (gradient SHAP draws all its samples "
    "before batching them)."
)
BASELINE = Param(
    "baseline",
    "auto",
    "choice",
    "Token that stands for 'absent': auto = mask, else pad, unk, eos.",
    choices=("auto", "mask", "pad", "unk", "eos"),
)
LAYER = Param("layer", 0, "int", "Transformer block whose output is attributed (0 = first, -1 = last).", -48, 47)


def _steps(default: int, quick: int, thorough: int) -> Param:
    return Param(
        "n_steps",
        default,
        "int",
        "Interpolation steps between baseline and input.",
        2,
        500,
        quick=quick,
        thorough=thorough,
    )


def _samples(default: int, quick: int, thorough: int, high: int = 5000) -> Param:
    return Param(
        "n_samples",
        default,
        "int",
        "Random samples drawn; more = steadier, slower.",
        1,
        high,
        quick=quick,
        thorough=thorough,
    )


# Presets of the sampling and step parameters. Quick was chosen on the built-in sentiment model's example
# sentences (10-22 tokens): 16 IG steps kept the convergence delta under 0.007 on every one (8 steps reached
# 0.83), and LIME's R² with 300 samples was within 0.04 of its value with 1,000 (R² measures how linear the
# model is around the text, which more samples do not change).
PRESETS = {
    "quick": "Quick: fewer steps and samples, for demos and classes (about 3x faster).",
    "default": "Default: the methods' usual settings.",
    "thorough": "Thorough: more steps and samples, for results you will report (slower).",
}


def preset_params(method: str, preset: str) -> dict:
    """The parameters of `method` that preset `preset` sets (only those that differ from the defaults)."""
    return {p.name: p.preset(preset) for p in get_method(method).params if p.preset(preset) != p.default}


def budgeted_params(handle: ModelHandle, method: str, n_tokens: int, params: dict | None = None) -> tuple[dict, dict]:
    """(the parameters asked for, validated; those a run on this text will use: samples or steps scaled down
    to the server's token-row budget, explainers/limits.py). InputError when even the smallest run would not fit."""
    spec = get_method(method)
    asked = spec.validate(params or {})
    return asked, fit_to_budget(spec, asked, n_tokens, token_row_budget(handle.device.type))[0]


def n_features(spec: Method, enc) -> int:
    """How many features `spec` perturbs on this input: words for a word-level method, else tokens."""
    return len(enc.words) if spec.native_unit == "word" else enc.n_tokens


def estimated_seconds(handle: ModelHandle, method: str, n_tokens: int, params: dict | None = None) -> float:
    """Seconds `method` should take on this text: its cost in rows (as scaled to the budget) times the rate
    measured on this model and device (calibrated on first use, refined by every finished run)."""
    try:
        used = budgeted_params(handle, method, n_tokens, params)[1]
    except InputError:  # it will be refused with the reason; the full cost is what was asked
        used = get_method(method).validate(params or {})
    return get_method(method).cost(n_tokens, used).rows * n_tokens * handle.gateway.seconds_per_row_token(method)


# ---- the registry ---------------------------------------------------------------------------------
def elsewhere(module: str, name: str) -> Callable:
    """A function of an engine module that imports the methods (generation.tokens explains every
    generated token), looked up when first called: the registry names it without an import cycle."""

    def call(*args):
        return getattr(import_module(f"explainers.{module}"), name)(*args)

    call.__qualname__ = f"{module}.{name}"
    return call


def _per_token(function: str, cost: Callable[[int, int, dict], Cost]) -> dict:
    """The registry fields of a method that explains every generated token (generation/tokens.py's `function`)."""
    return {"per_output_token": elsewhere("generation.tokens", function), "per_output_token_cost": cost}


_one_pass = lambda n, p: Cost(1, 1)  # noqa: E731


DEFAULT_METHODS = ("integrated_gradients", "lime", "occlusion", "attention")
