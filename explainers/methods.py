"""Attribution methods: one registry entry + one function each.

Every function receives a `Context` (the handle, the encoded text, the target, validated parameters)
and returns `Scores`. Gradient methods run on word embeddings (the model adds positions itself);
perturbation methods batch their perturbations through the model (Captum's
`perturbations_per_eval` / `internal_batch_size`, LIME's `classifier_fn` receives all samples at once).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

import numpy as np
import torch

from explainers.errors import InputError, InternalError, WhyboxError
from explainers.explanation import Explanation, tokens_from_words
from explainers.inference.gateway import Prediction
from explainers.methods.length_defaults import describe as length_rule
from explainers.methods.length_defaults import params_for_length
from explainers.models.handle import ModelHandle
from explainers.models.tasks import Target
from explainers.models.text import Encoded
from explainers.serving.limits import check_seed, fit_to_budget, token_row_budget

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
    native_unit: str = "token"  # the unit the method scores natively: "token" or "word"
    random: bool = False
    signed: bool = True
    diagnostics: tuple[Diagnostic, ...] = ()
    experimental: str = ""  # why results may mislead, when they may
    caveat: str = ""  # what a reader must keep in mind, always
    scores_note: str = ""  # how the per-token and per-word scores are made, when not obvious
    # beyond one prediction's tokens (issue 11): the function that does it, None when the method cannot
    unit_features: Callable | None = None  # perturbs whole units: a sentence-level run pays per sentence
    per_output_token: Callable | None = None  # explains every generated token in one go (generation.py)
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
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise InputError(f"Unknown method '{name}'. Available: {', '.join(METHODS)}.")
    return METHODS[name]


# ---- the context every method gets -----------------------------------------------------------------
class computed_once:
    """`functools.cached_property` without its lock. On Python 3.11 that lock is one RLock per
    *class*, shared by every instance: a thread computing its own Context's `embeds` (which waits for
    the gateway lock) blocked another thread that already held the gateway lock and wanted its own,
    separate Context's `embeds` - a lock-order cycle that hung the server. A Context belongs to one
    explanation in one thread, so computing a value twice cannot happen and no lock is needed."""

    def __init__(self, func):
        self.func, self.__doc__ = func, func.__doc__

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)  # later reads find the instance's own
        return value


@dataclass
class Context:
    handle: ModelHandle
    enc: Encoded
    target: Target
    params: dict
    seed: int | None
    prediction: Prediction  # the forward pass over the whole text, with attentions for attention methods
    target_prob: float  # p(target | text), from that pass

    @property
    def device(self) -> torch.device:
        return self.handle.device

    @computed_once
    def ids(self) -> torch.Tensor:
        return torch.tensor([self.enc.ids], device=self.device)

    @computed_once
    def baseline_ids(self) -> torch.Tensor:
        """Every content token replaced by the baseline token; special tokens kept."""
        token = self.handle.baseline_token_id(self.params.get("baseline", "auto"))
        ids = self.ids.clone()
        ids[0, self.content_mask] = token
        return ids

    @computed_once
    def content_mask(self) -> torch.Tensor:
        return torch.tensor([not s for s in self.enc.special], device=self.device)

    @computed_once
    def embeds(self) -> torch.Tensor:
        return self.handle.embed_ids(self.ids[0])

    @computed_once
    def baseline_embeds(self) -> torch.Tensor:
        return self.handle.embed_ids(self.baseline_ids[0])

    @computed_once
    def tail_embeds(self) -> torch.Tensor | None:
        """A causal LM's target continuation (teacher-forced), embedded once per explanation."""
        tail = list(self.target.token_ids[:-1])
        return self.handle.embed_ids(tail)[0] if tail else None

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        """(B, T, H) word embeddings -> (B,) target probability, differentiable."""
        return self.handle.score_embeds(embeds, self.target, tail_embeds=self.tail_embeds)

    @property
    def rows_per_batch(self) -> int:
        extra = max(0, len(self.target.token_ids) - 1)
        return self.handle.rows_per_batch(self.enc.n_tokens + extra)

    def token_feature_mask(self) -> torch.Tensor:
        """One Captum feature per content token; all special tokens share one feature whose
        baseline equals the input, so they can never receive attribution."""
        positions = torch.arange(self.enc.n_tokens, device=self.device) + 1
        mask = torch.where(self.content_mask, positions, torch.zeros_like(positions))
        mask = mask - mask.min()  # Captum wants feature ids from 0 (texts without specials)
        return mask[None, :, None].expand_as(self.embeds).contiguous()

    def per_token(self, attributions) -> np.ndarray:
        """(1, T, H) attributions -> (T,) by summing over the hidden size; specials zeroed."""
        if isinstance(attributions, tuple):
            attributions = attributions[0]
        # layer methods also see a causal LM's teacher-forced continuation: keep the prompt only
        scores = attributions.detach().float().sum(-1)[0, : self.enc.n_tokens].cpu().numpy().astype(np.float64)
        scores[~self.content_mask.cpu().numpy()] = 0.0
        return scores

    @contextlib.contextmanager
    def seeded(self):
        """Captum's random methods draw from torch's and numpy's global generators: seed both for
        this call and put their states back afterwards."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        numpy_state = np.random.get_state()
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed or 0)
            np.random.seed(self.seed or 0)
            try:
                yield
            finally:
                np.random.set_state(numpy_state)


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


# ---- gradient methods ------------------------------------------------------------------------------
def _integrated_gradients(ctx: Context) -> Scores:
    from captum.attr import IntegratedGradients

    # On the word embeddings: the same path as layer IG on the embedding layer, without its two
    # extra passes that only capture that layer's output.
    method, tolerance, most = IntegratedGradients(ctx.forward), ctx.params["tolerance"], ctx.params["n_steps"]
    if not tolerance:
        return _path_integral(ctx, method, ctx.embeds.clone().requires_grad_())
    # Adaptive: Gauss-Legendre at 8 steps; while the convergence delta is above `tolerance` of
    # |p(input) - p(baseline)|, predict the steps that meet it (the delta taken to fall as 1/steps², slower
    # than Gauss-Legendre usually falls, so the guess errs high) and run once there; if that still misses,
    # or the guess is past half of n_steps, run n_steps: at most 8 + n_steps/2 + n_steps rows. Every attempt
    # is a whole IG, so the result equals fixed-step IG at the steps used, and meets the tolerance whenever
    # n_steps would.
    steps, tried, p_baseline = min(ADAPTIVE_FIRST_STEPS, most), 0, None
    while True:
        scores = _path_integral(ctx, method, ctx.embeds.clone().requires_grad_(), n_steps=steps, p_baseline=p_baseline)
        tried += steps
        p_baseline = scores.extras["p_baseline"]
        goal = tolerance * max(abs(ctx.target_prob - p_baseline), 1e-12)
        delta = scores.extras["convergence_delta"]
        if delta <= goal or steps >= most:
            scores.extras.update({"n_steps_used": steps, "n_steps_tried": tried})
            return scores
        predicted = max(steps + 1, math.ceil(ADAPTIVE_MARGIN * steps * math.sqrt(delta / goal)))
        # a second miss, or a guess past half of n_steps (a miss there would cost more than n_steps): n_steps
        steps = most if tried > steps or predicted > most // 2 else predicted


ADAPTIVE_FIRST_STEPS = 8
ADAPTIVE_MARGIN = 1.25  # predicted steps x this: one verifying attempt should be enough


def _path_integral(ctx: Context, method, inputs, n_steps: int | None = None, p_baseline: float | None = None) -> Scores:
    """Integrated-gradients-style methods from the baseline embeddings: batched steps, and the
    convergence delta sum(attributions) - (p(input) - p(baseline)). Captum's own delta would run
    the input and the baseline through the model again; p(input) is known, so only p(baseline) runs."""
    attributions = method.attribute(
        inputs,
        baselines=ctx.baseline_embeds,
        n_steps=n_steps or ctx.params["n_steps"],
        internal_batch_size=ctx.rows_per_batch,
    )
    if p_baseline is None:  # known from an earlier attempt of adaptive IG
        with torch.no_grad():
            p_baseline = float(ctx.forward(ctx.baseline_embeds)[0])
    delta = float(attributions.detach().double().sum()) - (ctx.target_prob - p_baseline)
    return Scores(ctx.per_token(attributions), extras={"convergence_delta": abs(delta), "p_baseline": p_baseline})


def _saliency(ctx: Context) -> Scores:
    from captum.attr import Saliency

    grads = Saliency(ctx.forward).attribute(ctx.embeds.clone().requires_grad_(), abs=True)
    return Scores(ctx.per_token(grads))


def _input_x_gradient(ctx: Context) -> Scores:
    from captum.attr import InputXGradient

    return Scores(ctx.per_token(InputXGradient(ctx.forward).attribute(ctx.embeds.clone().requires_grad_())))


def _gradient_x_activation(ctx: Context) -> Scores:
    from captum.attr import LayerGradientXActivation

    method = LayerGradientXActivation(ctx.forward, ctx.handle.block(ctx.params["layer"]))
    return Scores(ctx.per_token(method.attribute(ctx.embeds.clone().requires_grad_())))


class _EmbedsToScore(torch.nn.Module):
    """DeepLift needs an nn.Module from inputs to scores."""

    def __init__(self, ctx: Context):
        super().__init__()
        self.inner = ctx.handle.model
        self._ctx = ctx

    def forward(self, embeds):
        return self._ctx.forward(embeds)


def _deeplift(ctx: Context) -> Scores:
    from captum.attr import DeepLift

    with warnings.catch_warnings():  # Captum warns that it hooks the non-linearities: that is the method
        warnings.simplefilter("ignore", UserWarning)
        attributions, delta = DeepLift(_EmbedsToScore(ctx)).attribute(
            ctx.embeds.clone().requires_grad_(), baselines=ctx.baseline_embeds, return_convergence_delta=True
        )
    return Scores(ctx.per_token(attributions), extras={"convergence_delta": float(delta.abs().sum())})


def _gradient_shap(ctx: Context) -> Scores:
    """Captum's GradientShap (expected gradients), with its random draws made once, in Captum's own
    order, and the gradients taken in batches that fit the budget: the result depends on the seed
    only, not on the batch budget, the device's memory or an out-of-memory retry."""
    n, stdev = ctx.params["n_samples"], ctx.params["stdevs"]
    embeds = ctx.embeds
    baselines = torch.cat([ctx.baseline_embeds, torch.zeros_like(embeds)])
    with ctx.seeded():
        which = np.random.choice(len(baselines), n).tolist()
        spread = torch.tensor(stdev, device=embeds.device).repeat((n, *embeds.shape[1:]))
        noisy = embeds.repeat_interleave(n, dim=0) + torch.normal(0, spread)
        alpha = torch.tensor(np.random.uniform(0.0, 1.0, n), device=embeds.device, dtype=embeds.dtype)
    chosen = baselines[which]
    parts, step = [], ctx.rows_per_batch
    for k in range(0, n, step):
        x, b, a = noisy[k : k + step], chosen[k : k + step], alpha[k : k + step].view(-1, 1, 1)
        point = (a * x + (1.0 - a) * b).requires_grad_()
        (grads,) = torch.autograd.grad(ctx.forward(point).sum(), point)
        parts.append((x - b) * grads)
    return Scores(ctx.per_token(torch.cat(parts).mean(0, keepdim=True)))


def _layer_conductance(ctx: Context) -> Scores:
    from captum.attr import LayerConductance

    method = LayerConductance(ctx.forward, ctx.handle.block(ctx.params["layer"]))
    return _path_integral(ctx, method, ctx.embeds.clone().requires_grad_())


# ---- perturbation methods -------------------------------------------------------------------------
def occlusion_windows(n_tokens: int, window: int, stride: int) -> list[range]:
    """Captum's Occlusion windows along the tokens: starts 0, stride, ..., the last one reaching
    the end (cut short there when the stride does not divide the length)."""
    window = min(window, n_tokens)
    count = math.ceil((n_tokens - window) / stride) + 1
    return [range(k * stride, min(k * stride + window, n_tokens)) for k in range(count)]


def _occlusion(ctx: Context) -> Scores:
    """Captum's Occlusion with the baseline token, as one batched pass over all windows: each token's
    score is the mean drop p(x) - p(x with a window hidden) over the windows that cover it."""
    if ctx.params["stride"] > ctx.params["window"]:
        raise InputError(
            "Occlusion's stride must not exceed its window: the tokens between windows would never be hidden."
        )
    windows = occlusion_windows(ctx.enc.n_tokens, ctx.params["window"], ctx.params["stride"])
    baseline = ctx.baseline_ids[0].tolist()  # special tokens are their own baseline: never hidden
    sequences = []
    for covered in windows:
        ids = list(ctx.enc.ids)
        ids[covered.start : covered.stop] = baseline[covered.start : covered.stop]
        sequences.append(ids)
    drops = ctx.target_prob - ctx.handle.score_ids(sequences, ctx.target)
    total, count = np.zeros(ctx.enc.n_tokens), np.zeros(ctx.enc.n_tokens)
    for covered, drop in zip(windows, drops):
        total[covered.start : covered.stop] += drop
        count[covered.start : covered.stop] += 1
    scores = total / np.maximum(count, 1)
    scores[~ctx.content_mask.cpu().numpy()] = 0.0
    return Scores(scores)


def _leave_one_out(ctx: Context) -> Scores:
    from explainers.metrics.faithfulness import leave_one_out

    return Scores(leave_one_out(ctx.handle, ctx.enc, ctx.target, ctx.params["removal"]))


def _sampled_token_attribution(ctx: Context, captum_class) -> Scores:
    """Shapley sampling and Kernel SHAP: one feature per token, hidden = baseline embedding."""
    with ctx.seeded(), torch.no_grad():
        attributions = captum_class(ctx.forward).attribute(
            ctx.embeds,
            baselines=ctx.baseline_embeds,
            feature_mask=ctx.token_feature_mask(),
            n_samples=ctx.params["n_samples"],
            perturbations_per_eval=ctx.rows_per_batch,
        )
    return Scores(_feature_scores(ctx, attributions))


def _shapley_sampling(ctx: Context) -> Scores:
    from captum.attr import ShapleyValueSampling

    return _sampled_token_attribution(ctx, ShapleyValueSampling)


def _kernel_shap(ctx: Context) -> Scores:
    from captum.attr import KernelShap

    return _sampled_token_attribution(ctx, KernelShap)


def _feature_scores(ctx: Context, attributions: torch.Tensor) -> np.ndarray:
    """Feature-mask methods give every embedding dim of a token the token's whole score."""
    scores = attributions[0, :, 0].detach().float().cpu().numpy().astype(np.float64)
    scores[~ctx.content_mask.cpu().numpy()] = 0.0
    return scores


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
    # Only the text up to the last word the model reads: LIME copies its text into every sample
    # (a 1 MB text times 1000 samples), and words past the truncation would slide into view when
    # earlier words are deleted.
    read = enc.text[: enc.word_spans[-1][1]] if enc.word_spans else enc.text
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


# ---- attention -----------------------------------------------------------------------------------
def _attention(ctx: Context) -> Scores:
    attentions = ctx.prediction.attentions  # per layer (1, heads, T, T)
    layer = ctx.params["layer"]
    stack = torch.cat(attentions)  # (layers, heads, T, T)
    if not -len(attentions) <= layer < len(attentions):
        raise InputError(f"Layer {layer} does not exist: this model has layers 0..{len(attentions) - 1}.")
    chosen = stack.mean(0) if ctx.params["layers"] == "all" else stack[layer]
    head = ctx.params["head"]
    if head >= chosen.shape[0]:
        raise InputError(f"Head {head} does not exist: this model has heads 0..{chosen.shape[0] - 1}.")
    weights = chosen.mean(0) if head < 0 else chosen[head]
    row = weights[ctx.handle.prediction_position(ctx.enc)].numpy().astype(np.float64)
    row[~ctx.content_mask.cpu().numpy()] = 0.0
    return Scores(row, extras={"position": ctx.handle.prediction_position(ctx.enc)})


def attention_rollout(attentions: list[torch.Tensor], residual: float = 0.5) -> torch.Tensor:
    """Abnar & Zuidema (2020): mix in the residual stream, renormalise, multiply through layers."""
    length = attentions[0].shape[-1]
    eye = torch.eye(length)
    rollout = eye
    for layer in attentions:
        mixed = residual * eye + (1 - residual) * layer[0].mean(0)
        mixed = mixed / mixed.sum(-1, keepdim=True)
        rollout = mixed @ rollout
    return rollout


def _attention_rollout(ctx: Context) -> Scores:
    rollout = attention_rollout(ctx.prediction.attentions, ctx.params["residual"])
    row = rollout[ctx.handle.prediction_position(ctx.enc)].numpy().astype(np.float64)
    row[~ctx.content_mask.cpu().numpy()] = 0.0
    return Scores(row)


# ---- the registry ---------------------------------------------------------------------------------
def elsewhere(module: str, name: str) -> Callable:
    """A function of an engine module that imports this one (units.py, generation.py), looked up when
    first called: the registry names it without an import cycle."""

    def call(*args):
        return getattr(import_module(f"{__package__}.{module}"), name)(*args)

    call.__qualname__ = f"{module}.{name}"
    return call


def _per_token(function: str, cost: Callable[[int, int, dict], Cost]) -> dict:
    """The registry fields of a method that explains every generated token (generation.py's `function`)."""
    return {"per_output_token": elsewhere("generation", function), "per_output_token_cost": cost}


ATTENTION_CAVEAT = "Attention is a view of what the model looks at, not an explanation of why it decided."
_one_pass = lambda n, p: Cost(1, 1)  # noqa: E731

register(
    Method(
        "integrated_gradients",
        "Integrated Gradients",
        "gradient",
        "Averages gradients along a straight path from a baseline (mask tokens) to the input, "
        "times the input-baseline difference; scores add up to p(input) - p(baseline).",
        _integrated_gradients,
        lambda n, p: Cost(p["n_steps"], p["n_steps"]),
        (
            _steps(50, quick=16, thorough=100),
            BASELINE,
            Param(
                "tolerance",
                0.0,
                "float",
                "Adaptive steps: 0 = exactly n_steps; above 0, try 8 steps, then the steps their convergence delta "
                "predicts for this share of |p(input) - p(baseline)|, then n_steps (the most) if still above it.",
                0.0,
                0.5,
            ),
        ),
        needs_gradients=True,
        diagnostics=(CONVERGENCE_DELTA,),
        **_per_token("per_token_integrated_gradients", lambda i, g, p: Cost(p["n_steps"] + 2, p["n_steps"] * g)),
    )
)
register(
    Method(
        "saliency",
        "Saliency",
        "gradient",
        "Size of the gradient of the target probability for each token: how sensitive the output is "
        "to that token. Unsigned.",
        _saliency,
        _one_pass,
        needs_gradients=True,
        signed=False,
        scores_note="A token's score is the L1 norm of the gradient over its embedding dimensions.",
        **_per_token("per_token_saliency", lambda i, g, p: Cost(2, g)),
    )
)
register(
    Method(
        "input_x_gradient",
        "Input × Gradient",
        "gradient",
        "Gradient times the token's embedding: a first-order estimate of each token's contribution.",
        _input_x_gradient,
        _one_pass,
        needs_gradients=True,
        **_per_token("per_token_input_x_gradient", lambda i, g, p: Cost(2, g)),
    )
)
register(
    Method(
        "gradient_x_activation",
        "Gradient × Activation",
        "gradient",
        "Gradient times activation at the output of one transformer block, per token position.",
        _gradient_x_activation,
        _one_pass,
        (LAYER,),
        needs_gradients=True,
        hooks_model=True,
    )
)
register(
    Method(
        "deeplift",
        "DeepLift",
        "gradient",
        "Compares each neuron's activation to its activation on the baseline and propagates the "
        "differences back with DeepLift's rules.",
        _deeplift,
        lambda n, p: Cost(2, 1),
        (BASELINE,),
        needs_gradients=True,
        hooks_model=True,
        diagnostics=(CONVERGENCE_DELTA,),
        experimental="DeepLift's rules cover ReLU-style layers; transformers' softmax, GELU and layer norm "
        "fall back to plain gradients, so scores can break completeness.",
    )
)
register(
    Method(
        "gradient_shap",
        "Gradient SHAP",
        "gradient",
        "Expected gradients: for random points on the path from a baseline (mask tokens or zero embeddings) "
        "to a slightly noisy input, the gradient times (input − baseline), averaged over the samples.",
        _gradient_shap,
        lambda n, p: Cost(p["n_samples"], p["n_samples"]),
        (
            _samples(25, quick=10, thorough=100, high=500),
            Param("stdevs", 0.01, "float", "Noise added to the input embeddings.", 0.0, 1.0),
            BASELINE,
        ),
        needs_gradients=True,
        random=True,
    )
)
register(
    Method(
        "layer_conductance",
        "Layer Conductance",
        "gradient",
        "Integrated Gradients flowing through one transformer block's output: how much each position "
        "at that layer carries the decision.",
        _layer_conductance,
        lambda n, p: Cost(p["n_steps"] + 1, p["n_steps"]),
        (LAYER, _steps(20, quick=8, thorough=50), BASELINE),
        needs_gradients=True,
        hooks_model=True,
        diagnostics=(CONVERGENCE_DELTA,),
    )
)
register(
    Method(
        "occlusion",
        "Occlusion",
        "perturbation",
        "Slides a window over the text, replaces the tokens under it with the baseline token and "
        "records how much the target probability drops; a token's score is the mean drop over the "
        "windows that cover it.",
        _occlusion,
        lambda n, p: Cost(len(occlusion_windows(n, p["window"], p["stride"]))),
        (
            Param("window", None, "int", "Tokens hidden at once. " + length_rule("occlusion", "window"), 1, 32),
            Param("stride", 1, "int", "Step between windows.", 1, 32),
            BASELINE,
        ),
        unit_features=elsewhere("units", "unit_occlusion"),
        **_per_token(
            "per_token_occlusion", lambda i, g, p: Cost(len(occlusion_windows(i, p["window"], p["stride"])) + 1)
        ),
    )
)
register(
    Method(
        "leave_one_out",
        "Leave-one-out",
        "perturbation",
        "Removes each token in turn: score = p(text) - p(text without the token).",
        _leave_one_out,
        lambda n, p: Cost(n + 1),
        (
            Param(
                "removal",
                "delete",
                "choice",
                "Delete each token, or replace it with the baseline (mask) token.",
                choices=("delete", "mask"),
            ),
        ),
        unit_features=elsewhere("units", "unit_leave_one_out"),
        **_per_token("per_token_leave_one_out", lambda i, g, p: Cost(i + 1)),
    )
)
register(
    Method(
        "shapley_sampling",
        "Shapley Value Sampling",
        "perturbation",
        "Estimates Shapley values: each token's average marginal effect over random orders in which "
        "tokens are revealed (hidden = baseline token).",
        _shapley_sampling,
        lambda n, p: Cost(p["n_samples"] * n + 1),
        (_samples(10, quick=4, thorough=25, high=200), BASELINE),
        random=True,
        unit_features=elsewhere("units", "unit_shapley_sampling"),
    )
)
register(
    Method(
        "kernel_shap",
        "Kernel SHAP",
        "perturbation",
        "Fits a weighted linear model on random subsets of tokens (hidden = baseline token) whose "
        "weights approximate Shapley values.",
        _kernel_shap,
        lambda n, p: Cost(p["n_samples"]),
        (_samples(200, quick=80, thorough=500), BASELINE),
        random=True,
        unit_features=elsewhere("units", "unit_kernel_shap"),
    )
)
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
        unit_features=elsewhere("units", "unit_lime"),
    )
)
register(
    Method(
        "attention",
        "Attention weights",
        "attention",
        "Attention paid by the prediction position ([CLS] or last token) to each token, for one layer "
        "and head or averaged. Unsigned and blind to the target.",
        _attention,
        lambda n, p: Cost(1),
        (
            Param("layer", -1, "int", "Layer (-1 = last).", -48, 47),
            Param("layers", "one", "choice", "'all' averages every layer and ignores 'layer'.", choices=("one", "all")),
            Param("head", -1, "int", "Head (-1 = mean of heads).", -1, 127),
        ),
        signed=False,
        needs_attention=True,
        caveat=ATTENTION_CAVEAT,
        **_per_token("per_token_attention", lambda i, g, p: Cost(2)),
    )
)
register(
    Method(
        "attention_rollout",
        "Attention rollout",
        "attention",
        "Abnar & Zuidema (2020): multiplies head-averaged attention through the layers, counting the "
        "residual connection, to trace how much each token reaches the prediction position.",
        _attention_rollout,
        lambda n, p: Cost(1),
        (Param("residual", 0.5, "float", "Weight of the residual (identity) path.", 0.0, 1.0),),
        signed=False,
        needs_attention=True,
        caveat=ATTENTION_CAVEAT,
        **_per_token("per_token_rollout", lambda i, g, p: Cost(2)),
    )
)

DEFAULT_METHODS = ("integrated_gradients", "lime", "occlusion", "attention")


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
    if scaled_down:  # said on the page and in the CLI
        scores.extras["scaled_down"] = scaled_down
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
