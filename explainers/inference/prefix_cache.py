"""Shared-prefix key/value caching for a causal LM's perturbed rows.

Leave-one-out, occlusion, the faithfulness metrics and the generation explainers score rows that are
the prompt with some tokens removed or replaced: row i of leave-one-out is the prompt up to token i,
then the rest. A causal LM's state at a position depends only on the tokens before it, so the part of
a row that equals a reference row's beginning need not run again: the reference's prefix runs once
with `use_cache=True`, and each row runs only its own suffix on top of that cache (cut to the row's
shared length by the attention mask, positions given explicitly). For leave-one-out this halves the
tokens run.

An internal optimisation of the gateway (`InferenceGateway.prefix_cache`); it gives the same numbers as
the plain path to float tolerance, and steps aside (returns None) where it would not pay or where the
model's cache is not the plain per-layer key/value kind it knows how to copy.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence

import numpy as np
import torch

# Run the cached path only when it skips at least this share of the row tokens: below it, the prefix
# pass and the wider attention masks eat most of the gain.
MIN_SAVED_SHARE = 0.25
# A cached position a row attends to costs about this share of a token run (its attention only, no
# projections or MLP); it keeps rows with similar prefixes together.
PREFIX_WEIGHT = 1 / 16
CANDIDATES = 16  # reference rows tried (evenly spaced, plus the longest); the best shares the most tokens


def shared_prefixes(rows: Sequence[Sequence[int]], limits: np.ndarray) -> tuple[int, np.ndarray]:
    """The reference row and, for each row, how many of its first tokens equal the reference's.

    `limits[i]` caps row i's share: its first scored position must stay in the part that runs (the
    logits come only from the tokens fed)."""
    width = max(len(r) for r in rows)
    table = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        table[i, : len(r)] = r
    picks = set(np.linspace(0, len(rows) - 1, min(CANDIDATES, len(rows))).round().astype(int).tolist())
    picks.add(int(np.argmax([len(r) for r in rows])))
    best, best_shared = 0, None
    for c in sorted(picks):
        same = np.cumprod(table == table[c], axis=1).sum(axis=1)  # padding (-1) never equals a token
        shared = np.minimum(np.minimum(same, limits), len(rows[c]))
        if best_shared is None or shared.sum() > best_shared.sum():
            best, best_shared = c, shared
    return best, best_shared


def _plain_cache_layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """The cache's (keys, values) per layer, when it is transformers' plain dynamic cache (no sliding
    window, no quantisation, no recurrent state); None otherwise."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    if type(cache) is not DynamicCache or not all(type(layer) is DynamicLayer for layer in cache.layers):
        return None
    if not all(layer.is_initialized for layer in cache.layers):
        return None
    return [(layer.keys, layer.values) for layer in cache.layers]


def _copy_cache(layers, rows: int, length: int):
    """A fresh cache holding the first `length` positions of `layers`, repeated for `rows` rows (the
    forward appends to its cache, so every batch needs its own)."""
    from transformers.cache_utils import DynamicCache

    return DynamicCache(
        ddp_cache_data=[
            (k[:, :, :length].expand(rows, -1, -1, -1), v[:, :, :length].expand(rows, -1, -1, -1)) for k, v in layers
        ]
    )


def plan_cached_batches(
    shared: np.ndarray, suffix: np.ndarray, token_budget: int, call_overhead: int
) -> list[list[int]]:
    """Batches of rows (indices) for the cached path: the cheapest split, by dynamic programming.

    Rows are ordered by suffix length (longest first), then shared length; a batch is a run of that
    order. Its cost is what runs: every row padded to the batch's longest suffix, plus a little per
    cached position each row attends to (PREFIX_WEIGHT), plus `call_overhead` per call. Memory caps
    each batch: rows x (widest shared prefix + widest suffix) within `token_budget`, as the cache is
    copied per row."""
    order = sorted(range(len(suffix)), key=lambda i: (-int(suffix[i]), int(shared[i])))
    best = [0.0] + [np.inf] * len(order)  # best[j]: cheapest plan for the first j rows of `order`
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        widest_prefix = 0
        for i in range(j - 1, -1, -1):  # the run order[i:j]; its longest suffix is order[i]'s
            widest_prefix = max(widest_prefix, int(shared[order[i]]))
            rows, widest_suffix = j - i, int(suffix[order[i]])
            if rows > 1 and rows * (widest_prefix + widest_suffix) > token_budget:
                break
            cost = best[i] + call_overhead + rows * (widest_suffix + PREFIX_WEIGHT * widest_prefix)
            if cost < best[j]:
                best[j], cut[j] = cost, i
    batches, j = [], len(order)
    while j > 0:
        batches.append(order[cut[j] : j])
        j = cut[j]
    return batches[::-1]


def cached_logits(
    gateway, rows: Sequence[Sequence[int]], positions: torch.Tensor
) -> Iterator[tuple[list[int], torch.Tensor]] | None:
    """Logits (B, k, V) of `rows` (full token lists) at `positions` (N, k), batch by batch as
    (row indices, logits), running each row's shared prefix once; None where the plain path should
    run instead. Call inside the gateway's inference mode."""
    accepted = inspect.signature(gateway.model.forward).parameters
    if len(rows) < 2 or "past_key_values" not in accepted or "position_ids" not in accepted:
        return None
    lengths = np.array([len(r) for r in rows])
    if positions.min() < 0 or (positions.max(dim=1).values.numpy() >= lengths).any():
        return None
    reference, shared = shared_prefixes(rows, positions.min(dim=1).values.numpy())
    prefix = int(shared.max())
    if shared.sum() - prefix < MIN_SAVED_SHARE * lengths.sum():
        return None
    model = gateway.model
    with gateway.lock:
        out = model(
            input_ids=torch.tensor([list(rows[reference][:prefix])], device=gateway.device),
            use_cache=True,
            **({"logits_to_keep": 1} if gateway._keeps_logit_positions else {}),
        )
    layers = _plain_cache_layers(getattr(out, "past_key_values", None))
    if layers is None:
        return None
    return _run(gateway, rows, positions, shared, layers)


def _run(gateway, rows, positions, shared, layers) -> Iterator[tuple[list[int], torch.Tensor]]:
    suffix = np.array([len(r) for r in rows]) - shared
    pad = gateway.tokenizer.pad_token_id or 0
    for chunk in plan_cached_batches(shared, suffix, gateway.batch_tokens, gateway.call_overhead):
        width_prefix = int(max(shared[i] for i in chunk))
        width_suffix = int(max(suffix[i] for i in chunk))
        ids = torch.full((len(chunk), width_suffix), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width_prefix + width_suffix), dtype=torch.long)
        position_ids = torch.zeros((len(chunk), width_suffix), dtype=torch.long)
        for j, i in enumerate(chunk):
            p, s = int(shared[i]), int(suffix[i])
            ids[j, :s] = torch.tensor(list(rows[i][p:]), dtype=torch.long)
            mask[j, :p] = 1  # the row's own part of the cached prefix; the rest of the cache is masked
            mask[j, width_prefix : width_prefix + s] = 1
            # padding repeats the last real position: the widest prefix plus the widest suffix may pass
            # the model's last position (GPT-2's table ends there)
            position_ids[j] = p + torch.arange(width_suffix).clamp(max=s - 1)
        pred = positions[chunk] - torch.as_tensor(shared[chunk], dtype=torch.long)[:, None]
        inputs = {
            "input_ids": ids.to(gateway.device),
            "attention_mask": mask.to(gateway.device),
            "position_ids": position_ids.to(gateway.device),
        }
        if width_prefix:
            inputs["past_key_values"] = _copy_cache(layers, len(chunk), width_prefix)
        yield chunk, gateway._logits(pred.to(gateway.device), **inputs)
