"""A real OpenAI-compatible server on loopback: `/v1/completions` answered by a Hugging Face causal LM in
this process (the top `logprobs` next tokens, with usage). The endpoint tests and benchmarks/endpoint.py
talk to it over HTTP; switches make it rate-limit (429), drop logprobs, answer an HTML page or answer slowly.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


class Server(ThreadingHTTPServer):
    """/v1/completions of the tiny GPT-2: the top `logprobs` next tokens, with usage."""

    def __init__(self, model_dir):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        super().__init__(("127.0.0.1", 0), Handler)
        self.tok = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
        self.lock = threading.Lock()
        self.prompts: list[str] = []
        self.auth: set[str] = set()
        self.fail_next = 0  # answer this many requests with 429
        self.logprobs = True  # False: a server that drops logprobs
        self.reply: bytes | None = None  # a fixed reply (an HTML page), status 200
        self.delay = 0.0  # a slow server: seconds before it answers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def complete(self, body: dict) -> dict:
        ids = self.tok(body["prompt"])["input_ids"]
        with self.lock, torch.no_grad():
            logp = torch.log_softmax(self.model(torch.tensor([ids])).logits[0, -1].double(), -1)
        k = min(int(body.get("logprobs") or 0), logp.numel())
        top = torch.topk(logp, k)
        listed = {self.tok.decode([int(i)]): float(v) for v, i in zip(top.values, top.indices)}
        first = self.tok.decode([int(top.indices[0])]) if k else ""
        logprobs = {"tokens": [first], "token_logprobs": [float(top.values[0])], "top_logprobs": [listed]}
        return {
            "choices": [{"text": first, "index": 0, "logprobs": logprobs if self.logprobs else None}],
            "usage": {"prompt_tokens": len(ids), "completion_tokens": 1, "total_tokens": len(ids) + 1},
        }


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        server: Server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.auth.add(self.headers.get("Authorization", ""))
            server.prompts.append(body["prompt"])
            failing = server.fail_next > 0
            server.fail_next -= failing
        if server.delay:
            threading.Event().wait(server.delay)  # the server is slow (the client's timeout is under test)
        if failing:
            return self._send(429, b'{"error": "rate limited"}')
        if server.reply is not None:
            return self._send(200, server.reply)
        self._send(200, json.dumps(server.complete(body)).encode())

    def _send(self, status, payload):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def serve(model_dir) -> Server:
    """A started server (stop it with shutdown() and server_close())."""
    server = Server(model_dir)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
