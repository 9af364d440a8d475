"""Built-in offline models: registry, cache machinery (with a fake build), and the real builds (slow)."""

import json
import threading

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from explainers.models import builtin
from explainers.models.builtin import BUILTIN_MODELS, builtin_path, cache_dir, is_builtin, sentiment_splits


def test_registry_describes_each_model():
    assert set(BUILTIN_MODELS) == {"sentiment", "smollm2", "smollm2-sentiment"}
    assert BUILTIN_MODELS["smollm2-sentiment"].base == "smollm2" and builtin.prompt_of("smollm2-sentiment").labels
    assert BUILTIN_MODELS["sentiment"].task == "classification"
    assert BUILTIN_MODELS["smollm2"].task == "causal_lm"
    for model in BUILTIN_MODELS.values():
        assert model.description and "\n" not in model.description
        assert "Apache-2.0" in model.source
    assert is_builtin("sentiment") and not is_builtin("bert-base-uncased")


def test_unknown_name_lists_the_builtins():
    with pytest.raises(ValueError, match="sentiment, smollm2"):
        builtin_path("no-such-model")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("WHYBOX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "whybox"


def test_splits_are_disjoint_stratified_and_deterministic():
    train, heldout = sentiment_splits()
    assert (len(train), len(heldout)) == (7530, 1000)
    assert sum(label for _, label in heldout) == 500
    assert not {text for text, _ in train} & {text for text, _ in heldout}
    assert sentiment_splits() == (train, heldout)


def test_recipe_hash_covers_every_setting():
    recipe = builtin.SENTIMENT_RECIPE
    assert builtin._recipe_hash("sentiment", recipe) == builtin._recipe_hash("sentiment", dict(recipe))
    assert builtin._recipe_hash("sentiment", recipe) != builtin._recipe_hash("sentiment", {**recipe, "epochs": 9})


class _Calls(list):
    """The fake build's calls; `gate` holds a build open until a test opens it (open by default)."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()


@pytest.fixture
def fake_build(monkeypatch, tmp_path):
    """Swap the sentiment build for a quick one writing a marker file; returns the list of its calls."""
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path))
    calls = _Calls()

    def build(out, recipe, report):
        calls.append(out)
        report(0.5, "halfway")
        assert calls.gate.wait(timeout=60), "the other callers never arrived"  # a build still in progress
        (out / "marker").write_text(str(len(calls)))
        report(1.0, "done")

    monkeypatch.setitem(builtin._RECIPES, "sentiment", ({"fake": 1}, build))
    return calls


def test_build_once_then_reuse(fake_build, tmp_path):
    seen = []
    folder = builtin_path("sentiment", progress=lambda f, m: seen.append((f, m)))
    assert folder.parent == tmp_path and (folder / "marker").read_text() == "1"
    assert (0.5, "halfway") in seen and seen[-1] == (1.0, "done")
    assert builtin_path("sentiment") == folder and len(fake_build) == 1
    assert builtin_path("sentiment", rebuild=True) == folder
    assert (folder / "marker").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [folder.name]  # no temp folders left


def test_without_progress_a_bar_goes_to_stderr(fake_build, capsys):
    builtin_path("sentiment")
    assert "building sentiment" in capsys.readouterr().err


def test_concurrent_callers_build_once(fake_build):
    folders, arrived = [], []
    fake_build.gate.clear()  # the first build stays open until all three callers have asked

    def call():
        arrived.append(1)
        if len(arrived) == 3:
            fake_build.gate.set()
        folders.append(builtin_path("sentiment"))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake_build) == 1 and len(set(folders)) == 1


def test_failed_build_leaves_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path))

    def build(out, recipe, report):
        (out / "half").write_text("x")
        raise KeyboardInterrupt

    monkeypatch.setitem(builtin._RECIPES, "sentiment", ({"fake": 2}, build))
    with pytest.raises(KeyboardInterrupt):
        builtin_path("sentiment")
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


@pytest.mark.slow
def test_sentiment_heldout_accuracy():
    folder = builtin_path("sentiment")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert model.config.id2label == {0: "negative", 1: "positive"}
    _, heldout = sentiment_splits()
    heldout.sort(key=lambda pair: len(pair[0]))  # batches of similar length pad little
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(heldout), 100):
            texts, labels = zip(*heldout[start : start + 100])
            batch = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
            correct += (model(**batch).logits.argmax(-1) == torch.tensor(labels)).sum().item()
    accuracy = correct / len(heldout)
    assert accuracy >= 0.80
    build = json.loads((folder / "whybox_build.json").read_text())
    assert (build["train_size"], build["heldout_size"]) == (7530, 1000)
    assert build["heldout_accuracy"] == pytest.approx(accuracy, abs=0.01)


@pytest.mark.slow
def test_sentiment_cache_is_reused():
    folder = builtin_path("sentiment")
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    calls = []
    assert builtin_path("sentiment", progress=lambda f, m: calls.append(m)) == folder
    assert not calls and (folder / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_smollm2_knows_the_capital_of_france():
    folder = builtin_path("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert tokenizer.chat_template and tokenizer.pad_token is not None
    prompt = tokenizer("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**prompt, max_new_tokens=3, do_sample=False)
    assert tokenizer.decode(out[0, prompt.input_ids.shape[1] :]).startswith(" Paris")
