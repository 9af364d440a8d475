"""Reliability (issue 13): damaged and unusual model folders, hostile links and CLI inputs all end in a
clear message, never a traceback, and nothing silently explains a model that is not the one asked for."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from explainers.models import builtin, integrity
from explainers.models.loading import load_model

from explainers.cli import main
from explainers.errors import InputError, ModelLoadError

ROOT = Path(__file__).resolve().parent.parent


def _copy(folder: Path, tmp_path: Path, name: str = "copy") -> Path:
    out = tmp_path / name
    shutil.copytree(folder, out)
    return out


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- 1. damaged weights ------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_a_damaged_folder_is_refused_with_a_fix(tiny_bert_dir, tmp_path, damage, capsys):
    folder = _copy(tiny_bert_dir, tmp_path)
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size // 2 if damage == "truncate" else 0)
    with pytest.raises(ModelLoadError, match="damaged: model.safetensors is (truncated|empty).*save the model again"):
        load_model(str(folder), device="cpu")
    code, _, err = _cli(capsys, "explain", "--model", str(folder), "--text", "a film", "--method", "saliency")
    assert code == 2 and "damaged" in err and "Traceback" not in err and err.count("\n") == 1


def test_safetensors_check_agrees_with_the_library(tiny_bert_dir, tmp_path):
    """The length check says 'whole' exactly when safetensors itself reads every tensor."""
    from safetensors import safe_open

    weights = _copy(tiny_bert_dir, tmp_path) / "model.safetensors"
    assert integrity.safetensors_problem(weights) is None
    with safe_open(str(weights), "pt") as f:
        assert all(f.get_tensor(k) is not None for k in f.keys())
    with open(weights, "ab") as f:  # one byte too many: the header no longer matches
        f.write(b"\0")
    assert "padded" in integrity.safetensors_problem(weights)


def _fake_sentiment(monkeypatch, tmp_path, calls):
    """A quick stand-in for the sentiment build: a real (tiny) safetensors file."""
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path / "cache"))

    def build(out, recipe, report):
        import torch
        from safetensors.torch import save_file

        calls.append(out)
        save_file({"w": torch.arange(64, dtype=torch.float32)}, str(out / "model.safetensors"))
        (out / "config.json").write_text("{}")

    monkeypatch.setitem(builtin._RECIPES, "sentiment", ({"fake": "reliability"}, build))


def test_a_built_in_has_checksums_and_a_damaged_one_is_rebuilt(monkeypatch, tmp_path):
    calls: list = []
    _fake_sentiment(monkeypatch, tmp_path, calls)
    folder = builtin.builtin_path("sentiment", progress=lambda f, m: None)
    table = json.loads((folder / integrity.CHECKSUMS).read_text())
    assert table["model.safetensors"]["sha256"] == integrity.sha256_of(folder / "model.safetensors")
    assert builtin.builtin_path("sentiment", progress=lambda f, m: None) == folder and len(calls) == 1
    # a flipped byte keeps the length (the header check passes) but not the checksum
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(data)
    assert integrity.folder_problems(folder) == ["model.safetensors differs from what was written (checksum mismatch)"]
    messages = []
    assert builtin.builtin_path("sentiment", progress=lambda f, m: messages.append(m)) == folder
    assert len(calls) == 2 and not integrity.folder_problems(folder)
    assert any("rebuilding: the cached copy is damaged" in m for m in messages)


def _read_only(monkeypatch):
    """Root ignores file modes, so a read-only file system is simulated where whybox writes."""

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(builtin, "_open_lock", refuse)
    monkeypatch.setattr(integrity, "write_checksums", refuse)


def test_a_read_only_cache_serves_what_is_built_and_says_what_to_do(monkeypatch, tmp_path):
    calls: list = []
    _fake_sentiment(monkeypatch, tmp_path, calls)
    folder = builtin.builtin_path("sentiment", progress=lambda f, m: None)
    _read_only(monkeypatch)
    assert builtin.builtin_path("sentiment", progress=lambda f, m: None) == folder  # no lock needed
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError) as caught:
        builtin.builtin_path("sentiment", progress=lambda f, m: None)
    message = str(caught.value)
    assert "is damaged (model.safetensors is empty (0 bytes)" in message
    assert f"cannot write its cache folder {folder.parent} (Read-only file system)" in message
    assert "WHYBOX_CACHE" in message and len(calls) == 1


def test_a_read_only_cache_in_the_cli_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path / "empty-cache"))
    _read_only(monkeypatch)
    code, _, err = _cli(capsys, "build-models", "--only", "sentiment")
    assert code == 2 and "not built yet" in err and "WHYBOX_CACHE" in err and "Traceback" not in err


def test_pickle_only_folder_is_refused(tiny_bert_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = _copy(tiny_bert_dir, tmp_path)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"only pickle weights \(pytorch_model.bin\); whybox loads safetensors"):
        load_model(str(folder), device="cpu")


def test_a_folder_without_its_tokenizer_is_refused(tiny_bert_dir, tmp_path):
    folder = _copy(tiny_bert_dir, tmp_path)
    for name in ("tokenizer.json", "vocab.txt"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="tokenizer of .* tokens for a model of 30,522"):
        load_model(str(folder), device="cpu")


def test_a_text_of_unknown_tokens_is_refused(tiny_bert):
    unk = tiny_bert.tokenizer.unk_token_id
    text = "\u2603\u2603 \u2604"  # snowmen and a comet: [UNK] for this vocabulary
    assert set(tiny_bert.tokenizer(text, add_special_tokens=False)["input_ids"]) == {unk}
    with pytest.raises(InputError, match="Every token of this text is unknown"):
        tiny_bert.encode(text)
    assert tiny_bert.encode("a \u2603 film").n_tokens == 5  # one unknown token among known ones is fine


@pytest.mark.parametrize("fixture,task", [("tiny_bert_dir", "causal_lm"), ("tiny_gpt2_dir", "classification")])
def test_a_head_that_would_be_initialised_at_random_is_refused(request, fixture, task, capsys):
    folder = request.getfixturevalue(fixture)
    with pytest.raises(ModelLoadError, match="would be initialised at random"):
        load_model(str(folder), device="cpu", task=task)
    code, _, err = _cli(capsys, "explain", "--model", str(folder), "--task", task, "--text", "a film")
    assert code == 2 and "initialised at random" in err


def test_the_fixtures_load_without_new_weights(tiny_bert_dir, tiny_gpt2_dir, tiny_llama_dir):
    for folder in (tiny_bert_dir, tiny_gpt2_dir, tiny_llama_dir):
        handle = load_model(str(folder), device="cpu")  # the refusals above do not fire on whole checkpoints
        assert handle.name == str(folder) and handle.n_layers == 2


def test_cli_damaged_folder_in_a_subprocess_has_no_traceback(tiny_bert_dir, tmp_path):
    folder = _copy(tiny_bert_dir, tmp_path)
    (folder / "model.safetensors").write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-m", "explainers.cli", "explain", "--model", str(folder), "--text", "a film"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"WHYBOX_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 2 and "model.safetensors is empty" in proc.stderr and "Traceback" not in proc.stderr


# ---- 2. links -------------------------------------------------------------------------------------------
APP = ROOT / "dashboard" / "app.py"


def _open_link(monkeypatch, default_dir, query: dict, **env):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(default_dir))
    for name in ("WHYBOX_ALLOW_CUSTOM_MODELS", "WHYBOX_ALLOWED_MODELS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    return at


def _warnings(at) -> str:
    return "\n".join(w.value for w in at.warning).replace("\\", "").replace("**", "")


def test_a_link_naming_a_local_folder_asks_first(monkeypatch, tiny_bert_dir, tiny_gpt2_dir):
    query = {"model": str(tiny_gpt2_dir), "text": "The capital of France is", "methods": "saliency"}
    at = _open_link(monkeypatch, tiny_bert_dir, query)
    assert at.session_state.model == str(tiny_bert_dir)  # nothing loaded silently
    assert f"This link asks to load the model {tiny_gpt2_dir}" in _warnings(at)
    assert not at.subheader  # and nothing explained with the wrong model meanwhile
    next(b for b in at.button if b.label == "Load it").click().run()
    assert not at.exception and at.session_state.model == str(tiny_gpt2_dir)
    assert [s.value for s in at.subheader] == ["Prediction", "Saliency"]  # the held autorun, now on its model
    assert "This link asks" not in _warnings(at)


def test_declining_a_link_model_keeps_the_default(monkeypatch, tiny_bert_dir, tiny_gpt2_dir):
    at = _open_link(monkeypatch, tiny_bert_dir, {"model": str(tiny_gpt2_dir), "text": "a film", "methods": "saliency"})
    next(b for b in at.button if b.label == "No, keep the current model").click().run()
    assert at.session_state.model == str(tiny_bert_dir) and not at.subheader and "This link asks" not in _warnings(at)


def test_a_link_naming_a_hub_id_asks_first(monkeypatch, tiny_bert_dir):
    at = _open_link(monkeypatch, tiny_bert_dir, {"model": "someone/anything"})
    assert at.session_state.model == str(tiny_bert_dir)
    assert "This link asks to load the model someone/anything" in _warnings(at)


def test_operator_allowed_models_load_from_a_link(monkeypatch, tiny_bert_dir, tiny_gpt2_dir):
    at = _open_link(
        monkeypatch, tiny_bert_dir, {"model": str(tiny_gpt2_dir)}, WHYBOX_ALLOWED_MODELS=str(tiny_gpt2_dir.parent)
    )
    assert at.session_state.model == str(tiny_gpt2_dir) and "This link asks" not in _warnings(at)


def test_strict_mode_refuses_a_link_model_and_says_so(monkeypatch, tiny_bert_dir, tiny_gpt2_dir):
    at = _open_link(monkeypatch, tiny_bert_dir, {"model": str(tiny_gpt2_dir)}, WHYBOX_ALLOW_CUSTOM_MODELS="0")
    assert at.session_state.model == str(tiny_bert_dir) and not [b for b in at.button if b.label == "Load it"]
    assert "which this server does not serve" in _warnings(at)


def test_a_40kb_link_text_waits_for_the_button(monkeypatch, tiny_bert_dir):
    from explainers.methods import METHODS

    text = "the film is long but the actors are wonderful . " * 850  # about 40 KB
    assert len(text.encode()) > 40_000
    at = _open_link(monkeypatch, tiny_bert_dir, {"text": text, "methods": "integrated_gradients,lime"})
    assert not at.subheader  # nothing ran
    info = "\n".join(i.value for i in at.info)
    rows = METHODS["integrated_gradients"].estimate(128).rows + METHODS["lime"].estimate(128).rows
    assert "This link's text is 128 tokens long" in info and f"about {rows:,} model passes" in info
    next(b for b in at.button if b.label == "Explain").click().run()
    assert [s.value for s in at.subheader] == ["Prediction", "Integrated Gradients", "LIME"]


def test_a_cheap_link_still_explains_at_once(monkeypatch, tiny_bert_dir):
    at = _open_link(monkeypatch, tiny_bert_dir, {"text": "a film", "methods": "saliency"})
    assert [s.value for s in at.subheader] == ["Prediction", "Saliency"]


# ---- 3. CLI inputs --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", ["-1", "4294967296", "99999999999999999999"])
@pytest.mark.parametrize("method", ["lime", "kernel_shap", "gradient_shap"])
def test_seeds_outside_32_bits_are_refused(capsys, tiny_bert_dir, seed, method):
    code, _, err = _cli(
        capsys, "explain", "--model", str(tiny_bert_dir), "--text", "a film", "--method", method, "--seed", seed
    )
    assert code == 2 and "The seed must be a whole number between 0 and 4294967295" in err


def test_the_largest_seed_works(tiny_bert):
    from explainers.methods import explain

    exp = explain(tiny_bert, "a fine film", "lime", seed=2**32 - 1, n_samples=20)
    again = explain(tiny_bert, "a fine film", "lime", seed=2**32 - 1, n_samples=20)
    assert exp.seed == 2**32 - 1 and list(exp.word_scores) == list(again.word_scores)


def _cli_bytes(args: list[bytes], stdin: bytes = b"", tmp_path=None):
    proc = subprocess.run(
        [sys.executable.encode(), b"-m", b"explainers.cli", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "WHYBOX_CACHE": str(tmp_path), "LANG": "C.UTF-8"},
        timeout=120,
    )
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


@pytest.mark.parametrize(
    "case",
    ["stdin latin-1", "stdin lone continuation", "text argument", "target argument", "param argument"],
)
def test_undecodable_bytes_get_one_line(tiny_bert_dir, tmp_path, case):
    model = [b"--model", str(tiny_bert_dir).encode(), b"--method", b"saliency"]
    stdin = b""
    if case == "stdin latin-1":
        args, stdin = [b"explain", *model, b"--text", b"-"], "un film très réussi".encode("latin-1")
    elif case == "stdin lone continuation":
        args, stdin = [b"explain", *model, b"--text", b"-"], b"a \x80\x81 film"
    elif case == "text argument":
        args = [b"explain", *model, b"--text", b"caf\xe9 film"]
    elif case == "target argument":
        args = [b"explain", *model, b"--text", b"a film", b"--target", b"n\xe9gative"]
    else:
        args = [b"explain", *model, b"--text", b"a film", b"--param", b"baseline=\xff"]
    code, err = _cli_bytes(args, stdin, tmp_path)
    assert code == 2 and "not UTF-8" in err and "Traceback" not in err and err.count("\n") == 1, err


def test_a_continuation_past_the_position_limit_is_refused(tiny_gpt2):
    from explainers.methods import explain

    text = "the film " * 200  # truncated to the model's 128 positions
    with pytest.raises(InputError, match="run past the model's 128 positions"):
        explain(tiny_gpt2, text, "saliency", target=" is long and dull")
    assert explain(tiny_gpt2, "the film", "saliency", target=" is long").target.n_tokens > 1


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_parameters_are_refused(capsys, tiny_bert_dir, value):
    code, out, err = _cli(
        capsys,
        "explain",
        "--model",
        str(tiny_bert_dir),
        "--text",
        "a film",
        "--method",
        "attention_rollout",
        "--param",
        f"residual={value}",
        "--json",
    )
    assert code == 2 and "residual must be a finite number" in err and out == ""


def test_one_token_evaluate_is_strict_json(capsys, tiny_bert_dir):
    code, out, _ = _cli(
        capsys, "evaluate", "--model", str(tiny_bert_dir), "--text", "film", "--method", "saliency", "--json"
    )

    def refuse(name):
        raise AssertionError(f"{name} in the JSON")

    data = json.loads(out, parse_constant=refuse)
    assert code == 0 and data["reports"][0]["values"]["kendall_tau_loo"] is None


def test_lime_reads_only_the_truncated_text(tiny_bert, monkeypatch):
    """A 1 MB text: LIME's samples are built from the part the model reads (128 tokens here)."""
    from explainers.methods import explain

    seen = []
    original = tiny_bert.predict_proba
    monkeypatch.setattr(
        tiny_bert, "predict_proba", lambda texts, target=None: seen.append(texts) or original(texts, target)
    )
    text = "a gripping and funny film . " * 37_500
    assert len(text) >= 1_000_000
    exp = explain(tiny_bert, text, "lime", n_samples=50)
    assert exp.truncated and len(exp.words) == len(exp.word_scores) < 130
    longest = max(len(t) for texts in seen for t in texts)
    assert longest <= len(" ".join(exp.words)) + 10  # the words read, not the megabyte


def test_expensive_methods_scale_down_on_long_inputs(tiny_bert, monkeypatch):
    from explainers.serving.limits import MAX_TOKEN_ROWS_ENV

    from explainers.methods import METHODS, explain

    text = "a gripping and funny film . " * 40
    n = tiny_bert.encode(text).n_tokens
    monkeypatch.setenv(MAX_TOKEN_ROWS_ENV, str(300 * n))
    exp = explain(tiny_bert, text, "kernel_shap", n_samples=1000)
    assert exp.params["n_samples"] == 300 and "n_samples lowered from 1000 to 300" in exp.extras["scaled_down"]
    assert METHODS["kernel_shap"].estimate(n, exp.params).rows * n <= 300 * n
    small = explain(tiny_bert, "a film", "kernel_shap", n_samples=100)
    assert small.params["n_samples"] == 100 and "scaled_down" not in small.extras
    monkeypatch.setenv(MAX_TOKEN_ROWS_ENV, str(n))  # less than one row per token: nothing fits
    with pytest.raises(InputError, match="shorten the text or pick a cheaper method"):
        explain(tiny_bert, text, "leave_one_out")


# ---- 7. bounded caches -----------------------------------------------------------------------------------
def test_byte_lru_evicts_by_bytes_and_entries():
    import torch
    from explainers.inference.memo import ByteLRU, weigh

    memo = ByteLRU(max_bytes=1000, max_entries=3)
    tensor = lambda n: torch.zeros(n, dtype=torch.float32)  # noqa: E731 - 4 bytes per element
    assert weigh(tensor(100)) == 400 and weigh((tensor(10), tensor(5))) == 60
    for key, n in [("a", 100), ("b", 100)]:
        memo.get_or_compute(key, lambda n=n: tensor(n))
    assert memo.bytes == 800 and len(memo) == 2
    memo.get_or_compute("a", lambda: pytest.fail("a is cached"))  # a is now the most recent
    memo.get_or_compute("c", lambda: tensor(100))  # 1200 > 1000: the least recent (b) goes
    assert memo.bytes == 800 and set(memo._items) == {"a", "c"}
    big = memo.get_or_compute("huge", lambda: tensor(1000))  # larger than the budget: served, not kept
    assert big.numel() == 1000 and "huge" not in memo._items
    for key in "defg":
        memo.get_or_compute(key, lambda: tensor(1))
    assert len(memo) == 3 and memo.bytes == 12  # the entry bound holds too


def test_byte_lru_copies_hand_out_fresh_values():
    from explainers.inference.memo import ByteLRU

    memo = ByteLRU(max_bytes=10_000, max_entries=10, copy=True)
    first = memo.get_or_compute("k", lambda: {"scores": [1.0, 2.0]})
    first["scores"].append(99.0)
    assert memo.get_or_compute("k", lambda: None) == {"scores": [1.0, 2.0]}


def test_dashboard_attention_cache_stays_within_its_bytes(tiny_bert, monkeypatch):
    from explainers.inference.memo import ByteLRU

    from dashboard import results

    monkeypatch.setattr(results, "ATTENTIONS", ByteLRU(max_bytes=2_000_000, max_entries=100))
    for k in range(12):
        text = f"variant {k} : " + "the film is long but the actors are wonderful . " * 12
        weights = results.attentions(tiny_bert, text)
        assert results.ATTENTIONS.bytes <= 2_000_000
    n = weights[0].shape[-1]
    assert results.ATTENTIONS.bytes == len(results.ATTENTIONS) * 2 * 4 * n * n * 4  # layers x heads x T x T x 4
    assert 0 < len(results.ATTENTIONS) < 12


# ---- 15. threads ----------------------------------------------------------------------------------------
def test_thread_policy_uses_idle_cores(monkeypatch):
    from explainers.serving import threads

    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (2.6, 0.0, 0.0))
    assert threads.choose_threads() == 1  # 4 cores, 3 kept busy by others
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (9.6, 0.0, 0.0))
    assert threads.choose_threads() == 1  # never fewer than one
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert threads.choose_threads() == 4
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert threads.choose_threads() == 3
    monkeypatch.setenv(threads.THREADS_ENV, "lots")  # not a number: the policy decides
    assert threads.choose_threads() == 4


def test_the_cli_applies_the_thread_policy(monkeypatch, capsys, tiny_bert_dir):
    import torch

    monkeypatch.setenv("WHYBOX_THREADS", "1")
    before = torch.get_num_threads()
    try:
        code, _, _ = _cli(capsys, "explain", "--model", str(tiny_bert_dir), "--text", "a film", "--method", "saliency")
        assert code == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# ---- 1 in the page -----------------------------------------------------------------------------------------
def test_the_page_names_a_damaged_model_folder(monkeypatch, tiny_bert_dir, tmp_path):
    from streamlit.testing.v1 import AppTest

    damaged = _copy(tiny_bert_dir, tmp_path, "damaged")
    (damaged / "model.safetensors").write_bytes(b"")
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(damaged))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception
    shown = "\n".join(e.value for e in at.error).replace("\\", "")
    assert "damaged: model.safetensors is empty (0 bytes)" in shown and "Traceback" not in shown


def test_the_page_rebuilds_a_damaged_built_in(monkeypatch, tmp_path, tiny_bert_dir):
    """A damaged cached built-in is rebuilt when the page opens it (the build faked with the tiny BERT)."""
    from streamlit.testing.v1 import AppTest

    calls: list = []
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path / "cache"))

    def build(out, recipe, report):
        calls.append(out)
        for item in tiny_bert_dir.iterdir():
            shutil.copy(item, out / item.name)

    monkeypatch.setitem(builtin._RECIPES, "sentiment", ({"fake": "page"}, build))
    folder = builtin.builtin_path("sentiment", progress=lambda f, m: None)
    with open(folder / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", "sentiment")
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception and not at.error and len(calls) == 2
    assert not integrity.folder_problems(folder)
