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
