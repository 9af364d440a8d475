"""The shared-prefix cache (explainers/prefix_cache.py) gives the plain path's numbers: each check runs
the same work with `gateway.prefix_cache` on and off on the tiny causal LMs, and compares with the
model called directly on whole rows."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from explainers.generation.tokens import explain_generation
from explainers.inference import prefix_cache
from explainers.metrics.faithfulness import evaluate

from explainers.methods import explain

PROMPT = "The quick brown fox jumps over the lazy dog because the dog was far too slow to catch it"


@pytest.fixture(scope="module", params=["tiny_gpt2", "tiny_llama"])
def lm(request):
    return request.getfixturevalue(request.param)


@contextlib.contextmanager
def plain(handle):
    """The gateway without the prefix cache, and nothing remembered from the cached run."""
    handle.gateway.prefix_cache = False
    handle.gateway._memo.clear()
    try:
        yield
    finally:
        handle.gateway.prefix_cache = True
        handle.gateway._memo.clear()


@pytest.fixture
def count_cached(monkeypatch):
    """How many calls took the cached path (so a test knows it exercised it)."""
    calls = []
    real = prefix_cache._run

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(prefix_cache, "_run", counted)
    return calls


def _direct(model, rows, target_ids):
    """p(continuation | row) from whole rows, one at a time."""
    out = []
    for row in rows:
        with torch.no_grad():
            logits = model(torch.tensor([list(row) + list(target_ids[:-1])])).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        out.append(float(sum(logp[len(row) - 1 + j, t] for j, t in enumerate(target_ids)).exp()))
    return np.array(out)


@pytest.mark.parametrize("target", ["Paris", " and the cat sat"])  # one token / teacher-forced tokens
def test_leave_one_out_rows_match_the_model_called_directly(lm, target, count_cached):
    enc = lm.encode(PROMPT)
    t = lm.task.resolve_target(enc, target)
    rows = [enc.ids[:i] + enc.ids[i + 1 :] for i in range(len(enc.ids))]
    cached = lm.score_ids(rows, t)
    assert count_cached, "the cached path ran"
    with plain(lm):
        plain_scores = lm.score_ids(rows, t)
    direct = _direct(lm.model, rows, t.token_ids)
    np.testing.assert_allclose(cached, direct, rtol=1e-4)
    np.testing.assert_allclose(cached, plain_scores, rtol=1e-4)


def test_small_token_budget_splits_cached_batches_and_keeps_the_numbers(lm, count_cached):
    enc = lm.encode(PROMPT)
    t = lm.task.resolve_target(enc, "Paris")
    rows = [enc.ids[:i] + enc.ids[i + 1 :] for i in range(len(enc.ids))]
    budget = lm.gateway.token_budget
    lm.gateway.token_budget = 3 * len(enc.ids)  # about three rows per batch
    try:
        cached = lm.score_ids(rows, t)
    finally:
        lm.gateway.token_budget = budget
    assert count_cached
    np.testing.assert_allclose(cached, _direct(lm.model, rows, t.token_ids), rtol=1e-4)


@pytest.mark.parametrize("method", ["leave_one_out", "occlusion"])
def test_methods_and_a_metric_are_unchanged(lm, method, count_cached):
    exp = explain(lm, PROMPT, method, target="Paris")
    report = evaluate(lm, exp, metrics=["comprehensiveness", "sufficiency", "deletion_auc"])
    assert count_cached
    with plain(lm):
        exp_plain = explain(lm, PROMPT, method, target="Paris")
        report_plain = evaluate(lm, exp_plain, metrics=["comprehensiveness", "sufficiency", "deletion_auc"])
    np.testing.assert_allclose(exp.token_scores, exp_plain.token_scores, rtol=1e-4, atol=1e-7)
    for name, value in report_plain.values.items():
        assert report.values[name] == pytest.approx(value, rel=1e-4, abs=1e-7), name


def test_generated_continuation_logprobs_are_unchanged(lm, count_cached):
    exp = explain_generation(lm, PROMPT, "leave_one_out", max_new_tokens=4, removal="delete")
    assert count_cached
    with plain(lm):
        exp_plain = explain_generation(lm, PROMPT, "leave_one_out", max_new_tokens=4, removal="delete")
    assert exp.generated_ids == exp_plain.generated_ids
    np.testing.assert_allclose(exp.scores, exp_plain.scores, rtol=1e-4, atol=1e-6)


def test_rows_with_nothing_in_common_take_the_plain_path(lm, count_cached):
    enc = lm.encode(PROMPT)
    t = lm.task.resolve_target(enc, "Paris")
    rows = [enc.ids[i:] for i in range(5)]  # each starts with a different token
    scores = lm.score_ids(rows, t)
    assert not count_cached
    np.testing.assert_allclose(scores, _direct(lm.model, rows, t.token_ids), rtol=1e-4)


def test_shared_prefixes_picks_the_reference_that_shares_most():
    rows = [[1, 2, 3, 4], [9, 2, 3, 4], [1, 2, 9, 4], [1, 2, 3, 9]]
    reference, shared = prefix_cache.shared_prefixes(rows, np.array([3, 3, 3, 3]))
    assert reference in (0, 3)
    assert shared.tolist() == [3, 0, 2, 3]  # capped at 3: the scored position must run


def test_a_long_prompt_in_one_batch_keeps_padding_positions_inside_the_model(lm, count_cached):
    # 80 of the 128 positions: the widest shared prefix plus the widest suffix of one batch exceed 128
    enc = lm.encode(" ".join([PROMPT] * 6))
    ids = enc.ids[:80]
    assert len(ids) == 80
    t = lm.task.resolve_target(enc, "Paris")
    rows = [ids[:i] + ids[i + 1 :] for i in range(len(ids))]
    cached = lm.score_ids(rows, t)
    assert count_cached
    np.testing.assert_allclose(cached, _direct(lm.model, rows, t.token_ids), rtol=1e-4)


def test_the_benchmark_counts_the_tokens_each_side_runs(tiny_gpt2_dir, capsys):
    import json

    from benchmarks import prefix_cache as bench

    threads = torch.get_num_threads()
    try:
        assert bench.main(["--model", str(tiny_gpt2_dir), "--prompt-tokens", "30", "--repeats", "1", "--json"]) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == result["prompt_tokens"] == 30
    assert result["plain"]["tokens_run"] == 30 * 29  # 30 rows of 29 tokens (a one-token target)
    # row i shares its first i tokens (at most 28: the last token of a row always runs): the 28-token
    # prefix once, then 29 - min(i, 28) tokens per row
    assert result["cached"]["tokens_run"] == 28 + sum(29 - min(i, 28) for i in range(30))
    assert result["max_abs_dp"] < 1e-5


def test_cached_batches_cover_every_row_once_within_the_budget():
    n = 60  # leave-one-out's shape: row i shares i tokens, its suffix is the rest
    shared = np.minimum(np.arange(n), n - 2)
    suffix = (n - 1) - shared
    batches = prefix_cache.plan_cached_batches(shared, suffix, token_budget=500, call_overhead=32)
    assert sorted(i for b in batches for i in b) == list(range(n))
    for b in batches:
        assert len(b) * (max(shared[b]) + max(suffix[b])) <= 500
    # rows of like suffixes go together: padding adds under 10 % to the suffix tokens
    padded = sum(len(b) * max(suffix[b]) for b in batches)
    assert padded < 1.1 * suffix.sum()
