"""Loading a model: a built-in name, a local folder or a Hugging Face hub id -> a ModelHandle.

Safety: `trust_remote_code` stays off; the checkpoint must be a text classifier or causal LM.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

from .errors import ModelLoadError
from .model import DEFAULT_MAX_TOKENS, ModelHandle
from .tasks import task_class


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
        from . import builtin

        if builtin.is_builtin(name_or_path):
            return str(builtin.builtin_path(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"'{name_or_path}' is a folder but has no config.json: not a Hugging Face model folder."
            )
        return str(path)
    if path.exists():
        raise ModelLoadError(f"'{name_or_path}' is a file, not a model folder.")
    looks_local = name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path.strip("/").replace("/", "", 1)
    if looks_local or not _HUB_ID.match(name_or_path):
        raise ModelLoadError(f"No model folder at '{name_or_path}', and it is not a Hugging Face hub id.")
    return name_or_path


def load_model(
    name_or_path: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    task: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> ModelHandle:
    """Load any Hugging Face sequence-classification or causal-LM model, built-in, local or hub."""
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
        model = task_type.auto_model().from_pretrained(source, dtype=torch_dtype, trust_remote_code=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"Could not load the weights of '{name_or_path}': {_first_line(exc)}") from exc
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(torch_device).eval()
    model.requires_grad_(False)  # we differentiate w.r.t. inputs only: no weight gradients to store

    limits = [
        max_tokens,
        getattr(config.get_text_config(), "max_position_embeddings", None),
        tokenizer.model_max_length,
    ]
    limit = min(int(x) for x in limits if x and int(x) < 10**7)
    return ModelHandle(name_or_path, model, tokenizer, task_type(model, tokenizer), torch_device, limit)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
