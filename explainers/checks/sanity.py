"""The model-randomisation sanity check (Adebayo et al. 2018, "Sanity checks for saliency maps"): how much
each method's map changes when the model's weights are re-initialised layer by layer, cascading from the
output (the head, then the last block, ... down to the embeddings). A map that stays the same while the
model under it is destroyed does not explain the model.

The randomised weights live in a private copy of the model, never in the loaded handle: other users of the
handle keep running on the trained weights while the check runs (restoring in place would need the model
locked for the whole check, and an interruption between randomising and restoring would leave it broken).
The copy costs one model's memory for the duration of the check.

Re-initialisation follows the models' own scheme: weight matrices (and embedding tables) drawn from
N(0, initializer_range²) (0.02 when the config has none), biases 0, normalisation layers reset to the
identity (weight 1, bias 0). One torch generator, seeded with `seed`, draws every matrix on the CPU, in
cascade order and then `named_parameters` order, so a seed gives the same weights on any device.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from explainers.errors import InputError, InternalError
from explainers.explanation import Explanation
from explainers.inference.gateway import checkpoint
from explainers.methods import explain, get_method
from explainers.metrics.similarity import SIMILARITIES, describe
from explainers.models import architecture
from explainers.models.handle import ModelHandle

SANITY_MEASURES = ("spearman_abs", "spearman", "top_k")
INSENSITIVE = 0.9  # a map still this similar to its original after every step did not follow the model
DEFAULT_STD = 0.02
READING = (
    "A method whose map does not change when the model's weights are randomised is not explaining the model "
    "(Adebayo et al. 2018): its similarity to the original map should fall as more layers are randomised. "
    "Near 1 all the way down: the map shows the input (or the method), not what the model learned."
)
RANDOMISATION = (
    "Cascading re-initialisation from the output down, on a copy of the model (the loaded model is untouched): "
    "weight matrices ~ N(0, σ²) with the config's initializer_range σ, biases 0, normalisation layers reset "
    "to the identity; the explained target stays the original one. Maps compared over the content tokens."
)


@dataclass
class SanityResult:
    """The maps' similarity to the original after each step of the cascade, as far as it has got."""

    model: str
    text: str
    target: str
    seed: int
    methods: list[str]
    titles: list[str]
    measures: list[str]
    originals: list[Explanation]
    original_target_prob: float
    planned: list[str]  # every layer group the check randomises, in cascade order
    layers: list[str] = field(default_factory=list)  # the groups randomised so far
    target_probs: list[float] = field(default_factory=list)  # p(target) of the model after each step
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # method -> measure -> per step

    @property
    def complete(self) -> bool:
        return len(self.layers) == len(self.planned)

    def insensitive(self, measure: str = SANITY_MEASURES[0]) -> list[str]:
        """The methods whose map stayed at least INSENSITIVE-similar to the original at every step so far."""
        # an undefined value (the map became constant) is a change, not a pass
        return [m for m in self.methods if self.layers and all(v >= INSENSITIVE for v in self.values[m][measure])]

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "text": self.text,
            "target": self.target,
            "seed": self.seed,
            "methods": [{"name": m, "title": t} for m, t in zip(self.methods, self.titles)],
            "measures": describe(self.measures),
            "randomised_layers": self.layers,
            "planned_layers": self.planned,
            "complete": self.complete,
            "original_target_prob": self.original_target_prob,
            "target_probs": self.target_probs,
            "values": self.values,
            "randomisation": RANDOMISATION,
            "reading": READING,
            "insensitive": {m: self.insensitive(m) for m in self.measures},
            "insensitive_threshold": INSENSITIVE,
        }


def randomisable_copy(handle: ModelHandle) -> ModelHandle:
    """A handle on a private copy of the model (same tokenizer, task and gateway settings). An output layer
    tied to the input embeddings is untied in the copy, so that the head and the embeddings are randomised
    at their own steps."""
    with handle.gateway.lock:  # never copy a model mid-way through another thread's attention switch
        model = copy.deepcopy(handle.model)
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    if outputs is not None and inputs is not None and outputs.weight is inputs.weight:
        outputs.weight = torch.nn.Parameter(outputs.weight.detach().clone(), requires_grad=False)
    task = copy.copy(handle.task)
    task.model = model
    twin = ModelHandle(handle.name, model, handle.tokenizer, task, handle.device, handle.max_tokens)
    twin.gateway.token_budget = handle.gateway.token_budget
    twin.gateway.precision = handle.gateway.precision
    return twin


def reinitialise(model: torch.nn.Module, names: list[str], generator: torch.Generator) -> None:
    """Re-initialise the named parameters in place (the rule in the module doc)."""
    std = float(getattr(model.config.get_text_config(), "initializer_range", None) or DEFAULT_STD)
    with torch.no_grad():
        for name in names:
            owner, _, kind = name.rpartition(".")
            param = model.get_parameter(name)
            if "norm" in type(model.get_submodule(owner)).__name__.lower():
                param.fill_(1.0 if kind == "weight" else 0.0)
            elif param.ndim >= 2:
                param.copy_(torch.randn(param.shape, generator=generator, dtype=torch.float32) * std)
            else:
                param.zero_()


def sanity_check(
    handle: ModelHandle,
    text: str,
    methods: list[str],
    *,
    target: str | int | None = None,
    contrast: str | int | None = None,
    seed: int = 0,
    params: dict[str, dict] | None = None,
    chat: bool = False,
    measures: tuple[str, ...] = SANITY_MEASURES,
    on_step: Callable[[SanityResult], None] | None = None,
) -> SanityResult:
    """Explain `text` with each method on the trained model, then on a copy randomised one more layer group
    at a time (cascading from the head down); after each step, compare each map with its original.
    `on_step(result)` sees the result after every step (for a live chart); model work reports to and stops
    through the gateway's `watching` like any other run."""
    if not methods:
        raise InputError("Choose at least one method for the sanity check.")
    params = params or {}
    for method in methods:
        get_method(method).validate(params.get(method, {}))  # bad input before the slow copy
    handle.encode(text, chat=chat)
    twin = randomisable_copy(handle)
    groups = architecture.cascade_groups(twin.model, twin.blocks)

    def run(method: str) -> Explanation:
        return explain(
            twin, text, method, target=target, contrast=contrast, seed=seed, chat=chat, **params.get(method, {})
        )

    originals = [run(m) for m in methods]
    first = originals[0].target
    if target is None or target == "":
        # the explained target stays the trained model's prediction, whatever the randomised one predicts
        # (a token id, not its text: a decoded token need not tokenize back to itself)
        pinned = first.plain
        twin.task.predicted_target = lambda _probs: pinned
    content = np.array(originals[0].encoded.content_positions)
    result = SanityResult(
        handle.name,
        text,
        first.label,
        seed,
        list(methods),
        [e.title for e in originals],
        list(measures),
        originals,
        originals[0].target_prob,
        [name for name, _ in groups],
        values={m: {s: [] for s in measures} for m in methods},
    )
    generator = torch.Generator().manual_seed(seed)
    for name, names in groups:
        checkpoint()
        reinitialise(twin.model, names, generator)
        for method, original in zip(methods, originals):
            randomised = run(method)
            if randomised.target != original.target:
                raise InternalError.from_exception(
                    RuntimeError(f"target {randomised.target} is not the original {original.target}"),
                    "keeping the explained target through the sanity check",
                )
            a, b = original.scores("token")[content], randomised.scores("token")[content]
            for measure in measures:
                result.values[method][measure].append(SIMILARITIES[measure](a, b))
        result.layers.append(name)
        result.target_probs.append(randomised.target_prob)
        if on_step is not None:
            on_step(result)
    return result
