"""Model folders users bring (issue 20, point 16): an emptied built-in cache folder is rebuilt like a
damaged one; a folder whose config.json lists no architectures (a GGUF export) gets its head from the
names of its weights, or a message saying exactly what to add."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from explainers.errors import ModelLoadError
from explainers.models import builtin
from explainers.models.builtin import builtin_path
from explainers.models.loading import load_model


@pytest.fixture
def fake_build(monkeypatch, tmp_path):
    """The sentiment build swapped for one writing a marker (a folder as whybox builds it, with checksums)."""
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path))
    calls = []

    def build(out, recipe, report):
        calls.append(out)
        (out / "marker").write_text(str(len(calls)))

    monkeypatch.setitem(builtin._RECIPES, "sentiment", ({"fake": 3}, build))
    return calls


@pytest.mark.parametrize("emptied", ["every file", "all but the marker"])
def test_an_emptied_built_in_folder_is_rebuilt(emptied, fake_build):
    folder = builtin_path("sentiment")
    for path in folder.iterdir():
        if emptied == "every file" or path.name != "marker":
            path.unlink()
    seen = []
    assert builtin_path("sentiment", progress=lambda f, m: seen.append(m)) == folder
    assert len(fake_build) == 2 and (folder / "marker").read_text() == "2"
    why = "the folder is empty" if emptied == "every file" else "whybox_checksums.json, and config.json or the weights"
    assert any(m.startswith(f"rebuilding: the cached copy is damaged ({why}") for m in seen), seen


def _without_architectures(src, dst):
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    del config["architectures"]
    (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_llama"])
def test_a_config_without_architectures_gets_its_head_from_the_weights(model, request, tmp_path):
    original = request.getfixturevalue(model)
    folder = _without_architectures(request.getfixturevalue(f"{model}_dir"), tmp_path / "silent")
    handle = load_model(str(folder))
    assert type(handle.task) is type(original.task)
    assert type(handle.model) is type(original.model)
    ids = torch.tensor([original.encode("the film was great").ids])
    with torch.inference_mode():  # the same weights in the same head: the same outputs
        np.testing.assert_allclose(handle.model(input_ids=ids).logits, original.model(input_ids=ids).logits, rtol=1e-6)


def test_weights_that_do_not_say_get_the_exact_line_to_add(tiny_bert_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _without_architectures(tiny_bert_dir, tmp_path / "headless")
    weights = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("classifier.")}, folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    with pytest.raises(ModelLoadError) as err:
        load_model(str(folder))
    message = str(err.value)
    assert "lists no architectures" in message
    assert 'add "architectures": ["BertLMHeadModel"] for a language model or ' in message
    assert f'["BertForSequenceClassification"] for a classifier to {folder / "config.json"}, or pass' in message
    assert "--task classification or --task causal_lm" in message
