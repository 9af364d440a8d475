"""Calling a model behind an OpenAI-compatible `/v1/completions` endpoint, with cost control.

Every text goes out once: identical texts in a request are sent once, and answers are kept in a
persistent cache keyed by endpoint, model, template and text (a rerun sends nothing). Calls run with
a concurrency limit and a requests-per-minute limit; a 429 or a 5xx is retried with jittered
exponential back-off (each retry counted); a hard cap on calls is checked before a batch is sent, so
nothing goes past it. The gateway's `checkpoint` runs between answers, so Stop works.

The key comes from the environment (`WHYBOX_ENDPOINT_KEY`) and lives in the Authorization header
only: it never reaches a message, a log line, a link or a download (`_scrub` guards the messages).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from explainers.errors import InputError
from explainers.inference.gateway import checkpoint

KEY_ENV = "WHYBOX_ENDPOINT_KEY"
RETRY_STATUSES = {429, 500, 502, 503, 504}


@dataclass
class EndpointSettings:
    url: str  # base URL, e.g. http://localhost:8080/v1
    model: str
    max_calls: int | None = None  # hard cap on HTTP requests (retries included) for this client
    concurrency: int = 4
    requests_per_minute: float | None = None
    top_logprobs: int = 20
    retries: int = 4
    backoff_seconds: float = 0.5
    timeout_seconds: float = 60.0
    cache_path: Path | None = None  # None: no persistent cache

    def __post_init__(self):
        parsed = urllib.parse.urlsplit(self.url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InputError("The endpoint must be an http(s) URL, e.g. http://localhost:8080/v1.")
        if parsed.username or parsed.password:
            raise InputError("Put no credentials in the endpoint URL: the key goes in WHYBOX_ENDPOINT_KEY.")
        self.url = self.url.strip().rstrip("/")
        if not self.model.strip():
            raise InputError("Name the endpoint's model (--endpoint-model).")

    @property
    def completions_url(self) -> str:
        return self.url + ("/completions" if self.url.endswith("/v1") else "/v1/completions")


@dataclass
class Answer:
    """One completion's first position: the top tokens' log-probabilities, and the prompt's size."""

    top_logprobs: dict[str, float]
    prompt_tokens: int | None = None


@dataclass
class Counters:
    calls: int = 0  # HTTP requests sent (retries included)
    retries: int = 0
    cached: int = 0  # texts answered from the cache
    deduplicated: int = 0  # repeats of a text within a request, not sent
    prompt_tokens: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


class AnswerCache:
    """Answers on disk (sqlite), keyed by endpoint, model, template and text; thread-safe."""

    def __init__(self, path: Path | None):
        self.lock = threading.Lock()
        self.memory: dict[str, Answer] = {}
        self.db = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), check_same_thread=False)
            self.db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT)")

    @staticmethod
    def key(settings: EndpointSettings, template: str, prompt: str) -> str:
        raw = json.dumps([settings.url, settings.model, settings.top_logprobs, template, prompt])
        return hashlib.sha256(raw.encode()).hexdigest()

    def get(self, key: str) -> Answer | None:
        with self.lock:
            if key in self.memory:
                return self.memory[key]
            if self.db is None:
                return None
            row = self.db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        answer = self.memory[key] = Answer(data["top_logprobs"], data.get("prompt_tokens"))
        return answer

    def put(self, key: str, answer: Answer) -> None:
        with self.lock:
            self.memory[key] = answer
            if self.db is not None:
                value = json.dumps({"top_logprobs": answer.top_logprobs, "prompt_tokens": answer.prompt_tokens})
                self.db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, value))
                self.db.commit()


class RateLimit:
    """At most `per_minute` request starts a minute, spaced evenly (no bursts past the limit)."""

    def __init__(self, per_minute: float | None):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.lock = threading.Lock()
        self.next_start = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
        if start > now:
            time.sleep(start - now)


class EndpointClient:
    def __init__(self, settings: EndpointSettings, template: str = ""):
        self.settings = settings
        self.template = template
        self.cache = AnswerCache(settings.cache_path)
        self.counters = Counters()
        self.limit = RateLimit(settings.requests_per_minute)
        self.lock = threading.Lock()

    # ---- one request ----------------------------------------------------------------------------------
    def _scrub(self, message: str) -> str:
        key = os.environ.get(KEY_ENV)
        return message.replace(key, "[key]") if key else message

    def _take_call(self) -> None:
        with self.lock:
            cap = self.settings.max_calls
            if cap is not None and self.counters.calls >= cap:
                raise InputError(f"The cap of {cap} calls to the endpoint is reached: nothing more was sent.")
            self.counters.calls += 1

    def _post(self, body: dict) -> dict:
        """One completion, retried on 429 and 5xx with jittered back-off; a clear error otherwise."""
        s = self.settings
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(KEY_ENV)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode()
        for attempt in range(s.retries + 1):
            self._take_call()
            self.limit.wait()
            request = urllib.request.Request(s.completions_url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=s.timeout_seconds) as reply:
                    payload = reply.read()
                    status = reply.status
            except urllib.error.HTTPError as exc:
                status, payload = exc.code, exc.read()
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, TimeoutError):
                    raise InputError(f"The endpoint {s.url} did not answer within {s.timeout_seconds:g} s.") from None
                raise InputError(self._scrub(f"Could not reach the endpoint {s.url}: {reason}.")) from None
            with self.lock:
                self.counters.statuses[status] = self.counters.statuses.get(status, 0) + 1
            if status in RETRY_STATUSES and attempt < s.retries:
                with self.lock:
                    self.counters.retries += 1
                time.sleep(s.backoff_seconds * 2**attempt * random.uniform(0.5, 1.5))
                continue
            if status != 200:
                raise InputError(self._scrub(f"The endpoint {s.url} answered HTTP {status}: {_gist(payload)}"))
            try:
                return json.loads(payload)
            except (ValueError, UnicodeDecodeError):
                raise InputError(
                    self._scrub(
                        f"The endpoint {s.url} answered with something that is not JSON ({_gist(payload)}): "
                        "is it an OpenAI-compatible /v1/completions server?"
                    )
                ) from None
        raise AssertionError("unreachable")

    def _complete(self, prompt: str) -> Answer:
        s = self.settings
        body = {
            "model": s.model,
            "prompt": prompt,
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": s.top_logprobs,
        }
        reply = self._post(body)
        try:
            choice = reply["choices"][0]
            top = (choice.get("logprobs") or {}).get("top_logprobs") or []
        except (KeyError, IndexError, TypeError, AttributeError):
            raise InputError(f"The endpoint {s.url} answered JSON without completion choices.") from None
        if not top or not isinstance(top[0], dict) or not top[0]:
            raise InputError(
                f"The endpoint {s.url} returned no token log-probabilities (logprobs): whybox reads the label "
                "probabilities from them. Use a server that returns logprobs for /v1/completions (llama.cpp's "
                "server, vLLM, ...)."
            )
        usage = reply.get("usage") or {}
        tokens = usage.get("prompt_tokens")
        with self.lock:
            self.counters.prompt_tokens += int(tokens or 0)
        return Answer({str(k): float(v) for k, v in top[0].items()}, tokens)

    # ---- many texts ----------------------------------------------------------------------------------
    def answers(self, prompts: Sequence[str], fresh: bool = False) -> list[Answer]:
        """The answer for each prompt: identical prompts sent once, cached ones not at all (unless
        `fresh`), the rest with the concurrency and rate limits; checked against the cap first."""
        unique = list(dict.fromkeys(prompts))
        keys = {p: AnswerCache.key(self.settings, self.template, p) for p in unique}
        found = {} if fresh else {p: a for p in unique if (a := self.cache.get(keys[p])) is not None}
        todo = [p for p in unique if p not in found]
        with self.lock:
            self.counters.cached += len(found)
            self.counters.deduplicated += len(prompts) - len(unique)
            cap = self.settings.max_calls
            if cap is not None and self.counters.calls + len(todo) > cap:
                raise InputError(
                    f"This needs {len(todo)} more calls to the endpoint, past the cap of {cap} "
                    f"({self.counters.calls} sent so far): nothing was sent. Raise --max-calls or use a cheaper method."
                )
        if todo:
            width = max(1, self.settings.concurrency)
            queue = iter(todo)
            with ThreadPoolExecutor(max_workers=width) as pool:
                # a window of `width` requests in flight, refilled as answers come: a Stop sends nothing more
                pending = {pool.submit(self._complete, p): p for p in itertools.islice(queue, width)}
                try:
                    while pending:
                        done, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            prompt = pending.pop(future)
                            answer = future.result()
                            found[prompt] = answer
                            if not fresh:
                                self.cache.put(keys[prompt], answer)
                        checkpoint(len(done))  # Stop takes effect between answers
                        pending.update({pool.submit(self._complete, p): p for p in itertools.islice(queue, len(done))})
                except BaseException:
                    for future in pending:
                        future.cancel()
                    raise
        return [found[p] for p in prompts]


def _gist(payload: bytes) -> str:
    """A short, single-line view of a reply body (an HTML error page says it is one)."""
    text = payload.decode("utf-8", "replace").strip()
    if text.lower().startswith(("<!doctype html", "<html")):
        return "an HTML page"
    return " ".join(text.split())[:160] or "an empty reply"
