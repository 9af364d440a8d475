"""`whybox run` loads the dashboard's first model while the server starts."""

from __future__ import annotations

import pytest
from explainers.models import builtin
from explainers.serving.preload import preload_model, take_preloaded


def test_a_preloaded_model_is_handed_out_once(tiny_bert_dir):
    name = str(tiny_bert_dir)
    preload_model(name)
    handle = take_preloaded(name)
    assert handle is not None and handle.task.name == "classification" and handle.labels == ["negative", "positive"]
    assert take_preloaded(name) is None  # the dashboard caches it from then on


def test_a_failed_preload_gives_way_to_the_normal_load(tmp_path):
    name = str(tmp_path / "no-such-model")
    preload_model(name)
    assert take_preloaded(name) is None  # load_model then says what is wrong, in the page


def test_nothing_preloaded_gives_none():
    assert take_preloaded("never-asked-for") is None


def test_an_unbuilt_builtin_is_not_built_in_the_background(monkeypatch, tmp_path):
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path))
    assert not builtin.is_built("sentiment")
    preload_model("sentiment")
    assert take_preloaded("sentiment") is None  # its first build shows progress in the page instead
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "value, expected", [("", builtin.DEFAULT_MODEL), ("  ", builtin.DEFAULT_MODEL), ("smollm2", "smollm2")]
)
def test_default_model_follows_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(builtin.DEFAULT_MODEL_ENV, value)
    assert builtin.default_model() == expected
