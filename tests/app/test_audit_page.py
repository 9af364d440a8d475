"""The Audit page in Streamlit's AppTest, on the tiny fixture classifier: the estimate before starting, a run,
and the results it shows, each against the engine's own numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explainers.audit.data import read_data
from explainers.audit.engine import estimate_cost
from explainers.audit.work import AuditSettings
from tests.support import ROOT

APP = ROOT / "dashboard" / "app.py"
METHODS = ("occlusion", "leave_one_out")  # cheap ones: the page is under test, not the methods


@pytest.fixture
def page(tiny_bert_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path / "cache"))  # audits and their store, this test's own
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    at.switch_page("app_pages/audit.py").run()
    at.number_input(key="w_audit_limit").set_value(10).run()
    at.multiselect(key="w_audit_methods").set_value(list(METHODS)).run()
    assert not at.exception, at.exception
    return at


def test_estimate_then_run_then_results(page, tiny_bert, tiny_bert_dir):
    estimate = next(c.value for c in page.caption if "Estimated cost" in c.value)
    data = read_data("builtin:rt-heldout", limit=10)
    rows = estimate_cost(tiny_bert, data, AuditSettings(str(tiny_bert_dir), METHODS))["rows"]
    assert re.search(
        rf"10 texts to compute × 2 methods, at most {rows:,} model rows, (under a second|about \d+ s) here", estimate
    )

    next(b for b in page.button if b.label == "Start audit").click().run()
    assert not page.exception, page.exception
    assert "Results" in [h.value for h in page.header]
    summary = json.loads((Path(page.session_state["audit_dir"]) / "summary.json").read_text())
    assert summary["texts"] == 10
    accuracy = next(m for m in page.metric if m.label == "Accuracy")
    assert accuracy.value == f"{summary['prediction']['accuracy']:.3f}"
    page.run()  # the page again: the finished audit is offered to open, not run again
    assert [b.label for b in page.button if b.label in ("Start audit", "Open audit")] == ["Open audit"]
    estimate = next(c.value for c in page.caption if "Estimated cost" in c.value)
    assert "0 texts to compute (10 of 10 already in the results store) × 2 methods, at most 0 model rows" in estimate
