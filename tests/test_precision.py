"""Reduced precision for forward-only rows: bf16 rows within the stated tolerance of float32, the
gradient path untouched, and the `auto` probe's figures and choice checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from explainers.inference.precision import MIN_SPEEDUP, TOLERANCE, forward_precision, set_precision

from explainers.errors import InputError
from explainers.methods import explain

TEXT = "a gripping , funny film , though far too long ."


def _linear_dtypes(model):
    seen, hooks = set(), []
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            hooks.append(module.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype)))
    return seen, hooks


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_gpt2"])
def test_bf16_rows_are_within_tolerance_and_really_bf16(fixture, request):
    handle = request.getfixturevalue(fixture)
    enc = handle.encode(TEXT)
    target = handle.resolve_target(enc, None)
    sequences = [enc.ids, enc.ids[:-2] or enc.ids, [t for i, t in enumerate(enc.ids) if i != 2]]
    exact = handle.gateway.score_ids(sequences, target)
    seen, hooks = _linear_dtypes(handle.model)
    try:
        with forward_precision(handle, "bf16"):
            reduced = handle.gateway.score_ids(sequences, target)
    finally:
        for h in hooks:
            h.remove()
    assert torch.bfloat16 in seen  # the rows did run in bf16
    assert handle.gateway.precision == "float32"  # put back
    assert np.max(np.abs(reduced - exact)) <= TOLERANCE


def test_gradients_stay_float32_and_forward_methods_stay_close(tiny_bert):
    ig = explain(tiny_bert, TEXT, "integrated_gradients", n_steps=8)
    occ = explain(tiny_bert, TEXT, "occlusion")
    with forward_precision(tiny_bert, "bf16"):
        ig_bf16 = explain(tiny_bert, TEXT, "integrated_gradients", n_steps=8)
        occ_bf16 = explain(tiny_bert, TEXT, "occlusion")
    np.testing.assert_array_equal(ig_bf16.token_scores, ig.token_scores)  # gradient rows untouched
    assert ig_bf16.target_prob == ig.target_prob  # so is the prediction pass
    # occlusion = p(x) - p(x with a window hidden): only the hidden rows move, each by at most the tolerance
    assert np.max(np.abs(np.array(occ_bf16.token_scores) - np.array(occ.token_scores))) <= TOLERANCE


def test_auto_probe_figures_and_choice(tiny_bert):
    before = tiny_bert.gateway.precision
    try:
        found = set_precision(tiny_bert, "auto")
        assert tiny_bert.gateway.precision == found.chosen
    finally:
        tiny_bert.gateway.precision = before
    # the probe's |Δp|, recomputed here with torch.autocast on the same seeded rows
    ids = torch.randint(
        0, len(tiny_bert.tokenizer), (found.rows, found.tokens), generator=torch.Generator().manual_seed(0)
    )
    with torch.inference_mode():
        p32 = torch.softmax(tiny_bert.model(input_ids=ids).logits.float(), -1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            p16 = torch.softmax(tiny_bert.model(input_ids=ids).logits.float(), -1)
    assert found.max_abs_dp == pytest.approx(float((p16 - p32).abs().max()), abs=1e-6)
    assert found.speedup == pytest.approx(found.float32_ms / found.bf16_ms)
    expected = "bf16" if found.speedup >= MIN_SPEEDUP and found.max_abs_dp <= TOLERANCE else "float32"
    assert found.chosen == expected


def test_explicit_choices_and_bad_input(tiny_bert):
    before = tiny_bert.gateway.precision
    try:
        assert set_precision(tiny_bert, "bf16") is None and tiny_bert.gateway.precision == "bf16"
        assert set_precision(tiny_bert, "float32") is None and tiny_bert.gateway.precision == "float32"
        with pytest.raises(InputError, match="Unknown precision 'fp8'"):
            set_precision(tiny_bert, "fp8")
    finally:
        tiny_bert.gateway.precision = before
