"""The benchmark harness counts what it promises (rows per method, targets judged). Not timed tests:
speed figures are printed by `make benchmark`, never asserted."""

from __future__ import annotations

import json
import re

import pytest

from benchmarks import run as bench

METHODS = {"integrated_gradients", "lime", "occlusion", "attention"}
ITEMS = METHODS | {f"faithfulness:{m}" for m in METHODS}
# one thread: tiny ops on two threads of a busy machine wait on each other (milliseconds per op)
TINY_WORK = ["--quick", "--repeats", "1", "--threads", "1", "--ig-steps", "4", "--lime-samples", "20"]


@pytest.fixture(autouse=True)
def _restore_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_the_limit_runs_exactly_the_rows_the_estimates_count(tiny_bert_dir, capsys):
    """The benchmark's 'limit' side pushes the rows each method's cost estimate promises, and every
    target it prints is judged PASS or MISS against its own figure."""
    code = bench.main(TINY_WORK + ["--json", "--only", "W1", "--model", str(tiny_bert_dir)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    items = result["W1"]["items"]
    assert items["integrated_gradients"]["limit"]["rows_run"] == 4
    assert items["lime"]["limit"]["rows_run"] == 20
    assert set(items) == ITEMS
    assert result["targets"], "the W1 section states its targets"
    for target in result["targets"]:  # each judged against the goal it prints, e.g. ">= 5x"
        sign, bound = re.match(r"([<>]=) ([\d.]+)", target["goal"]).groups()
        met = target["value"] >= float(bound) if sign == ">=" else target["value"] <= float(bound)
        assert target["status"] == ("PASS" if met else "MISS"), target


def test_tables_and_sections(tiny_bert_dir, capsys):
    assert bench.main(TINY_WORK + ["--only", "limit", "--model", str(tiny_bert_dir)]) == 0
    out = capsys.readouterr().out
    assert "== Machine ==" in out and "whybox vs the limit" in out and ("PASS" in out or "MISS" in out)
    assert "whybox vs naive" not in out and "Scaling" not in out


def test_unknown_section_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "W3"])
    assert "unknown section W3" in capsys.readouterr().err


def test_w1_limit_counts_the_rows_the_requested_work_needs(tiny_bert_dir, capsys):
    """benchmarks.perf's limit is counted from first principles: IG's steps go backward, and the
    forward rows are the distinct sequences of the parts (so never more than their sum); the tables print."""
    from benchmarks import perf

    argv = ["--quick", "--no-startup", "--lengths", "16", "--ig-steps", "4", "--lime-samples", "20", "--model"]
    assert perf.main(argv + [str(tiny_bert_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (w,) = result["w1"]
    parts = w["rows_needed_by_part"]
    n_content = w["n_tokens"] - 2  # [CLS] and [SEP]
    assert parts["leave_one_out"] == n_content + 1 and parts["integrated_gradients"] == 1
    assert parts["lime"] <= 20 and parts["prediction"] == 1
    assert w["rows_needed"]["backward"] == 4
    assert max(parts.values()) <= w["rows_needed"]["forward"] <= w["rows_needed_without_sharing"]
    assert w["whybox_rows_run"]["gradient"] == 4
    assert w["evaluate_eraser"]["rows_run"] == w["evaluate_eraser"]["rows_needed"]
    assert perf.main(argv + [str(tiny_bert_dir), "--no-naive", "--bf16"]) == 0
    out = capsys.readouterr().out
    assert "rows needed" in out and "evaluate(metrics=ERASER)" in out and "ferret" in out and "bf16" in out


def test_eraser_rows_by_hand():
    """Four content tokens ranked 2 > 1 > 3 > 4 (positions): top-1 = {2}, 20 % -> 1, 50 % -> 2 tokens."""
    from types import SimpleNamespace

    from benchmarks.perf import eraser_rows

    enc = SimpleNamespace(ids=[101, 11, 12, 13, 14, 102], content_positions=[1, 2, 3, 4])
    rows = eraser_rows(enc, [0, 0.5, 0.9, 0.1, -1, 0], fill=0)
    assert rows == {
        (101, 11, 12, 13, 14, 102),
        (101, 11, 13, 14, 102),  # without {2}
        (101, 12, 102),  # only {2}
        (101, 13, 14, 102),  # without {1, 2}
        (101, 11, 12, 102),  # only {1, 2}
    }
