"""LLM backends: answer parsing, spec strings, the local SmolLM2 model, and the HTTP client against a real server.

The HTTP tests start ``python -m rsae_utils.autointerp.llm.serve`` as a subprocess on a free loopback port (a real
OpenAI-compatible server with the offline model, not a mock); the retry test runs the same server class in a
thread so it can be told to fail its first requests.
"""

from __future__ import annotations

import math
import threading
import time

import httpx
import pytest
from _serve import free_port, serving

from rsae_utils.autointerp.llm.base import (
    answer_list_regex,
    n_answers_from_regex,
    parse_answer_list,
    probabilities_from_logprobs,
    probabilities_from_response,
)
from rsae_utils.autointerp.llm.endpoint import OpenAIBackend
from rsae_utils.autointerp.llm.local import LocalChatBackend
from rsae_utils.autointerp.llm.spec import check_backend_spec, make_backend
from rsae_utils.errors import BackendError, BackendUnavailable, ParameterError


# ----------------------------------------------------------------------------------------------------------------
# Pure parsing
# ----------------------------------------------------------------------------------------------------------------
def tok(token: str, logprob: float, alts: dict[str, float] | None = None) -> dict:
    """One OpenAI logprobs.content entry; ``alts`` are the top_logprobs (the chosen token is added)."""
    top = {token: logprob, **(alts or {})}
    return {"token": token, "logprob": logprob, "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top.items()]}


L = math.log


def test_probabilities_from_logprobs_hand_computed():
    content = [
        tok("[", L(0.99)),
        tok("1", L(0.6), {"0": L(0.2), "a": L(0.1)}),  # 0.6 / (0.6 + 0.2) = 0.75
        tok(",", 0.0),
        tok(" ", 0.0),
        tok("0", L(0.5), {"1": L(0.5)}),  # 0.5
        tok(",", 0.0),
        tok(" 0", L(0.9), {" 1": L(0.05), "1": L(0.05)}),  # digit inside " 0": " 1" and "1" both count: 0.1
        tok("]", 0.0),
    ]
    p = probabilities_from_logprobs(content, 3)
    assert p == pytest.approx([0.75, 0.5, 0.1])


def test_probabilities_missing_and_bad_answers():
    full = [tok("[", 0.0), tok("1", L(0.7), {"0": L(0.3)}), tok(",", 0.0), tok(" ", 0.0)]
    # The answer list stops after one item: the second answer is missing -> the count is wrong -> all None.
    assert probabilities_from_logprobs([*full[:2], tok("]", 0.0)], 2) == [None, None]
    # Unclosed list (cut by max_tokens): all None.
    assert probabilities_from_logprobs(full, 2) == [None, None]
    # A non-0/1 item: that answer is None, the others still count.
    bad = [*full, tok("2", L(0.9), {"1": L(0.05)}), tok("]", 0.0)]
    assert probabilities_from_logprobs(bad, 2) == pytest.approx([0.7, None])
    # The other digit absent from top_logprobs: it was less likely than every listed token -> exactly 1.0.
    only = [tok("[", 0.0), tok("1", L(0.9), {"yes": L(0.05)}), tok("]", 0.0)]
    assert probabilities_from_logprobs(only, 1) == [1.0]
    # No logprobs at all, or a reply with no answer.
    assert probabilities_from_logprobs(None, 2) == [None, None]
    assert probabilities_from_logprobs([tok("I", 0.0), tok(" think", 0.0)], 1) == [None]
    assert probabilities_from_response({"choices": [{"message": {"content": "[1]"}, "logprobs": None}]}, 1) == [None]
    assert probabilities_from_response({"garbage": 1}, 3) == [None] * 3


def test_probabilities_merged_tokens_and_preamble():
    # Tokenizers that merge "[1" or "1," still work: the alternative is the same token with the digit swapped.
    content = [
        tok("Answer: ", 0.0),
        tok("[1", L(0.8), {"[0": L(0.2)}),
        tok(", 0", L(0.6), {", 1": L(0.4)}),
        tok("]", 0.0),
    ]
    assert probabilities_from_logprobs(content, 2) == pytest.approx([0.8, 0.4])


def test_parse_answer_list_formats():
    assert parse_answer_list("[1, 0, 1, 0, 0]", 5) == [1, 0, 1, 0, 0]
    assert parse_answer_list("Sure! ['1', \"0\"] done", 2) == [1, 0]
    assert parse_answer_list("1", 1) == [1]
    assert parse_answer_list("1, 0", 2) == [1, 0]
    assert parse_answer_list("Example 1: yes", 1) == [None]
    assert parse_answer_list("[1, 0, 1]", 2) == [None, None]
    assert parse_answer_list("[1, maybe]", 2) == [1, None]


def test_answer_list_regex_roundtrip():
    import re

    for n in (1, 2, 5, 12):
        rx = answer_list_regex(n)
        assert n_answers_from_regex(rx) == n
        assert re.fullmatch(rx, "[" + ", ".join(["1"] * n) + "]")
        assert not re.fullmatch(rx, "[" + ", ".join(["1"] * (n + 1)) + "]")
    assert n_answers_from_regex(r"\d+") is None


# ----------------------------------------------------------------------------------------------------------------
# Spec strings
# ----------------------------------------------------------------------------------------------------------------
def test_make_backend_specs(tmp_path):
    b = make_backend("openai:http://127.0.0.1:8000/v1:llama3.1:70b", cache_dir=None)
    assert (b.base_url, b.model) == ("http://127.0.0.1:8000/v1", "llama3.1:70b")
    assert b.name == "openai:http://127.0.0.1:8000/v1:llama3.1:70b"
    b = make_backend("openai:https://host.example:8443:my-model:q4", cache_dir=None)
    assert (b.base_url, b.model) == ("https://host.example:8443", "my-model:q4")
    b = make_backend("openai", base_url="http://localhost:11434/v1/", model="m", cache_dir=tmp_path)
    assert (b.base_url, b.model) == ("http://localhost:11434/v1", "m")
    loc = make_backend("local")
    assert isinstance(loc, LocalChatBackend) and loc.name == "local:SmolLM2-135M-Instruct"
    assert make_backend(loc.name).name == loc.name  # a name round-trips
    for bad in ("", "gpt4", "openai:127.0.0.1:8000:m", "openai:http://h:8000/v1", "local:/no/such/model.gguf", None):
        with pytest.raises(ParameterError):
            make_backend(bad)
    with pytest.raises(ParameterError):
        make_backend("openai", base_url="http://h/v1")
    # The profiles checker: validates the form only, naming the parameter.
    check_backend_spec("scorer_backend", "openai:http://10.0.0.5:8000/v1:Llama-3.1-70B")
    with pytest.raises(ParameterError, match="scorer_backend"):
        check_backend_spec("scorer_backend", "vllm")
    with pytest.raises(ParameterError):
        make_backend("openai:http://h/v1:m", structured="json")


# ----------------------------------------------------------------------------------------------------------------
# The local model and a real server
# ----------------------------------------------------------------------------------------------------------------
SYSTEM = "Answer only with a Python list of 1s and 0s, one number per example, in order."


def detection_msgs(explanation: str, examples: list[str]) -> list[dict[str, str]]:
    lines = "\n".join(f"Example {i + 1}: {e}" for i, e in enumerate(examples))
    user = (
        f"Feature explanation: {explanation}\n{lines}\n"
        f"For each of the {len(examples)} examples, does the feature occur? Answer with a list of numbers (1 or 0)."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


MSGS = detection_msgs("animals", ["the cat sat on the mat", "stock prices fell", "a dog barked loudly"])


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One CPU thread for the model here: the test process and the server process take turns, and on a busy
    2-core machine two spinning OpenMP threads per process made each call several times slower (measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def local():
    backend = LocalChatBackend().load()
    yield backend
    # Left alive to interpreter exit after this module's threaded-server tests, the kept prompt heads made the
    # pytest process abort there ("terminate called without an active exception"); a plain script does not.
    backend._heads.clear()


@pytest.fixture(scope="session")
def server(local, tmp_path_factory):
    """``python -m rsae_utils.autointerp.llm.serve`` on a free loopback port; yields its base URL."""
    with serving(tmp_path_factory.mktemp("server") / "server.log") as url:
        yield url


def server_stats(url: str) -> dict:
    return httpx.get(url.removesuffix("/v1") + "/stats", timeout=5.0, trust_env=False).json()


@pytest.fixture(scope="module")
def local_answer(local, one_torch_thread):
    """(token records, exact probabilities) of the local model's constrained answer to MSGS; computed once, on the
    one thread the other calls here use (a thread count changes float rounding)."""
    return local.answer_tokens(MSGS, 3)


@pytest.mark.slow
def test_local_llm_answers_valid_probabilities(local, local_answer):
    p = local.answer_probabilities(MSGS, 3)
    assert len(p) == 3 and all(isinstance(x, float) and 0.0 <= x <= 1.0 for x in p)
    records, exact = local_answer
    assert p == exact  # greedy and deterministic
    # The written list is well-formed and holds the more likely digit at each slot.
    assert parse_answer_list(local.decode(records), 3) == [int(x > 0.5) for x in exact]
    explanation = local.generate([{"role": "user", "content": "Name one animal."}], max_tokens=8)
    assert isinstance(explanation, str) and explanation


@pytest.mark.slow
def test_shared_prompt_head_is_reused_and_changes_nothing(local, monkeypatch):
    """The explanation's shared head of a scoring prompt is computed once and its KV cache reused: the same
    probabilities as a full pass over each prompt (float rounding aside), whatever prompt came before."""
    from rsae_utils.autointerp.prompts import detection_messages, fuzzing_messages

    first = detection_messages("animals", ["the cat sat on the mat", "stock prices fell", "a dog barked loudly"])
    second = detection_messages("animals", ["fish swim in the sea", "the meeting is at noon", "birds can fly"])
    other = fuzzing_messages("plants", ["a <<tree>> grew", "the <<rose>> bloomed", "we <<ate>> lunch"])
    head = local._prefix(first, local.prompt_ids(first))
    assert 0 < len(head) < len(local.prompt_ids(first))
    assert local._prefix(second, local.prompt_ids(second)) == head  # same explanation, other examples
    assert local._prefix(other, local.prompt_ids(other))[: len(head)] != head  # another prompt, another head
    _, alone = local.answer_tokens(first, 3)
    cached = [local.answer_tokens(m, 3)[1] for m in (other, second, first)]
    assert cached[2] == alone  # bit for bit, whatever was asked before
    monkeypatch.setattr(local, "_prefix", lambda messages, ids: [])
    full = [local.answer_tokens(m, 3)[1] for m in (other, second, first)]
    for got, want in zip(sum(cached, []), sum(full, []), strict=True):
        assert got == pytest.approx(want, abs=1e-4)


def _slot_by_slot(local, messages, n):
    """Reference: P(1) at each slot from a full forward over the prompt and the greedy answer so far (no cache)."""
    import torch

    tmpl, slots = local._list_template(n)
    ids, answer, probs = local.prompt_ids(messages), list(tmpl), []
    with torch.inference_mode():
        for s in slots:
            row = torch.log_softmax(local._model(input_ids=torch.tensor([ids + answer[:s]])).logits[0, -1].float(), -1)
            lp0, lp1 = (float(row[i]) for i in local._digit_ids)
            probs.append(1.0 / (1.0 + math.exp(lp0 - lp1)))
            for u in slots:
                answer[u] = local._digit_ids[int(lp1 > lp0)] if u >= s else answer[u]
    return probs, answer


@pytest.mark.slow
def test_constrained_answers_equal_slot_by_slot_decoding(local):
    """Constrained decoding with the shared head's cache and kept logits reads every slot after the greedy digits
    before it: the probabilities and the written list of plain slot-by-slot decoding without any cache."""
    from rsae_utils.autointerp.prompts import detection_messages

    cases = [
        detection_messages("animals", ["a cat", "stock prices", "a dog barked", "the mat", "birds", "taxes"]),
        detection_messages("numbers", ["one two", "hello", "3 4 5", "the sky", "7", "blue"]),
        MSGS,
    ]
    n_digit_changes = 0
    for msgs in cases:
        n = 3 if msgs is MSGS else 6
        records, probs = local.answer_tokens(msgs, n)
        want, answer = _slot_by_slot(local, msgs, n)
        assert probs == pytest.approx(want, abs=2e-4)
        assert [r["id"] for r in records] == answer  # the written list: template and greedy digits
        digits = [int(p > 0.5) for p in want]
        n_digit_changes += sum(a != b for a, b in zip(digits, digits[1:]))
    assert n_digit_changes > 0  # the digits the model writes vary, so each slot's conditioning matters


@pytest.mark.slow
def test_batched_answers_equal_one_prompt_at_a_time(local):
    """answer_probabilities_many puts the prompts that share a head and an answer count through the model together
    (padded inside the sequence, masked, positions continued): each prompt's probabilities equal its own
    single-prompt answer (float rounding aside), whatever its length, batch mates, group or batch split."""
    from rsae_utils.autointerp.prompts import detection_messages, fuzzing_messages

    texts = [
        "a cat",
        "stock prices fell sharply again today",
        "a dog barked",
        "the mat",
        "birds fly south in the winter when it gets cold",
        "taxes",
        "7",
        "the sky is blue",
        "fish",
        "a long sentence about nothing at all that keeps going and going",
    ]
    many = [detection_messages("animals", texts[i : i + 3]) for i in range(6)]  # one head, bodies of several lengths
    many += [detection_messages("animals", texts[i : i + 2]) for i in range(3)]  # same head, fewer answers
    many += [fuzzing_messages("weather", [t.replace("sky", "<<sky>>") for t in texts[i : i + 3]]) for i in range(4)]
    ns = [3] * 6 + [2] * 3 + [3] * 4
    single = [local.answer_probabilities(m, n) for m, n in zip(many, ns)]
    for batch in (32, 4):  # 4: the groups split into several batches
        got = local.answer_probabilities_many(many, ns, batch=batch)
        assert [len(g) for g in got] == ns
        for g, want in zip(got, single, strict=True):
            assert g == pytest.approx(want, abs=2e-5)
    spread = [p for ps in single for p in ps]
    assert max(spread) - min(spread) > 0.1  # the answers differ, so an order or a padding mix-up would show
    with pytest.raises(ParameterError, match="batch"):
        local.answer_probabilities_many(many[:2], 3, batch=0)


@pytest.mark.slow
def test_http_client_against_real_server(server, local_answer, tmp_path):
    with OpenAIBackend(server, "SmolLM2-135M-Instruct", cache_dir=tmp_path, structured="guided_regex") as client:
        p = client.answer_probabilities(MSGS, 3)
        assert len(p) == 3 and all(x is not None and 0.0 <= x <= 1.0 for x in p)
        # The server runs the same model: where both digits are in its top-k, P(1)/(P(0)+P(1)) is the exact one.
        for got, want in zip(p, local_answer[1]):
            assert got == pytest.approx(want, abs=1e-4) or got in (0.0, 1.0)
        text = client.generate([{"role": "user", "content": "Name one animal."}], max_tokens=8)
        assert isinstance(text, str) and text
        # Free generation (no constraint) also comes back with parseable logprobs, or None; never an exception.
        free = OpenAIBackend(server, "SmolLM2-135M-Instruct", cache_dir=None).answer_probabilities(
            MSGS[:1] + [{"role": "user", "content": "Is a cat an animal? Answer with a list of one number (1 or 0)."}],
            1,
        )
        assert len(free) == 1 and (free[0] is None or 0.0 <= free[0] <= 1.0)


@pytest.mark.slow
def test_response_cache_skips_the_server(server, tmp_path):
    msgs = detection_msgs("numbers", ["one two three", "hello"])
    a = OpenAIBackend(server, "SmolLM2-135M-Instruct", cache_dir=tmp_path, structured="guided_regex")
    first = a.answer_probabilities(msgs, 2)
    before = server_stats(server)["chat_completions"]
    # Same call again, and from a fresh client (a resumed run) on the same cache: the server sees nothing.
    assert a.answer_probabilities(msgs, 2) == first
    b = OpenAIBackend(server, "SmolLM2-135M-Instruct", cache_dir=tmp_path, structured="guided_regex")
    assert b.answer_probabilities(msgs, 2) == first
    assert server_stats(server)["chat_completions"] == before
    assert a.stats["cache_hits"] == 1 and b.stats["cache_hits"] == 1 and b.stats["requests"] == 0
    assert len(list(tmp_path.rglob("*.json"))) == 1
    # A corrupt entry is re-requested, not fatal.
    next(tmp_path.rglob("*.json")).write_text("{not json")
    assert b.answer_probabilities(msgs, 2) == first
    assert server_stats(server)["chat_completions"] == before + 1


@pytest.mark.slow
def test_concurrent_requests(server):
    many = [detection_msgs("animals", [f"example {i}: a cat", "nothing here"]) for i in range(4)]
    client = OpenAIBackend(server, "SmolLM2-135M-Instruct", cache_dir=None, structured="guided_regex", max_workers=4)
    t0 = time.monotonic()
    out = client.answer_probabilities_many(many, 2)
    assert len(out) == 4 and all(len(p) == 2 and None not in p for p in out)
    # Several requests were in flight at the server at once (it queues them on its model lock).
    assert server_stats(server)["max_in_flight"] >= 2
    # Order is preserved: the same answers as one at a time.
    serial = OpenAIBackend(server, "SmolLM2-135M-Instruct", cache_dir=None, structured="guided_regex")
    assert serial.answer_probabilities(many[3], 2) == out[3]
    assert time.monotonic() - t0 < 60


def test_endpoint_down_fails_fast_and_bounded(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"cannot reach .*127\.0\.0\.1.*serve"):
        OpenAIBackend(url, "m", cache_dir=tmp_path).answer_probabilities(MSGS, 3)
    # Without the health check: the request is retried with back-off, then a clear error.
    client = OpenAIBackend(url, "m", cache_dir=tmp_path, health_check=False, max_retries=2, backoff_s=0.01)
    with pytest.raises(BackendUnavailable, match="failed 3 times"):
        client.generate(MSGS)
    assert client.stats["requests"] == 3 and client.stats["retries"] == 2
    assert time.monotonic() - t0 < 10


@pytest.fixture
def flaky_server(local):
    """The same server class in a thread, answering 503 to its first two chat requests."""
    from rsae_utils.autointerp.llm.serve import LocalServer

    srv = LocalServer(("127.0.0.1", 0), local, fail_first=2)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.slow
def test_retries_with_backoff_then_success(flaky_server, local_answer):
    client = OpenAIBackend(
        flaky_server.base_url, "SmolLM2-135M-Instruct", cache_dir=None, backoff_s=0.01, structured="guided_regex"
    )
    p = client.answer_probabilities(MSGS, 3)
    assert all(got == pytest.approx(want, abs=1e-4) or got in (0.0, 1.0) for got, want in zip(p, local_answer[1]))
    assert client.stats["retries"] == 2 and flaky_server.stats["chat_completions"] == 3
    # A 4xx is not retried: it is the request's fault, and the message says what the server said.
    with pytest.raises(BackendError, match="HTTP 400.*answer-list"):
        client.chat({"model": "x", "messages": MSGS, "guided_regex": "[a-z]+"})
    assert client.stats["retries"] == 2
