"""A small OpenAI-compatible server for the local chat model, with log-probabilities (offline, stdlib only).

``python -m rsae_utils.autointerp.llm.serve --port 8000`` serves SmolLM2-135M-Instruct (or ``--model`` a .gguf file
or transformers folder) on ``http://127.0.0.1:8000/v1``; point any OpenAI client at it, e.g. backend
``openai:http://127.0.0.1:8000/v1:SmolLM2-135M-Instruct`` (with ``structured="guided_regex"`` so that
answer lists use constrained decoding; a 135M model rarely writes a well-formed list on its own).
Why it exists: ``transformers serve`` (5.23) rejects ``logprobs`` / ``top_logprobs`` and needs fastapi, uvicorn
and openai besides; this one needs nothing beyond the standard library and the local backend.

Endpoints:

* ``GET /v1/models`` -- the one served model (also the client's health check).
* ``POST /v1/chat/completions`` -- ``messages``, ``max_tokens``, ``logprobs``, ``top_logprobs`` (0..20),
  ``continue_final_message`` (continue a trailing assistant message, as vLLM does). Decoding is always greedy
  (``temperature``, ``seed`` are accepted and ignored). A ``guided_regex`` (or ``structured_outputs: {"regex"}``)
  equal to :func:`~rsae_utils.autointerp.llm.base.answer_list_regex` for some n switches to the local backend's
  constrained answer decoding (the reply is then always a well-formed list of n labels); other regexes -> 400.
  No streaming, ``n`` must be 1.
* ``GET /health``, ``GET /stats`` -- liveness, and request counters (``chat_completions``, ``max_in_flight``).

Requests are served on threads; the model runs one request at a time (the backend's lock).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch

from rsae_utils.autointerp.llm.base import n_answers_from_regex
from rsae_utils.autointerp.llm.local import LocalChatBackend
from rsae_utils.errors import ParameterError


class RequestError(Exception):
    """A request the server cannot serve; answered with HTTP ``status`` and an OpenAI-style error body."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _logprobs_payload(records: list[dict], top_k: int) -> dict[str, Any]:
    """OpenAI ``choices[i].logprobs`` from the backend's token records."""
    content = []
    for r in records:
        content.append(
            {
                "token": r["token"],
                "logprob": r["logprob"],
                "bytes": list(r["token"].encode("utf-8")),
                "top_logprobs": [
                    {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))} for t, lp in r["top_logprobs"][:top_k]
                ],
            }
        )
    return {"content": content}


def _constraint(body: dict) -> int | None:
    """n for an answer-list regex constraint in ``body``; None if there is none; RequestError for another regex."""
    regex = body.get("guided_regex")
    so = body.get("structured_outputs")
    if regex is None and isinstance(so, dict):
        regex = so.get("regex")
    if regex is None:
        return None
    n = n_answers_from_regex(str(regex))
    if n is None:
        raise RequestError("this server supports only answer-list regexes (clients.answer_list_regex(n))")
    return n


def chat_completion(backend: LocalChatBackend, body: Any, model_name: str) -> dict[str, Any]:
    """Serve one chat-completion request body with ``backend``; returns the OpenAI response object."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    if body.get("stream"):
        raise RequestError("streaming is not supported")
    if body.get("n", 1) != 1:
        raise RequestError("only n=1 is supported")
    messages = body.get("messages")
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 100))
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= 4096:
        raise RequestError("max_tokens must be an integer in [1, 4096]")
    want_lp = bool(body.get("logprobs"))
    top_k = body.get("top_logprobs") or 0
    if not isinstance(top_k, int) or not 0 <= top_k <= 20:
        raise RequestError("top_logprobs must be an integer in [0, 20]")
    n = _constraint(body)
    try:
        if n is not None:
            records, _ = backend.answer_tokens(messages, n, top_k=max(top_k, 1))
            finish = "stop"
        else:
            records, finish = backend.generate_tokens(
                messages, max_tokens, top_k=max(top_k, 1), continue_final=bool(body.get("continue_final_message"))
            )
    except ParameterError as e:
        raise RequestError(str(e)) from e
    text = backend.decode(records)
    prompt_tokens = len(backend.prompt_ids(messages, bool(body.get("continue_final_message")) and n is None))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": _logprobs_payload(records, top_k) if want_lp else None,
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(records),
            "total_tokens": prompt_tokens + len(records),
        },
    }


class _Handler(BaseHTTPRequestHandler):
    server: LocalServer
    protocol_version = "HTTP/1.1"  # keep-alive, so a pooled client reuses connections

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(fmt, *args)

    def _send(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": status}})

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            model = {"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "rsae"}
            self._send(200, {"object": "list", "data": [model]})
        elif path == "/health":
            self._send(200, {"status": "ok"})
        elif path == "/stats":
            with self.server.lock:
                self._send(200, dict(self.server.stats))
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?")[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {self.path}")
            return
        srv = self.server
        with srv.lock:
            srv.stats["chat_completions"] += 1
            srv.stats["in_flight"] += 1
            srv.stats["max_in_flight"] = max(srv.stats["max_in_flight"], srv.stats["in_flight"])
            fail = srv.stats["chat_completions"] <= srv.fail_first
        try:
            if fail:
                self._error(503, "failing on purpose (--fail-first)")
                return
            try:
                body = json.loads(raw or b"null")
                self._send(200, chat_completion(srv.backend, body, srv.model_name))
            except json.JSONDecodeError:
                self._error(400, "the request body is not JSON")
            except RequestError as e:
                self._error(e.status, str(e))
            except Exception as e:  # the server stays up; the client sees a 500 and may retry
                self._error(500, f"{type(e).__name__}: {e}")
        finally:
            with srv.lock:
                srv.stats["in_flight"] -= 1


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        addr: tuple[str, int],
        backend: LocalChatBackend,
        model_name: str | None = None,
        fail_first: int = 0,
        verbose: bool = False,
    ) -> None:
        super().__init__(addr, _Handler)
        self.backend = backend
        self.model_name = model_name or backend.name.removeprefix("local:")
        self.fail_first = fail_first
        self.verbose = verbose
        self.lock = threading.Lock()
        self.stats = {"chat_completions": 0, "in_flight": 0, "max_in_flight": 0}

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (printed on start)")
    p.add_argument("--model", default=None, help="a .gguf file or transformers folder (default: SmolLM2-135M)")
    p.add_argument("--model-name", default=None, help="the name clients use (default: the model's)")
    p.add_argument("--fail-first", type=int, default=0, help="answer HTTP 503 to the first N chat requests (tests)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = LocalChatBackend(args.model).load()  # load before listening: a listening server is a ready one
    server = LocalServer((args.host, args.port), backend, args.model_name, args.fail_first, args.verbose)
    print(f"serving {server.model_name} on {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
