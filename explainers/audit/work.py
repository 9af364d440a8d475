"""The work of an audit, shared by every engine: settings, record keys, and explaining one chunk.

A chunk's predictions come from one batched `predict_proba` over all its texts; its methods' and metrics'
forward rows are packed across its texts (explainers/packing.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from explainers.audit.store import METRIC_COLUMNS, PLAUSIBILITY_COLUMNS, record_key
from explainers.errors import InputError, WhyboxError
from explainers.inference.packing import pack
from explainers.methods import METHODS, explain, get_method
from explainers.methods.length_defaults import params_for_length
from explainers.metrics.faithfulness import evaluate, plausibility

MODES = ("delete", "mask")


@dataclass(frozen=True)
class AuditSettings:
    """Everything a record depends on besides its text (and rationale)."""

    model: str
    methods: tuple[str, ...]
    params: dict = field(default_factory=dict)  # method -> {param: value}; validated in `checked`
    seed: int = 0
    target: str = ""  # "" explains the predicted label
    mode: str = "delete"  # how faithfulness metrics remove tokens
    revision: str = ""  # filled in by `with_revision` once the model is loaded

    def checked(self) -> AuditSettings:
        if not self.methods:
            raise InputError("Pick at least one method to audit with.")
        for name in self.methods:
            get_method(name)  # an unknown name raises InputError listing the methods
        if self.mode not in MODES:
            raise InputError(f"Unknown perturbation mode '{self.mode}': use {' or '.join(MODES)}.")
        unknown = set(self.params) - set(self.methods)
        if unknown:
            raise InputError(f"Parameters given for methods not chosen: {', '.join(sorted(unknown))}.")
        params = {m: _fixed_params(m, dict(self.params.get(m, {}))) for m in self.methods}
        return AuditSettings(
            self.model, tuple(self.methods), params, int(self.seed), self.target.strip(), self.mode, self.revision
        )

    def params_json(self, method: str) -> str:
        return json.dumps({"params": self.params.get(method, {}), "mode": self.mode}, sort_keys=True)

    def key(self, text: str, method: str, rationale: tuple | None) -> str:
        return record_key(
            self.model,
            self.revision,
            text,
            method,
            self.params_json(method),
            self.seed,
            self.target,
            rationale_json(rationale),
        )

    def to_dict(self) -> dict:
        return asdict(self) | {"methods": list(self.methods)}


def _fixed_params(method: str, given: dict) -> dict:
    """The method's checked parameters with their defaults, except those chosen by each text's length
    (left unset unless given, so that every text gets what the Explain page would give it)."""
    by_length = params_for_length(method, None)
    return {k: v for k, v in METHODS[method].validate(given).items() if k in given or k not in by_length}


def rationale_json(rationale: tuple | None) -> str | None:
    return None if not rationale else json.dumps(list(rationale), ensure_ascii=False)


def model_revision(name: str, handle=None) -> str:
    """What identifies the weights behind `name`: a built-in's recipe folder, a local folder's file
    fingerprint, or a hub commit; results are reused only for the same revision."""
    from explainers.models import builtin

    if builtin.is_builtin(name):
        return Path(builtin.builtin_path(name)).name  # the folder is named after the recipe's hash
    path = Path(name).expanduser()
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(path.iterdir()):
            if file.is_file() and (file.suffix in (".json", ".safetensors", ".bin", ".txt", ".model")):
                stat = file.stat()
                digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
                if file.suffix == ".json":
                    digest.update(file.read_bytes())
        return "folder-" + digest.hexdigest()[:16]
    commit = getattr(getattr(getattr(handle, "model", None), "config", None), "_commit_hash", None)
    return f"hub-{commit}" if commit else "hub-unknown"


def map_label(value: str | None, labels: list[str]) -> str | None:
    """A gold label from the data as the model names it: the name itself (any case) or a class index."""
    if value is None:
        return None
    lowered = {label.lower(): label for label in labels}
    if value.strip().lower() in lowered:
        return lowered[value.strip().lower()]
    if re.fullmatch(r"-?\d+", value.strip()) and 0 <= int(value) < len(labels):
        return labels[int(value)]
    raise InputError(
        f"Label '{value}' is not one of the model's labels ({', '.join(labels)}) or a class index 0-{len(labels) - 1}."
    )


def rationale_words(words: list[str], rationale: tuple) -> set[int]:
    """Indices of the marked words: given as indices, or as words matched case-insensitively (punctuation
    around a word ignored)."""
    if all(isinstance(r, int) for r in rationale):
        return {r for r in rationale if 0 <= r < len(words)}
    marked = {_bare(str(r)) for r in rationale}
    return {i for i, w in enumerate(words) if _bare(w) in marked}


def _bare(word: str) -> str:
    return word.strip(".,;:!?\"'()[]{}").lower()


def explain_items(handle, settings: AuditSettings, items: list[dict]) -> list[dict]:
    """Records for a chunk of items: {row_id, text, label, rationale, methods}, one record per (item, method).

    The chunk's texts are explained together: one batched prediction, then every method on every text in
    one packed pass of their forward rows, then every explanation's faithfulness metrics in another
    (see explainers/packing.py)."""
    if not items:
        return []
    probs = handle.predict_proba([item["text"] for item in items])  # one batched call for the whole chunk
    jobs = [(item, method) for item in items for method in item["methods"]]
    explained = pack(
        handle,
        [
            partial(
                explain,
                text=item["text"],
                method=method,
                target=settings.target or None,
                seed=settings.seed,
                **settings.params.get(method, {}),
            )
            for item, method in jobs
        ],
    )
    explained_ok = [i for i, exp in enumerate(explained.results) if not isinstance(exp, WhyboxError)]
    evaluated = pack(handle, [partial(evaluate, exp=explained.results[i], mode=settings.mode) for i in explained_ok])
    seconds = list(explained.seconds)
    reports: dict[int, object] = {}
    for i, report, extra in zip(explained_ok, evaluated.results, evaluated.seconds):
        reports[i] = report
        seconds[i] += extra
    labels = handle.labels
    records = []
    for item, p in zip(items, probs):
        base = {
            "model": settings.model,
            "revision": settings.revision,
            "row_id": int(item["row_id"]),
            "text": item["text"],
            "label": item.get("label"),
            "rationale": rationale_json(item.get("rationale")),
            "seed": settings.seed,
            "target": settings.target,
            "predicted": labels[int(np.argmax(p))],
            "confidence": float(np.max(p)),
            "probs": [float(x) for x in p],
        }
        done, failed = [], []
        for i, (job_item, method) in enumerate(jobs):
            if job_item is not item:
                continue
            exp, report = explained.results[i], reports.get(i)
            if isinstance(exp, WhyboxError) or isinstance(report, WhyboxError):
                failed.append((method, str(exp if isinstance(exp, WhyboxError) else report)))
                continue
            record = base | {
                "method": exp.method,
                "params": json.dumps({"params": exp.params, "mode": settings.mode}, sort_keys=True),  # as used
                "target_label": exp.target.label,
                "target_prob": exp.target_prob,
                "words": list(exp.words),
                "word_scores": list(exp.word_scores),
                "seconds": seconds[i],  # its own work and its share of the packed passes
                **{m: report.values.get(m) for m in METRIC_COLUMNS},
            }
            if item.get("rationale"):
                marked = rationale_words(exp.words, item["rationale"])
                if marked:
                    record.update(plausibility(exp, marked))
            done.append(record)
        for method, message in failed:
            done.append(
                base
                | {
                    "method": method,
                    "params": settings.params_json(method),
                    "error": message,
                    **{m: None for m in METRIC_COLUMNS + PLAUSIBILITY_COLUMNS},
                }
            )
        for record in done:
            record["key"] = settings.key(item["text"], record["method"], item.get("rationale"))
        records += done
    return records
