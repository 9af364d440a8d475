"""Long work reports progress, can be stopped between batches, and is estimated in seconds."""

from __future__ import annotations

import pytest
from explainers.inference.gateway import watching

from explainers.errors import CancelledError
from explainers.methods import METHODS, estimated_seconds, explain, occlusion_windows, preset_params

TEXT = "a gripping , funny film , though far too long ."


def test_progress_counts_every_row_scored(tiny_bert, monkeypatch):
    monkeypatch.setattr(tiny_bert.gateway, "token_budget", 4 * 16)  # several batches
    rows = []
    with watching(on_rows=rows.append):
        exp = explain(tiny_bert, TEXT, "occlusion", window=2)
    assert len(rows) > 1  # reported batch by batch, not once at the end
    assert sum(rows) == len(occlusion_windows(len(exp.token_ids), 2, 1))


def test_a_stop_request_ends_the_work_at_the_next_batch_and_frees_the_model(tiny_bert, monkeypatch):
    monkeypatch.setattr(tiny_bert.gateway, "token_budget", 4 * 16)
    rows = []
    with pytest.raises(CancelledError), watching(on_rows=rows.append, should_stop=lambda: sum(rows) >= 8):
        explain(tiny_bert, TEXT, "lime", n_samples=200)
    assert 8 <= sum(rows) < 200  # stopped part-way, at a batch boundary
    for method in ("layer_conductance", "integrated_gradients"):  # gradient paths stop too
        with pytest.raises(CancelledError), watching(should_stop=lambda: True):
            explain(tiny_bert, TEXT, method)
    # nothing is left locked or hooked: the same handle still explains, from another thread too
    assert explain(tiny_bert, TEXT, "layer_conductance").token_scores


def test_estimated_seconds_come_from_the_measured_rate(tiny_bert, monkeypatch):
    monkeypatch.setattr(tiny_bert.gateway, "_seconds_per_row_token", {})  # nothing measured yet
    n_tokens = len(tiny_bert.encode(TEXT).ids)
    first = estimated_seconds(tiny_bert, "leave_one_out", n_tokens)  # from a timed forward pass
    assert first > 0
    exp = explain(tiny_bert, TEXT, "leave_one_out")
    rows = METHODS["leave_one_out"].estimate(n_tokens).rows
    rate = tiny_bert.gateway.seconds_per_row_token("leave_one_out")
    assert estimated_seconds(tiny_bert, "leave_one_out", n_tokens) == pytest.approx(rows * n_tokens * rate)
    assert rate == pytest.approx(exp.seconds / (rows * n_tokens))  # the first run sets the rate
    doubled = estimated_seconds(tiny_bert, "leave_one_out", 2 * n_tokens)
    assert doubled == pytest.approx(
        ((2 * n_tokens + 1) / (n_tokens + 1)) * 2 * estimated_seconds(tiny_bert, "leave_one_out", n_tokens)
    )


def test_presets_change_only_steps_and_samples():
    assert preset_params("integrated_gradients", "quick") == {"n_steps": 16}
    assert preset_params("lime", "thorough") == {"n_samples": 3000}
    assert preset_params("occlusion", "quick") == {}
    assert preset_params("integrated_gradients", "default") == {}


def test_a_watch_with_a_batch_time_calibrates_a_fresh_model_first(tiny_bert_dir):
    from explainers.models.loading import load_model

    handle = load_model(str(tiny_bert_dir))  # a new handle: its gateway has not timed itself yet
    rows = []
    with watching(on_rows=rows.append, batch_seconds=0.5):
        exp = explain(handle, "a gripping film", "occlusion")
    assert exp.scores and rows  # used to recurse: batch size -> rate -> calibration -> batch size
    assert handle.gateway.seconds_per_row_token() > 0
