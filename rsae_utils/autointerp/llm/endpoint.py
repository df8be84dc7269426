"""An OpenAI-compatible chat-completions endpoint as an LLM backend (vLLM, Ollama, a llama.cpp server, a hosted
API, or ``python -m rsae_utils.autointerp.llm.serve``).

The transport is the official ``openai`` package (timeouts, retries with exponential back-off on connection errors,
429 and 5xx, ``Retry-After``, typed errors): it is what those servers are tested against. What is ours on top:

* an on-disk response cache keyed by the endpoint and the exact request body, so an interrupted run resumes
  without paying twice (:class:`ResponseCache`);
* one quick health check (``GET /models``) before the first request that is not cached, so a server that is
  down fails the run at once with a message that says how to start one; before a run (:meth:`preflight`) also
  one tiny answer request with logprobs, so a server that gives none is refused before anything is asked or
  cached (the explainer needs no logprobs, the scorers do);
* only usable completions are stored or replayed: a reply without choices, or without logprobs where they were
  asked for, raises :class:`BackendError` (naming the servers that give logprobs) and is never cached;
* the log-prob answer parsing (:mod:`rsae_utils.autointerp.llm.base`), and counters of requests, cache hits and
  retries.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import random
import re
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx2
import openai

from rsae_utils.autointerp.llm.base import (
    LOGPROB_SERVERS,
    Messages,
    answer_list_regex,
    bad_param,
    check_messages,
    check_n_answers,
    completion_problem,
    n_answers_list,
    probabilities_from_response,
    response_text,
)
from rsae_utils.errors import BackendError, BackendUnavailable
from rsae_utils.paths import llm_response_cache_dir
from rsae_utils.store import atomic_write_text


class ResponseCache:
    """One JSON file per request under ``root/ab/<sha256>.json``; written atomically (temp file + rename)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    @staticmethod
    def key(endpoint: str, body: Mapping[str, Any]) -> str:
        blob = json.dumps({"endpoint": endpoint, "body": body}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        p = self.path(key)
        try:
            return json.loads(p.read_text(encoding="utf-8"))["response"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a corrupt entry is simply re-requested and overwritten

    def put(self, key: str, request: Mapping[str, Any], response: Mapping[str, Any], source: str = "") -> None:
        atomic_write_text(self.path(key), json.dumps({"request": request, "response": response}))
        if source:
            marker = self._source_marker(source)
            if not marker.exists():
                atomic_write_text(marker, source + "\n")

    def _source_marker(self, source: str) -> Path:
        return self.root / "sources" / hashlib.sha256(source.encode("utf-8")).hexdigest()[:32]

    def has_answers_from(self, source: str) -> bool:
        """True when some response of ``source`` (an endpoint and model) was stored here (cheap: one marker file)."""
        return self._source_marker(source).exists()


# The logprobs probe of a run's preflight: a one-answer question any chat model can answer.
_PROBE = [{"role": "user", "content": "Example 1: yes\nIs example 1 a word? Answer with a list of 0/1, e.g. [1]."}]


def _retried(status: int) -> bool:
    """The statuses the openai client retries (so reaching us means every retry failed)."""
    return status in (408, 409, 429) or status >= 500


def _text(response: Any) -> str:
    try:
        return response.text
    except Exception:  # noqa: BLE001 - a streamed or closed body
        return ""


class _Transport(openai.OpenAI):
    """The openai client with our back-off schedule and a retry counter.

    The package's own schedule starts at 0.5 s and is not a constructor argument; ``backoff_s`` /
    ``max_backoff_s`` are ours (tests use a few milliseconds). ``Retry-After`` is still honoured, capped at
    ``max_backoff_s``. Overrides a private hook of the pinned ``openai`` version (requirements.txt).
    """

    # Set by OpenAIBackend after construction (copies made by ``with_options`` keep these class defaults).
    backoff_s, max_backoff_s = 1.0, 30.0
    on_retry: Any = None
    _jitter = random.Random(0)  # never touches the global RNG

    def _calculate_retry_timeout(self, remaining_retries: int, options: Any, response_headers: Any = None) -> float:
        if self.on_retry is not None:
            self.on_retry()
        attempt = options.get_max_retries(self.max_retries) - remaining_retries
        wait = min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + 0.5 * self._jitter.random())
        retry_after = self._parse_retry_after_header(response_headers)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.max_backoff_s))
        return wait


class OpenAIBackend:
    """Client for an OpenAI-compatible chat-completions endpoint; see the module doc.

    Args:
        base_url: the API root including ``/v1``, e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name the server expects.
        api_key: default ``$RSAE_OPENAI_API_KEY`` or ``$OPENAI_API_KEY`` (local servers need none).
        cache_dir: response cache folder; default ``paths.llm_response_cache_dir()``; None disables it.
        timeout: seconds for one request (read); ``connect_timeout`` for opening the connection.
        max_retries: retries after the first attempt on connection errors, timeouts, 429 and 5xx; the wait doubles
            from ``backoff_s`` (with jitter, capped at ``max_backoff_s``; a ``Retry-After`` header is honoured).
        max_workers: requests in flight at once in the ``*_many`` methods.
        top_logprobs: alternatives requested per answer token (OpenAI allows up to 20).
        structured: optional decoding constraint for the answer list: ``"guided_regex"`` (vLLM <= 0.10 style, also
            understood by ``rsae_utils.autointerp.llm.serve``) or ``"structured_outputs"`` (newer vLLM); None: none.
        extra_body: merged into every request body (server-specific parameters).
        health_check: run :meth:`check` once before the first request that is not answered from the cache.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        cache_dir: str | os.PathLike | None | bool = True,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_workers: int = 8,
        top_logprobs: int = 10,
        temperature: float = 0.0,
        seed: int | None = 0,
        structured: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        health_check: bool = True,
    ) -> None:
        if not isinstance(base_url, str) or not re.match(r"^https?://[^\s/]+", base_url):
            bad_param("base_url", "an http(s) URL such as http://127.0.0.1:8000/v1", base_url)
        if not isinstance(model, str) or not model:
            bad_param("model", "a non-empty model name", model)
        if structured not in (None, "guided_regex", "structured_outputs"):
            bad_param("structured", "one of None, 'guided_regex', 'structured_outputs'", structured)
        if not (isinstance(top_logprobs, int) and 1 <= top_logprobs <= 20):
            bad_param("top_logprobs", "an integer in [1, 20]", top_logprobs)
        if not (isinstance(max_workers, int) and max_workers >= 1):
            bad_param("max_workers", "an integer >= 1", max_workers)
        if not (isinstance(max_retries, int) and max_retries >= 0):
            bad_param("max_retries", "an integer >= 0", max_retries)
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            bad_param("timeout", "a number of seconds > 0", timeout)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = float(timeout)
        self.name = f"openai:{self.base_url}:{model}"
        self.max_retries = max_retries
        self.max_workers, self.top_logprobs = max_workers, top_logprobs
        self.temperature, self.seed, self.structured = temperature, seed, structured
        self.extra_body = dict(extra_body or {})
        if cache_dir is True:
            cache_dir = llm_response_cache_dir()
        self.cache = ResponseCache(cache_dir) if cache_dir not in (None, False) else None
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0}
        self._health_check = health_check
        self._checked = False
        key = api_key or os.environ.get("RSAE_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
        http = openai.DefaultHttpxClient(
            # Proxy settings from the environment apply to remote endpoints only: a loopback server must not be sent
            # through a proxy that cannot see it.
            trust_env=urlparse(self.base_url).hostname not in ("127.0.0.1", "localhost", "::1"),
            event_hooks={"request": [lambda _request: self._count("requests")]},
        )
        self._client = _Transport(
            base_url=self.base_url,
            api_key=key,
            timeout=openai.Timeout(timeout, connect=connect_timeout),
            max_retries=max_retries,
            http_client=http,
        )
        self._client.backoff_s, self._client.max_backoff_s = backoff_s, max_backoff_s
        self._client.on_retry = self._on_retry

    # ---- plumbing ---------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_retry(self) -> None:
        self._count("retries")
        if self.stats["retries"] == 1:  # once: a slow or failing server is said, not waited on in silence
            warnings.warn(
                f"{self.base_url}: a request timed out or failed; retrying up to {self.max_retries} time(s), "
                f"{self.timeout:g} s each (parameters llm_max_retries, llm_timeout_s)",
                stacklevel=2,
            )

    def _count(self, key: str, k: int = 1) -> None:
        with self._lock:
            self.stats[key] += k

    def check(self) -> None:
        """One quick ``GET {base_url}/models``: raise :class:`BackendUnavailable` at once if nothing answers."""
        quick = self._client.with_options(max_retries=0, timeout=openai.Timeout(self._connect_timeout))
        try:
            ids = [m.id for m in quick.models.list()]
        except openai.APIConnectionError as e:
            raise BackendUnavailable(
                f"cannot reach the OpenAI-compatible endpoint {self.base_url} ({type(e).__name__}: {e}). "
                "Is the server running? For an offline one: python -m rsae_utils.autointerp.llm.serve --port 8000; "
                "or choose backend 'local'."
            ) from e
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise BackendError(
                f"{self.base_url}/models refused the credentials (HTTP {e.status_code}); set RSAE_OPENAI_API_KEY"
            ) from e
        except (openai.APIStatusError, openai.APIResponseValidationError, ValueError, TypeError, AttributeError):
            return  # a 404 from a server without /models, a 5xx, an odd body: something is listening
        if ids and self.model not in ids:
            warnings.warn(
                f"model {self.model!r} is not listed by {self.base_url}/models (it lists {ids[:10]}); "
                "requests may fail",
                stacklevel=2,
            )

    def preflight(self) -> None:
        """:meth:`check` before a run; when the endpoint cannot be reached but the response cache holds answers
        from it, warn instead of failing, so a finished run replays from the cache without a server (the first
        request that is not cached still runs the check and fails with its message)."""
        try:
            self.check()
        except BackendUnavailable as err:
            if self.cache is None or not self.cache.has_answers_from(self._source):
                raise
            warnings.warn(f"{err} Replaying cached answers; a request that is not cached will fail.", stacklevel=2)
            return
        self._checked = True
        self.check_logprobs()

    def check_logprobs(self) -> None:
        """One one-answer request with logprobs, never cached (a server can be restarted without them):
        :class:`BackendError` naming the servers that give them when the reply has none."""
        try:
            self._post({**self.extra_body, **self.answer_body(_PROBE, 1)})
        except BackendError as err:
            raise type(err)(f"checked before the run's first request: {err}") from err

    @property
    def _source(self) -> str:
        return f"{self.base_url} {self.model}"

    def _ensure_checked(self) -> None:
        """Run the health check once, when a request first has to go to the network (threads wait for it)."""
        if not self._health_check or self._checked:
            return
        with self._check_lock:
            if not self._checked:
                self.check()
                self._checked = True

    def chat(self, body: Mapping[str, Any]) -> dict:
        """POST one chat-completion body (cached, retried); returns the parsed JSON response."""
        body = {**self.extra_body, **body}
        url = f"{self.base_url}/chat/completions"
        key = ResponseCache.key(url, body) if self.cache else ""
        want_logprobs = bool(body.get("logprobs"))
        if self.cache:
            hit = self.cache.get(key)
            # A stored response that is not a usable completion (stored by an older version, or edited) is a miss.
            if hit is not None and completion_problem(hit, want_logprobs) is None:
                self._count("cache_hits")
                return hit
        self._ensure_checked()
        data = self._post(body)
        if self.cache:
            self.cache.put(key, body, data, source=self._source)
        return data

    def _post(self, body: Mapping[str, Any]) -> dict:
        """POST one body (retried) and return the reply when it is a usable completion; BackendError otherwise."""
        url = f"{self.base_url}/chat/completions"
        want_logprobs = bool(body.get("logprobs"))
        try:
            # The raw response, so that our own checks (below) decide what counts as a completion.
            r = self._client.post("/chat/completions", body=body, cast_to=httpx2.Response)
        except openai.APIStatusError as e:
            if _retried(e.status_code):
                raise BackendUnavailable(
                    f"{url} failed {self.max_retries + 1} times; last error: HTTP {e.status_code}: "
                    f"{_text(e.response)[:200]}"
                ) from e
            raise BackendError(f"{url} answered HTTP {e.status_code}: {_text(e.response)[:500]}") from e
        except openai.APITimeoutError as e:
            raise BackendUnavailable(
                f"{url} did not answer within the {self.timeout:g} s timeout, {self.max_retries + 1} time(s) "
                "(parameters llm_timeout_s, llm_max_retries); is the server stalled or overloaded?"
            ) from e
        except openai.APIConnectionError as e:
            raise BackendUnavailable(
                f"{url} failed {self.max_retries + 1} times; last error: {type(e).__name__}: {e}"
            ) from e
        try:
            data = json.loads(r.text)
        except ValueError as e:
            raise BackendError(f"{url} answered HTTP 200 with invalid JSON: {r.text[:300]!r}") from e
        problem = completion_problem(data, want_logprobs)
        if problem is not None:
            # Never stored: an answer without logprobs would be unparsable on every rerun, even after a fix.
            hint = f" The scorers need them: {LOGPROB_SERVERS}." if "logprobs" in problem else ""
            raise BackendError(f"{url} ({self.model}) answered HTTP 200 but {problem}: {str(data)[:300]}.{hint}")
        return data

    def _map(self, fn, items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1 or self.max_workers == 1:
            return [fn(x) for x in items]
        ex = concurrent.futures.ThreadPoolExecutor(max_workers=min(self.max_workers, len(items)))
        try:
            return list(ex.map(fn, items))
        finally:
            ex.shutdown(wait=True, cancel_futures=True)

    # ---- the interface ----------------------------------------------------------------------------------------
    def _base_body(self, messages: Messages, max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": int(max_tokens),
            "temperature": self.temperature,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        return body

    def generate(self, messages: Messages, max_tokens: int = 100) -> str:
        check_messages(messages)
        return response_text(self.chat(self._base_body(messages, max_tokens))).strip()

    def generate_many(self, many: Sequence[Messages], max_tokens: int = 100) -> list[str]:
        for m in many:
            check_messages(m)
        return self._map(lambda m: self.generate(m, max_tokens), list(many))

    def answer_body(self, messages: Messages, n_answers: int) -> dict[str, Any]:
        """The request body for an answer list of ``n_answers`` labels (greedy, with logprobs)."""
        # "[1, 0, 1]" is 3 tokens per answer in common tokenizers; the slack covers a short preamble.
        body = self._base_body(messages, 4 * n_answers + 16)
        body.update(logprobs=True, top_logprobs=self.top_logprobs)
        if self.structured == "guided_regex":
            body["guided_regex"] = answer_list_regex(n_answers)
        elif self.structured == "structured_outputs":
            body["structured_outputs"] = {"regex": answer_list_regex(n_answers)}
        return body

    def answer_probabilities(self, messages: Messages, n_answers: int) -> list[float | None]:
        check_messages(messages)
        check_n_answers(n_answers)
        # chat() refuses a reply without logprobs (BackendError naming the servers that give them).
        return probabilities_from_response(self.chat(self.answer_body(messages, n_answers)), n_answers)

    def answer_probabilities_many(
        self, many: Sequence[Messages], n_answers: int | Sequence[int]
    ) -> list[list[float | None]]:
        many = list(many)
        ns = n_answers_list(many, n_answers)
        for m in many:
            check_messages(m)
        return self._map(lambda mn: self.answer_probabilities(*mn), list(zip(many, ns)))
