"""Calls and tokens per method through an OpenAI-compatible endpoint: the estimate printed before sending
against what was sent, then a rerun (the cache), and the wall time. The server is the loopback one
(benchmarks/loopback_server.py) running a local causal LM, so the figures are whybox's, not a network's.

    python -m benchmarks.endpoint [MODEL]          # default: smollm2 (a built-in name or a folder)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from benchmarks.loopback_server import serve
from explainers.inference.remote import EndpointSettings
from explainers.methods import get_method
from explainers.methods.explain import explain
from explainers.methods.registry import n_features
from explainers.models.endpoint import estimate_calls, load_endpoint
from explainers.models.loading import resolve_model_source
from explainers.models.prompt_classifier import PromptSpec

TEMPLATE = "Review: {text}\nSentiment (positive or negative):"
LABELS = "positive|Positive,negative|Negative"
TEXTS = ["a gripping, funny and beautifully acted film", "dull, lifeless and far too long"]
METHODS = [("occlusion", {}), ("leave_one_out", {}), ("lime", {"n_samples": 200})]


def main(model: str = "smollm2") -> None:
    folder = resolve_model_source(model)
    server = serve(folder)
    spec = PromptSpec.parse(TEMPLATE, LABELS)
    cache = Path(tempfile.mkdtemp()) / "answers.sqlite"
    head = f"{'text':<14} {'method':<18} {'est. calls':>10} {'sent':>6} {'rerun':>6} {'est. tokens':>11}"
    print(f"{head} {'tokens':>7} {'s':>6}")
    try:
        for text in TEXTS:
            for method, params in METHODS:
                handle = load_endpoint(
                    EndpointSettings(server.url, model, cache_path=cache, top_logprobs=20), spec, folder
                )
                probe = handle.probe(text, repeats=1)
                enc, spec_m = handle.encode(text), get_method(method)
                guess = estimate_calls(handle, enc, spec_m, spec_m.validate(params, n_features(spec_m, enc)), probe)
                before = handle.client.counters.calls
                started = time.perf_counter()
                explain(handle, text, method, **params)
                seconds = time.perf_counter() - started
                sent, tokens = handle.client.counters.calls - before, handle.client.counters.prompt_tokens
                again = load_endpoint(
                    EndpointSettings(server.url, model, cache_path=cache, top_logprobs=20), spec, folder
                )
                explain(again, text, method, **params)
                print(
                    f"{text[:12] + '..':<14} {method:<18} {guess['calls_at_most']:>10} {sent:>6} "
                    f"{again.client.counters.calls:>6} {guess['prompt_tokens_at_most']:>11} {tokens:>7} {seconds:>6.1f}"
                )
    finally:
        server.shutdown()
        server.server_close()
    print(
        "est. = printed before sending (rows of the method + the prediction; LIME at most 2^words); sent = HTTP "
        "calls made; rerun = calls made by a second run on the same cache; tokens = the server's prompt tokens "
        "(including the probe)."
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
