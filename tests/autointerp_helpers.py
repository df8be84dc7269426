"""Helpers shared by the auto-interp tests: a token decoder and a deterministic stand-in LLM backend."""

import contextlib
import math
import re


def decode(ids):
    return [f" t{int(i)}" for i in ids]


class ScriptedBackend:
    """Deterministic stand-in for an LLM: answers 1 for examples that contain the explanation's token.

    ``broken`` batches (by call index) answer None everywhere, a list of the wrong length, or junk values.
    """

    name = "test:scripted"

    def __init__(self, broken=None):
        self.broken = dict(broken or {})
        self.calls = []

    def generate(self, messages, max_tokens=100):
        self.calls.append(("generate", messages))
        marked = re.findall(r"<<(.*?)>>", messages[-1]["content"])
        top = max(set(marked), key=marked.count) if marked else "?"
        return f"Sure.\nExplanation: {top.strip()}"

    def answer_probabilities(self, messages, n_answers):
        i = len([c for c in self.calls if c[0] == "answer"])
        self.calls.append(("answer", messages))
        if i in self.broken:
            return self.broken[i]
        text = messages[-1]["content"]
        target = re.search(r"Explanation: (.*)", text).group(1).strip()
        examples = re.findall(r"^Example \d+: (.*)$", text, flags=re.M)
        assert len(examples) == n_answers
        if "marked tokens" in text:  # fuzzing: are all marked spans the target token?
            return [float(all(s.strip() == target for s in re.findall(r"<<(.*?)>>", e))) for e in examples]
        return [0.9 if re.search(rf"\b{re.escape(target)}\b", e) else 0.1 for e in examples]


class StubEndpoint:
    """A tiny OpenAI-compatible server on 127.0.0.1 in a thread, told how to misbehave by ``mode``:

    ``good`` (answers "[1, 0, ...]" with logprobs, P(1) = 0.8 / 0.2), ``no_logprobs``, ``stall`` (sleeps
    ``stall_s`` before answering), ``bad_json`` (HTTP 200, not JSON), ``not_completion`` (HTTP 200, JSON without
    choices). ``requests`` counts chat requests; ``stop()`` shuts it down (the port then refuses connections).
    """

    def __init__(self, mode="good", stall_s=3.0):
        import http.server
        import json
        import threading
        import time

        self.mode, self.stall_s, self.requests = mode, stall_s, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                with contextlib.suppress(OSError):  # the client may have given up (timeout test)
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._send(200, {"object": "list", "data": [{"id": "stub-model", "object": "model"}]})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests += 1
                if outer.mode == "stall":
                    time.sleep(outer.stall_s)
                if outer.mode == "bad_json":
                    return self._send(200, b"<html>proxy error</html>")
                if outer.mode == "not_completion":
                    return self._send(200, {"object": "error", "message": "model is loading"})
                want_lp = bool(body.get("logprobs"))
                n = max(1, (int(body.get("max_tokens", 20)) - 16) // 4) if want_lp else 0
                pieces = ["["]
                for i in range(n):
                    pieces += [",", " ", str(1 - i % 2)] if i else [str(1 - i % 2)]
                pieces.append("]")
                text = "".join(pieces) if n else "Explanation: t1"
                content = []
                for piece in pieces if want_lp and outer.mode == "good" else []:
                    top = []
                    if piece in ("0", "1"):
                        top = [
                            {"token": piece, "logprob": math.log(0.8)},
                            {"token": "01"[piece == "0"], "logprob": math.log(0.2)},
                        ]
                    content.append({"token": piece, "logprob": math.log(0.8) if top else 0.0, "top_logprobs": top})
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": {"content": content} if content else None,
                }
                self._send(200, {"id": "x", "object": "chat.completion", "model": "stub-model", "choices": [choice]})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
