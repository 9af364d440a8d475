"""`--template/--labels/--calibrate` on explain and evaluate: label probabilities and label mass in the JSON."""

import json

import numpy as np
import pytest

from explainers.cli import main

TEMPLATE = "Review: {text}\\nThe film is"
TEXT = "a gripping , funny and beautifully acted film ."


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_json_carries_label_probabilities_and_mass(capsys, tiny_gpt2_dir):
    from explainers.models.loading import load_model
    from explainers.models.prompt_classifier import PromptSpec

    argv = ["explain", "--model", str(tiny_gpt2_dir), "--device", "cpu", "--text", TEXT, "--method", "occlusion"]
    code, out, err = _run(capsys, *argv, "--template", TEMPLATE, "--labels", "funny,dull", "--calibrate", "--json")
    assert code == 0, err
    facts = json.loads(out)["explanations"][0]["extras"]["prediction"]
    handle = load_model(
        str(tiny_gpt2_dir), device="cpu", prompt=PromptSpec.parse(TEMPLATE.replace("\\n", "\n"), "funny,dull", True)
    )
    pred = handle.predict(handle.encode(TEXT))
    np.testing.assert_allclose(list(facts["label_probabilities"].values()), pred.probs, atol=1e-6)
    assert facts["label_mass"] == pytest.approx(pred.facts["label_mass"]) and facts["calibrated"] is True
    assert sum(facts["uncalibrated_label_probabilities"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--template", "no slot here", "--labels", "funny,dull"], "slot"),
        (["--template", TEMPLATE, "--labels", "funny,funny"], "not distinct"),
        (["--template", TEMPLATE], "go together"),
        (["--calibrate"], "needs --template"),
    ],
)
def test_bad_prompt_arguments_exit_2_with_one_line(capsys, tiny_gpt2_dir, extra, message):
    argv = ["evaluate", "--model", str(tiny_gpt2_dir), "--device", "cpu", "--text", TEXT, "--method", "occlusion"]
    code, out, err = _run(capsys, *argv, *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
