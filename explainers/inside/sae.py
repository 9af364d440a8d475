"""Sparse autoencoders on a model's residual stream: the model, its file format and its quality numbers.

The SAE follows SAELens (so that SAEs trained there, e.g. GPT-2 small's or Gemma Scope's, load here and
ours load there):

    sae_in  = x · s − b_dec            (s: the activation scaling factor; 1 once folded into the weights)
    pre     = sae_in @ W_enc + b_enc   W_enc (d_in × d_sae), b_enc (d_sae)
    z       = act(pre)                 topk: ReLU of the k largest, the rest 0; standard: ReLU;
                                       jumprelu: pre where pre > threshold
    x̂       = (z @ W_dec + b_dec) / s  W_dec (d_sae × d_in), b_dec (d_in)

A folder holds `cfg.json` (d_in, d_sae, architecture, k, normalize_activations, the layer...),
`sae_weights.safetensors` (W_enc, b_enc, W_dec, b_dec[, threshold]) and `sparsity.safetensors` (SAELens's
log10 feature density per latent). As SAELens does on saving, the scaling factor is folded into the
weights (W_enc·s, W_dec/s, b_dec/s; normalize_activations "none"); the factor used in training stays in
cfg.json under `activation_norm_scaling_factor` for the record.

Quality numbers, each computed once here (SAELens's definitions):
- explained variance = 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² over all tokens (x̄: the mean activation); FVU = 1 − EV;
- L0 = mean number of non-zero latents per token;
- dead fraction = share of latents that never fired on the tokens seen;
- splicing x̂ into the model in place of x (all positions of the layer): a causal LM's CE-loss score
  (CE_zero − CE_sae) / (CE_zero − CE_clean) and KL score (KL_zero − KL_sae) / KL_zero, where "zero" replaces
  the layer's activations with zeros; a classifier's share of predictions unchanged and mean |Δp| of the
  class it predicted.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from explainers.errors import InputError
from explainers.inference.gateway import checkpoint
from explainers.inside import activations
from explainers.models.handle import ModelHandle

CFG_FILE, WEIGHTS_FILE, SPARSITY_FILE = "cfg.json", "sae_weights.safetensors", "sparsity.safetensors"
ARCHITECTURES = ("topk", "standard", "jumprelu")


class SparseAutoencoder(torch.nn.Module):
    """An SAE in SAELens's shape (see the module doc). `cfg` is the cfg.json dict."""

    def __init__(self, cfg: dict):
        super().__init__()
        d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
        self.cfg = dict(cfg)
        self.W_enc = torch.nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.W_dec = torch.nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))
        if self.architecture == "jumprelu":
            self.threshold = torch.nn.Parameter(torch.zeros(d_sae))
        # the training-time activation scale; 1.0 once folded (as saved)
        self.scale = 1.0 if cfg.get("normalize_activations", "none") == "none" else float(cfg["scale"])

    @property
    def architecture(self) -> str:
        return str(self.cfg.get("architecture", "standard"))

    @property
    def k(self) -> int | None:
        return int(self.cfg["k"]) if self.architecture == "topk" else None

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    @property
    def layer(self) -> int | None:
        layer = self.cfg.get("hook_layer")
        return None if layer is None else int(layer)

    def direction(self, latent: int) -> torch.Tensor:
        """Latent `latent`'s decoder row in the model's units: a direction to patch or steer with
        (activations.adding), as any other direction."""
        return (self.W_dec[latent] / self.scale).detach().clone()

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        sae_in = x * self.scale
        if self.cfg.get("apply_b_dec_to_input", True):
            sae_in = sae_in - self.b_dec
        return sae_in @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        if self.architecture == "topk":
            values, indices = pre.topk(self.k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
        if self.architecture == "jumprelu":
            return pre * (pre > self.threshold)
        return torch.relu(pre)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.pre_acts(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.W_dec + self.b_dec) / self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def fold_scale(self) -> None:
        """Fold the activation scale into the weights (what SAELens does before saving)."""
        s = self.scale
        self.W_enc.mul_(s)
        self.W_dec.div_(s)
        self.b_dec.div_(s)
        self.scale = 1.0
        self.cfg["normalize_activations"] = "none"
        self.cfg["activation_norm_scaling_factor"] = s


@dataclass
class SAEFolder:
    """An SAE with what whybox keeps beside it."""

    sae: SparseAutoencoder
    path: Path | None = None
    density: np.ndarray | None = None  # share of tokens on which each latent fired
    quality: dict = field(default_factory=dict)


def new_sae(d_in: int, d_sae: int, k: int, layer: int, model_name: str, scale: float = 1.0, seed: int = 0):
    """A TopK SAE initialised as in Gao et al. (2024): unit-norm decoder rows, the encoder their transpose."""
    cfg = {
        "architecture": "topk",
        "d_in": d_in,
        "d_sae": d_sae,
        "k": k,
        "dtype": "float32",
        "apply_b_dec_to_input": True,
        "normalize_activations": "expected_average_only_in",
        "scale": scale,
        "model_name": model_name,
        "hook_name": f"blocks.{layer - 1}.hook_resid_post" if layer > 0 else "hook_embed",
        "hook_layer": layer,
        "whybox_layer_convention": "hidden_states index: 0 = embeddings, l = output of block l",
    }
    sae = SparseAutoencoder(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = torch.randn(d_sae, d_in, generator=g)
        sae.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
        sae.W_enc.copy_(sae.W_dec.T)
    return sae


# ---- SAELens format ---------------------------------------------------------------------------------
def save(
    sae: SparseAutoencoder,
    folder: str | Path,
    density: np.ndarray | None = None,
    extra: dict | None = None,
    files: dict[str, str] | None = None,
):
    """Write the SAE in SAELens's format (scale folded in), with whybox's own `files` (name -> text) beside
    it. Written to a temporary folder first and moved into place, so that `folder` never holds a
    half-written SAE."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.writing-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    copy = SparseAutoencoder(sae.cfg)
    copy.load_state_dict(sae.state_dict())
    copy.scale = sae.scale
    if copy.scale != 1.0:
        copy.fold_scale()
    cfg = {key: value for key, value in copy.cfg.items() if key != "scale"}
    cfg.update(extra or {})
    (tmp / CFG_FILE).write_text(json.dumps(cfg, indent=2))
    save_file({k: v.detach().contiguous().float() for k, v in copy.state_dict().items()}, str(tmp / WEIGHTS_FILE))
    if density is not None:  # SAELens's "sparsity": log10 of the feature density
        log_density = torch.log10(torch.as_tensor(density, dtype=torch.float32) + 1e-10)
        save_file({"sparsity": log_density}, str(tmp / SPARSITY_FILE))
    for name, text in (files or {}).items():
        (tmp / name).write_text(text)
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)
    return folder


def load(folder: str | Path) -> SAEFolder:
    """An SAE folder in SAELens's format (ours or one trained elsewhere); a clear InputError for files
    that are missing or do not fit together."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (CFG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise InputError(f"{folder} is not an SAE folder: {name} is missing (SAELens's format needs both).")
    try:
        cfg = json.loads((folder / CFG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{folder / CFG_FILE} is not valid JSON: {exc}.") from None
    for key in ("d_in", "d_sae"):
        if not isinstance(cfg.get(key), int) or cfg[key] < 1:
            raise InputError(f"{folder / CFG_FILE} needs a positive integer '{key}'.")
    architecture = cfg.get("architecture", "standard")
    if architecture not in ARCHITECTURES:
        raise InputError(
            f"SAE architecture '{architecture}' is not supported: whybox reads {', '.join(ARCHITECTURES)}."
        )
    if architecture == "topk" and not (isinstance(cfg.get("k"), int) and 0 < cfg["k"] <= cfg["d_sae"]):
        raise InputError(f"{folder / CFG_FILE}: a topk SAE needs an integer 'k' between 1 and d_sae.")
    if cfg.get("normalize_activations", "none") not in ("none", None):
        factor = cfg.get("activation_norm_scaling_factor")
        if not isinstance(factor, (int, float)):
            raise InputError(
                f"{folder / CFG_FILE}: normalize_activations is '{cfg['normalize_activations']}' but no "
                "activation_norm_scaling_factor is given; fold it into the weights first (SAELens: "
                "fold_activation_norm_scaling_factor)."
            )
        cfg["scale"] = float(factor)
    try:
        weights = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"{folder / WEIGHTS_FILE} cannot be read as safetensors: {exc}.") from None
    sae = SparseAutoencoder(cfg)
    expected = {name: tuple(p.shape) for name, p in sae.state_dict().items()}
    missing = [name for name in expected if name not in weights]
    if missing:
        raise InputError(f"{folder / WEIGHTS_FILE} lacks {', '.join(missing)} (a {architecture} SAE needs them).")
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise InputError(
                f"{folder / WEIGHTS_FILE}: {name} has shape {tuple(weights[name].shape)}, but d_in={cfg['d_in']} "
                f"and d_sae={cfg['d_sae']} in cfg.json need {shape}."
            )
    sae.load_state_dict({name: weights[name].float() for name in expected})
    sae.eval()
    density = None
    if (folder / SPARSITY_FILE).is_file():
        density = 10 ** load_file(str(folder / SPARSITY_FILE))["sparsity"].double().numpy()
        density[density < 1e-9] = 0.0
    quality = {}
    if (folder / "quality.json").is_file():
        quality = json.loads((folder / "quality.json").read_text())
    return SAEFolder(sae, folder, density, quality)


def check_fits(sae: SparseAutoencoder, handle: ModelHandle, layer: int | None = None) -> int:
    """The layer this SAE reads on `handle`; InputError when the widths or layers do not match."""
    layer = sae.layer if layer is None else layer
    if layer is None:
        raise InputError("This SAE's cfg.json names no hook_layer: say which layer it reads.")
    activations.check_layer(handle, layer)
    width = handle.config.get_text_config().hidden_size
    if width != sae.d_in:
        raise InputError(
            f"This SAE reads {sae.d_in}-wide activations, but {handle.name}'s residual stream is {width} wide."
        )
    return layer


# ---- quality ----------------------------------------------------------------------------------------
class Tally:
    """Running sums for explained variance, L0 and firing counts over batches of (x, z, x̂)."""

    def __init__(self, d_in: int, d_sae: int):
        self.n = 0
        self.sum_x = torch.zeros(d_in, dtype=torch.float64)
        self.sum_sq_x = 0.0
        self.sum_sq_err = 0.0
        self.active = 0
        self.fired = torch.zeros(d_sae, dtype=torch.long)

    def add(self, x: torch.Tensor, z: torch.Tensor, x_hat: torch.Tensor) -> None:
        x, x_hat = x.double(), x_hat.double()
        self.n += x.shape[0]
        self.sum_x += x.sum(0)
        self.sum_sq_x += float((x * x).sum())
        self.sum_sq_err += float(((x - x_hat) ** 2).sum())
        nonzero = z != 0
        self.active += int(nonzero.sum())
        self.fired += nonzero.sum(0).cpu()

    def result(self) -> dict:
        # Σ‖x − x̄‖² = Σ‖x‖² − n‖x̄‖²
        total = self.sum_sq_x - float((self.sum_x * self.sum_x).sum()) / max(1, self.n)
        ev = 1.0 - self.sum_sq_err / total if total > 0 else float("nan")
        return {
            "tokens": self.n,
            "explained_variance": ev,
            "fvu": 1.0 - ev,
            "mse": self.sum_sq_err / max(1, self.n),
            "l0": self.active / max(1, self.n),
            "dead_fraction": float((self.fired == 0).double().mean()),
            "density": (self.fired.double() / max(1, self.n)).numpy(),
        }


@torch.no_grad()
def splice_effect(handle: ModelHandle, sae: SparseAutoencoder, layer: int, sequences: Sequence[Sequence[int]]) -> dict:
    """What changes when the model runs on the SAE's reconstruction at `layer` (see the module doc)."""
    reconstruct = {layer: lambda h: sae(h.float()).to(h.dtype)}
    zero = {layer: torch.zeros_like}
    if not handle.task.scores_positions:
        clean = handle.score_ids(sequences, None)
        with activations.editing(handle, reconstruct):
            spliced = handle.score_ids(sequences, None)
        predicted = clean.argmax(1)
        rows = np.arange(len(predicted))
        return {
            "texts": len(sequences),
            "predictions_unchanged": float((spliced.argmax(1) == predicted).mean()),
            "mean_abs_delta_p": float(np.abs(spliced[rows, predicted] - clean[rows, predicted]).mean()),
        }
    ce = {"clean": [], "sae": [], "zero": []}  # −log p(actual next token), per predicted token
    kl = {"sae": [], "zero": []}  # KL(clean ‖ edited) per position
    for chunk, ids, mask in activations.planned(handle, sequences):
        runs = {
            "clean": activations.logits(handle, ids, mask),
            "sae": activations.logits(handle, ids, mask, reconstruct),
            "zero": activations.logits(handle, ids, mask, zero),
        }
        logp = {name: torch.log_softmax(value, dim=-1) for name, value in runs.items()}
        for j, i in enumerate(chunk):
            n = len(sequences[i])
            following = ids[j, 1:n, None]
            for name, lp in logp.items():
                ce[name].append(-lp[j, : n - 1].gather(1, following)[:, 0].cpu())
                if name != "clean":
                    c = logp["clean"][j, :n]
                    kl[name].append((c.exp() * (c - lp[j, :n])).sum(-1).cpu())
        checkpoint(len(chunk))
    ce_clean, ce_sae, ce_zero = (float(torch.cat(ce[name]).mean()) for name in ("clean", "sae", "zero"))
    kl_sae, kl_zero = (float(torch.cat(kl[name]).mean()) for name in ("sae", "zero"))
    return {
        "texts": len(sequences),
        "ce_clean": ce_clean,
        "ce_sae": ce_sae,
        "ce_zero": ce_zero,
        "ce_loss_score": (ce_zero - ce_sae) / (ce_zero - ce_clean) if ce_zero != ce_clean else float("nan"),
        "kl_sae": kl_sae,
        "kl_zero": kl_zero,
        "kl_score": (kl_zero - kl_sae) / kl_zero if kl_zero > 0 else float("nan"),
    }


def measure(handle: ModelHandle, sae: SparseAutoencoder, layer: int, sequences: Sequence[Sequence[int]]) -> dict:
    """Every quality number of `sae` on `sequences` (one read of the activations, one spliced pass)."""
    tally = Tally(sae.d_in, sae.d_sae)
    with torch.no_grad():
        for acts in activations.read(handle, sequences, [layer]):
            x = acts[0]
            z = sae.encode(x)
            tally.add(x, z, sae.decode(z))
    out = tally.result()
    out.pop("density")
    out.update(splice_effect(handle, sae, layer, sequences))
    return {key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in out.items()}
