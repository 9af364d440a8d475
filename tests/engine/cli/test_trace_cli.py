"""`whybox trace`: the JSON is the engine's grid; bad input is one line on stderr and exit 2."""

from __future__ import annotations

import json

import numpy as np

from explainers.cli import main
from explainers.inside import patching

CLEAN, CORRUPTED = "a gripping , funny film .", "a gripping , dull film ."


def test_trace_json_is_the_engines_grid_with_preview_and_agreement(capsys, tiny_bert_dir, tiny_bert):
    code = main(
        ["trace", "--model", str(tiny_bert_dir), "--clean", CLEAN, "--corrupted", CORRUPTED, "--contrast", "negative"]
        + ["--component", "resid", "--component", "head", "--preview", "--json"]
    )
    out = capsys.readouterr().out
    assert code == 0
    found = json.loads(out)
    assert found["schema"] == "whybox.trace/1" and set(found["grids"]) == {"resid", "head"}
    pair = patching.prepare(tiny_bert, CLEAN, CORRUPTED, contrast="negative")
    assert found["pair"]["clean_metric"] == pair.clean_metric
    for name in ("resid", "head"):
        expected = patching.patch(tiny_bert, pair, name)
        np.testing.assert_allclose(np.array(found["grids"][name]["values"], dtype=float), expected.values, atol=1e-3)
        assert found["grids"][name]["direction_meaning"] == "restore clean into corrupted"
        assert found["previews"][name]["exact"] is False
        assert set(found["agreement"][name]) >= {"pearson_r", "top_k_recall"}


def test_trace_table_names_the_direction_and_normalisation(capsys, tiny_gpt2_dir):
    code = main(
        ["trace", "--model", str(tiny_gpt2_dir), "--clean", "The capital of France is"]
        + ["--corrupted", "The capital of Italy is", "--component", "mlp", "--direction", "noise", "--layers", "2"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "put corrupted into clean (noise)" in out and "corrupted run is 0 and the clean run is 1" in out
    assert "mlp: rows = positions, columns = layers" in out


def test_bad_input_is_one_line_and_exit_2(capsys, tiny_bert_dir):
    code = main(
        ["trace", "--model", str(tiny_bert_dir), "--clean", CLEAN, "--corrupted", "a film that is rather dull ."]
    )
    err = capsys.readouterr().err
    assert code == 2 and "same number of tokens" in err and len(err.strip().splitlines()) == 1
    code = main(["trace", "--model", str(tiny_bert_dir), "--clean", CLEAN, "--corrupted", CORRUPTED, "--layers", "x"])
    err = capsys.readouterr().err
    assert code == 2 and "--layers takes numbers" in err


def test_trace_with_noise_is_the_engines_noise_grid(capsys, tiny_gpt2_dir, tiny_gpt2):
    code = main(
        ["trace", "--model", str(tiny_gpt2_dir), "--clean", "The capital of France is", "--noise-positions", "2-3"]
        + ["--noise-samples", "2", "--seed", "1", "--component", "attn", "--json"]
    )
    found = json.loads(capsys.readouterr().out)
    assert code == 0 and found["pair"]["noise"]["positions"] == [2, 3] and found["pair"]["noise"]["samples"] == 2
    pair = patching.prepare_noise(tiny_gpt2, "The capital of France is", [2, 3], samples=2, seed=1)
    expected = patching.patch(tiny_gpt2, pair, "attn")
    np.testing.assert_allclose(np.array(found["grids"]["attn"]["values"], dtype=float), expected.values, atol=1e-4)
    code = main(["trace", "--model", str(tiny_gpt2_dir), "--clean", "The capital of France is"])
    assert code == 2 and "either --corrupted" in capsys.readouterr().err
