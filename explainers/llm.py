"""Language models that draft text for whybox: counterfactual rewrites and plain-language narration.

Drafts are never trusted as they come: counterfactuals are run through the explained model, and
narration goes through the claim checker (explainers.whatif.claims) before it is shown.

Two generators, one interface (`name`, `generate(prompts) -> replies`):
- `LocalGenerator`: a causal LM loaded by whybox (the built-in `smollm2` by default), greedy decoding,
  so the same prompt gives the same draft;
- `EndpointGenerator`: an OpenAI-compatible chat endpoint the operator configures with
  WHYBOX_LLM_URL (e.g. http://localhost:8000/v1), WHYBOX_LLM_MODEL and optionally WHYBOX_LLM_API_KEY.
  Plain urllib, temperature 0. Never needed offline or in tests.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence

from explainers.errors import ModelLoadError

LOCAL_MODEL = "smollm2"
URL_ENV, MODEL_ENV, KEY_ENV = "WHYBOX_LLM_URL", "WHYBOX_LLM_MODEL", "WHYBOX_LLM_API_KEY"
MAX_NEW_TOKENS = 80
ENDPOINT_TIMEOUT_S = 60


class LocalGenerator:
    """Greedy drafts from a causal LM handle (explainers.models.handle.load_model), a batch at a time."""

    def __init__(self, handle, max_new_tokens: int = MAX_NEW_TOKENS):
        if not handle.task.generates:
            raise ModelLoadError(f"'{handle.name}' is a classifier: drafting text needs a causal language model.")
        self.handle = handle
        self.name = str(handle.name)
        self.max_new_tokens = max_new_tokens

    def _prompt(self, prompt: str) -> str:
        tok = self.handle.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt + "\n"

    def generate(self, prompts: Sequence[str]) -> list[str]:
        import torch

        tok, model = self.handle.tokenizer, self.handle.model
        texts = [self._prompt(p) for p in prompts]
        side, truncation = tok.padding_side, tok.truncation_side
        tok.padding_side = "left"  # decoder-only: the new tokens must follow the prompt directly
        try:
            # the chat template already holds the special tokens it needs
            tok.truncation_side = "left"  # a prompt too long for the model keeps its end (the task)
            batch = tok(
                texts,
                return_tensors="pt",
                padding=True,
                add_special_tokens=not tok.chat_template,
                truncation=True,
                max_length=max(self.handle.max_tokens - self.max_new_tokens, 8),
            )
        finally:
            tok.padding_side, tok.truncation_side = side, truncation
        batch = {k: v.to(self.handle.device) for k, v in batch.items()}
        with self.handle.gateway.exclusive(), torch.inference_mode():
            out = model.generate(
                **batch,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        return [tok.decode(row, skip_special_tokens=True).strip() for row in new]


class EndpointGenerator:
    """An OpenAI-compatible /chat/completions endpoint, one request per prompt, temperature 0."""

    def __init__(self, url: str, model: str, api_key: str | None = None, max_new_tokens: int = MAX_NEW_TOKENS):
        self.url = url.rstrip("/") + ("" if url.rstrip("/").endswith("/chat/completions") else "/chat/completions")
        self.model = model
        self.api_key = api_key
        self.name = f"endpoint:{model}"
        self.max_new_tokens = max_new_tokens

    def generate(self, prompts: Sequence[str]) -> list[str]:
        return [self._one(p) for p in prompts]

    def _one(self, prompt: str) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "temperature": 0,
                "max_tokens": self.max_new_tokens,
                "messages": [{"role": "user", "content": prompt}],
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=ENDPOINT_TIMEOUT_S) as response:
                reply = json.loads(response.read().decode("utf-8"))
            return str(reply["choices"][0]["message"]["content"]).strip()
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelLoadError(f"The language-model endpoint {self.url} did not answer usefully: {exc}") from exc


def endpoint_from_env() -> EndpointGenerator | None:
    url = os.environ.get(URL_ENV, "").strip()
    if not url:
        return None
    return EndpointGenerator(
        url, os.environ.get(MODEL_ENV, "").strip() or "default", os.environ.get(KEY_ENV, "").strip() or None
    )


def default_generator(load=None):
    """The operator's endpoint when configured, else the local built-in smollm2 (loaded by `load`,
    default explainers.models.handle.load_model)."""
    endpoint = endpoint_from_env()
    if endpoint is not None:
        return endpoint
    if load is None:
        from explainers.models.loading import load_model as load
    return LocalGenerator(load(LOCAL_MODEL))


# ---- prompts and parsing ---------------------------------------------------------------------------
def counterfactual_prompts(text: str, label: str, others: Sequence[str], n: int = 3) -> list[str]:
    """`n` differently worded requests (greedy decoding gives one answer per prompt)."""
    goal = (
        f"the label '{others[0]}' instead of '{label}'"
        if len(others) == 1
        else (f"a label other than '{label}'" if others else f"a different next word than '{label.strip()}'")
    )
    asks = [
        f"Change as few words as possible in this sentence so that a classifier would give it {goal}. "
        f"Reply with the new sentence only.\nSentence: {text}",
        f"Rewrite the sentence with one or two words changed so that it gets {goal}. "
        f"Reply with the rewritten sentence only.\nSentence: {text}",
        f"Minimal edit: replace a single word in the sentence below so that it gets {goal}. "
        f"Reply with the edited sentence only.\nSentence: {text}",
        f"Negate the meaning of this sentence with the smallest possible change, so it gets {goal}. "
        f"Reply with the new sentence only.\nSentence: {text}",
    ]
    return [asks[k % len(asks)] for k in range(n)]


_LEAD = re.compile(
    r"^\s*(?:\d+[.)]\s*|[-*•]\s*|(?:new|rewritten|edited)?\s*sentence\s*:\s*|rewrite\s*:\s*)", re.IGNORECASE
)


def parse_rewrites(reply: str, original: str, max_ratio: float = 3.0) -> list[str]:
    """Candidate sentences from a reply: one per line, numbering and quotes stripped; the original
    itself, empty lines and runaway text (longer than `max_ratio` × the original) dropped."""
    out = []
    for line in (reply or "").splitlines():
        previous = None
        while previous != line:  # "- Rewrite: 1. ..." has several leads
            previous, line = line, _LEAD.sub("", line).strip().strip("\"'“”‘’`").strip()
        if not line or line.lower().rstrip(".") == original.strip().lower().rstrip("."):
            continue
        if len(line) > max_ratio * max(len(original), 20):
            continue
        out.append(line)
    return out
