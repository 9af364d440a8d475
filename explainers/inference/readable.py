"""The part of a text the model can read: a huge text is never tokenized whole.

A model reads at most `max_tokens` tokens; the tokenizer's own truncation still tokenizes the whole text
first (a 10 MB line cost seconds and gigabytes per call, several calls per text). Here growing prefixes
of the text are tokenized until one holds more tokens than the model takes, with a margin: the tokens the
model keeps then end well before the cut, so they are the tokens of the full text (a tokenizer decides a
token from its word; only a single word longer than the margin, cut mid-way, could differ).
"""

from __future__ import annotations

FIRST_CHARS_PER_TOKEN = 8  # the first prefix tried: 8 characters per token the model reads
GROWTH = 4  # each further prefix is this many times longer
MARGIN_TOKENS = 16  # tokens past what the model keeps, so that the cut cannot change the kept ones


def first_prefix_chars(max_tokens: int) -> int:
    """Texts up to this many characters are tokenized whole: cheap, and exact."""
    return max(FIRST_CHARS_PER_TOKEN * max_tokens, 1024)


def readable_prefix(tokenizer, text: str, max_tokens: int, add_special_tokens: bool = True) -> tuple[str, bool]:
    """(prefix, cut): a prefix of `text` whose tokens include every token the model reads of `text`, and
    whether the text holds more tokens than the model reads (it is truncated)."""
    room = max_tokens - (tokenizer.num_special_tokens_to_add(pair=False) if add_special_tokens else 0)
    size = first_prefix_chars(max_tokens)
    while True:
        prefix = text if size >= len(text) else text[:size]
        n = len(tokenizer(prefix, add_special_tokens=False)["input_ids"])
        if prefix is text:
            return text, n > room
        if n > room + MARGIN_TOKENS:
            return prefix, True
        size *= GROWTH
