"""Activations, one way in: reading a block's output (the residual stream after block ℓ) and changing
it (replacing or adding) for patching, probes, steering and sparse autoencoders.

Layers are numbered as the hidden states people know: 0 is the input to the first block (the
embeddings), ℓ = 1..n_layers the output of block ℓ. Inside block ℓ (1..n) a `Site` names what attention
and the MLP add to the stream, the heads' outputs side by side (the input of attention's output
projection) and a model's keys and values (per key/value group): found by `architecture.block_parts`.
Blocks are found through `ModelHandle.blocks` (architecture.py), never by name here; every hook runs
with the model to this thread alone (`gateway.exclusive()`), and every change is checked to have taken
effect (a hook that never ran is an internal error, not a silently unchanged answer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from explainers.errors import InputError, InternalError
from explainers.inference.gateway import checkpoint
from explainers.inside.vocabulary import COMPONENTS  # noqa: F401  (part of this module's interface)
from explainers.models import architecture
from explainers.models.handle import ModelHandle

Edit = Callable[[torch.Tensor], torch.Tensor]  # (B, T, H) hidden states -> the ones the model goes on with


def _hidden(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _with_hidden(output, hidden: torch.Tensor):
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def check_layer(handle: ModelHandle, layer: int) -> int:
    n = len(handle.blocks)
    if not 0 <= layer <= n:
        raise InputError(f"Layer {layer} does not exist: {handle.architecture} has layers 0 (embeddings) to {n}.")
    return layer


def _hook_layer(handle: ModelHandle, layer: int, edit: Edit, ran: list[int]):
    """A hook that applies `edit` to the residual stream at `layer` (see the module doc)."""
    check_layer(handle, layer)
    if layer == 0:  # the first block's input: its hidden states are the first argument
        block = handle.blocks[0]

        def pre(_module, args, kwargs):
            ran[0] += 1
            if args:
                return (edit(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": edit(kwargs["hidden_states"])}

        return block.register_forward_pre_hook(pre, with_kwargs=True)

    def post(_module, _inputs, output):
        ran[0] += 1
        return _with_hidden(output, edit(_hidden(output)))

    return handle.block(layer - 1).register_forward_hook(post)


# component -> what it is, for people; "resid" is numbered by layer 0..n, the others by block 1..n


@dataclass(frozen=True)
class Site:
    component: str
    layer: int

    def __str__(self) -> str:
        return f"{self.component}@{self.layer}"


def check_site(handle: ModelHandle, site: Site) -> Site:
    if site.component not in COMPONENTS:
        raise InputError(f"Unknown component '{site.component}': use one of {', '.join(COMPONENTS)}.")
    if site.component == "resid":
        check_layer(handle, site.layer)
    elif not 1 <= site.layer <= len(handle.blocks):
        n = len(handle.blocks)
        raise InputError(f"Block {site.layer} does not exist: {handle.architecture} has blocks 1 to {n}.")
    return site


def site_module(handle: ModelHandle, site: Site) -> torch.nn.Module:
    """The module whose output (input, for "head") is the site's activation; not for "resid"."""
    parts = architecture.block_parts(handle.blocks[site.layer - 1])
    module = {
        "attn": parts.attn_out,
        "mlp": parts.mlp_out,
        "head": parts.attn_out,
        "keys": parts.keys,
        "values": parts.values,
    }[site.component]
    if module is None:
        raise InputError(
            f"{handle.architecture} computes queries, keys and values in one projection: its keys and values "
            "cannot be patched on their own (patch the heads' outputs instead)."
        )
    return module


def head_width(handle: ModelHandle) -> int:
    """Features per head: the heads' outputs side by side are n_heads of these."""
    out = architecture.block_parts(handle.blocks[0]).attn_out
    width = out.weight.shape[1] if isinstance(out, torch.nn.Linear) else out.weight.shape[0]  # Conv1D: (in, out)
    return width // handle.n_heads


def _hook_site(handle: ModelHandle, site: Site, edit: Edit, ran: list[int]):
    check_site(handle, site)
    if site.component == "resid":
        return _hook_layer(handle, site.layer, edit, ran)
    module = site_module(handle, site)
    if site.component == "head":

        def pre(_module, args):
            ran[0] += 1
            return (edit(args[0]), *args[1:])

        return module.register_forward_pre_hook(pre)

    def post(_module, _inputs, output):
        ran[0] += 1
        return edit(output)

    return module.register_forward_hook(post)


def _as_site(key: int | Site) -> Site:
    return key if isinstance(key, Site) else Site("resid", key)


@contextlib.contextmanager
def editing(handle: ModelHandle, edits: dict[int | Site, Edit], ran: dict | None = None) -> Iterator[None]:
    """Every forward pass in this block runs with `edits` (residual layer or Site -> edit of its
    activation (B, T, D)), with the model to this thread alone. Raises InternalError if an edit never
    ran. `ran`, if given, is filled with how many times each edit ran (site -> [count])."""
    ran = {} if ran is None else ran
    ran.update({_as_site(key): [0] for key in edits})
    with handle.gateway.exclusive():
        hooks = [_hook_site(handle, _as_site(key), edit, ran[_as_site(key)]) for key, edit in edits.items()]
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()
    idle = [str(site) for site, count in ran.items() if count[0] == 0]
    if idle:
        problem = RuntimeError(f"an edit of {idle} never ran: the model did not pass through that block")
        raise InternalError.from_exception(problem, "changing the model's activations")


def adding(handle: ModelHandle, vectors: dict[int, torch.Tensor], positions: Sequence[int] | None = None):
    """Add `vectors[layer]` (H,) to the residual stream at each layer, at `positions` (all by default):
    the activation-addition of steering."""

    def add(vector: torch.Tensor) -> Edit:
        def edit(hidden: torch.Tensor) -> torch.Tensor:
            delta = vector.to(hidden.device, hidden.dtype)
            if positions is None:
                return hidden + delta
            out = hidden.clone()
            out[:, list(positions)] += delta
            return out

        return edit

    return editing(handle, {layer: add(v) for layer, v in vectors.items()})


class _Enough(Exception):
    """Raised by read's last hook with stop_early: the blocks above it are not needed."""


def read(
    handle: ModelHandle, sequences: Sequence[Sequence[int]], layers: Sequence[int], stop_early: bool = False
) -> list[torch.Tensor]:
    """The residual stream of each token-id sequence at `layers`: one float32 (len(layers), T_i, H)
    tensor per sequence on the CPU, in batches through the gateway (right-padded, so each row's own
    positions are exactly as when run alone). With `stop_early` the forward pass ends at the deepest of
    `layers` (a harvest for an SAE at layer 3 of 30 pays for 3 blocks); only for callers that have no
    edits of their own above those layers."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise InputError("Cannot read activations of an empty token sequence.")
    layers = [check_layer(handle, layer) for layer in layers]
    out: list[torch.Tensor | None] = [None] * len(sequences)
    captured: dict[int, torch.Tensor] = {}

    deepest = max(layers)

    def keep(layer: int) -> Edit:
        def edit(hidden: torch.Tensor) -> torch.Tensor:
            captured[layer] = hidden.detach().float().cpu()
            if stop_early and layer == deepest:
                raise _Enough
            return hidden

        return edit

    with editing(handle, {layer: keep(layer) for layer in layers}), torch.inference_mode():
        for chunk, ids, mask in planned(handle, sequences):
            captured.clear()
            try:
                handle.model(input_ids=ids, attention_mask=mask)
            except _Enough:
                pass
            stacked = torch.stack([captured[layer] for layer in layers], dim=1)  # (B, L, T, H)
            for j, i in enumerate(chunk):
                out[i] = stacked[j, :, : len(sequences[i])].clone()
            checkpoint(len(chunk))
    return out


def capture(handle: ModelHandle, ids: Sequence[int], sites: Sequence[Site], noise: torch.Tensor | None = None):
    """One forward pass of one token sequence (S rows with `noise`, see `noising`): each site's activation
    (S, T, D) as the model computed it (its dtype and device), and every block's raw output (for
    `starting_at`)."""
    if not ids:
        raise InputError("Cannot read activations of an empty token sequence.")
    got: dict[Site, torch.Tensor] = {}
    outputs: list = [None] * len(handle.blocks)
    rows = 1 if noise is None else noise.shape[0]

    def keep(site: Site) -> Edit:
        def edit(hidden: torch.Tensor) -> torch.Tensor:
            got[site] = hidden.detach().clone()
            return hidden

        return edit

    def keep_block(k: int):
        def hook(_module, _inputs, output):
            outputs[k] = output

        return hook

    with editing(handle, {site: keep(site) for site in sites}), noising(handle, noise), torch.inference_mode():
        hooks = [block.register_forward_hook(keep_block(k)) for k, block in enumerate(handle.blocks)]
        try:
            batch = torch.tensor([list(ids)], device=handle.device).expand(rows, -1)
            handle.model(input_ids=batch, **no_cache(handle))
        finally:
            for hook in hooks:
                hook.remove()
    return got, outputs


@contextlib.contextmanager
def noising(handle: ModelHandle, noise: torch.Tensor | None) -> Iterator[None]:
    """Forward passes in this block add `noise` (S, T, H) to the token embeddings (before position
    embeddings and any embedding norm): row r of a batch gets noise[r % S] (the corrupted run of causal
    tracing, Meng et al. 2022). None: nothing changes."""
    if noise is None:
        yield
        return
    ran = [0]

    def hook(_module, _inputs, output):
        ran[0] += 1
        rows = output.shape[0]
        if rows % noise.shape[0] or output.shape[1:] != noise.shape[1:]:
            raise InternalError.from_exception(
                RuntimeError(f"noise {tuple(noise.shape)} does not fit embeddings {tuple(output.shape)}"),
                "adding noise to the embeddings",
            )
        return output + noise.to(output.dtype).repeat(rows // noise.shape[0], 1, 1)

    with handle.gateway.exclusive():
        registered = handle.embedding_layer.register_forward_hook(hook)
        try:
            yield
        finally:
            registered.remove()
    if not ran[0]:
        problem = RuntimeError("the embedding noise never ran: the model did not embed its tokens")
        raise InternalError.from_exception(problem, "adding noise to the embeddings")


def no_cache(handle: ModelHandle) -> dict:
    """A causal LM's forward without its key/value cache (nothing reuses it; a skipped block writes none)."""
    return {"use_cache": False} if handle.task.scores_positions else {}


def _expanded(output, rows: int):
    """A cached batch of S rows as `rows` rows: row r is cached row r % S."""
    if isinstance(output, torch.Tensor) and output.ndim >= 1 and rows % output.shape[0] == 0:
        if output.shape[0] == 1:
            return output.expand(rows, *output.shape[1:])
        return output.repeat(rows // output.shape[0], *[1] * (output.ndim - 1))
    if isinstance(output, tuple):
        return tuple(_expanded(o, rows) for o in output)
    return output


@contextlib.contextmanager
def starting_at(handle: ModelHandle, first: int, outputs: Sequence, rows: int) -> Iterator[None]:
    """Forward passes in this block skip blocks 1..`first` (1-based; 0 skips none): each returns its
    cached output from `capture` for `rows` rows (row r: cached row r % S) instead of computing it. Right where a
    change (a patch) comes later than those blocks, which then would compute exactly that output.
    Hooks on a skipped block still run on what it returns."""
    skipped = list(handle.blocks)[:first]
    with handle.gateway.exclusive():
        for k, block in enumerate(skipped):
            cached = _expanded(outputs[k], rows)
            block.forward = lambda *args, _cached=cached, **kwargs: _cached
        try:
            yield
        finally:
            for block in skipped:
                del block.forward


# ---- one vector per text: pooling -------------------------------------------------------------------

POOLINGS = {
    "last": "the last token (what a causal LM predicts from)",
    "mean": "the mean over all tokens of the text (special tokens included)",
    "first": "the first token ([CLS] for a BERT-style classifier)",
}


def default_pooling(handle: ModelHandle) -> str:
    """The last token for a model that predicts from a position (causal LM), else the mean over tokens."""
    return "last" if handle.task.scores_positions else "mean"


def pooled_positions(pooling: str, length: int) -> list[int]:
    """The positions whose residual stream a text's pooled vector is made of (and where steering adds)."""
    if pooling not in POOLINGS:
        raise InputError(f"Unknown pooling '{pooling}': use one of {', '.join(POOLINGS)}.")
    return {"last": [length - 1], "first": [0], "mean": list(range(length))}[pooling]


def read_pooled(handle: ModelHandle, sequences: Sequence[Sequence[int]], layers: Sequence[int], pooling: str):
    """(N, len(layers), H) float32 array: each sequence's residual stream at `layers`, averaged over its
    `pooled_positions`; one batched pass through `read`."""
    import numpy as np

    positions = [pooled_positions(pooling, len(s)) for s in sequences]
    acts = read(handle, sequences, layers)
    return np.stack([a[:, where].mean(dim=1).numpy() for a, where in zip(acts, positions, strict=True)])


def planned(handle: ModelHandle, sequences: Sequence[Sequence[int]]):
    """(row indices, ids, mask) batch by batch, right-padded on the model's device, as the gateway plans
    its own batches."""
    from explainers.inference.batching import plan_batches  # the gateway's own planner: same batches as scoring

    gateway = handle.gateway
    for chunk in plan_batches([len(s) for s in sequences], gateway.batch_tokens, gateway.call_overhead):
        ids, mask = gateway._assemble([sequences[i] for i in chunk])
        yield chunk, ids.to(handle.device), mask.to(handle.device)


def logits(handle: ModelHandle, ids: torch.Tensor, mask: torch.Tensor, edits: dict[int, Edit] | None = None):
    """The model's float32 logits for one planned batch, with `edits` applied (none: the clean model)."""
    with editing(handle, edits or {}), torch.inference_mode():
        return handle.model(input_ids=ids, attention_mask=mask).logits.float()
