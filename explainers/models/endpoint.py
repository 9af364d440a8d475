"""A model behind an OpenAI-compatible API, used as a prompt classifier: a handle without weights.

The text is cut into tokens and words by a local tokenizer (the perturbations' units); each perturbed
text goes to the server in the template, and the label probabilities are read from the answer's
`top_logprobs` at the first position (each surface form whose token the server lists; a label none of
whose forms is listed is bounded by the smallest listed probability and counted as bounded). Methods
that need gradients, attention weights or hooks are refused through their capabilities.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from explainers.errors import InputError
from explainers.inference.gateway import InferenceGateway, Prediction
from explainers.inference.remote import Answer, EndpointClient, EndpointSettings
from explainers.models.handle import ModelHandle
from explainers.models.prompt_classifier import PromptClassifierTask, PromptSpec

NO_WEIGHTS = "needs the model's weights, which an API does not expose"


class EndpointGateway(InferenceGateway):
    """The gateway's interface, answered over HTTP: rows are texts sent to the endpoint."""

    def __init__(self, client: EndpointClient, tokenizer, task: PromptClassifierTask):
        self.client = client
        self.model = None
        self.tokenizer = tokenizer
        self.task = task
        self.device = torch.device("cpu")
        self.lock = threading.RLock()
        self.token_budget = 1 << 30  # no batches to plan: the client sends one text per request
        self.call_overhead = 0
        self._memo = OrderedDict()
        self.prefix_cache = False
        self.precision = "float32"
        self._seconds_per_row_token = {}
        self._keeps_logit_positions = False
        self.bounded = 0  # answers where a label had no listed form (its probability is an upper bound)

    def _calibrate(self, rows: int = 16, tokens: int = 32) -> None:
        self._seconds_per_row_token["forward"] = 1e-3  # refined by the first runs (record_rate)

    def texts(self, sequences: Sequence[Sequence[int]]) -> list[str]:
        """Rows back to text: the tokens the tokenizer puts before any text (a BOS) are the server's to add;
        others stay (a baseline token that stands in for a word is sent as its text)."""
        lead = list(self.tokenizer("")["input_ids"])
        rows = [list(s)[len(lead) :] if lead and list(s[: len(lead)]) == lead else list(s) for s in sequences]
        return [self.tokenizer.decode(row, skip_special_tokens=False) for row in rows]

    def label_probabilities(self, answer: Answer) -> np.ndarray:
        """Raw label probabilities (L,) from one answer's top log-probabilities."""
        raw = np.zeros(len(self.task.labels))
        for form, _, k in self.task.forms:
            if form in answer.top_logprobs:
                raw[k] += np.exp(answer.top_logprobs[form])
        if (raw == 0).any():
            with self.lock:
                self.bounded += 1
            floor = np.exp(min(answer.top_logprobs.values()))
            raw[raw == 0] = floor  # not listed: at most the smallest listed probability
        return raw

    def score_ids(self, sequences: Sequence[Sequence[int]], target) -> np.ndarray:
        if not sequences:
            return np.zeros((0,), dtype=np.float64)
        raw = np.stack([self.label_probabilities(a) for a in self.client.answers(self.texts(sequences))])
        if target is None:
            return raw
        return self.task.log_odds(self.task.normalise(raw), target)

    def predict(self, ids: Sequence[int], attentions: bool = False) -> Prediction:
        if attentions:
            raise InputError(f"Attention weights {NO_WEIGHTS}.")
        return self.task.refine_prediction(Prediction(np.zeros(0)), list(ids), self)

    def _no_weights(self, *args, **kwargs):
        raise InputError(f"This method {NO_WEIGHTS}: use a perturbation method (occlusion, LIME, Shapley, ...).")

    score_embeds = embed_ids = token_logprobs = logits_at = _no_weights


class EndpointHandle(ModelHandle):
    def __init__(self, settings: EndpointSettings, spec: PromptSpec, tokenizer, max_tokens: int = 2048):
        self.settings = settings
        self.name = f"{settings.model} at {settings.url}"
        self.model = None
        self.tokenizer = tokenizer
        self.task = PromptClassifierTask(None, tokenizer, spec)
        self.device = torch.device("cpu")
        self.max_tokens = max_tokens
        self.client = EndpointClient(settings, spec.template)
        self.gateway = EndpointGateway(self.client, tokenizer, self.task)

    @property
    def architecture(self) -> str:
        return "OpenAI-compatible endpoint"

    @property
    def n_layers(self) -> int:
        return 0

    @property
    def n_heads(self) -> int:
        return 0

    def describe(self) -> dict:
        return {
            "name": self.name,
            "architecture": self.architecture,
            "task": self.task.name,
            "device": "remote",
            "labels": self.labels,
            "max_tokens": self.max_tokens,
            "calls": self.usage(),
        }

    def refuses(self, spec) -> str | None:
        """Why a method cannot run here (its capabilities, not its name), or None."""
        needs = {
            "gradients": spec.needs_gradients,
            "attention weights": spec.needs_attention,
            "hooks into the model": spec.hooks_model,
            "to feed the model embeddings": spec.needs_embeddings,
        }
        need = next((what for what, needed in needs.items() if needed), None)
        if need:
            return f"{spec.title} needs {need}: a model behind an API gives only log-probabilities."
        return None

    def _check_fits(self, enc, resolved) -> None:
        return None  # the server truncates or refuses; its own limit is not known here

    def usage(self) -> dict:
        c = self.client.counters
        return {
            "calls": c.calls,
            "retries": c.retries,
            "cached": c.cached,
            "deduplicated": c.deduplicated,
            "prompt_tokens": c.prompt_tokens,
            "bounded_answers": self.gateway.bounded,
        }

    def probe(self, text: str, repeats: int = 2) -> dict:
        """Send the whole text `repeats` times, fresh (temperature 0): its prompt tokens for the estimate,
        and the noise floor (the spread of the label log-odds between identical calls), never averaged away."""
        enc = self.encode(text)
        prompt = self.gateway.texts([enc.ids])[0]
        answers = [self.client.answers([prompt], fresh=True)[0] for _ in range(max(1, repeats))]
        probs = self.task.normalise(np.stack([self.gateway.label_probabilities(a) for a in answers]))
        spread = np.log(probs).max(0) - np.log(probs).min(0)
        self.client.cache.put(self.client.cache.key(self.settings, self.client.template, prompt), answers[0])
        return {"prompt_tokens": answers[0].prompt_tokens, "noise_floor": float(spread.max()), "repeats": repeats}


def estimate_calls(handle: EndpointHandle, enc, spec, params: dict, probe: dict) -> dict:
    """Before sending: at most one call per row of the method (fewer after de-duplication and the cache),
    each at most the whole text's prompt tokens."""
    rows = int(spec.estimate(enc.n_tokens, params).rows) + 1  # + the prediction
    if spec.native_unit == "word" and spec.random:  # LIME's samples: at most 2^words distinct texts
        rows = min(rows, 2 ** len(enc.words) + 1)
    tokens = probe.get("prompt_tokens")
    return {"calls_at_most": rows, "prompt_tokens_at_most": rows * tokens if tokens else None}


def load_endpoint(settings: EndpointSettings, spec: PromptSpec, tokenizer_source: str) -> EndpointHandle:
    """The endpoint as a handle, with a local tokenizer for the words (a built-in name or a folder)."""
    from transformers import AutoTokenizer

    from explainers.errors import ModelLoadError
    from explainers.models.loading import resolve_model_source

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_source(tokenizer_source), trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Could not load the tokenizer '{tokenizer_source}': {exc}") from exc
    handle = EndpointHandle(settings, spec, tokenizer)
    if spec.calibrate:
        from explainers.models.prompt_classifier import calibrate

        calibrate(handle)
    return handle
