"""The CLI starts light: --help and argument errors never import torch, transformers or numpy; and
--precision reaches the gateway (bf16 rows within the stated tolerance of float32)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from explainers.inference.precision import TOLERANCE

from explainers.cli import main
from explainers.explanation import Explanation

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import sys
from explainers import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(sorted(m for m in ("torch", "transformers", "numpy", "captum", "lime") if m in sys.modules), code)
"""


@pytest.mark.parametrize(
    "argv, code",
    [(["--help"], 0), (["explain", "--help"], 0), (["explain", "--no-such-flag"], 2), (["models"], 0)],
)
def test_help_and_argument_errors_import_no_heavy_module(argv, code):
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == f"[] {code}", proc.stderr


def _occlusion(capsys, model_dir, precision):
    argv = ["explain", "--model", str(model_dir), "--text", "a funny , gripping film", "--method", "occlusion"]
    code = main(argv + ["--precision", precision, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return Explanation.from_dict(json.loads(out)["explanations"][0]), err


def test_precision_flag(capsys, tiny_bert_dir):
    exact, _ = _occlusion(capsys, tiny_bert_dir, "float32")
    reduced, _ = _occlusion(capsys, tiny_bert_dir, "bf16")
    assert np.max(np.abs(np.array(reduced.token_scores) - np.array(exact.token_scores))) <= TOLERANCE
    assert not np.array_equal(reduced.token_scores, exact.token_scores)  # bf16 did run
    _, err = _occlusion(capsys, tiny_bert_dir, "auto")
    assert "whybox: precision " in err and "max |Δp|" in err  # the probe's figures, said once


def test_unknown_precision_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["explain", "--text", "x", "--precision", "fp8"])
    assert exc.value.code == 2 and "invalid choice: 'fp8'" in capsys.readouterr().err
