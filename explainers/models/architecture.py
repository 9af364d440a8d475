"""What whybox needs to know about a model's architecture, in one place: its transformer blocks and
the module a layer method hooks for block k.

Most models keep their blocks in one ModuleList as long as the model has layers. Two kinds do not:

- Shared layers (ALBERT): one layer module is applied num_hidden_layers times, so no list of blocks
  exists. `prepare` unrolls it into a list of per-application views of the one shared module (the
  weights stay shared, nothing is copied): block k is the k-th application, so a hook on it sees
  layer k, as it does on any other model.
- Blocks whose output holds a non-tensor (DeBERTa's layers return (hidden states, None) without
  attentions): Captum's layer methods need tensors, so they hook the block's output sub-layer, whose
  output is exactly the block's hidden states.
"""

from __future__ import annotations

import torch

from explainers.errors import InputError

# model_type -> the child of a block whose output is the block's hidden states (see the module doc)
BLOCK_OUTPUT_CHILD = {"deberta-v2": "output", "deberta": "output"}


class _Application(torch.nn.Module):
    """One application of a shared layer: calls it, and is a module of its own that hooks can hold."""

    def __init__(self, shared: torch.nn.Module):
        super().__init__()
        self._shared = [shared]  # a plain list: the shared module is registered once, in _Unrolled

    def forward(self, *args, **kwargs):
        return self._shared[0](*args, **kwargs)


class _Unrolled(torch.nn.Module):
    """Stands in for a shared layer: the i-th call of a forward pass goes to application i."""

    def __init__(self, shared: torch.nn.Module, applications: int):
        super().__init__()
        self.shared = shared
        self.applications = torch.nn.ModuleList(_Application(shared) for _ in range(applications))
        self.calls = 0

    def forward(self, *args, **kwargs):
        application = self.applications[self.calls % len(self.applications)]
        self.calls += 1
        return application(*args, **kwargs)


def prepare(model: torch.nn.Module) -> None:
    """Make a freshly loaded model's blocks findable (unroll ALBERT-style shared layers)."""
    config = model.config.get_text_config()
    groups = getattr(config, "num_hidden_groups", None)
    n = getattr(config, "num_hidden_layers", None)
    for module in list(model.modules()):
        shared = getattr(module, "albert_layer_groups", None)
        if not isinstance(shared, torch.nn.ModuleList) or not groups or not n or n % groups:
            continue
        for g in range(len(shared)):
            shared[g] = _Unrolled(shared[g], n // groups)
        # every forward pass starts counting applications from zero, also after one that failed midway
        unrolled = [m for m in model.modules() if isinstance(m, _Unrolled)]

        def restart(*_, unrolled=unrolled):
            for u in unrolled:
                u.calls = 0

        model.register_forward_pre_hook(restart)
        if groups > 1:  # blocks in call order: group 0's applications, then group 1's, ...
            model._whybox_blocks = torch.nn.ModuleList(a for u in unrolled for a in u.applications)
        return


def find_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The transformer blocks: the first ModuleList as long as the model has hidden layers."""
    explicit = getattr(model, "_whybox_blocks", None)
    if explicit is not None:
        return explicit
    n = getattr(model.config.get_text_config(), "num_hidden_layers", None)
    lists = [m for _, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    matching = [m for m in lists if n is None or len(m) == n]
    if not matching:
        raise InputError(f"Could not find the transformer blocks of {type(model).__name__}.")
    return matching[0]


def layer_output_module(model: torch.nn.Module, block: torch.nn.Module) -> torch.nn.Module:
    """The module whose output a layer method attributes for `block`: the block itself, or its output
    sub-layer where the block's own output is not all tensors."""
    child = BLOCK_OUTPUT_CHILD.get(getattr(model.config.get_text_config(), "model_type", ""))
    return getattr(block, child) if child and hasattr(block, child) else block


def cascade_groups(model: torch.nn.Module, blocks: torch.nn.ModuleList) -> list[tuple[str, list[str]]]:
    """The model's parameters by layer, from the output down, for the randomisation sanity check: ("head",
    everything after the last block: pooler, final norm, classifier or LM head), ("block n" .. "block 1"),
    ("embeddings", everything before the first block). Names as in `named_parameters`, whose order is the
    order modules are registered in, which is the order of the forward pass for every Hugging Face model we
    know; a parameter used by every block (DeBERTa's relative embeddings) lands after them, in the head."""
    in_block: dict[int, int] = {}
    for k, block in enumerate(blocks):
        own = list(block.parameters())
        shared = any(in_block.setdefault(id(p), k) != k for p in own)
        if shared or not own:  # (an unrolled shared layer's applications hold no weights of their own)
            raise InputError(
                f"{type(model).__name__} shares weights between its layers (ALBERT-style): they cannot be "
                "randomised one layer at a time."
            )
    before: list[str] = []
    after: list[str] = []
    per_block: list[list[str]] = [[] for _ in blocks]
    for name, p in model.named_parameters():
        k = in_block.get(id(p))
        if k is not None:
            per_block[k].append(name)
        else:
            (after if any(per_block) else before).append(name)
    groups = [("head", after)] if after else []
    groups += [(f"block {k + 1}", per_block[k]) for k in reversed(range(len(blocks)))]
    return groups + ([("embeddings", before)] if before else [])


class BlockParts:
    """The sub-layers of one block that patching reads and replaces, found by structure, not by name:

    - the attention is the first child of the block holding two or more weight matrices (q/k/v/out);
      its output projection is the last weight matrix in it: the projection's input is the heads'
      outputs side by side (head h = features h*d..(h+1)*d), its output is what attention adds to the
      residual stream (before the LayerNorm of a post-LN block such as BERT's);
    - the MLP's output is the last weight matrix of the block outside the attention (its down/out
      projection: what the MLP adds, before a post-LN block's LayerNorm);
    - keys and values are the second and third projections of the attention when it has separate ones
      (q, k, v, out); a fused projection (GPT-2's c_attn) has none.
    """

    def __init__(self, block: torch.nn.Module):
        def matrices(module):
            return [m for m in module.modules() if getattr(m, "weight", None) is not None and m.weight.ndim == 2]

        attention = next((c for c in block.children() if len(matrices(c)) >= 2), None)
        if attention is None:
            raise InputError(f"Could not find the attention of {type(block).__name__}.")
        inside = {id(m) for m in attention.modules()}
        outside = [m for m in matrices(block) if id(m) not in inside]
        if not outside:
            raise InputError(f"Could not find the MLP of {type(block).__name__}.")
        projections = matrices(attention)
        self.attention = attention
        self.attn_out = projections[-1]
        self.mlp_out = outside[-1]
        separate = len(projections) >= 4
        self.keys = projections[1] if separate else None
        self.values = projections[2] if separate else None
        self.queries = projections[0] if separate else None


def block_parts(block: torch.nn.Module) -> BlockParts:
    if isinstance(block, _Application):  # its sub-layers run once per application: no per-layer site
        raise InputError("This model shares one layer's weights across layers: its sub-layers have no per-layer site.")
    parts = getattr(block, "_whybox_parts", None)
    if parts is None:
        parts = BlockParts(block)
        object.__setattr__(block, "_whybox_parts", parts)  # not a submodule: a plain attribute
    return parts
