"""Reading and adding to the residual stream, against transformers' own hidden states."""

from __future__ import annotations

import pytest
import torch

from explainers.errors import InputError
from explainers.inside import activations


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_gpt2", "tiny_llama"])
def test_read_equals_the_models_hidden_states_per_text(request, fixture):
    handle = request.getfixturevalue(fixture)
    texts = ["a gripping , funny film .", "dull ."]  # different lengths: one batch, right-padded
    sequences = [handle.encode(t).ids for t in texts]
    n = len(handle.blocks)
    # transformers' last hidden state of a causal LM is after the final norm: compare blocks before it
    layers = list(range(n + 1)) if fixture == "tiny_bert" else list(range(n))
    got = activations.read(handle, sequences, layers)
    for seq, acts in zip(sequences, got, strict=True):
        with torch.no_grad():
            ref = handle.model(input_ids=torch.tensor([seq]), output_hidden_states=True).hidden_states
        for i, layer in enumerate(layers):
            torch.testing.assert_close(acts[i], ref[layer][0].float(), atol=1e-5, rtol=1e-4)


def test_adding_moves_the_next_layer_by_the_vector(tiny_gpt2):
    seq = tiny_gpt2.encode("The capital of France is").ids
    vector = torch.randn(tiny_gpt2.model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    before = activations.read(tiny_gpt2, [seq], [1])[0]
    with activations.adding(tiny_gpt2, {1: vector}, positions=[0]):
        after = activations.read(tiny_gpt2, [seq], [1, 2])[0]  # read's hook runs after the addition
        with torch.no_grad():
            logits = tiny_gpt2.model(input_ids=torch.tensor([seq])).logits
    torch.testing.assert_close(after[0, 0], before[0, 0] + vector, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(after[0, 1:], before[0, 1:], atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # and the model's answer moves with it
        plain = tiny_gpt2.model(input_ids=torch.tensor([seq])).logits
    assert not torch.allclose(logits, plain)


def test_an_edit_that_never_runs_is_an_internal_error_and_layers_are_checked(tiny_bert):
    from explainers.errors import InternalError

    with pytest.raises(InternalError):
        with activations.editing(tiny_bert, {1: lambda h: h}):
            pass  # no forward pass: the edit never ran
    with pytest.raises(InputError, match="does not exist"):
        activations.read(tiny_bert, [[101, 102]], [len(tiny_bert.blocks) + 1])
