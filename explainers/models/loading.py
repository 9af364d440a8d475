"""Loading a model: a built-in name, a local folder or a Hugging Face hub id -> a ModelHandle.

Safety: `trust_remote_code` stays off; the checkpoint must be a text classifier or causal LM.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

from explainers.errors import ModelLoadError
from explainers.models import architecture, integrity
from explainers.models.handle import DEFAULT_MAX_TOKENS, ModelHandle
from explainers.models.tasks import task_class


def pick_device(device: str = "auto") -> torch.device:
    if device != "auto":
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ModelLoadError(f"Unknown device '{device}': use auto, cpu, cuda, cuda:N or mps.") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(f"Device '{device}' asked for, but no CUDA GPU is available here.")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError("Device 'mps' asked for, but Apple MPS is not available here.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(dtype: str) -> torch.dtype:
    # float32 by default: attributions are gradients and differences of probabilities, which
    # half precision visibly distorts.
    table = {"auto": torch.float32, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in table:
        raise ModelLoadError(f"Unknown dtype '{dtype}': use one of {', '.join(table)}.")
    return table[dtype]


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def resolve_model_source(name_or_path: str) -> str:
    """A built-in name -> its (built, cached) folder; a folder -> itself; else a hub id."""
    name_or_path = (name_or_path or "").strip()
    if not name_or_path:
        raise ModelLoadError("No model given: pick a built-in model, a local folder or a hub id.")
    if "/" not in name_or_path and os.sep not in name_or_path:  # built-in names are bare words
        from explainers.models import builtin

        if builtin.is_builtin(name_or_path):
            return str(builtin.builtin_path(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"'{name_or_path}' is a folder but has no config.json: not a Hugging Face model folder."
            )
        _check_folder(path, name_or_path)
        return str(path)
    if path.exists():
        raise ModelLoadError(f"'{name_or_path}' is a file, not a model folder.")
    looks_local = name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path.strip("/").replace("/", "", 1)
    if looks_local or not _HUB_ID.match(name_or_path):
        raise ModelLoadError(f"No model folder at '{name_or_path}', and it is not a Hugging Face hub id.")
    return name_or_path


def _check_folder(path: Path, name: str) -> None:
    """Refuse pickle-only and damaged folders before transformers reads them."""
    pickles = integrity.pickle_only(path)
    if pickles:
        raise ModelLoadError(
            f"'{name}' has only pickle weights ({', '.join(pickles)}); whybox loads safetensors weights only, "
            "because unpickling a file can run code. Convert it once where you trust the file: "
            "AutoModel...from_pretrained(folder).save_pretrained(folder, safe_serialization=True)."
        )
    problems = integrity.folder_problems(path)
    if problems:
        raise ModelLoadError(
            f"The model folder '{name}' is damaged: {'; '.join(problems)}. "
            "Copy or save the model again (a full disk or an interrupted copy leaves files like this)."
        )


def load_model(
    name_or_path: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    task: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    allow_new_weights: bool = False,
    prompt=None,
) -> ModelHandle:
    """Load any Hugging Face sequence-classification or causal-LM model, built-in, local or hub.

    A checkpoint that lacks weights for the chosen task's head is refused (they would be random)
    unless `allow_new_weights` (for experiments on untrained heads, from Python only).

    `prompt` (a prompt_classifier.PromptSpec) makes a causal LM a classifier; a built-in prompted model
    (`smollm2-sentiment`) brings its own."""
    from explainers.models import builtin

    if builtin.prompt_of(name_or_path) is not None:
        prompt = prompt or builtin.prompt_of(name_or_path)
        base = builtin.BUILTIN_MODELS[name_or_path].base
        handle = load_model(base, device=device, dtype=dtype, max_tokens=max_tokens, prompt=prompt)
        handle.name = name_or_path
        return handle
    from transformers import AutoConfig, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)

    torch_device = pick_device(device)
    torch_dtype = pick_dtype(dtype)
    source = resolve_model_source(name_or_path)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        where = "folder" if Path(source).is_dir() else "Hugging Face hub id"
        hint = "" if Path(source).is_dir() else " Check the id, and that this machine can reach huggingface.co."
        raise ModelLoadError(f"Could not load the {where} '{name_or_path}': {_first_line(exc)}.{hint}") from exc
    if task is None and not getattr(config, "architectures", None) and Path(source).is_dir():
        from explainers.models.heads import infer_task

        task = infer_task(name_or_path, Path(source), config)  # a config that does not say (GGUF exports)
    task_type = task_class(task, config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"'{name_or_path}' has no usable tokenizer: {_first_line(exc)}") from exc
    if not getattr(tokenizer, "is_fast", True):
        raise ModelLoadError(
            f"'{name_or_path}' has only a slow tokenizer; whybox needs token offsets (a fast tokenizer)."
        )
    if tokenizer.pad_token is None:
        # Causal LMs often ship without a pad token; batching needs one (its positions are masked).
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    try:
        model, info = task_type.auto_model().from_pretrained(
            source, dtype=torch_dtype, trust_remote_code=False, use_safetensors=True, output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"Could not load the weights of '{name_or_path}': {_first_line(exc)}") from exc
    except Exception as exc:  # safetensors' own error type, when a file is damaged in a way we did not see
        if type(exc).__name__ != "SafetensorError":
            raise
        raise ModelLoadError(
            f"The weights of '{name_or_path}' are damaged ({_first_line(exc)}): copy or save the model again."
        ) from exc
    if not allow_new_weights:
        _refuse_new_weights(name_or_path, task_type, info)
    _refuse_small_tokenizer(name_or_path, tokenizer, config)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    architecture.prepare(model)  # e.g. ALBERT's shared layer, unrolled into blocks
    model.to(torch_device).eval()
    model.requires_grad_(False)  # we differentiate w.r.t. inputs only: no weight gradients to store

    limits = [
        max_tokens,
        getattr(config.get_text_config(), "max_position_embeddings", None),
        tokenizer.model_max_length,
    ]
    limit = min(int(x) for x in limits if x and int(x) < 10**7)
    handle = ModelHandle(name_or_path, model, tokenizer, task_type(model, tokenizer), torch_device, limit)
    if prompt is not None:
        from explainers.models.prompt_classifier import as_classifier

        as_classifier(handle, prompt)
    return handle


def _refuse_new_weights(name: str, task_type, info: dict) -> None:
    """A checkpoint whose weights do not cover the model (a classifier loaded as a causal LM, or the
    reverse) gets freshly initialised, random layers: explaining those explains noise."""
    missing = list(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(sorted(missing)[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ModelLoadError(
            f"'{name}' has no trained weights for a {task_type.name} model: {shown} would be initialised at "
            "random, so explanations would describe noise. Use the checkpoint's own task (leave --task out), "
            "or a checkpoint trained for this task."
        )


# A tokenizer with far fewer tokens than the model's embedding table is not the model's tokenizer
# (transformers builds a tiny one from tokenizer_config.json when tokenizer.json is missing): every
# word would become unknown and the answers confidently wrong.
MIN_TOKENIZER_SHARE = 0.5


def _refuse_small_tokenizer(name: str, tokenizer, config) -> None:
    vocab = getattr(config.get_text_config(), "vocab_size", None)
    if vocab and len(tokenizer) < MIN_TOKENIZER_SHARE * vocab:
        raise ModelLoadError(
            f"'{name}' has a tokenizer of {len(tokenizer):,} tokens for a model of {vocab:,}: its tokenizer files "
            "(tokenizer.json, vocab.txt, ...) are missing or wrong. Copy the tokenizer files saved with the model "
            "into the folder (tokenizer.save_pretrained(folder))."
        )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
