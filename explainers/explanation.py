"""The Explanation: a plain record of one attribution, with per-token and per-word scores."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from explainers import strict_json
from explainers.errors import InputError
from explainers.models.tasks import Target
from explainers.models.text import Encoded

# 2: the method's properties travel with the explanation; targets record an added leading space.
SCHEMA_VERSION = 2


@dataclass
class Explanation:
    """Scores keep their sign: positive supports the target, negative speaks against it.

    Word scores are the sums of their tokens' scores (attributions are additive); special tokens
    belong to no word."""

    method: str
    model: str
    text: str
    tokens: list[str]
    token_ids: list[int]
    special: list[bool]
    word_of_token: list[int | None]
    words: list[str]
    word_spans: list[tuple[int, int]]
    token_scores: list[float]
    word_scores: list[float]
    target: Target
    target_prob: float
    probabilities: dict[str, float]
    params: dict
    seed: int | None = None
    seconds: float = 0.0
    truncated: bool = False
    pieces: list[str] = field(default_factory=list)  # what the model reads: the tokenizer's own pieces
    extras: dict = field(default_factory=dict)
    # what the method is (title, family, signed, native unit, caveat, judged diagnostics): see Method.properties
    properties: dict = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        method: str,
        model: str,
        enc: Encoded,
        token_scores,
        target: Target,
        target_prob: float,
        probabilities: dict[str, float],
        params: dict,
        seed: int | None,
        seconds: float,
        extras: dict | None = None,
        word_scores=None,
        properties: dict | None = None,
    ) -> Explanation:
        token_scores = np.asarray(token_scores, dtype=np.float64).reshape(-1)
        if word_scores is None:
            word_scores = words_from_tokens(token_scores, enc.word_of_token, len(enc.words))
        return cls(
            method=method,
            model=model,
            text=enc.text,
            tokens=list(enc.tokens),
            token_ids=list(enc.ids),
            special=list(enc.special),
            word_of_token=list(enc.word_of_token),
            words=list(enc.words),
            word_spans=[tuple(span) for span in enc.word_spans],
            token_scores=[float(x) for x in token_scores],
            word_scores=[float(x) for x in np.asarray(word_scores).reshape(-1)],
            target=target,
            target_prob=float(target_prob),
            probabilities={k: float(v) for k, v in probabilities.items()},
            params=dict(params),
            seed=seed,
            seconds=float(seconds),
            truncated=enc.truncated,
            pieces=list(enc.pieces),
            extras=strict_json.clean(extras or {}),
            properties=dict(properties or {}),
        )

    # ---- the method's properties -----------------------------------------------------------------
    @property
    def title(self) -> str:
        return self.properties.get("title", self.method)

    @property
    def signed(self) -> bool:
        return self.properties.get("signed", True)

    @property
    def native_unit(self) -> str:
        return self.properties.get("native_unit", "token")

    @property
    def diagnostics(self) -> list[dict]:
        """The method's own diagnostics with this explanation's values, each judged by its threshold:
        {name, title, value, threshold, good ("below"/"above"), ok, meaning, advice}."""
        judged = []
        for spec in self.properties.get("diagnostics", []):
            value = self.extras.get(spec["name"])
            if value is None:
                continue
            ok = value <= spec["threshold"] if spec["good"] == "below" else value >= spec["threshold"]
            judged.append({**spec, "value": float(value), "ok": bool(ok)})
        return judged

    @property
    def encoded(self) -> Encoded:
        return Encoded(
            self.text,
            self.token_ids,
            self.tokens,
            self.special,
            self.word_of_token,
            self.words,
            self.word_spans,
            self.truncated,
            list(self.pieces),
        )

    def scores(self, level: str = "token") -> np.ndarray:
        return np.asarray(self.token_scores if level == "token" else self.word_scores, dtype=np.float64)

    def top_words(self, k: int = 3, sign: int = 1) -> list[tuple[str, float]]:
        """The k words pushing hardest towards (sign=1) or against (sign=-1) the target."""
        order = np.argsort(-sign * self.scores("word"))
        return [(self.words[i], self.word_scores[i]) for i in order[:k] if sign * self.word_scores[i] > 0]

    # ---- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["target"] = self.target.to_dict()
        d["schema"] = SCHEMA_VERSION
        return strict_json.clean(d)

    def to_json(self, **kwargs) -> str:
        return strict_json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict) -> Explanation:
        d = dict(d)
        schema = d.pop("schema", None)
        if schema != SCHEMA_VERSION:
            raise InputError(
                f"This explanation was written with schema {schema}; this version of whybox reads "
                f"schema {SCHEMA_VERSION}. Explain the text again to get a current one."
            )
        d["target"] = Target.from_dict(d["target"])
        d["word_spans"] = [tuple(span) for span in d["word_spans"]]
        # JSON has no NaN: a null score was an undefined number
        for key in ("token_scores", "word_scores"):
            d[key] = [float("nan") if v is None else v for v in d[key]]
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> Explanation:
        return cls.from_dict(strict_json.loads(text))


def words_from_tokens(token_scores, word_of_token, n_words: int) -> np.ndarray:
    out = np.zeros(n_words, dtype=np.float64)
    for score, w in zip(np.asarray(token_scores).reshape(-1), word_of_token):
        if w is not None:
            out[w] += score
    return out


def tokens_from_words(word_scores, word_of_token) -> np.ndarray:
    """Spread each word's score evenly over its tokens (for word-level methods such as LIME)."""
    counts: dict[int, int] = {}
    for w in word_of_token:
        if w is not None:
            counts[w] = counts.get(w, 0) + 1
    return np.array([0.0 if w is None else word_scores[w] / counts[w] for w in word_of_token])
