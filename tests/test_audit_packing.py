"""Packing across texts (explainers/packing.py): the same explanations and metrics as text by text, with
every text's forward rows scored in one de-duplicated pass; errors stay with their step; Stop works."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
from explainers.inference.gateway import watching
from explainers.inference.packing import pack
from explainers.metrics.faithfulness import evaluate

from explainers.audit.data import read_data
from explainers.audit.engine import run_audit
from explainers.audit.store import ResultStore
from explainers.audit.work import AuditSettings, explain_items
from explainers.errors import CancelledError, InputError
from explainers.methods import explain

TEXTS = [
    "a gripping , funny and beautifully acted film .",
    "dull .",
    "the plot is thin and the jokes fall flat , but the music is lovely and the cast tries hard .",
]
METHODS = {
    "occlusion": {},
    "lime": {"n_samples": 40},
    "leave_one_out": {},
    "integrated_gradients": {"n_steps": 8},
    "attention": {},
}


def _steps():
    return [partial(explain, text=t, method=m, seed=0, **p) for t in TEXTS for m, p in METHODS.items()]


class _Recorder:
    """Every (target, row) the model is asked to score, and the model's forward calls."""

    def __init__(self, handle, monkeypatch):
        self.rows, self.asked, self.calls = set(), [], 0
        gateway = handle.gateway
        original = gateway.score_ids

        def score_ids(sequences, target):
            self.rows.update((target, tuple(s)) for s in sequences)
            self.asked.append(len(sequences))
            return original(sequences, target)

        monkeypatch.setattr(gateway, "score_ids", score_ids)
        self._hook = handle.model.register_forward_hook(lambda *a: setattr(self, "calls", self.calls + 1))

    def close(self):
        self._hook.remove()


def test_packed_explanations_and_metrics_equal_text_by_text(tiny_bert, monkeypatch):
    tiny_bert.gateway._memo.clear()
    alone = _Recorder(tiny_bert, monkeypatch)
    single = [step(tiny_bert) for step in _steps()]
    single_reports = [evaluate(tiny_bert, exp) for exp in single]
    alone.close()
    monkeypatch.undo()

    tiny_bert.gateway._memo.clear()
    packed_run = _Recorder(tiny_bert, monkeypatch)
    explained = pack(tiny_bert, _steps())
    evaluated = pack(tiny_bert, [partial(evaluate, exp=exp) for exp in explained.results])
    packed_run.close()

    for a, b in zip(single, explained.results):
        assert (a.method, a.target, a.token_ids) == (b.method, b.target, b.token_ids)
        np.testing.assert_allclose(b.token_scores, a.token_scores, atol=1e-6, rtol=0)
        np.testing.assert_allclose(b.word_scores, a.word_scores, atol=1e-6, rtol=0)
        assert b.target_prob == pytest.approx(a.target_prob, abs=1e-6)
    for a, b in zip(single_reports, evaluated.results):
        assert a.values.keys() == b.values.keys()
        for name in a.values:
            assert np.isclose(a.values[name], b.values[name], atol=1e-6, equal_nan=True), name
    # one packed pass per stage, over exactly the distinct rows the text-by-text run scored
    assert explained.passes == 1 and evaluated.passes == 1
    assert explained.rows + evaluated.rows == sum(packed_run.asked)
    assert packed_run.rows == alone.rows  # the same rows as text by text, each scored once per stage
    assert sum(packed_run.asked) < sum(alone.asked)
    # the rows of all texts share model calls: fewer forward calls than text by text
    assert packed_run.calls < alone.calls
    assert all(s > 0 for s in explained.seconds)


def test_a_failing_step_keeps_its_error_and_the_others_finish(tiny_bert):
    steps = [
        partial(explain, text=TEXTS[0], method="occlusion", window=2, stride=3),  # stride > window: InputError
        partial(explain, text=TEXTS[1], method="occlusion"),
    ]
    packed = pack(tiny_bert, steps)
    assert isinstance(packed.results[0], InputError) and "stride" in str(packed.results[0])
    np.testing.assert_allclose(
        packed.results[1].token_scores, explain(tiny_bert, TEXTS[1], "occlusion").token_scores, atol=1e-6
    )


def test_a_stop_inside_the_packed_pass_stops_the_chunk(tiny_bert):
    settings = AuditSettings("tiny", ("occlusion",), {}).checked()
    items = [
        {"row_id": i, "text": t, "label": None, "rationale": None, "methods": ["occlusion"]}
        for i, t in enumerate(TEXTS)
    ]
    batches = []
    with pytest.raises(CancelledError):
        with watching(on_rows=batches.append, should_stop=lambda: len(batches) >= 1):
            explain_items(tiny_bert, settings, items)
    assert batches  # it ran a batch, then stopped at the next


def test_run_audit_stopped_mid_chunk_writes_nothing_of_it(tiny_bert, tiny_bert_dir, tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"text": TEXTS}).to_csv(path, index=False)
    data = read_data(str(path))
    calls = []
    hook = tiny_bert.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        result = run_audit(
            data,
            AuditSettings(str(tiny_bert_dir), ("occlusion",), {}, seed=3),
            tmp_path / "out",
            handle=tiny_bert,
            store_dir=tmp_path / "store",
            chunk_size=8,
            should_stop=lambda: len(calls) >= 2,  # true in the middle of the first (only) chunk
        )
    finally:
        hook.remove()
    assert result.status == "stopped"
    assert len(ResultStore(tmp_path / "store").keys()) == 0  # no half chunk, no 'stopped' error records
