"""Activation patching against a plain loop: one full forward per cell, with hooks on modules named
here by hand (not found by whybox's architecture code), on tiny GPT-2, Llama (grouped-query) and BERT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers.errors import CancelledError, InputError, InternalError
from explainers.inference.gateway import watching
from explainers.inside import patching

PAIRS = {
    "tiny_gpt2": ("The capital of France is", "The capital of Italy is"),
    "tiny_llama": ("The capital of France is", "The capital of Italy is"),
    "tiny_bert": ("a gripping , funny film .", "a gripping , dull film ."),
}


def named_site(model, component: str, layer: int):
    """(module, 'pre' or 'post') for a site, by the names each architecture gives its modules."""
    kind = type(model).__name__
    if kind.startswith("GPT2"):
        blocks = model.transformer.h
        attn_out, mlp_out, keys, values = "attn.c_proj", "mlp.c_proj", None, None
    elif kind.startswith("Llama"):
        blocks = model.model.layers
        attn_out, mlp_out, keys, values = "self_attn.o_proj", "mlp.down_proj", "self_attn.k_proj", "self_attn.v_proj"
    else:
        blocks = model.bert.encoder.layer
        attn_out, mlp_out, keys, values = "attention.output.dense", "output.dense", "attention.self.key", None
        values = "attention.self.value"
    if component == "resid":
        return (blocks[0], "pre") if layer == 0 else (blocks[layer - 1], "post")
    name = {"attn": attn_out, "mlp": mlp_out, "head": attn_out, "keys": keys, "values": values}[component]
    return blocks[layer - 1].get_submodule(name), "pre" if component == "head" else "post"


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def plain_loop(handle, pair, component, direction, layers, unit_slices):
    """The metric of each patched run: a full forward per cell (the way TransformerLens runs it)."""
    model = handle.model
    src_ids, dst_ids = (pair.clean.ids, pair.corrupted.ids)[:: 1 if direction == "denoise" else -1]
    out = np.zeros((len(unit_slices), len(layers)))

    def metric(ids):
        logits = model(input_ids=torch.tensor([ids])).logits
        logits = logits[0, -1] if logits.ndim == 3 else logits[0]
        if pair.metric == "logprob":
            return float(torch.log_softmax(logits, -1)[pair.target_id])
        return float(logits[pair.target_id] - logits[pair.contrast_id])

    for j, layer in enumerate(layers):
        module, when = named_site(model, component, layer)
        stored = {}

        def read(_m, args, kwargs=None, output=None, when=when, stored=stored):
            stored["x"] = (args[0] if args else kwargs["hidden_states"]) if when == "pre" else _first(output)

        if when == "pre":
            h = module.register_forward_pre_hook(lambda m, a, k: read(m, a, k), with_kwargs=True)
        else:
            h = module.register_forward_hook(lambda m, a, o: read(m, a, output=o))
        with torch.no_grad():
            model(input_ids=torch.tensor([src_ids]))
        h.remove()
        source = stored["x"][0].clone()
        for i, where in enumerate(unit_slices):

            def pre(_m, args, kwargs, where=where, source=source):
                x = (args[0] if args else kwargs["hidden_states"]).clone()
                x[0][where] = source[where]
                return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})

            def post(_m, _a, output, where=where, source=source):
                x = _first(output).clone()
                x[0][where] = source[where]
                return (x, *output[1:]) if isinstance(output, tuple) else x

            if when == "pre":
                h = module.register_forward_pre_hook(pre, with_kwargs=True)
            else:
                h = module.register_forward_hook(post)
            with torch.no_grad():
                out[i, j] = metric(dst_ids)
            h.remove()
    return out


def raw(grid, pair):
    return grid.values * (pair.clean_metric - pair.corrupted_metric) + pair.corrupted_metric


def slices(handle, pair, component):
    n = patching.n_units(handle, pair, component)
    return [patching.cell_index(handle, component, u) for u in range(n)]


CASES = [
    ("tiny_gpt2", "resid", "denoise"),
    ("tiny_gpt2", "attn", "noise"),
    ("tiny_gpt2", "mlp", "denoise"),
    ("tiny_gpt2", "head", "denoise"),
    ("tiny_llama", "resid", "noise"),
    ("tiny_llama", "attn", "denoise"),
    ("tiny_llama", "mlp", "noise"),
    ("tiny_llama", "head", "denoise"),
    ("tiny_llama", "keys", "denoise"),
    ("tiny_llama", "values", "noise"),
    ("tiny_bert", "resid", "denoise"),
    ("tiny_bert", "attn", "denoise"),
    ("tiny_bert", "mlp", "noise"),
    ("tiny_bert", "head", "noise"),
    ("tiny_bert", "values", "denoise"),
]


@pytest.mark.parametrize(("fixture", "component", "direction"), CASES)
def test_patching_equals_a_plain_loop_of_full_forwards(request, fixture, component, direction):
    handle = request.getfixturevalue(fixture)
    pair = patching.prepare(handle, *PAIRS[fixture])
    grid = patching.patch(handle, pair, component, direction)
    expected = plain_loop(handle, pair, component, direction, grid.layers, slices(handle, pair, component))
    np.testing.assert_allclose(raw(grid, pair), expected, atol=2e-5, rtol=1e-4)
    assert grid.values.shape == (patching.n_units(handle, pair, component), len(grid.layers))


def test_logprob_metric_equals_the_plain_loop(tiny_llama):
    pair = patching.prepare(tiny_llama, *PAIRS["tiny_llama"], metric="logprob")
    grid = patching.patch(tiny_llama, pair, "resid")
    expected = plain_loop(tiny_llama, pair, "resid", "denoise", grid.layers, slices(tiny_llama, pair, "resid"))
    np.testing.assert_allclose(raw(grid, pair), expected, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama", "tiny_bert"])
@pytest.mark.parametrize("component", ["resid", "attn", "mlp", "head"])
def test_clean_into_clean_is_one_and_corrupted_into_corrupted_is_zero(request, fixture, component):
    handle = request.getfixturevalue(fixture)
    pair = patching.prepare(handle, *PAIRS[fixture])
    scale = abs(pair.clean_metric - pair.corrupted_metric)
    clean = patching.patch(handle, pair, component, "noise", source="clean", run_identical=True)
    corrupted = patching.patch(handle, pair, component, "denoise", source="corrupted", run_identical=True)
    assert clean.computed.all() and corrupted.computed.all()  # every cell really ran
    np.testing.assert_allclose(raw(clean, pair), pair.clean_metric, atol=2e-5)
    np.testing.assert_allclose(raw(corrupted, pair), pair.corrupted_metric, atol=2e-5)
    if scale > 1e-2:  # normalised: exactly the ends of the scale (to float32 rounding of the metric)
        np.testing.assert_allclose(clean.values, 1.0, atol=1e-3)
        np.testing.assert_allclose(corrupted.values, 0.0, atol=1e-3)


def test_cells_equal_in_both_runs_are_not_run_and_their_value_is_what_running_gives(tiny_gpt2):
    pair = patching.prepare(tiny_gpt2, *PAIRS["tiny_gpt2"])
    first = next(i for i, (a, b) in enumerate(zip(pair.clean.ids, pair.corrupted.ids)) if a != b)
    assert first > 0
    grid = patching.patch(tiny_gpt2, pair, "resid")
    assert not grid.computed[:first].any() and grid.computed[first].all()
    assert grid.rows == int(grid.computed.sum())
    assert (grid.values[:first] == 0).all()  # exact: the corrupted run itself
    every = patching.patch(tiny_gpt2, pair, "resid", run_identical=True)
    np.testing.assert_allclose(raw(every, pair)[:first], pair.corrupted_metric, atol=2e-5)


def test_progress_counts_every_patched_row_and_stop_stops(tiny_bert):
    pair = patching.prepare(tiny_bert, *PAIRS["tiny_bert"])
    done = []
    with watching(on_rows=done.append):
        grid = patching.patch(tiny_bert, pair, "attn")
    assert sum(done) == grid.rows > 0
    with pytest.raises(CancelledError), watching(should_stop=lambda: True):
        patching.patch(tiny_bert, pair, "attn")


def test_a_patch_that_does_not_run_is_an_internal_error_not_a_zero(tiny_gpt2, monkeypatch):
    pair = patching.prepare(tiny_gpt2, *PAIRS["tiny_gpt2"])
    # skipping the patched block itself would leave its sub-layer's patch unrun: a silent no-op elsewhere
    monkeypatch.setattr(patching, "first_computed_block", lambda handle, site: site.layer)
    with pytest.raises(InternalError):
        patching.patch(tiny_gpt2, pair, "attn", layers=[1])


def test_bad_input_gets_one_clear_message(tiny_gpt2, tiny_bert):
    with pytest.raises(InputError, match="same number of tokens"):
        patching.prepare(tiny_bert, "a gripping , funny film .", "a gripping , funny and moving film .")
    with pytest.raises(InputError, match="empty"):
        patching.prepare(tiny_bert, "", "a film .")
    with pytest.raises(InputError, match="Unknown label"):
        patching.prepare(tiny_bert, *PAIRS["tiny_bert"], target="neutral")
    with pytest.raises(InputError, match="one next token"):
        patching.prepare(tiny_gpt2, *PAIRS["tiny_gpt2"], target=" Paris. The capital")
    with pytest.raises(InputError, match="same tokens"):
        patching.prepare(tiny_bert, "a film .", "a film .")
    pair = patching.prepare(tiny_bert, *PAIRS["tiny_bert"])
    with pytest.raises(InputError, match=r"needs about .* s.*fewer layers"):
        patching.patch(tiny_bert, pair, "resid", max_seconds=1e-9)
    with pytest.raises(InputError, match="one projection"):
        patching.patch(tiny_gpt2, patching.prepare(tiny_gpt2, *PAIRS["tiny_gpt2"]), "keys")
    with pytest.raises(InputError, match="does not exist"):
        patching.patch(tiny_bert, pair, "attn", layers=[0])


def test_keys_and_values_are_per_key_value_group(tiny_llama):
    pair = patching.prepare(tiny_llama, *PAIRS["tiny_llama"])
    assert len(patching.patch(tiny_llama, pair, "keys").units) == tiny_llama.config.num_key_value_heads == 2
    assert len(patching.patch(tiny_llama, pair, "head").units) == tiny_llama.config.num_attention_heads == 4
