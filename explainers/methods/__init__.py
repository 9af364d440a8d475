"""Attribution methods: one module per family, each method's function and its registration together.

Every function receives a `Context` (the handle, the encoded text, the target, validated parameters)
and returns `Scores`. Gradient methods run on word embeddings (the model adds positions itself);
perturbation methods batch their perturbations through the model (Captum's
`perturbations_per_eval` / `internal_batch_size`, LIME's `classifier_fn` receives all samples at once).

Importing this package registers every method; `explain` is the one entry point.
"""

from explainers.methods import attention, gradient, lime, perturbation  # noqa: F401  (each registers its methods)
from explainers.methods.attention import attention_rollout
from explainers.methods.context import Context
from explainers.methods.explain import explain
from explainers.methods.gradient import ADAPTIVE_FIRST_STEPS, ADAPTIVE_MARGIN
from explainers.methods.perturbation import occlusion_windows
from explainers.methods.registry import (
    BASELINE_RULE,
    CONVERGENCE_DELTA,
    DEFAULT_METHODS,
    FAMILIES,
    METHODS,
    PRESETS,
    SEED_RULE,
    Cost,
    Method,
    Param,
    Scores,
    budgeted_params,
    estimated_seconds,
    get_method,
    preset_params,
)

__all__ = [
    "ADAPTIVE_FIRST_STEPS",
    "ADAPTIVE_MARGIN",
    "BASELINE_RULE",
    "CONVERGENCE_DELTA",
    "DEFAULT_METHODS",
    "FAMILIES",
    "METHODS",
    "PRESETS",
    "SEED_RULE",
    "Context",
    "Cost",
    "Method",
    "Param",
    "Scores",
    "attention_rollout",
    "budgeted_params",
    "estimated_seconds",
    "explain",
    "get_method",
    "occlusion_windows",
    "preset_params",
]
