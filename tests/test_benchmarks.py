"""Smoke tests of the benchmark harness: it runs and reports what it promises. Not timed tests:
the figures are only checked to be there and positive."""

from __future__ import annotations

import json

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


def _check_workload(w: dict) -> None:
    for key in ("speedup_vs_naive", "ratio_to_limit"):
        assert set(w[key]) == ITEMS | {"overall"}, key
        assert all(value > 0 for value in w[key].values()), (key, w[key])
    for name, item in w["items"].items():
        assert item["rows"]["forward"] >= 1, name
        for side in ("whybox", "naive", "limit"):
            assert item[side]["median_s"] > 0 and item[side]["forward_calls"] >= 1, (name, side)
    # the limit pushes exactly the rows the engine's estimate counts
    assert w["items"]["integrated_gradients"]["limit"]["rows_run"] == 4
    assert w["items"]["lime"]["limit"]["rows_run"] == 20


def test_quick_json_has_every_figure(tiny_bert_dir, tiny_gpt2_dir, capsys):
    code = bench.main(TINY_WORK + ["--json", "--model", str(tiny_bert_dir), "--lm", str(tiny_gpt2_dir),
                                   "--lengths", "16,64"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)

    assert result["machine"]["torch_threads"] >= 1 and result["machine"]["torch"]
    _check_workload(result["W1"])
    _check_workload(result["W2"])
    assert result["W1"]["speedup_ceiling"] > 0
    assert result["W2"]["task"] == "causal_lm"

    scaling = result["scaling"]["methods"]
    assert set(scaling) == METHODS | {"faithfulness:integrated_gradients"}
    for name, method in scaling.items():
        assert len(method["by_tokens"]) == 2, name
        assert all(point["median_s"] > 0 for point in method["by_tokens"].values())
        assert method["growth_per_4x"][0]["factor"] > 0
    assert {t["status"] for t in result["targets"]} <= {"PASS", "MISS"}


def test_tables_and_sections(tiny_bert_dir, capsys):
    assert bench.main(TINY_WORK + ["--only", "limit", "--model", str(tiny_bert_dir)]) == 0
    out = capsys.readouterr().out
    assert "== Machine ==" in out and "whybox vs the limit" in out and ("PASS" in out or "MISS" in out)
    assert "whybox vs naive" not in out and "Scaling" not in out


def test_unknown_section_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "W3"])
    assert "unknown section W3" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_run_on_the_default_model(capsys):
    # W1 only: W2's naive side (one forward per perturbation of a 135M LM) takes many minutes on
    # two cores; the harness's W2 path is covered on the tiny GPT-2 above.
    code = bench.main(["--quick", "--json", "--only", "W1", "--repeats", "1", "--lime-samples", "50", "--ig-steps", "8"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert not result["notes"], result["notes"]  # the real built-in, not a stand-in
    for workload in ("W1",):
        assert result[workload]["speedup_vs_naive"]["overall"] > 0
        assert result[workload]["ratio_to_limit"]["overall"] > 0


@pytest.mark.browser
def test_dashboard_timings_are_reported(capsys):
    from benchmarks import dashboard
    from benchmarks.browser import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    assert dashboard.main(["--repeats", "1", "--cold-repeats", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)["dashboard"]
    assert set(figures) == {"cold_start", "explain_to_rendered", "cached_explain", "cached_switch_view"}
    for name, row in figures.items():
        assert len(row["runs_s"]) == 1 and row["median_s"] > 0, name
    assert figures["cold_start"]["target_s"] == 8.0 and figures["cached_explain"]["target_s"] == 0.3
