"""Which head a checkpoint has when its config.json does not say (no `architectures`, as in a folder
dequantized from a GGUF file): read from the names of its weights, never by loading them.

A classifier's head is stored as `classifier.*` (BERT, RoBERTa, ...) or `score.*` (the decoder models'
...ForSequenceClassification); a causal LM's as `lm_head.*`, or not at all when its output layer is
tied to the input embeddings (`tie_word_embeddings`). Anything else is said exactly: what to add to
config.json, or which --task to pass."""

from __future__ import annotations

from pathlib import Path

from explainers.errors import ModelLoadError

CLASSIFIER_PREFIXES = ("classifier.", "score.")
LM_HEAD_PREFIXES = ("lm_head.",)


def weight_names(folder: Path) -> list[str]:
    """The tensor names of a folder's safetensors files (their headers only)."""
    from safetensors import safe_open

    names: list[str] = []
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            names.extend(f.keys())
    return names


def _has(names: list[str], prefixes: tuple[str, ...]) -> bool:
    # a base model's prefix ("model.", "bert.") comes before the head's name in some checkpoints
    return any(n.startswith(prefixes) or any(f".{p}" in n for p in prefixes) for n in names)


def infer_task(name: str, folder: Path, config) -> str:
    """'classification' or 'causal_lm' for a config that lists no architectures; ModelLoadError saying
    exactly what to add when the weights do not tell."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    names = weight_names(folder)
    classifier, lm_head = _has(names, CLASSIFIER_PREFIXES), _has(names, LM_HEAD_PREFIXES)
    tied = bool(getattr(config.get_text_config(), "tie_word_embeddings", False))
    if classifier and not lm_head:
        return "classification"
    if lm_head and not classifier or (tied and not classifier and names):
        return "causal_lm"  # a tied head that is not there after all is refused at loading, naming the keys
    model_type = getattr(config, "model_type", "?")
    options = [
        f'["{mapping[model_type]}"] for a {what}'
        for mapping, what in (
            (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, "language model"),
            (MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES, "classifier"),
        )
        if model_type in mapping
    ]
    add = f'add "architectures": {" or ".join(options)} to {Path(folder) / "config.json"}' if options else ""
    raise ModelLoadError(
        f"'{name}' has a config.json that lists no architectures, and its weights show no classifier "
        f"(classifier.*, score.*) or language-model head (lm_head.*, or tie_word_embeddings): "
        + (f"{add}, or pass --task classification or --task causal_lm." if add else "pass --task.")
    )
