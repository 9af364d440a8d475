"""The context every method function gets: the handle, the encoded text, the target, validated
parameters, and the values several methods derive from them (ids, baselines, embeddings), computed once."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from explainers.inference.gateway import Prediction
from explainers.models.handle import ModelHandle
from explainers.models.tasks import Target
from explainers.models.text import Encoded


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
