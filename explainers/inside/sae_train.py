"""Training a TopK sparse autoencoder on a model's own residual stream (Gao et al., 2024, as SAELens does).

- Activations are harvested from a corpus through the gateway in batches (`activations.read`), a chunk of
  texts at a time (the streaming buffer): each chunk's tokens are shuffled and trained on, then dropped.
- Activations are scaled as SAELens's "expected_average_only_in": x·s with s = √d_in / mean‖x‖ measured on
  the first chunk, so that the mean norm is √d_in; the scale is folded into the weights on saving.
- Loss: Σ_d (x̂ − x)² averaged over tokens, plus AuxK (1/32 × the residual's reconstruction by the top
  `aux_k` dead latents, over its variance) so that dead latents get a gradient; a latent is dead when it has
  not fired for `dead_tokens` tokens. Adam; decoder rows kept at unit norm.
- Seeded: the text order, the shuffles and the initialisation come from `seed`; a stopped build resumes
  from its last saved chunk and ends with the same weights as a build that never stopped. Work in progress
  lives in a hidden folder beside `out` and the SAE appears under `out` only when finished.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from explainers.errors import InputError
from explainers.inference.gateway import checkpoint
from explainers.inside import activations
from explainers.inside.sae import SparseAutoencoder, Tally, new_sae, save, splice_effect
from explainers.models.handle import ModelHandle

MAX_TEXT_TOKENS = 128  # longer texts are cut: reviews are sentences; the stream wants many contexts
MIN_TOKENS_PER_LATENT = 4  # fewer training tokens than 4 per latent cannot train most latents even once


@dataclass(frozen=True)
class TrainSettings:
    k: int = 32
    expansion: int = 8
    tokens: int | None = None  # training tokens; None: one pass over the training texts
    batch_size: int = 256  # tokens per Adam step: small corpora need steps more than large batches
    buffer_tokens: int = 16384  # tokens harvested per chunk of the stream
    lr: float = 1e-3
    aux_k: int | None = None  # None: d_in / 2 (Gao et al.)
    aux_coefficient: float = 1 / 32
    dead_tokens: int | None = None  # None: a quarter of the training tokens, at most 1M
    heldout: float = 0.05  # share of texts kept out of training for the quality numbers and the cards
    max_heldout_texts: int = 1000
    seed: int = 0


@dataclass
class Progress:
    tokens: int  # trained so far
    total: int
    mse: float  # of the last chunk, in scaled units
    explained_variance: float  # of the last chunk (training tokens: a running view, not the figure)
    dead_fraction: float  # latents silent for dead_tokens
    phase: str = "training"


def corpus(data: str | None = None, text_column: str = "text") -> tuple[list[str], str]:
    """(texts, where they come from): the built-in movie-review sentences, or an audit-style data file."""
    if data is None:
        from explainers.models.builtin import sentiment_splits

        train, heldout = sentiment_splits()
        return [text for text, _ in train + heldout], "the built-in movie-review sentences (Rotten Tomatoes)"
    from explainers.audit.data import read_data

    rows = read_data(data, text_column)
    return [row.text for row in rows.rows], rows.source


def token_rows(handle: ModelHandle, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text (special tokens as the model reads them), cut to MAX_TEXT_TOKENS."""
    encoded = handle.tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=MAX_TEXT_TOKENS)
    return [list(ids) for ids in encoded["input_ids"] if ids]


def split(texts: Sequence[str], settings: TrainSettings) -> tuple[list[str], list[str]]:
    """(training, held-out) texts: a seeded draw, the same for the same texts and seed."""
    order = np.random.default_rng(settings.seed).permutation(len(texts))
    n_held = min(settings.max_heldout_texts, max(1, int(round(settings.heldout * len(texts)))))
    held = sorted(order[:n_held].tolist())
    train = sorted(order[n_held:].tolist())
    return [texts[i] for i in train], [texts[i] for i in held]


class Trainer:
    """One SAE's training state: weights, Adam's moments, the stream position and the dead-latent clock."""

    def __init__(
        self,
        d_in: int,
        layer: int,
        model_name: str,
        lengths: Sequence[int],
        harvest: Callable[[list[int]], torch.Tensor],
        settings: TrainSettings,
    ):
        """`harvest(text indices)` gives those texts' activations, (tokens, d_in); `lengths` their tokens."""
        self.layer, self.model_name, self.settings = layer, model_name, settings
        self.lengths, self._harvest = list(lengths), harvest
        self.d_in = d_in
        self.d_sae = settings.expansion * self.d_in
        if not 0 < settings.k <= self.d_sae:
            raise InputError(f"k must be between 1 and the SAE's width {self.d_sae}, not {settings.k}.")
        corpus_tokens = sum(self.lengths)
        self.total = settings.tokens or corpus_tokens
        needed = MIN_TOKENS_PER_LATENT * self.d_sae
        if corpus_tokens < needed or self.total < needed:
            raise InputError(
                f"Too little to train on: {min(corpus_tokens, self.total):,} tokens, but an SAE with "
                f"{self.d_sae:,} latents needs at least {needed:,} ({MIN_TOKENS_PER_LATENT} per latent); "
                "give a larger corpus (--data) or more --tokens."
            )
        self.aux_k = settings.aux_k or max(1, self.d_in // 2)
        self.dead_tokens = settings.dead_tokens or max(settings.batch_size, min(1_000_000, self.total // 4))
        self.sae: SparseAutoencoder | None = None
        self.optimizer: torch.optim.Adam | None = None
        self.since_fired = torch.zeros(self.d_sae, dtype=torch.long)
        self.done = 0  # tokens trained
        self.chunk = 0  # chunks of the stream consumed

    @classmethod
    def on_model(cls, handle: ModelHandle, layer: int, sequences: list[list[int]], settings: TrainSettings) -> Trainer:
        """A trainer on `handle`'s residual stream at `layer`, read through the gateway a chunk at a time."""

        def harvest(chunk: list[int]) -> torch.Tensor:
            rows = [sequences[i] for i in chunk]
            return torch.cat([a[0] for a in activations.read(handle, rows, [layer], stop_early=True)])

        width = handle.config.get_text_config().hidden_size
        return cls(width, layer, handle.name, [len(s) for s in sequences], harvest, settings)

    # ---- the stream ---------------------------------------------------------------------------------
    def _chunks(self):
        """(chunk index, texts) in a seeded order, epoch after epoch, each chunk about buffer_tokens."""
        index, epoch = 0, 0
        while True:
            order = np.random.default_rng([self.settings.seed, epoch]).permutation(len(self.lengths))
            chunk, size = [], 0
            for i in order:
                chunk.append(int(i))
                size += self.lengths[i]
                if size >= self.settings.buffer_tokens:
                    yield index, chunk
                    index, chunk, size = index + 1, [], 0
            if chunk:
                yield index, chunk
                index += 1
            epoch += 1

    def _start(self, x: torch.Tensor) -> None:
        scale = math.sqrt(self.d_in) / float(x.norm(dim=-1).mean())
        sae = new_sae(self.d_in, self.d_sae, self.settings.k, self.layer, self.model_name, scale, self.settings.seed)
        with torch.no_grad():
            sae.b_dec.copy_((x * scale).mean(0))
        self.sae = sae
        self.optimizer = torch.optim.Adam(sae.parameters(), lr=self.settings.lr)

    # ---- one step -----------------------------------------------------------------------------------
    def _step(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        sae, opt = self.sae, self.optimizer
        xs = x * sae.scale
        pre = (xs - sae.b_dec) @ sae.W_enc + sae.b_enc
        z = sae.activate(pre)
        recon = z @ sae.W_dec + sae.b_dec
        loss = ((recon - xs) ** 2).sum(-1).mean()
        dead = self.since_fired >= self.dead_tokens
        if dead.any():  # AuxK: the dead latents' best try at what the live ones missed
            k_aux = min(self.aux_k, int(dead.sum()))
            values, indices = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1)
            z_aux = torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
            residual = (xs - recon).detach()
            variance = ((residual - residual.mean(0)) ** 2).sum(-1).mean().clamp_min(1e-8)
            aux = ((z_aux @ sae.W_dec - residual) ** 2).sum(-1).mean() / variance
            total = loss + self.settings.aux_coefficient * aux
        else:
            total = loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            sae.W_dec.div_(sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))
            fired = (z > 0).any(0)
            self.since_fired += x.shape[0]
            self.since_fired[fired] = 0
        return float(loss.detach()), recon.detach() / sae.scale

    def run(self, on_progress: Callable[[Progress], None] | None = None, save_state: Callable[[], None] | None = None):
        """Train until `total` tokens; `save_state` after each chunk (it may throttle itself)."""
        settings = self.settings
        for index, chunk in self._chunks():
            if self.done >= self.total:
                break
            if index < self.chunk:
                continue  # consumed before a resume
            x = self._harvest(chunk)
            if self.sae is None:
                self._start(x)
            order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(settings.seed * 100_003 + index))
            x = x[order][: self.total - self.done]
            tally = Tally(self.d_in, self.d_sae)
            losses = []
            for start in range(0, x.shape[0], settings.batch_size):
                checkpoint()  # a Stop lands between steps
                batch = x[start : start + settings.batch_size]
                loss, recon = self._step(batch)
                losses.append(loss)
                tally.add(batch, torch.zeros(1, self.d_sae), recon)
            self.done += x.shape[0]
            self.chunk = index + 1
            if save_state is not None:
                save_state()
            if on_progress is not None:
                part = tally.result()
                on_progress(
                    Progress(
                        self.done,
                        self.total,
                        float(np.mean(losses)),
                        part["explained_variance"],
                        self.dead_fraction(),
                    )
                )
        return self.sae

    def dead_fraction(self) -> float:
        return float((self.since_fired >= min(self.dead_tokens, max(1, self.done))).double().mean())

    # ---- state on disk (safetensors + JSON: nothing is unpickled) -------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors = {name: p.detach().clone() for name, p in self.sae.named_parameters()}
        for name, p in self.sae.named_parameters():
            moments = self.optimizer.state.get(p)
            if moments:
                tensors[f"adam.{name}.exp_avg"] = moments["exp_avg"].clone()
                tensors[f"adam.{name}.exp_avg_sq"] = moments["exp_avg_sq"].clone()
                step = int(moments["step"])
        tensors["since_fired"] = self.since_fired.clone()
        meta = {
            "settings": asdict(self.settings),
            "layer": self.layer,
            "model": self.model_name,
            "scale": self.sae.scale,
            "done": self.done,
            "chunk": self.chunk,
            "adam_step": step if self.optimizer.state else 0,
        }
        return tensors, meta

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        sae = new_sae(self.d_in, self.d_sae, self.settings.k, self.layer, self.model_name, meta["scale"])
        with torch.no_grad():
            for name, p in sae.named_parameters():
                p.copy_(tensors[name])
        self.sae = sae
        self.optimizer = torch.optim.Adam(sae.parameters(), lr=self.settings.lr)
        if meta["adam_step"]:
            for name, p in sae.named_parameters():
                self.optimizer.state[p] = {
                    "step": torch.tensor(float(meta["adam_step"])),
                    "exp_avg": tensors[f"adam.{name}.exp_avg"].clone(),
                    "exp_avg_sq": tensors[f"adam.{name}.exp_avg_sq"].clone(),
                }
        self.since_fired = tensors["since_fired"].clone()
        self.done, self.chunk = int(meta["done"]), int(meta["chunk"])


def default_folder(handle: ModelHandle, layer: int) -> Path:
    """Where whybox keeps the SAE it builds for this model and layer (under the cache folder)."""
    import re

    from explainers.models.builtin import cache_dir

    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(handle.name).strip("/"))[-60:]
    return cache_dir() / "saes" / f"{name}-layer{layer}"


def is_stopped(out: str | Path) -> bool:
    """A build of `out` was stopped and can resume."""
    return (_work_dir(Path(out)) / "progress.json").is_file()


def estimate_seconds(handle: ModelHandle, layer: int, tokens: int, settings: TrainSettings = TrainSettings()) -> float:
    """A rough price of a build: the harvest at the gateway's measured rate (blocks up to `layer` only)
    plus training at the same rate per multiply-add (≈ 6 · d_in · d_sae per token, forward and backward
    of encoder and decoder, against the model's ≈ 2 · parameters per token)."""
    rate = handle.gateway.seconds_per_row_token()
    d_in = handle.config.get_text_config().hidden_size
    per_token_model = 2 * sum(p.numel() for p in handle.model.parameters() if p.dim() > 1)
    training = 12 * d_in * settings.expansion * d_in / max(1, per_token_model)
    share = max(1, layer) / max(1, handle.n_layers)
    return tokens * rate * (share + training) * 1.3  # + the held-out pass and the cards


def _work_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def build(
    handle: ModelHandle,
    layer: int,
    texts: Sequence[str],
    out: str | Path,
    settings: TrainSettings = TrainSettings(),
    resume: bool = True,
    on_progress: Callable[[Progress], None] | None = None,
    save_every_s: float = 30.0,
    embed=None,
) -> dict:
    """Train an SAE on `texts` at `layer`, measure it on held-out texts, make its feature cards and write
    it all to `out` (SAELens format + quality.json + features.json). Returns the quality numbers.

    A stopped build (CancelledError, Ctrl-C) leaves its state in a hidden folder beside `out`; with
    `resume` the next build with the same settings continues from there, else it starts clean."""
    from safetensors.torch import load_file, save_file

    from explainers.inside import sae_features
    from explainers.strict_json import dumps

    activations.check_layer(handle, layer)
    out = Path(out)
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    train_texts, held_texts = split(texts, settings)
    trainer = Trainer.on_model(handle, layer, token_rows(handle, train_texts), settings)
    work = _work_dir(out)
    identity = {"settings": asdict(settings), "layer": layer, "model": handle.name, "texts": len(texts)}
    if work.is_dir() and resume and (work / "progress.json").is_file():
        meta = json.loads((work / "progress.json").read_text())
        if {key: meta.get(key) for key in identity} == identity:
            trainer.restore(load_file(str(work / "state.safetensors")), meta)
    if trainer.done == 0:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    last_save = [time.monotonic()]

    def save_state(force: bool = False) -> None:
        if not force and time.monotonic() - last_save[0] < save_every_s and trainer.done < trainer.total:
            return
        tensors, meta = trainer.state()
        save_file(tensors, str(work / "state.tmp"))
        (work / "progress.tmp").write_text(json.dumps({**meta, **identity}))
        (work / "state.tmp").replace(work / "state.safetensors")  # weights first: progress names them
        (work / "progress.tmp").replace(work / "progress.json")
        last_save[0] = time.monotonic()

    started = time.perf_counter()
    sae = trainer.run(on_progress, save_state)
    train_seconds = time.perf_counter() - started
    if on_progress is not None:
        on_progress(
            Progress(trainer.done, trainer.total, float("nan"), float("nan"), trainer.dead_fraction(), "measuring")
        )
    sae.eval()
    sae.fold_scale()  # from here on, model units (what is saved)
    held = token_rows(handle, held_texts)
    started = time.perf_counter()
    features = sae_features.harvest(handle, sae, layer, held, held_texts, embed, settings.seed)
    quality = dict(features.quality)
    quality.update(splice_effect(handle, sae, layer, held))
    quality.update(
        {
            "dead_fraction_training": trainer.dead_fraction(),
            "training_tokens": trainer.done,
            "training_texts": len(train_texts),
            "heldout_texts": len(held_texts),
            "train_seconds": train_seconds,
            "measure_seconds": time.perf_counter() - started,
            "layer": layer,
            "model": handle.name,
            "d_in": sae.d_in,
            "d_sae": sae.d_sae,
            "k": sae.k,
            "label_scores": features.label_scores,
        }
    )
    quality = {key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in quality.items()}
    extra = {"whybox_settings": asdict(settings)}
    files = {"quality.json": dumps(quality, indent=2), sae_features.FEATURES_FILE: sae_features.write(features)}
    save(sae, out, features.density, extra, files)
    shutil.rmtree(work, ignore_errors=True)
    return quality
