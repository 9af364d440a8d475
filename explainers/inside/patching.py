"""Activation patching: where inside the model the answer is computed.

Two texts of the same token length, a clean one (the model gives the target) and a corrupted one (it
does not). One activation of one run is replaced by the other run's, one cell (a site at one layer and
one position, or one head at all positions) per patched row, and the answer is read again. The metric
is the logit difference between the target and a contrast (or the target's log-probability),
normalised so that the corrupted run scores 0 and the clean run 1:

- denoising, "restore clean into corrupted": the corrupted run with one clean activation; a cell near 1
  carries what the clean answer needs;
- noising, "put corrupted into clean": the clean run with one corrupted activation; a cell near 0 is
  one the clean answer cannot do without.

Cost: a patched row recomputes only what the patch can change. Rows are grouped by layer, and the
blocks below the patched one return the destination run's cached outputs (`activations.starting_at`)
instead of computing them; a cell whose activation is the same in both runs (a causal LM's positions
before the first edit) cannot change anything and is not run (its value is exact: 0, or 1 for noising).
Rows go through the gateway's lock, batch budget, back-off, progress and Stop.

Every patch is checked: the edit must run exactly once per patched pass, on exactly the rows and
positions planned; anything else is an internal error, never a silent zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from explainers.errors import InputError, InternalError
from explainers.inference.gateway import checkpoint
from explainers.inside import activations
from explainers.inside.activations import Site
from explainers.inside.vocabulary import DIRECTIONS, METRICS, NORMALISED, UNIT  # noqa: F401
from explainers.models.handle import ModelHandle
from explainers.models.tasks import Target
from explainers.models.text import Encoded


@dataclass
class Pair:
    """A clean and a corrupted text with the target, contrast and metric the grid is measured in."""

    clean: Encoded
    corrupted: Encoded
    target: Target
    target_id: int  # class index or next-token id
    contrast_id: int | None
    contrast_label: str | None
    metric: str
    clean_metric: float
    corrupted_metric: float  # with noise: the mean over the noise samples
    noise: torch.Tensor | None = None  # (S, T, H) added to the corrupted run's token embeddings (causal tracing)
    noise_recipe: dict | None = None

    @property
    def runs(self) -> dict[str, tuple[Encoded, torch.Tensor | None]]:
        """Each run's tokens and embedding noise."""
        return {"clean": (self.clean, None), "corrupted": (self.corrupted, self.noise)}

    def score(self, logits: torch.Tensor) -> torch.Tensor:
        """(B,) metric from the logits at the answer (B, C or V)."""
        logits = logits.float()
        if self.metric == "logprob":
            return torch.log_softmax(logits, dim=-1)[:, self.target_id]
        return logits[:, self.target_id] - logits[:, self.contrast_id]

    def normalise(self, metric: np.ndarray | float):
        return (np.asarray(metric, dtype=np.float64) - self.corrupted_metric) / (
            self.clean_metric - self.corrupted_metric
        )

    @property
    def noise_description(self) -> str:
        r = self.noise_recipe or {}
        return (
            f"the clean text with noise of {r['scale']:g} × σ (= {r['scale'] * r['sigma']:.3g}, σ the embeddings' "
            f"standard deviation) on positions {r['positions']}, mean over {r['samples']} draws (seed {r['seed']})"
            if r
            else "the corrupted text"
        )

    @property
    def metric_label(self) -> str:
        if self.metric == "logprob":
            return f"log p({self.target.label!r})"
        return f"logit({self.target.label!r}) − logit({self.contrast_label!r})"

    def to_dict(self) -> dict:
        return {
            "clean": self.clean.text,
            "corrupted": self.corrupted.text,
            "tokens": {"clean": self.clean.tokens, "corrupted": self.corrupted.tokens},
            "target": self.target.label,
            "contrast": self.contrast_label,
            "metric": self.metric,
            "metric_label": self.metric_label,
            "clean_metric": self.clean_metric,
            "corrupted_metric": self.corrupted_metric,
            "noise": self.noise_recipe,
        }


@dataclass
class Grid:
    """One component's patching grid: values[unit, layer], normalised (corrupted 0, clean 1)."""

    component: str
    direction: str
    layers: list[int]
    units: list[str]  # token strings, or "head 3" / "group 1"
    values: np.ndarray  # (units, layers)
    computed: np.ndarray  # (units, layers) False where both runs' activations are equal (value exact, not run)
    exact: bool = True  # False: attribution patching's first-order preview
    rows: int = 0  # patched passes run
    notes: list[str] = field(default_factory=list)

    @property
    def unit(self) -> str:
        return UNIT[self.component]

    @property
    def baseline(self) -> float:
        """The value of a cell that changes nothing."""
        return 0.0 if self.direction == "denoise" else 1.0

    @property
    def effects(self) -> np.ndarray:
        return self.values - self.baseline

    def to_dict(self) -> dict:
        return {
            "component": self.component,
            "component_meaning": activations.COMPONENTS[self.component],
            "direction": self.direction,
            "direction_meaning": DIRECTIONS[self.direction],
            "exact": self.exact,
            "unit": self.unit,
            "layers": self.layers,
            "units": self.units,
            "values": [[None if math.isnan(v) else float(v) for v in row] for row in self.values],
            "computed": self.computed.tolist(),
            "rows": self.rows,
            "normalised": NORMALISED,
            "notes": self.notes,
        }


# ---- the pair ---------------------------------------------------------------------------------------
def answer_logits(handle: ModelHandle, ids: Sequence[int], rows: int = 1) -> torch.Tensor:
    """The logits (rows, C or V) where the model gives its answer, for `rows` copies of one sequence."""
    batch = torch.tensor([list(ids)], device=handle.device).expand(rows, -1)
    kwargs = activations.no_cache(handle)
    if handle.gateway._keeps_logit_positions:
        kwargs["logits_to_keep"] = 1  # only the next token's logits: the vocabulary projection is costly
    logits = handle.model(input_ids=batch, attention_mask=torch.ones_like(batch), **kwargs).logits
    return logits[:, -1] if logits.ndim == 3 else logits


def _one_token(handle: ModelHandle, target: Target, role: str) -> int:
    if target.class_index is not None:
        return target.class_index
    if target.n_tokens != 1:
        pieces = [handle.tokenizer.decode([t]) for t in target.token_ids]
        raise InputError(
            f"The {role} {target.label!r} is {target.n_tokens} tokens ({pieces}): patching reads one next token. "
            f"Name a single-token {role}, e.g. {pieces[0]!r}."
        )
    return target.token_ids[0]


def _same_length(clean: Encoded, corrupted: Encoded) -> None:
    if clean.n_tokens == corrupted.n_tokens:
        return
    first = next(
        (i for i, (a, b) in enumerate(zip(clean.ids, corrupted.ids)) if a != b), min(clean.n_tokens, corrupted.n_tokens)
    )
    raise InputError(
        f"The clean text has {clean.n_tokens} tokens and the corrupted one {corrupted.n_tokens}: patching swaps "
        f"activations position by position, so both need the same number of tokens. They part at token {first}: "
        f"{clean.tokens[first : first + 3]} against {corrupted.tokens[first : first + 3]}. Change a word for one "
        "that the tokenizer splits into as many pieces."
    )


def prepare(
    handle: ModelHandle,
    clean: str,
    corrupted: str,
    target: str | int | None = None,
    contrast: str | int | None = None,
    metric: str = "logit_diff",
) -> Pair:
    """Check the two texts and resolve what is measured (see `_resolve`)."""
    _check_metric(metric)
    clean_enc, corrupted_enc = handle.encode(clean), handle.encode(corrupted)
    _same_length(clean_enc, corrupted_enc)
    if clean_enc.ids == corrupted_enc.ids:
        raise InputError("The clean and corrupted texts are the same tokens: change a word of the corrupted text.")
    return _resolve(handle, clean_enc, corrupted_enc, None, None, target, contrast, metric)


NOISE_SCALE = 3.0  # × the embeddings' standard deviation (Meng et al. 2022)


def prepare_noise(
    handle: ModelHandle,
    clean: str,
    positions: Sequence[int],
    samples: int = 10,
    seed: int = 0,
    scale: float = NOISE_SCALE,
    target: str | int | None = None,
    contrast: str | int | None = None,
    metric: str = "logit_diff",
) -> Pair:
    """The corrupted run of causal tracing (ROME): the clean text with Gaussian noise of `scale` × the
    standard deviation of the model's token embeddings (over its whole embedding matrix) added to the
    token embeddings at `positions`; every corrupted figure is the mean over `samples` seeded draws."""
    _check_metric(metric)
    enc = handle.encode(clean)
    positions = sorted(set(int(p) for p in positions))
    if not positions:
        raise InputError("Choose at least one token position to add noise to (e.g. the subject's tokens).")
    if positions[0] < 0 or positions[-1] >= enc.n_tokens:
        raise InputError(f"Noise positions run from 0 to {enc.n_tokens - 1} in this text, not {positions}.")
    if not 1 <= samples <= 1000:
        raise InputError(f"Noise samples must be between 1 and 1000, not {samples}.")
    weight = handle.embedding_layer.weight
    sigma = float(weight.detach().float().std())
    generator = torch.Generator().manual_seed(int(seed))
    noise = torch.zeros(samples, enc.n_tokens, weight.shape[1])
    noise[:, positions] = torch.randn(samples, len(positions), weight.shape[1], generator=generator) * scale * sigma
    recipe = {"positions": positions, "samples": samples, "seed": int(seed), "scale": scale, "sigma": sigma}
    return _resolve(handle, enc, enc, noise.to(handle.device), recipe, target, contrast, metric)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise InputError(f"Unknown metric '{metric}': use one of {', '.join(METRICS)}.")


def _resolve(handle, clean_enc, corrupted_enc, noise, recipe, target, contrast, metric) -> Pair:
    """Target: the clean prediction unless named; contrast (for the logit difference): the corrupted
    prediction unless named, or the clean run's runner-up where both runs predict the target."""
    samples = 1 if noise is None else noise.shape[0]
    with handle.gateway.exclusive(), torch.inference_mode():
        clean_logits = answer_logits(handle, clean_enc.ids)[0].float()
        with activations.noising(handle, noise):
            corrupted_rows = answer_logits(handle, corrupted_enc.ids, samples).float()
    corrupted_logits = corrupted_rows.mean(0)
    if target in (None, ""):
        resolved = handle.task.predicted_target(torch.softmax(clean_logits, dim=-1).numpy())
    else:
        resolved = handle.task.resolve_target(clean_enc, target)
    if contrast not in (None, ""):
        resolved = handle.task.with_contrast(resolved, handle.task.resolve_target(clean_enc, contrast))
    target_id = _one_token(handle, resolved, "target")
    contrast_id = contrast_label = None
    if metric == "logit_diff":
        if resolved.contrast is not None:
            contrast_id = _one_token(handle, resolved.contrast, "contrast")
            contrast_label = resolved.contrast.label
        else:
            order = [int(i) for i in torch.argsort(corrupted_logits, descending=True)[:1]]
            order += [int(i) for i in torch.argsort(clean_logits, descending=True)[:2]]
            contrast_id = next(i for i in order if i != target_id)
            contrast_label = _label(handle, contrast_id)
    pair = Pair(clean_enc, corrupted_enc, resolved.plain, target_id, contrast_id, contrast_label, metric, 0.0, 0.0)
    pair.noise, pair.noise_recipe = noise, recipe
    pair.clean_metric = float(pair.score(clean_logits[None])[0])
    pair.corrupted_metric = float(pair.score(corrupted_rows).mean())
    if abs(pair.clean_metric - pair.corrupted_metric) < 1e-6:
        raise InputError(
            f"The clean and corrupted runs give the same {pair.metric_label} ({pair.clean_metric:.4g}): there is no "
            "difference to trace. Choose a corrupted text that changes the answer, or another target or contrast."
        )
    return pair


def _label(handle: ModelHandle, index: int) -> str:
    labels = handle.labels
    return (
        labels[index] if index < len(labels) and not handle.task.scores_positions else handle.tokenizer.decode([index])
    )


# ---- the grid -----------------------------------------------------------------------------------------
def default_layers(handle: ModelHandle, component: str) -> list[int]:
    n = len(handle.blocks)
    return list(range(n + 1)) if component == "resid" else list(range(1, n + 1))


def n_units(handle: ModelHandle, pair: Pair, component: str) -> int:
    if UNIT[component] == "position":
        return pair.clean.n_tokens
    if component == "head":
        return handle.n_heads
    text_config = handle.config.get_text_config()
    return int(getattr(text_config, "num_key_value_heads", None) or handle.n_heads)


def unit_names(handle: ModelHandle, pair: Pair, component: str, units: Sequence[int]) -> list[str]:
    if UNIT[component] == "position":
        return [pair.clean.tokens[u] for u in units]
    return [f"{UNIT[component]} {u}" for u in units]


def cell_index(handle: ModelHandle, component: str, unit: int) -> tuple:
    """Which part of a site's (T, D) activation one cell is: a position, or a head's/group's features."""
    if UNIT[component] == "position":
        return (unit, slice(None))
    width = activations.head_width(handle)
    return (slice(None), slice(unit * width, (unit + 1) * width))


def first_computed_block(handle: ModelHandle, site: Site) -> int:
    """How many blocks a patched row can skip: those before the patched activation (see starting_at)."""
    if site.component != "resid":
        return site.layer - 1
    if site.layer == 0:
        return 0
    # a block hooked through its output sub-layer (DeBERTa) must run for the hook to run
    whole = handle.block(site.layer - 1) is handle.blocks[site.layer - 1]
    return site.layer if whole else site.layer - 1


def check_units(handle, pair, component, units) -> list[int]:
    n = n_units(handle, pair, component)
    if units is None:
        return list(range(n))
    units = sorted(set(int(u) for u in units))
    bad = [u for u in units if not 0 <= u < n]
    if bad:
        raise InputError(f"{UNIT[component].capitalize()} {bad[0]} does not exist: there are {n} (0 to {n - 1}).")
    return units


def estimate_seconds(handle: ModelHandle, pair: Pair, component: str, layers=None, units=None) -> float:
    """Seconds the exact grid should take: its rows, each priced by the blocks it computes."""
    layers = default_layers(handle, component) if layers is None else list(layers)
    n_cells = len(check_units(handle, pair, component, units))
    n = len(handle.blocks)
    rate = handle.gateway.seconds_per_row_token()
    share = sum((n - first_computed_block(handle, Site(component, layer)) + 1) / (n + 1) for layer in layers)
    samples = 1 if pair.noise is None else pair.noise.shape[0]
    return share * n_cells * samples * pair.clean.n_tokens * rate


def patch(
    handle: ModelHandle,
    pair: Pair,
    component: str = "resid",
    direction: str = "denoise",
    layers: Sequence[int] | None = None,
    units: Sequence[int] | None = None,
    source: str | None = None,
    run_identical: bool = False,
    max_seconds: float | None = None,
) -> Grid:
    """The exact patching grid of one component. `source` ("clean"/"corrupted") overrides where the
    patched activations come from (clean into clean is the check that patching itself changes nothing);
    `run_identical` runs cells whose activations are equal in both runs too."""
    if direction not in DIRECTIONS:
        raise InputError(f"Unknown direction '{direction}': use denoise ({DIRECTIONS['denoise']}) or noise.")
    if component not in UNIT:
        raise InputError(f"Unknown component '{component}': use one of {', '.join(UNIT)}.")
    layers = default_layers(handle, component) if layers is None else [int(x) for x in layers]
    sites = [activations.check_site(handle, Site(component, layer)) for layer in layers]
    units = check_units(handle, pair, component, units)
    if max_seconds is not None:
        seconds = estimate_seconds(handle, pair, component, layers, units)
        if seconds > max_seconds:
            raise InputError(
                f"This grid ({len(layers)} layers × {len(units)} {UNIT[component]}s) needs about {seconds:.0f} s, "
                f"more than the {max_seconds:.0f} s allowed: choose fewer layers or {UNIT[component]}s."
            )
    dst_name = "corrupted" if direction == "denoise" else "clean"
    src_name = source or ("clean" if direction == "denoise" else "corrupted")
    if src_name not in pair.runs:
        raise InputError(f"Unknown source run '{source}': use clean or corrupted.")
    (dst_enc, dst_noise), (src_enc, src_noise) = pair.runs[dst_name], pair.runs[src_name]
    src, _ = activations.capture(handle, src_enc.ids, sites, src_noise)
    dst, dst_outputs = activations.capture(handle, dst_enc.ids, sites, dst_noise)
    samples = max(src[sites[0]].shape[0], dst[sites[0]].shape[0]) if sites else 1  # noise draws per cell

    values = np.full((len(units), len(layers)), np.nan)
    computed = np.zeros((len(units), len(layers)), dtype=bool)
    rows = 0
    dst_metric = pair.corrupted_metric if dst_name == "corrupted" else pair.clean_metric
    for j, site in enumerate(sites):
        cells = []
        for i, unit in enumerate(units):
            where = cell_index(handle, component, unit)
            every = (slice(None), *where)  # in every noise draw
            if not run_identical and bool((src[site][every] == dst[site][every]).all()):
                values[i, j] = float(pair.normalise(dst_metric))  # nothing to change: the destination's own value
            else:
                cells.append((i, where))
        per_batch = max(1, handle.gateway.rows_per_batch(dst_enc.n_tokens) // samples)
        for start in range(0, len(cells), per_batch):
            chunk = cells[start : start + per_batch]
            scores = handle.gateway.with_backoff(
                lambda chunk=chunk, site=site: _patched_scores(
                    handle, pair, (dst_enc, dst_noise), dst_outputs, site, src[site], chunk, samples
                )
            )
            for (i, _), score in zip(chunk, scores):
                values[i, j] = float(pair.normalise(score))
                computed[i, j] = True
            rows += len(chunk) * samples
            checkpoint(len(chunk) * samples)
    return Grid(component, direction, layers, unit_names(handle, pair, component, units), values, computed, rows=rows)


def _patched_scores(handle, pair, destination, dst_outputs, site: Site, source, cells, samples: int) -> np.ndarray:
    """One batch, `samples` rows per cell (one per noise draw): row r is the destination run (its draw
    r % samples) with cell r // samples's part of `site` taken from the source run (the same draw)."""
    dst_enc, dst_noise = destination
    batch = len(cells) * samples
    shape = (batch, dst_enc.n_tokens, source.shape[-1])
    seen: list[tuple] = []

    def edit(hidden: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(hidden.shape))
        if tuple(hidden.shape) != shape:
            return hidden  # reported below: the patch would not be the one planned
        out = hidden.clone()
        for r in range(batch):
            where = cells[r // samples][1]
            out[r][where] = source[r % samples % source.shape[0]][where].to(out.dtype)
        return out

    ran: dict = {}
    with (
        activations.editing(handle, {site: edit}, ran),
        activations.noising(handle, dst_noise),
        activations.starting_at(handle, first_computed_block(handle, site), dst_outputs, batch),
        torch.inference_mode(),
    ):
        scores = pair.score(answer_logits(handle, dst_enc.ids, batch))
    if seen != [shape]:
        problem = RuntimeError(f"the patch of {site} ran on activations shaped {seen}, planned once on {shape}")
        raise InternalError.from_exception(problem, "patching the model's activations")
    return scores.reshape(len(cells), samples).mean(1).cpu().numpy()
