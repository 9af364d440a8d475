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
