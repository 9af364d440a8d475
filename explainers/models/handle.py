"""ModelHandle: one loaded model with its tokenizer, task adapter, device and inference gateway.

The handle describes the model (architecture, layers, labels), turns text into tokens and answers
the questions every method asks (targets, baselines, probabilities). Everything that runs the model
goes through `handle.gateway`; everything that differs between tasks through `handle.task`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from explainers.errors import InputError
from explainers.inference.gateway import InferenceGateway, Prediction
from explainers.inference.readable import first_prefix_chars, readable_prefix
from explainers.models import architecture
from explainers.models.tasks import Target, Task
from explainers.models.text import Encoded, check_text, group_words

DEFAULT_MAX_TOKENS = 512


class ModelHandle:
    def __init__(self, name: str, model, tokenizer, task: Task, device: torch.device, max_tokens: int):
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.task = task
        self.device = device
        self.max_tokens = max_tokens
        self.gateway = InferenceGateway(model, tokenizer, task, device)

    # ---- description -------------------------------------------------------------------------
    @property
    def config(self):
        return self.model.config

    @property
    def labels(self) -> list[str]:
        return self.task.labels

    @property
    def architecture(self) -> str:
        return type(self.model).__name__

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def n_heads(self) -> int:
        text_config = self.config.get_text_config()
        return int(getattr(text_config, "num_attention_heads", 0) or getattr(text_config, "n_head", 0))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "architecture": self.architecture,
            "task": self.task.name,
            "device": str(self.device),
            "dtype": str(self.model.dtype).replace("torch.", ""),
            "labels": self.labels,
            "layers": self.n_layers,
            "heads": self.n_heads,
            "max_tokens": self.max_tokens,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }

    # ---- architecture ------------------------------------------------------------------------
    @property
    def embedding_layer(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()

    @property
    def blocks(self) -> torch.nn.ModuleList:
        """The transformer blocks, in order (see architecture.py for shared-layer models)."""
        cached = getattr(self, "_blocks", None)
        if cached is None:
            cached = self._blocks = architecture.find_blocks(self.model)
        return cached

    def block(self, layer: int) -> torch.nn.Module:
        """The module a layer method hooks for block `layer`: its output is that block's hidden states."""
        n = len(self.blocks)
        if not -n <= layer < n:
            raise InputError(f"Layer {layer} does not exist: {self.architecture} has layers 0..{n - 1}.")
        return architecture.layer_output_module(self.model, self.blocks[layer])

    @property
    def special_ids(self) -> set[int]:
        return set(self.tokenizer.all_special_ids)

    def baseline_token_id(self, kind: str = "auto") -> int:
        """The token that stands for 'nothing here': mask, else pad, else unk, else eos."""
        tok = self.tokenizer
        choices = {"mask": tok.mask_token_id, "pad": tok.pad_token_id, "unk": tok.unk_token_id, "eos": tok.eos_token_id}
        if kind == "auto":
            for value in choices.values():
                if value is not None:
                    return int(value)
            raise InputError("This tokenizer has no mask, pad, unk or eos token to use as a baseline.")
        if kind not in choices:
            raise InputError(f"Unknown baseline '{kind}': use auto, {', '.join(choices)}.")
        if choices[kind] is None:
            raise InputError(f"This tokenizer has no {kind} token; choose another baseline.")
        return int(choices[kind])

    def prediction_position(self, enc: Encoded) -> int:
        return self.task.prediction_position(enc)

    def refuses(self, spec) -> str | None:
        """Why a method (by its capabilities) cannot run on this model, or None: a local model runs all."""
        return None

    # ---- text -> tokens ----------------------------------------------------------------------
    def encode(self, text: str, chat: bool = False) -> Encoded:
        """Tokens and words of `text`. With chat=True the text is the user's turn of the tokenizer's chat
        template: the template's tokens are kept (the model sees them) and marked special (never scored)."""
        check_text(text)
        tok = self.tokenizer
        user = None
        # only the part of a long text the model can read is tokenized (explainers/inference/readable.py)
        read, cut = readable_prefix(tok, text, self.max_tokens, add_special_tokens=not chat)
        framed = self.task.frame(read)  # a prompt classifier's template: kept, never scored, like a chat's
        if framed is not None:
            text, user = framed
            read = text
            cut = cut or len(tok(text, add_special_tokens=not chat)["input_ids"]) > self.max_tokens
        if chat:
            from explainers.models.text import chat_prompt

            inner = user
            text, user = chat_prompt(tok, read)
            if inner is not None:
                user = (user[0] + inner[0], user[0] + inner[1])
            read = text
            cut = cut or len(tok(text, add_special_tokens=False)["input_ids"]) > self.max_tokens
        out = tok(
            read,
            add_special_tokens=not chat,  # a chat template writes its own special tokens
            truncation=True,
            max_length=self.max_tokens,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        ids = list(out["input_ids"])
        if not [i for i, s in enumerate(out["special_tokens_mask"]) if not s]:
            raise InputError("The text has no tokens this model can read (only spaces or control characters?).")
        unk = tok.unk_token_id
        if unk is not None and all(i == unk for i, s in zip(ids, out["special_tokens_mask"]) if not s):
            raise InputError(
                "Every token of this text is unknown to the model's tokenizer: there is nothing to explain. "
                "Is the text in a language or script this model reads, and is the model's own tokenizer loaded?"
            )
        special = [bool(s) for s in out["special_tokens_mask"]]
        offsets = [tuple(o) for o in out["offset_mapping"]]

        raw_tokens = tok.convert_ids_to_tokens(ids)
        # Tokens without characters (not in the text) are treated like special tokens.
        special = [s or not (b > a) for s, (a, b) in zip(special, offsets)]
        if user is not None:  # the template around the user's text: kept, never scored
            special = [s or not (b > user[0] and a < user[1]) for s, (a, b) in zip(special, offsets)]
        tokens = [raw_tokens[i] if special[i] else text[a:b] for i, (a, b) in enumerate(offsets)]
        word_of_token, word_spans = group_words(read, offsets, special)
        return Encoded(
            text=text,
            ids=ids,
            tokens=tokens,
            special=special,
            word_of_token=word_of_token,
            words=[text[a:b] for a, b in word_spans],
            word_spans=word_spans,
            truncated=cut,
            pieces=list(raw_tokens),
        )

    # ---- targets and predictions --------------------------------------------------------------
    def predict(self, enc: Encoded, attentions: bool = False) -> Prediction:
        return self.gateway.predict(enc.ids, attentions=attentions)

    def resolve_target(
        self,
        enc: Encoded,
        target: str | int | None = None,
        prediction: Prediction | None = None,
        contrast: str | int | None = None,
    ) -> Target:
        """The predicted class / next token unless the user names a label or a continuation; with a
        contrast, "why the target rather than the contrast"."""
        if target is None or target == "":
            resolved = self.task.predicted_target((prediction or self.predict(enc)).probs)
        else:
            resolved = self.task.resolve_target(enc, target)
            self._check_fits(enc, resolved)
        if contrast is None or contrast == "":
            return resolved
        other = self.task.resolve_target(enc, contrast)
        self._check_fits(enc, other)
        return self.task.with_contrast(resolved, other)

    def _check_fits(self, enc: Encoded, resolved: Target) -> None:
        # a continuation is teacher-forced after the text: together they must fit the model's positions
        positions = getattr(self.config.get_text_config(), "max_position_embeddings", None)
        if positions and enc.n_tokens + resolved.n_tokens - 1 > positions:
            raise InputError(
                f"The text ({enc.n_tokens} tokens) and the continuation ({resolved.n_tokens} tokens) together "
                f"run past the model's {positions} positions: shorten the text or the continuation."
            )

    def target_probability(self, enc: Encoded, target: Target, prediction: Prediction | None = None) -> float:
        """p(target | text): read off the prediction when the task can, else one more pass."""
        p = self.task.target_probability_from((prediction or self.predict(enc)).probs, target)
        return float(self.score_ids([enc.ids], target)[0]) if p is None else p

    def distribution(self, enc: Encoded, top_k: int = 5, prediction: Prediction | None = None) -> dict[str, float]:
        """What the model predicts for this text: class probabilities, or the top next tokens."""
        return self.task.distribution((prediction or self.predict(enc)).probs, top_k)

    # ---- the gateway's forward paths ----------------------------------------------------------
    def rows_per_batch(self, seq_len: int) -> int:
        return self.gateway.rows_per_batch(seq_len)

    def score_ids(self, sequences: Sequence[Sequence[int]], target: Target | None) -> np.ndarray:
        return self.gateway.score_ids(sequences, target)

    def score_embeds(self, embeds: torch.Tensor, target: Target, tail_embeds: torch.Tensor | None = None):
        return self.gateway.score_embeds(embeds, target, tail_embeds)

    def embed_ids(self, ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
        return self.gateway.embed_ids(ids)

    def predict_proba(self, texts: Sequence[str], target: Target | None = None) -> np.ndarray:
        """Black-box view for LIME and friends: (N, C) class probabilities; for a causal LM,
        (N, 2) = [1 - p(target), p(target)]. All texts go through the model in batches."""
        # one call: the Rust tokenizer encodes the whole list in parallel; of a long text, only what the model reads
        whole = first_prefix_chars(self.max_tokens)
        texts = [t if len(t) <= whole else readable_prefix(self.tokenizer, t, self.max_tokens)[0] for t in texts]
        encoded = self.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=self.max_tokens)
        sequences = [tuple(ids) or (self.baseline_token_id(),) for ids in encoded["input_ids"]]
        # LIME draws many identical samples on short texts: score each distinct one once
        unique = list(dict.fromkeys(sequences))
        where = {seq: i for i, seq in enumerate(unique)}
        rows = [where[seq] for seq in sequences]
        scores = self.score_ids(unique, self.task.target_for_class_view(target))[rows]
        return self.task.class_probabilities(scores)

    def attentions(self, enc: Encoded) -> list[torch.Tensor]:
        """Attention weights per layer, each (1, heads, T, T), float32 on CPU."""
        return self.predict(enc, attentions=True).attentions
