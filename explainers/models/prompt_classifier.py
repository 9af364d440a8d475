"""A causal language model used as a classifier: a prompt template with a `{text}` slot plus label words.

The label probabilities are read where the model would write its answer: each label word (several
surface forms per label, with and without a leading space) is scored as a continuation of the filled
template (multi-token forms teacher-forced), summed per label and renormalised over the labels. The
**label mass** (the share of the model's probability on the offered forms) says whether the prompt fits:
a low mass means the model wanted to answer something else.

Contextual calibration (Zhao et al. 2021) divides the renormalised probabilities by those of a
content-free input ("N/A") and renormalises again. The explained score is the **log-odds** of label A
against B (or against all other labels): renormalising divides every label by the same number and
diagonal calibration multiplies each label by a constant, so log p(A) − log p(B) only moves by a
constant. Every difference-based attribution (occlusion, Shapley, LIME's weights, the ERASER metrics)
and every gradient is therefore identical with and without calibration (tests check it); only the
probabilities shown change. Against the rest with three or more labels this no longer holds exactly.

Only the `{text}` slot is the user's: the template's tokens are kept and marked special, like a chat
template's, so nothing perturbs or scores the instruction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from explainers.errors import InputError
from explainers.models.tasks import CausalLMTask, Target
from explainers.models.text import Encoded

SLOT = "{text}"
CONTENT_FREE = "N/A"  # Zhao et al.'s content-free input for contextual calibration
_BUNDLE = -1  # class_index of the row target reading every single-token form at the answer position


@dataclass(frozen=True)
class PromptSpec:
    """What turns a causal LM into a classifier. `labels`: one entry per label, its surface forms
    separated by '|' ("positive|great"); each form is scored with and without a leading space."""

    template: str
    labels: tuple[str, ...]
    calibrate: bool = False

    @classmethod
    def parse(cls, template: str, labels: str | list[str] | tuple[str, ...], calibrate: bool = False) -> PromptSpec:
        if isinstance(labels, str):
            labels = [part for part in labels.split(",")]
        labels = tuple(str(label).strip() for label in labels)
        spec = cls(str(template or ""), labels, bool(calibrate))
        spec.check()
        return spec

    def check(self) -> None:
        if self.template.count(SLOT) != 1:
            found = "no" if SLOT not in self.template else "more than one"
            raise InputError(f"The template has {found} {SLOT} slot: write it once where the text goes.")
        if len(self.labels) < 2 or any(not label.strip("| ") for label in self.labels):
            raise InputError("Give at least two non-empty labels, separated by commas (e.g. positive,negative).")
        names = [self.name_of(label).lower() for label in self.labels]
        if len(set(names)) != len(names):
            raise InputError(f"The labels are not distinct: {', '.join(self.labels)}.")

    @staticmethod
    def name_of(label: str) -> str:
        return label.split("|")[0].strip()

    def fill(self, text: str) -> tuple[str, tuple[int, int]]:
        """The template with `text` in its slot, and the character span of the text (no str.format:
        braces in the text or the template stay as they are)."""
        start = self.template.index(SLOT)
        return self.template[:start] + text + self.template[start + len(SLOT) :], (start, start + len(text))


class PromptClassifierTask(CausalLMTask):
    name = "prompt_classifier"
    title = "Language model as a classifier"
    target_title = "Explained label"
    target_noun = "label"
    target_help = (
        "The label whose log-odds are explained: against the other label (two labels) or against all the "
        "others. Calibration does not change these attributions, only the probabilities shown."
    )
    free_text_target = False
    scores_positions = True
    generates = False
    contrast_formula = "log p(A) − log p(B)"

    def __init__(self, model, tokenizer, spec: PromptSpec):
        super().__init__(model, tokenizer)
        spec.check()
        self.spec = spec
        self.labels = [spec.name_of(label) for label in spec.labels]
        self.forms: list[tuple[str, tuple[int, ...], int]] = []  # (surface form, token ids, label index)
        owner: dict[tuple[int, ...], int] = {}
        for k, label in enumerate(spec.labels):
            for word in dict.fromkeys(w.strip() for w in label.split("|") if w.strip()):
                for form in (word, " " + word):
                    ids = tuple(tokenizer(form, add_special_tokens=False)["input_ids"])
                    if not ids or owner.get(ids) == k:
                        continue
                    if ids in owner:
                        raise InputError(
                            f"The label words are not distinct: {form!r} reads as the same tokens for "
                            f"'{self.labels[owner[ids]]}' and '{self.labels[k]}'."
                        )
                    owner[ids] = k
                    self.forms.append((form, ids, k))
        single = [(ids[0], k) for _, ids, k in self.forms if len(ids) == 1]
        multi = [(form, ids, k) for form, ids, k in self.forms if len(ids) > 1]
        # one pass reads every one-token form at the answer position; each longer form needs its own rows
        self.parts: list[Target] = []
        self.part_labels: list[int] = []
        if single:
            ids = tuple(i for i, _ in single)
            self.parts.append(Target("one-token label forms", class_index=_BUNDLE, token_ids=ids))
            self.part_labels += [k for _, k in single]
        for form, ids, k in multi:
            self.parts.append(Target(form, token_ids=ids))
            self.part_labels.append(k)
        self.calibration: np.ndarray | None = None  # renormalised label probabilities of the content-free input

    @classmethod
    def detects(cls, config) -> bool:
        return False  # chosen with a template, never from a checkpoint

    def describe(self) -> str:
        return f"Language model as a classifier · labels: {', '.join(self.labels)}" + (
            " · calibrated" if self.calibration is not None else ""
        )

    # ---- the text in its template -------------------------------------------------------------------
    def frame(self, text: str) -> tuple[str, tuple[int, int]]:
        return self.spec.fill(text)

    # ---- targets ------------------------------------------------------------------------------------
    def _label_target(self, k: int) -> Target:
        target = Target(self.labels[k], class_index=k)
        if len(self.labels) == 2:  # two labels: A against B, said outright
            target = replace(target, contrast=Target(self.labels[1 - k], class_index=1 - k))
        return target

    def predicted_target(self, probs: np.ndarray) -> Target:
        return self._label_target(int(np.argmax(probs)))

    def resolve_target(self, enc: Encoded, target: str | int) -> Target:
        text = str(target).strip()
        if text.lstrip("-").isdigit():
            k = int(text)
            if not 0 <= k < len(self.labels):
                raise InputError(f"Target {k} is out of range: labels are {', '.join(self.labels)}.")
            return self._label_target(k)
        lowered = [label.lower() for label in self.labels]
        if text.lower() not in lowered:
            raise InputError(f"Unknown label '{target}': the labels are {', '.join(self.labels)}.")
        return self._label_target(lowered.index(text.lower()))

    def with_contrast(self, target: Target, contrast: Target) -> Target:
        return super().with_contrast(target.plain, contrast)

    def _display_one(self, target: Target) -> str:
        return target.label

    def display(self, target: Target) -> str:
        return super().display(target) if target.contrast else f"{target.label} rather than the other labels"

    def score_name(self, target: Target) -> str:
        return self.contrast_formula if target.contrast else "log p(A) − log p(not A)"

    def plain_formula(self, target: Target) -> str:
        return "log p(A) − log p(not A)"

    def target_scale(self, target: Target, value: float) -> dict:
        return {**super().target_scale(target, value), "probability": False}  # log-odds: never a probability

    def distribution(self, probs: np.ndarray, top_k: int = 5) -> dict[str, float]:
        return {label: float(p) for label, p in zip(self.labels, probs)}

    def target_probability_from(self, probs: np.ndarray, target: Target) -> float:
        return float(self.log_odds(torch.as_tensor(np.asarray(probs, dtype=np.float64))[None], target)[0])

    # ---- rows -------------------------------------------------------------------------------------
    def row_targets(self, target: Target | None) -> list[Target | None]:
        if target is not None and (target.class_index is None or target.class_index == _BUNDLE):
            return [target]  # one of our own parts (or a plain continuation, to time the model)
        return list(self.parts)

    def appended(self, target: Target | None) -> list[int]:
        if target is None or target.class_index is not None:
            return []
        return super().appended(target)

    def scored_positions(self, lengths, target: Target | None) -> torch.Tensor:
        if target is not None and target.class_index == _BUNDLE:
            return torch.tensor([[n - 1] for n in lengths])
        return super().scored_positions(lengths, target)

    def target_scores(self, logits: torch.Tensor, target: Target | None) -> torch.Tensor:
        if target is not None and target.class_index == _BUNDLE:
            probs = torch.softmax(logits[:, 0].float(), dim=-1)
            return probs[:, torch.tensor(target.token_ids, device=logits.device)]
        return super().target_scores(logits, target)

    def contrast_score(self, scores, target: Target | None = None):
        """The parts' scores -> the target's log-odds; with target=None, the raw label probabilities
        (N, L): each label's forms summed, before renormalising (their sum is the label mass)."""
        as_numpy = not isinstance(scores[0], torch.Tensor)
        columns = [torch.as_tensor(np.asarray(s)) if as_numpy else s for s in scores]
        forms = torch.cat([c.reshape(c.shape[0], -1).double() for c in columns], dim=1)
        owner = torch.zeros(len(self.part_labels), len(self.labels), dtype=torch.float64, device=forms.device)
        owner[torch.arange(len(self.part_labels)), torch.tensor(self.part_labels)] = 1.0
        raw = forms @ owner
        out = raw if target is None else self.log_odds(self.normalise(raw), target)
        return out.numpy() if as_numpy else out.float()

    def normalise(self, raw):
        """Raw label probabilities (N, L) -> renormalised over the labels, then calibrated if asked."""
        as_numpy = not isinstance(raw, torch.Tensor)
        p = torch.as_tensor(np.asarray(raw, dtype=np.float64)) if as_numpy else raw
        p = p / p.sum(-1, keepdim=True)
        if self.calibration is not None:
            p = p / torch.as_tensor(self.calibration, dtype=p.dtype, device=p.device)
            p = p / p.sum(-1, keepdim=True)
        return p.numpy() if as_numpy else p

    def log_odds(self, probs, target: Target):
        """(N,) log-odds of the target's label against its contrast (else the other labels), from (N, L)."""
        lib = torch if isinstance(probs, torch.Tensor) else np
        a = probs[:, target.class_index]
        if target.contrast is not None:
            return lib.log(a) - lib.log(probs[:, target.contrast.class_index])
        return lib.log(a) - lib.log(probs.sum(-1) - a)

    def refine_prediction(self, prediction, ids, gateway):
        """The next-token pass -> the label probabilities, with the label mass and the uncalibrated figures."""
        raw = gateway.score_ids([list(ids)], None)[0]
        probs = self.normalise(raw)
        uncalibrated = raw / raw.sum()
        prediction.probs = probs
        prediction.facts = {
            "label_probabilities": self.distribution(probs),
            "label_mass": float(raw.sum()),
            "calibrated": self.calibration is not None,
            "uncalibrated_label_probabilities": self.distribution(uncalibrated),
            "template": self.spec.template,
        }
        if self.calibration is not None:
            prediction.facts["calibration"] = self.distribution(self.calibration)
        return prediction

    # ---- the black-box view ---------------------------------------------------------------------------
    def lime_view(self, target: Target) -> tuple[int, list[str]]:
        return 1, ["other", self.display(target)]

    def target_for_class_view(self, target: Target | None) -> Target | None:
        return target

    def class_probabilities(self, scores: np.ndarray) -> np.ndarray:
        # with target None: the label probabilities; with a target, LIME regresses its log-odds (a linear
        # surrogate needs no probabilities), so calibration moves only its intercept
        if scores.ndim == 2:
            return self.normalise(scores)
        return np.stack([-scores, scores], axis=1)


def calibrate(handle) -> np.ndarray:
    """Contextual calibration: the renormalised label probabilities of the content-free input, kept on
    the task (one forward pass per form group)."""
    task = handle.task
    task.calibration = None
    raw = handle.score_ids([handle.encode(CONTENT_FREE).ids], None)[0]
    task.calibration = raw / raw.sum()
    return task.calibration


def as_classifier(handle, spec: PromptSpec):
    """Make a loaded causal LM's handle a prompt classifier (calibrated when the spec asks)."""
    if not handle.task.generates:  # only a model that writes text can answer a prompt
        raise InputError(
            f"A prompt template needs a causal language model; '{handle.name}' is a {handle.task.title.lower()}."
        )
    task = PromptClassifierTask(handle.model, handle.tokenizer, spec)
    handle.task = handle.gateway.task = task
    handle.gateway._memo.clear()
    if spec.calibrate:
        calibrate(handle)
    return handle
