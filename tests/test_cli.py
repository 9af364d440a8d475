"""The `whybox` command line: JSON contract and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest

from explainers.cli import main
from explainers.explanation import Explanation
from explainers.methods import METHODS


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_methods_json_lists_the_registry(capsys):
    code, out, _ = _run(capsys, "methods", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["name"] for r in rows] == list(METHODS)
    ig = rows[0]
    assert ig["family"] == "gradient" and ig["needs_gradients"] and ig["params"][0]["name"] == "n_steps"


def test_models_json_lists_the_builtins(capsys):
    code, out, _ = _run(capsys, "models", "--json")
    names = [m["name"] for m in json.loads(out)]
    assert code == 0 and names[0] == "sentiment" and "smollm2" in names


def test_explain_json(capsys, tiny_bert_dir):
    code, out, _ = _run(
        capsys,
        "explain",
        "--model",
        str(tiny_bert_dir),
        "--text",
        "a funny film",
        "--method",
        "integrated_gradients",
        "--target",
        "negative",
        "--param",
        "n_steps=8",
        "--json",
    )
    data = json.loads(out)
    exp = Explanation.from_dict(data["explanations"][0])
    assert code == 0 and exp.target.label == "negative" and exp.params["n_steps"] == 8
    assert set(exp.probabilities) == {"negative", "positive"} and exp.words == ["a", "funny", "film"]
    assert data["model"]["task"] == "classification"


def test_evaluate_json_has_reports_ranking_and_agreement(capsys, tiny_gpt2_dir):
    code, out, _ = _run(
        capsys,
        "evaluate",
        "--model",
        str(tiny_gpt2_dir),
        "--text",
        "The capital of France is",
        "--method",
        "leave_one_out",
        "--method",
        "lime",
        "--param",
        "n_samples=50",
        "--param",
        "removal=mask",
        "--target",
        "Paris",
        "--mode",
        "mask",
        "--json",
    )
    data = json.loads(out)
    assert code == 0 and [r["method"] for r in data["reports"]] == ["leave_one_out", "lime"]
    assert data["reports"][0]["values"]["kendall_tau_loo"] == pytest.approx(1.0)
    assert {r["method"] for r in data["ranking"]} == {"leave_one_out", "lime"}
    assert len(data["agreement"]["spearman"]) == 2


def test_human_readable_output(capsys, tiny_bert_dir):
    code, out, _ = _run(
        capsys,
        "evaluate",
        "--model",
        str(tiny_bert_dir),
        "--text",
        "a funny film",
        "--method",
        "occlusion",
        "--method",
        "leave_one_out",
    )
    assert code == 0 and "funny" in out and "ranking" in out and "comprehensiveness"[:12] in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explain", "--model", "./missing-folder", "--text", "hi"], "No model folder"),
        (["explain", "--text", "   ", "--method", "saliency"], "empty"),
        (["explain", "--model", "{bert}", "--text", "hi", "--method", "magic"], "Unknown method"),
        (["explain", "--model", "{bert}", "--text", "hi", "--target", "neutral"], "Unknown label"),
        (["explain", "--model", "{bert}", "--text", "hi", "--method", "saliency", "--param", "n_steps=3"], "n_steps"),
        (["explain", "--model", "{bert}", "--text", "hi", "--method", "lime", "--param", "n_samples=lots"], "integer"),
        (["build-models", "--only", "gpt5"], "Unknown built-in"),
    ],
)
def test_bad_input_is_one_line_on_stderr_with_exit_code_2(capsys, tiny_bert_dir, argv, message):
    argv = [a.replace("{bert}", str(tiny_bert_dir)) for a in argv]
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_the_installed_console_script_reads_stdin(tiny_bert_dir):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "explainers.cli",
            "explain",
            "--model",
            str(tiny_bert_dir),
            "--text",
            "-",
            "--method",
            "attention",
            "--json",
        ],
        input="<b>bold</b> 😍 text",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["explanations"][0]["text"] == "<b>bold</b> 😍 text"


def test_run_preloads_the_model_and_starts_streamlit_on_the_app(monkeypatch, tiny_bert_dir):
    import os

    from streamlit.web import cli as streamlit_cli

    from explainers.cli import ROOT

    seen = {}
    monkeypatch.setattr(streamlit_cli, "main", lambda: seen.update(argv=list(sys.argv)) or 0)
    monkeypatch.setattr("explainers.serving.preload.preload_model", lambda name: seen.update(preloaded=name))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", "restored afterwards")
    monkeypatch.chdir(tiny_bert_dir.parent)  # the user names a folder relative to where they are
    assert main(["run", "--port", "8765", "--model", tiny_bert_dir.name]) == 0
    absolute = str(tiny_bert_dir.resolve())
    assert os.environ["WHYBOX_DEFAULT_MODEL"] == absolute and seen["preloaded"] == absolute
    assert seen["argv"][:3] == ["streamlit", "run", str(ROOT / "dashboard" / "app.py")]
    assert seen["argv"][seen["argv"].index("--server.port") + 1] == "8765"
