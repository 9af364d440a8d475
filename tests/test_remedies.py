"""One-click re-runs from a poor diagnostic's own data: which are offered (unit), and the Explain page's
button re-running with the new value (AppTest)."""

from __future__ import annotations

import dataclasses

import pytest
from explainers.methods.remedies import remedies

from explainers.methods import CONVERGENCE_DELTA, METHODS, explain
from tests.test_app import TEXT, click, set_text

SHORT = "a gripping , funny film"


def _poor(exp, name: str, value: float):
    return dataclasses.replace(exp, extras={**exp.extras, name: value})


def test_a_poor_fit_offers_the_other_kernel_and_more_samples(tiny_bert):
    exp = explain(tiny_bert, SHORT, "lime", n_samples=40)
    assert exp.params["kernel_width"] == 5.0  # short text: the narrow default
    offered = remedies(_poor(exp, "surrogate_r2", 0.1))
    assert [(r.param, r.value) for r in offered] == [("kernel_width", 25.0), ("n_samples", 120)]
    assert offered[0].label == "Re-run with kernel width 25" and offered[0].diagnostic == "surrogate R²"
    assert remedies(_poor(exp, "surrogate_r2", 0.9)) == []  # a good fit: nothing offered


def test_more_steps_stop_at_the_parameter_bound(tiny_bert):
    exp = explain(tiny_bert, SHORT, "integrated_gradients", n_steps=300)
    poor = _poor(exp, "convergence_delta", 0.5)
    assert [(r.param, r.value) for r in remedies(poor)] == [("n_steps", 500)]  # 600 clamped to the bound 500
    at_bound = dataclasses.replace(poor, params={**poor.params, "n_steps": 500})
    assert remedies(at_bound) == []  # nothing left to try


def test_a_method_without_the_parameter_gets_no_button(tiny_bert):
    exp = explain(tiny_bert, SHORT, "deeplift")  # has a convergence delta, no n_steps
    assert remedies(_poor(exp, "convergence_delta", 0.5)) == []


@pytest.fixture
def always_poor(monkeypatch):
    """Integrated Gradients whose delta is always judged poor, so that the page offers its re-run."""
    spec = METHODS["integrated_gradients"]
    diagnostic = dataclasses.replace(CONVERGENCE_DELTA, threshold=-1.0)
    monkeypatch.setitem(METHODS, "integrated_gradients", dataclasses.replace(spec, diagnostics=(diagnostic,)))


def test_the_card_button_reruns_with_twice_the_steps(app, always_poor):
    set_text(app, TEXT)
    app.sidebar.multiselect(key="w_methods").set_value(["integrated_gradients"]).run()
    app.sidebar.number_input(key="w_p_integrated_gradients_n_steps").set_value(8).run()
    click(app, "Explain")
    click(app, "Re-run with n steps 16")
    assert app.session_state.params["integrated_gradients"]["n_steps"] == 16
    assert app.sidebar.number_input(key="w_p_integrated_gradients_n_steps").value == 16
    assert any(b.label == "Re-run with n steps 32" for b in app.button)  # the new run's card, at 16 steps
