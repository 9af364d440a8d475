"""A model behind an OpenAI-compatible API: a REAL HTTP server on loopback, answering /v1/completions with
log-probabilities computed by the tiny GPT-2 fixture in-process (a real server and a real model; the client
is not mocked)."""

from __future__ import annotations

import json
import logging
import threading

import numpy as np
import pytest

from benchmarks.loopback_server import Server
from explainers.errors import InputError
from explainers.inference.remote import EndpointSettings
from explainers.methods.explain import explain
from explainers.models.endpoint import load_endpoint
from explainers.models.loading import load_model
from explainers.models.prompt_classifier import PromptSpec

TEMPLATE = "Review: {text}\nThe film is"
LABELS = "the,of"  # both surface forms of both labels are one token of the fixture's tokenizer
TEXT = "dull , lifeless and far too long ."
KEY = "sk-test-3f9a1c77"


@pytest.fixture(scope="module")
def server(tiny_gpt2_dir):
    srv = Server(tiny_gpt2_dir)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def fresh(server):
    server.prompts.clear()
    server.fail_next, server.logprobs, server.reply, server.delay = 0, True, None, 0.0
    return server


def _endpoint(server, tiny_gpt2_dir, tmp_path, **settings):
    settings = {"top_logprobs": 400, "backoff_seconds": 0.01, "cache_path": tmp_path / "answers.sqlite", **settings}
    return load_endpoint(
        EndpointSettings(server.url, "tiny-gpt2", **settings), PromptSpec.parse(TEMPLATE, LABELS), str(tiny_gpt2_dir)
    )


def test_http_probabilities_equal_in_process(fresh, tiny_gpt2_dir, tmp_path):
    local = load_model(str(tiny_gpt2_dir), device="cpu", prompt=PromptSpec.parse(TEMPLATE, LABELS))
    remote = _endpoint(fresh, tiny_gpt2_dir, tmp_path)
    want, got = local.predict(local.encode(TEXT)), remote.predict(remote.encode(TEXT))
    np.testing.assert_allclose(got.probs, want.probs, atol=1e-4)
    assert got.facts["label_mass"] == pytest.approx(want.facts["label_mass"], abs=1e-4)
    assert remote.gateway.bounded == 0
    a = explain(local, TEXT, "occlusion", target="the")
    b = explain(remote, TEXT, "occlusion", target="the")
    np.testing.assert_allclose(b.token_scores, a.token_scores, atol=1e-4)


def test_each_distinct_text_is_sent_once_and_a_rerun_sends_none(fresh, tiny_gpt2_dir, tmp_path):
    handle = _endpoint(fresh, tiny_gpt2_dir, tmp_path)
    text = "dull and long ."  # 4 words: LIME's 300 samples hold at most 2^4 distinct texts
    explain(handle, text, "lime", n_samples=300)
    sent = list(fresh.prompts)
    assert len(sent) == len(set(sent)) and len(sent) <= 2**4 + 1
    assert handle.client.counters.calls == len(sent)
    again = _endpoint(fresh, tiny_gpt2_dir, tmp_path)  # a new process would read the same cache file
    explain(again, text, "lime", n_samples=300)
    assert fresh.prompts == sent and again.client.counters.calls == 0


def test_the_cap_sends_nothing_past_it(fresh, tiny_gpt2_dir, tmp_path):
    handle = _endpoint(fresh, tiny_gpt2_dir, tmp_path, max_calls=3)
    with pytest.raises(InputError, match="cap of 3"):
        explain(handle, TEXT, "leave_one_out")
    assert len(fresh.prompts) == handle.client.counters.calls <= 3


def test_a_429_is_retried_and_counted(fresh, tiny_gpt2_dir, tmp_path):
    handle = _endpoint(fresh, tiny_gpt2_dir, tmp_path)
    fresh.fail_next = 2
    handle.predict(handle.encode(TEXT))
    assert handle.client.counters.retries == 2 and handle.client.counters.statuses == {429: 2, 200: 1}
    assert len(fresh.prompts) == 3 == handle.client.counters.calls


def test_a_server_without_logprobs_is_refused(fresh, tiny_gpt2_dir, tmp_path):
    fresh.logprobs = False
    handle = _endpoint(fresh, tiny_gpt2_dir, tmp_path)
    with pytest.raises(InputError, match="no token log-probabilities"):
        handle.predict(handle.encode(TEXT))


def test_an_html_page_and_an_unreachable_endpoint_get_clear_messages(fresh, tiny_gpt2_dir, tmp_path):
    fresh.reply = b"<!DOCTYPE html><html><body>Bad gateway</body></html>"
    with pytest.raises(InputError, match="not JSON \\(an HTML page\\)"):
        _endpoint(fresh, tiny_gpt2_dir, tmp_path).predict_proba([TEXT])
    closed = EndpointSettings("http://127.0.0.1:9/v1", "m", cache_path=None)
    handle = load_endpoint(closed, PromptSpec.parse(TEMPLATE, LABELS), str(tiny_gpt2_dir))
    with pytest.raises(InputError, match="Could not reach"):
        handle.predict(handle.encode(TEXT))


def test_a_slow_server_times_out_with_a_clear_message(fresh, tiny_gpt2_dir, tmp_path):
    fresh.delay = 2.0
    handle = _endpoint(fresh, tiny_gpt2_dir, tmp_path, timeout_seconds=0.3, retries=0)
    with pytest.raises(InputError, match="did not answer within 0.3 s"):
        handle.predict(handle.encode(TEXT))


def test_faithfulness_metrics_over_http_equal_in_process(fresh, tiny_gpt2_dir, tmp_path):
    from explainers.metrics.faithfulness import evaluate

    local = load_model(str(tiny_gpt2_dir), device="cpu", prompt=PromptSpec.parse(TEMPLATE, LABELS))
    remote = _endpoint(fresh, tiny_gpt2_dir, tmp_path)
    want = evaluate(local, explain(local, TEXT, "leave_one_out", target="of")).to_dict()
    got = evaluate(remote, explain(remote, TEXT, "leave_one_out", target="of")).to_dict()
    assert want["values"] and got["values"].keys() == want["values"].keys()
    for name, value in want["values"].items():
        assert got["values"][name] == pytest.approx(value, abs=1e-4), name


def test_stop_sends_nothing_more(fresh, tiny_gpt2_dir, tmp_path):
    from explainers.errors import CancelledError
    from explainers.inference.gateway import watching

    handle = _endpoint(fresh, tiny_gpt2_dir, tmp_path, concurrency=1)
    answered = []
    with pytest.raises(CancelledError), watching(on_rows=answered.append, should_stop=lambda: len(answered) >= 2):
        explain(handle, TEXT, "leave_one_out")
    # the prediction's call, one answer of the method, then the stop: one request in flight at a time
    assert len(fresh.prompts) == 3 < len(handle.encode(TEXT).words)


def test_gradient_and_attention_methods_say_why_not(fresh, tiny_gpt2_dir, tmp_path):
    handle = _endpoint(fresh, tiny_gpt2_dir, tmp_path)
    for method in ("integrated_gradients", "attention", "kernel_shap"):
        with pytest.raises(InputError, match="only log-probabilities"):
            explain(handle, TEXT, method)
    assert fresh.prompts == []


def test_the_noise_floor_of_a_deterministic_server_is_zero(fresh, tiny_gpt2_dir, tmp_path):
    probe = _endpoint(fresh, tiny_gpt2_dir, tmp_path).probe(TEXT, repeats=3)
    assert probe["noise_floor"] == pytest.approx(0.0, abs=1e-12) and len(fresh.prompts) == 3
    assert probe["prompt_tokens"] == len(fresh.tok(fresh.prompts[0])["input_ids"])


def test_the_key_goes_in_the_header_and_nowhere_else(fresh, tiny_gpt2_dir, tmp_path, monkeypatch, capsys, caplog):
    from explainers.cli import main

    monkeypatch.setenv("WHYBOX_ENDPOINT_KEY", KEY)
    monkeypatch.setenv("WHYBOX_CACHE", str(tmp_path))
    argv = ["explain", "--endpoint", fresh.url, "--endpoint-model", "tiny-gpt2", "--endpoint-tokenizer"]
    argv += [str(tiny_gpt2_dir), "--template", TEMPLATE, "--labels", LABELS, "--text", TEXT, "--method"]
    with caplog.at_level(logging.DEBUG):
        assert main([*argv, "occlusion", "--json"]) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["explanations"][0]["extras"]["prediction"]["label_mass"] > 0
        assert "at most" in err  # the estimate, printed before sending
        fresh.reply = json.dumps({"error": f"invalid key {KEY}"}).encode()  # a server that echoes the key
        fresh.reply = b"<p>" + fresh.reply
        assert main([*argv, "leave_one_out", "--json"]) == 2
        out2, err2 = capsys.readouterr()
    assert f"Bearer {KEY}" in fresh.auth
    for where in (out, err, out2, err2, caplog.text):
        assert KEY not in where
    assert "[key]" in err2
