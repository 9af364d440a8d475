"""`whybox concepts`: the JSON equals the engine's figures; bad input is one line on stderr, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explainers.cli import main
from explainers.inside import concepts, probes
from explainers.inside.concepts import ConceptSets
from tests.support import ROOT

A = ["a great and moving film", "superb acting , lovely story", "brilliant and funny", "a fine , warm script"]
B = ["an awful and dull film", "boring acting , weak story", "clumsy and flat", "a tedious , cold script"]


@pytest.fixture
def set_files(tmp_path):
    a, b = tmp_path / "good.txt", tmp_path / "bad.txt"
    a.write_text("\n".join(A) + "\n\n", encoding="utf-8")
    b.write_text("\n".join(B), encoding="utf-8")
    return str(a), str(b)


def run(capsys, *argv):
    code = main(["concepts", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_probe_json_equals_the_engine(capsys, tiny_bert_dir, tiny_bert, set_files):
    code, out, _ = run(
        capsys, "probe", "--model", str(tiny_bert_dir), "--set-a", set_files[0], "--set-b", set_files[1], "--json"
    )
    assert code == 0
    got = json.loads(out)
    expected = probes.probe_layers(concepts.concept_activations(tiny_bert, ConceptSets(tuple(A), tuple(B))))
    assert [x["accuracy"] for x in got["probe"]["layers"]] == [p.accuracy for p in expected.layers]
    assert [x["control"] for x in got["probe"]["layers"]] == [p.control for p in expected.layers]
    assert got["sets"] == {"a": "good", "b": "bad", "n_a": 4, "n_b": 4, "paired": False, "source": "files"}
    assert "mean" in got["pooling"] and "too wide" in got["probe"]["notes"][0]


def test_direction_saves_the_vector_and_tcav_runs(capsys, tiny_bert_dir, tiny_bert, set_files, tmp_path):
    vec = tmp_path / "v.npy"
    code, out, _ = run(
        capsys, "direction", "--model", str(tiny_bert_dir), "--set-a", set_files[0], "--set-b", set_files[1],
        "--pairs", "--method", "pca_diff", "--layer", "1", "--save-vector", str(vec), "--json",
    )  # fmt: skip
    assert code == 0
    got = json.loads(out)
    acts = concepts.concept_activations(tiny_bert, ConceptSets(tuple(A), tuple(B), paired=True))
    expected = concepts.directions(acts, "pca_diff").at(1)
    np.testing.assert_allclose(np.load(vec), expected.vector, rtol=1e-5)
    assert got["chosen_layer"] == 1 and got["direction"]["layers"][1]["norm"] == pytest.approx(expected.norm)
    code, out, _ = run(
        capsys, "tcav", "--model", str(tiny_bert_dir), "--set-a", set_files[0], "--set-b", set_files[1],
        "--layer", "1", "--runs", "3", "--label", "positive", "--json",
    )  # fmt: skip
    assert code == 0
    t = json.loads(out)["tcav"]
    assert t["runs"] == 3 and 0 <= t["tcav_score"] <= 1 and t["label"] == "positive"


def test_steer_json_on_a_language_model(capsys, tiny_gpt2_dir, tmp_path):
    a, b, prompts = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "p.txt"
    a.write_text("The capital of France is Paris\nThe capital of Italy is Paris\nthe best is Paris\n")
    b.write_text("The capital of France is Rome\nThe capital of Italy is Rome\nthe best is Rome\n")
    prompts.write_text("The capital of France is\nthe plot is\none of the best\n")
    code, out, err = run(
        capsys, "steer", "--model", str(tiny_gpt2_dir), "--set-a", str(a), "--set-b", str(b), "--pairs",
        "--layer", "1", "--prompts", str(prompts), "--target", "Paris", "--contrast", "Rome", "--alpha=-2,2",
        "--neutral", str(prompts), "--instruction", "Say Paris.", "--generate", "2", "--json",
    )  # fmt: skip
    assert code == 0, err
    s = json.loads(out)["steering"]
    assert s["alphas"] == [-2.0, 0.0, 2.0] and len(s["per_prompt_slopes"]) == 3
    assert s["wrong_way_share"] == np.mean(np.array(s["per_prompt_slopes"]) < 0)
    assert s["prompt_baseline"]["instruction"] == "Say Paris." and len(s["generations"]) == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layers", "0,9"], "does not exist"),
        (["--layers", "x"], "--layers takes numbers"),
        (["--set-b", "/nonexistent/file.txt"], "No file at"),
        (["--pooling", "first", "--layer", "1", "--target", "positive"], "--prompts is needed"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tiny_bert_dir, set_files, extra, message):
    action = "steer" if "--target" in extra else "probe"
    argv = [action, "--model", str(tiny_bert_dir), "--set-a", set_files[0], "--set-b", set_files[1], *extra]
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_an_empty_set_file_is_refused_before_the_model_loads(capsys, set_files, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    code, _, err = run(capsys, "probe", "--model", "/nonexistent/model", "--set-a", set_files[0], "--set-b", str(empty))
    assert code == 2 and "is empty" in err  # the set, not the missing model: checked first


def test_concepts_help_imports_no_heavy_module():
    import subprocess
    import sys

    probe = (
        "import sys\nfrom explainers import cli\n"
        "try:\n    cli.main(['concepts', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'sklearn') if m in sys.modules))"
    )
    root = ROOT
    proc = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stderr
