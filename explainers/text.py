"""Text -> tokens -> words: how whybox cuts a text into the words it shows and maps tokens onto them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from explainers.errors import InputError

# A word is a run of letters/digits (with inner apostrophes: "don't") or one punctuation mark.
WORD_RE = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]", re.UNICODE)


@dataclass
class Encoded:
    """A tokenized text with its word structure. Special tokens are kept (the model needs them) but
    flagged: they never receive a word and are never part of a rationale."""

    text: str
    ids: list[int]
    tokens: list[str]
    special: list[bool]
    word_of_token: list[int | None]
    words: list[str]
    word_spans: list[tuple[int, int]]
    truncated: bool = False
    pieces: list[str] = field(default_factory=list)  # the tokenizer's own pieces ("##ing", "[UNK]", "Ġthe")

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def content_positions(self) -> list[int]:
        return [i for i, s in enumerate(self.special) if not s]


def check_text(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError("The text is empty: type a sentence to explain.")
    return text


def chat_prompt(tokenizer, text: str) -> tuple[str, tuple[int, int]]:
    """`text` as the user's turn of the tokenizer's chat template, ready for the assistant's answer;
    returns the templated text and the character span of the user's text in it."""
    if not getattr(tokenizer, "chat_template", None):
        raise InputError("This model's tokenizer has no chat template: explain the text without the chat option.")
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
    )
    start = full.rfind(text)
    if start < 0:
        raise InputError("The chat template changes the text it wraps; explain it without the chat option.")
    return full, (start, start + len(text))


def split_words(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of a text (see WORD_RE)."""
    return [m.span() for m in WORD_RE.finditer(text)]


def group_words(text: str, offsets, special) -> tuple[list[int | None], list[tuple[int, int]]]:
    """Map each token to a word of the text; returns (word index per token, word char spans).

    A token that spans several words (BERT's [UNK] for "😍🔥") merges them into one word, so every
    word shown has tokens and every token's score lands in exactly one word. Words past a
    truncation are dropped."""
    spans = split_words(text)
    char_word = np.full(len(text), -1, dtype=np.int64)
    for w, (a, b) in enumerate(spans):
        char_word[a:b] = w
    merged_into = list(range(len(spans)))
    token_words: list[list[int]] = []
    for is_special, (a, b) in zip(special, offsets):
        words = sorted({int(w) for w in char_word[a:b] if w >= 0}) if not is_special else []
        if not words and not is_special:
            # a token made only of whitespace joins the word that follows it (or the last one)
            after = [int(w) for w in char_word[b:] if w >= 0][:1] or [int(w) for w in char_word[:a] if w >= 0][-1:]
            words = after
        for w in range(words[0] + 1, words[-1] + 1) if len(words) > 1 else ():
            merged_into[w] = merged_into[words[0]]
        token_words.append(words)
    group_of = [merged_into[w] for w in range(len(spans))]
    used = sorted({group_of[ws[0]] for ws in token_words if ws})
    index = {g: k for k, g in enumerate(used)}
    members = {g: [w for w in range(len(spans)) if group_of[w] == g] for g in used}
    word_spans = [(spans[members[g][0]][0], spans[members[g][-1]][1]) for g in used]
    return [index[group_of[ws[0]]] if ws else None for ws in token_words], word_spans
