"""Task adapters: everything that differs between a text classifier and a causal language model.

Which head a checkpoint has, its labels, what a target is and how the user names it, which positions
of a row are scored, how rows are assembled (a causal LM's continuation is teacher-forced), the
target's score from the logits, the predicted distribution and LIME's class view. The rest of whybox
asks the handle's task and never compares a task name. A new kind of task is one class here (plus its
tests) added to TASKS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch

from explainers.errors import InputError, ModelLoadError
from explainers.models.text import Encoded


@dataclass(frozen=True)
class Target:
    """What is explained: a class of a classifier, or a continuation of a causal LM's prompt.

    `leading_space` records that whybox put a space before a continuation the user typed without one
    ("Paris" after "The capital of France is" is scored as " Paris").

    `contrast` makes the question "why this rather than that": the score becomes a difference,
    p(A) − p(B) for a classifier, log p(A) − log p(B) for a causal LM's continuations (see the task's
    `contrast_score`). Every method and metric scores targets through the task, so all of them take it."""

    label: str
    class_index: int | None = None
    token_ids: tuple[int, ...] = ()
    leading_space: bool = False
    contrast: Target | None = None

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "class_index": self.class_index,
            "token_ids": list(self.token_ids),
            "leading_space": self.leading_space,
            "contrast": self.contrast.to_dict() if self.contrast else None,
        }

    @property
    def plain(self) -> Target:
        """This target without its contrast."""
        return replace(self, contrast=None)

    @classmethod
    def from_dict(cls, d: dict) -> Target:
        contrast = cls.from_dict(d["contrast"]) if d.get("contrast") else None
        return cls(
            d["label"], d.get("class_index"), tuple(d.get("token_ids", ())), bool(d.get("leading_space")), contrast
        )


class Task:
    """The base of the task adapters; one instance per loaded model."""

    name: ClassVar[str]
    title: ClassVar[str]  # shown to people: "Classifier"
    target_title: ClassVar[str]  # "Explained label"
    target_noun: ClassVar[str]  # "label", "continuation"
    target_help: ClassVar[str]  # what choosing a target means, for the sidebar
    free_text_target: ClassVar[bool]  # True: the user types the target; False: picks one of `labels`
    scores_positions: ClassVar[bool]  # True: a row is scored at chosen positions (LM), not once (classifier)
    generates: ClassVar[bool] = False  # True: the model can write text (drafts, continuations)
    architecture_suffixes: ClassVar[tuple[str, ...]]

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer

    # ---- checkpoints ------------------------------------------------------------------------
    @classmethod
    def head_mapping(cls) -> dict:
        """transformers' model_type -> class names that have this task's head."""
        raise NotImplementedError

    @classmethod
    def auto_model(cls):
        raise NotImplementedError

    @classmethod
    def detects(cls, config) -> bool:
        return any(a.endswith(cls.architecture_suffixes) for a in getattr(config, "architectures", None) or [])

    # ---- what the model says ----------------------------------------------------------------
    labels: list[str] = []

    def describe(self) -> str:
        raise NotImplementedError

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """The output distribution of a one-text forward pass (its logits, read at `logit_positions`)."""
        return torch.softmax(logits[0].float().reshape(-1, logits.shape[-1])[-1], dim=-1)

    def distribution(self, probs: np.ndarray, top_k: int = 5) -> dict[str, float]:
        raise NotImplementedError

    def predicted_target(self, probs: np.ndarray) -> Target:
        raise NotImplementedError

    def resolve_target(self, enc: Encoded, target: str | int) -> Target:
        raise NotImplementedError

    def target_probability_from(self, probs: np.ndarray, target: Target) -> float | None:
        """p(target) read off the one-pass distribution, or None when it needs its own pass."""
        raise NotImplementedError

    def display(self, target: Target) -> str:
        shown = self._display_one(target)
        return f"{shown} rather than {self._display_one(target.contrast)}" if target.contrast else shown

    def _display_one(self, target: Target) -> str:
        return target.label

    # ---- contrastive targets -------------------------------------------------------------------
    contrast_formula: ClassVar[str] = ""  # what a contrastive target's score is, for people ("" = none)

    def score_name(self, target: Target) -> str:
        """What a target's score is: "p", or the contrast's formula (log p(A) − log p(B) is no probability)."""
        return self.contrast_formula if target.contrast else "p"

    def plain_formula(self, target: Target) -> str:
        """What a target's score is without a contrast."""
        return "p(A)"

    def target_scale(self, target: Target, value: float) -> dict:
        """The scale of `value`, a score of `target` (an explanation's target_prob, IG's p_baseline, the
        metrics' p(x)): its formula, what A and B are, and one line that says it all, for the JSON and the CLI."""
        names = f"A={target.label!r}" + (f", B={target.contrast.label!r}" if target.contrast else "")
        formula = self.contrast_formula if target.contrast else self.plain_formula(target)
        return {
            "formula": formula,
            "A": target.label,
            "B": target.contrast.label if target.contrast else None,
            "probability": not target.contrast,  # a contrast is a difference, not a probability
            "line": f"{formula} = {value:.3f} ({names})",
        }

    def with_contrast(self, target: Target, contrast: Target) -> Target:
        if contrast.plain == target.plain:
            raise InputError(f"The contrast must differ from the target ({self._display_one(target)}).")
        return replace(target, contrast=contrast.plain)

    def row_targets(self, target: Target | None) -> list[Target | None]:
        """The targets a row is scored for in separate passes; their scores meet in `contrast_score`."""
        return [target]

    def contrast_score(self, scores: list[np.ndarray], target: Target | None = None):
        raise NotImplementedError

    def refine_prediction(self, prediction, ids: list[int], gateway):
        """The one-pass prediction as this task reports it (a prompt classifier scores its label words)."""
        return prediction

    def frame(self, text: str) -> tuple[str, tuple[int, int]] | None:
        """The text as the model reads it and the span of the user's text in it (a prompt template);
        None: the text as it is."""
        return None

    # ---- rows --------------------------------------------------------------------------------
    def prediction_position(self, enc: Encoded) -> int:
        """Where the model reads its answer (what attention views look from)."""
        return enc.n_tokens - 1

    def appended(self, target: Target | None) -> list[int]:
        """Tokens appended to every row (teacher forcing); none for a classifier."""
        return []

    def scored_positions(self, lengths: Sequence[int], target: Target | None) -> torch.Tensor | None:
        """(B, k) positions whose logits score the target, per row of these prompt lengths; None when
        the head gives one answer per row."""
        return None

    def target_scores(self, logits: torch.Tensor, target: Target | None) -> torch.Tensor:
        """(B,) the target's probability from the logits at the scored positions."""
        raise NotImplementedError

    def lime_view(self, target: Target) -> tuple[int, list[str]]:
        """(class index, class names) of the black-box view that LIME explains."""
        raise NotImplementedError

    def class_probabilities(self, scores: np.ndarray) -> np.ndarray:
        """(N, C) black-box class probabilities from the scores of `target` (or of every class)."""
        raise NotImplementedError

    def target_for_class_view(self, target: Target | None) -> Target | None:
        """The target the black-box view scores rows for (None: every class at once)."""
        return target


class ClassificationTask(Task):
    name = "classification"
    title = "Classifier"
    target_title = "Explained label"
    target_noun = "label"
    target_help = "Which class the attributions are computed for."
    free_text_target = False
    scores_positions = False
    architecture_suffixes = ("ForSequenceClassification",)

    def __init__(self, model, tokenizer):
        super().__init__(model, tokenizer)
        config = model.config
        self.labels = [str(config.id2label.get(i, f"LABEL_{i}")) for i in range(config.num_labels)]

    @classmethod
    def head_mapping(cls) -> dict:
        from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

        return MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    @classmethod
    def auto_model(cls):
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def describe(self) -> str:
        return "Classifier · labels: " + ", ".join(self.labels)

    def distribution(self, probs: np.ndarray, top_k: int = 5) -> dict[str, float]:
        return {label: float(p) for label, p in zip(self.labels, probs)}

    def predicted_target(self, probs: np.ndarray) -> Target:
        k = int(np.argmax(probs))
        return Target(self.labels[k], class_index=k)

    def resolve_target(self, enc: Encoded, target: str | int) -> Target:
        if isinstance(target, int) or (isinstance(target, str) and target.strip().lstrip("-").isdigit()):
            k = int(target)
            if not 0 <= k < len(self.labels):
                raise InputError(f"Target {k} is out of range: labels are {self._label_list()}.")
            return Target(self.labels[k], class_index=k)
        lowered = [label.lower() for label in self.labels]
        if str(target).strip().lower() not in lowered:
            raise InputError(f"Unknown label '{target}': this model's labels are {self._label_list()}.")
        k = lowered.index(str(target).strip().lower())
        return Target(self.labels[k], class_index=k)

    def _label_list(self) -> str:
        return ", ".join(f"{i}={label}" for i, label in enumerate(self.labels))

    contrast_formula = "p(A) − p(B)"

    def target_probability_from(self, probs: np.ndarray, target: Target) -> float:
        other = float(probs[target.contrast.class_index]) if target.contrast else 0.0
        return float(probs[target.class_index]) - other

    def prediction_position(self, enc: Encoded) -> int:
        """The [CLS]-like first token of encoders, else the last token."""
        cls_id = self.tokenizer.cls_token_id
        return 0 if cls_id is not None and enc.ids and enc.ids[0] == cls_id else enc.n_tokens - 1

    def target_scores(self, logits: torch.Tensor, target: Target | None) -> torch.Tensor:
        probs = torch.softmax(logits.float(), dim=-1)
        if target is None:
            return probs
        other = probs[:, target.contrast.class_index] if target.contrast else 0.0
        return probs[:, target.class_index] - other

    def lime_view(self, target: Target) -> tuple[int, list[str]]:
        if target.contrast:
            return 1, ["other", self.display(target)]
        return target.class_index, list(self.labels)

    def target_for_class_view(self, target: Target | None) -> Target | None:
        return target if target is not None and target.contrast else None  # one pass scores every class

    def class_probabilities(self, scores: np.ndarray) -> np.ndarray:
        return scores if scores.ndim == 2 else np.stack([1 - scores, scores], axis=1)


class CausalLMTask(Task):
    name = "causal_lm"
    title = "Causal language model"
    target_title = "Explained continuation"
    target_noun = "continuation"
    target_help = (
        "The text whose probability after your prompt is explained, e.g. ' Paris'. A continuation "
        "typed without a leading space gets one; a multi-token continuation is scored as the product "
        "of its tokens' probabilities, each given the prompt and the tokens before it."
    )
    free_text_target = True
    scores_positions = True
    generates = True
    architecture_suffixes = ("ForCausalLM", "LMHeadModel")

    @classmethod
    def head_mapping(cls) -> dict:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        return MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    @classmethod
    def auto_model(cls):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def describe(self) -> str:
        return "Causal language model · explains the next token (or a continuation you name)"

    def distribution(self, probs: np.ndarray, top_k: int = 5) -> dict[str, float]:
        top = np.argsort(-probs, kind="stable")[:top_k]
        return {self.tokenizer.decode([int(i)]): float(probs[i]) for i in top}

    def predicted_target(self, probs: np.ndarray) -> Target:
        k = int(np.argmax(probs))
        return Target(self.tokenizer.decode([k]), token_ids=(k,))

    def resolve_target(self, enc: Encoded, target: str | int) -> Target:
        target = str(target)
        # "The capital of France is" + "Paris" means " Paris": the continuation follows a space.
        spaced = not enc.text[-1:].isspace() and not target[:1].isspace()
        if spaced:
            target = " " + target
        token_ids = tuple(self.tokenizer(target, add_special_tokens=False)["input_ids"])
        if not token_ids:
            raise InputError("The target continuation has no tokens.")
        return Target(target, token_ids=token_ids, leading_space=spaced)

    contrast_formula = "log p(A) − log p(B)"

    def plain_formula(self, target: Target) -> str:
        # several tokens: teacher forced, the product of each token's p given the prompt and the tokens before
        return "p(A)" if target.n_tokens <= 1 else "p(A) = Π p(token | prompt, tokens before it)"

    def target_probability_from(self, probs: np.ndarray, target: Target) -> float | None:
        if target.contrast:
            if max(target.n_tokens, target.contrast.n_tokens) > 1:
                return None
            return float(self.contrast_score([probs[target.token_ids[0]], probs[target.contrast.token_ids[0]]]))
        return float(probs[target.token_ids[0]]) if target.n_tokens == 1 else None

    def _display_one(self, target: Target) -> str:
        return repr(target.label)

    def row_targets(self, target: Target | None) -> list[Target | None]:
        # two continuations differ in their teacher-forced tokens: each needs its own rows
        return [target.plain, target.contrast] if target is not None and target.contrast else [target]

    def contrast_score(self, scores, target: Target | None = None):
        a, b = scores
        if isinstance(a, torch.Tensor):
            return torch.log(a) - torch.log(b)
        return np.log(np.asarray(a, dtype=np.float64)) - np.log(np.asarray(b, dtype=np.float64))

    def appended(self, target: Target | None) -> list[int]:
        return list(target.token_ids[:-1]) if target else []

    def scored_positions(self, lengths: Sequence[int], target: Target | None) -> torch.Tensor:
        k = target.n_tokens if target else 1
        starts = torch.tensor([n - 1 for n in lengths])
        return starts[:, None] + torch.arange(k)[None, :]

    def target_scores(self, logits: torch.Tensor, target: Target | None) -> torch.Tensor:
        # p(continuation | prompt) = prod_j p(t_j | prompt, t_<j); logits are (B, k, V) at the scored positions
        logp = torch.log_softmax(logits.float(), dim=-1)
        ids = torch.tensor(target.token_ids, device=logits.device)
        return logp[:, torch.arange(len(ids)), ids].sum(-1).exp()

    def lime_view(self, target: Target) -> tuple[int, list[str]]:
        return 1, ["other", target.label]

    def class_probabilities(self, scores: np.ndarray) -> np.ndarray:
        return np.stack([1 - scores, scores], axis=1)


TASKS: dict[str, type[Task]] = {task.name: task for task in (ClassificationTask, CausalLMTask)}


def task_class(name: str | None, config) -> type[Task]:
    """The task named, else the one the checkpoint's architectures declare; a clear error otherwise."""
    model_type = getattr(config, "model_type", "?")
    archs = ", ".join(getattr(config, "architectures", None) or []) or "none listed"
    if not any(model_type in task.head_mapping() for task in TASKS.values()):
        raise ModelLoadError(
            f"This is a '{model_type}' model (architectures: {archs}), not a text classifier or causal "
            "language model that whybox can explain."
        )
    if name is not None:
        if name not in TASKS:
            raise ModelLoadError(f"Unknown task '{name}': use one of {', '.join(TASKS)}.")
        chosen = TASKS[name]
    else:
        found = [task for task in TASKS.values() if task.detects(config)]
        if not found:
            raise ModelLoadError(
                f"This checkpoint has no classification or language-model head (architectures: {archs}). "
                "Use a ...ForSequenceClassification or ...ForCausalLM checkpoint, or pass task explicitly."
            )
        chosen = found[0]
    if model_type not in chosen.head_mapping():
        raise ModelLoadError(f"'{model_type}' models have no {chosen.name} head in transformers.")
    return chosen
