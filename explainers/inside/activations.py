"""Activations, one way in: reading a block's output (the residual stream after block ℓ) and changing
it (replacing or adding) for patching, probes, steering and sparse autoencoders.

Layers are numbered as the hidden states people know: 0 is the input to the first block (the
embeddings), ℓ = 1..n_layers the output of block ℓ. Blocks are found through `ModelHandle.blocks`
(architecture.py), never by name here; every hook runs with the model to this thread alone
(`gateway.exclusive()`), and every change is checked to have taken effect (a hook that never ran is an
internal error, not a silently unchanged answer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch

from explainers.errors import InputError, InternalError
from explainers.inference.gateway import checkpoint
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


@contextlib.contextmanager
def editing(handle: ModelHandle, edits: dict[int, Edit]) -> Iterator[None]:
    """Every forward pass in this block runs with `edits` (layer -> edit of its residual stream), with the
    model to this thread alone. Raises InternalError if an edit never ran."""
    ran = {layer: [0] for layer in edits}
    with handle.gateway.exclusive():
        hooks = [_hook_layer(handle, layer, edit, ran[layer]) for layer, edit in edits.items()]
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()
    idle = [layer for layer, count in ran.items() if count[0] == 0]
    if idle:
        problem = RuntimeError(f"an edit of layer(s) {idle} never ran: the model did not pass through that block")
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
